"""Columnar decoding of a batch: the common packet shapes, decoded for all packets at once.

"Fast" packets are those whose flow key and payload bounds can be read without judgement:
Ethernet (up to two VLAN tags), Linux cooked v1/v2, raw IP or BSD loopback, carrying an
unfragmented IPv4 or IPv6 (no extension headers) UDP or TCP packet that is not a tunnel. All
other packets (fragments, tunnels, other protocols, anything short or inconsistent) are left
to the per-packet decoder, which is the reference: for a fast packet, both give the same
flow, direction and payload bounds.

The compiled twin (_columns.c, built optionally) decodes each packet in one pass and groups
flows with a hash table; the numpy code here is its reference and the fallback, and
tests/test_columns.py holds the two to the same columns.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from flowscan.capture import decode as d
from flowscan.capture.records import Batch
from flowscan.capture.vector import Gather

try:
    from flowscan.capture import _columns
except ImportError:  # built optionally (setup.py); the numpy code below does the same
    _columns = None  # type: ignore[assignment]

RAW_LINKS = (d.LINKTYPE_RAW, d.LINKTYPE_RAW_BSD, d.LINKTYPE_RAW_OPENBSD)

_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53,
                 0x94D049BB133111EB], dtype=np.uint64)


@dataclass
class FastColumns:
    """Columns of the fast packets of a batch (index i refers to batch packet idx[i])."""

    idx: np.ndarray  # batch index of each fast packet
    proto: np.ndarray
    is6: np.ndarray  # bool
    l3: np.ndarray  # offset of the IP header in the batch buffer
    l4: np.ndarray
    ps: np.ndarray  # payload start and end in the batch buffer (as the decoder gives)
    pe: np.ndarray
    group: np.ndarray  # bidirectional flow group of each fast packet, 0..groups-1
    first: np.ndarray  # per group: position (in these columns) of its first packet
    lower_sends: np.ndarray  # bool: the sender is the group's lower endpoint


def _link_layer(g: Gather, off: np.ndarray, link: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Ethertype-like network type and IP header offset per packet (-1 where unknown)."""
    n = len(off)
    a, u16 = g.u8, g.u16be
    et = np.zeros(n, dtype=np.int64)
    l3 = np.full(n, -1, dtype=np.int64)
    eth = link == d.LINKTYPE_ETHERNET
    if eth.any():
        o = off[eth]
        t = u16[o + 12]
        lo = o + 14
        for _ in range(2):  # IEEE 802.1Q / 802.1ad tags
            tag = (t == 0x8100) | (t == 0x88A8) | (t == 0x9100)  # decode.ETH_VLAN
            if not tag.any():
                break
            t = np.where(tag, u16[lo + 2], t)
            lo = np.where(tag, lo + 4, lo)
        et[eth], l3[eth] = t, lo
    for linktype, type_at, ip_at in ((d.LINKTYPE_LINUX_SLL, 14, 16),
                                     (d.LINKTYPE_LINUX_SLL2, 0, 20)):
        m = link == linktype
        if m.any():
            et[m], l3[m] = u16[off[m] + type_at], off[m] + ip_at
    m = (link == RAW_LINKS[0]) | (link == RAW_LINKS[1]) | (link == RAW_LINKS[2])
    if m.any():
        version = a[off[m]] >> 4
        et[m] = np.where(version == 4, d.ETH_IPV4, np.where(version == 6, d.ETH_IPV6, 0))
        l3[m] = off[m]
    for linktype, ethertype in ((d.LINKTYPE_IPV4, d.ETH_IPV4), (d.LINKTYPE_IPV6, d.ETH_IPV6)):
        m = link == linktype
        if m.any():
            et[m], l3[m] = ethertype, off[m]
    m = (link == d.LINKTYPE_NULL) | (link == d.LINKTYPE_LOOP)
    if m.any():
        family = a[off[m]] | a[off[m] + 3]
        et[m] = np.where(family == 2, d.ETH_IPV4,
                         np.where(np.isin(family, (24, 28, 30)), d.ETH_IPV6, 0))
        l3[m] = off[m] + 4
    return et, l3


def native() -> bool:
    """Whether the compiled decoder is in use (FLOWSCAN_PURE_PYTHON=1 turns it off)."""
    return _columns is not None and not os.environ.get("FLOWSCAN_PURE_PYTHON")


def decode_columns(batch: Batch) -> FastColumns:
    """The fast packets of the batch and their columns."""
    if native():
        return _compiled_columns(batch)
    return numpy_columns(batch)


def _compiled_columns(batch: Batch) -> FastColumns:
    """decode_columns by the compiled decoder, the groups numbered as _group numbers them:
    by their key's hash, ascending (the order np.unique gives)."""
    n = len(batch)
    idx, proto, l3, l4, ps, pe, sport, dport = np.empty((8, n), dtype=np.int64)
    is6 = np.empty(n, dtype=bool)
    off, cap, link = (np.ascontiguousarray(column, dtype=np.int64)  # as they come: no copy
                      for column in (batch.data_off, batch.caplen, batch.link))
    m = _columns.decode(batch.buf, off, cap, link, idx, proto, l3, l4, ps, pe, sport, dport,
                        is6)
    idx, proto, l3, l4, ps, pe, sport, dport, is6 = (
        column[:m] for column in (idx, proto, l3, l4, ps, pe, sport, dport, is6))
    group = np.empty(m, dtype=np.int64)
    first = np.empty(m, dtype=np.int64)
    hashes = np.empty(m, dtype=np.uint64)
    lower_sends = np.empty(m, dtype=bool)
    groups = _columns.group(batch.buf, l3, is6, proto, sport, dport, group, first, hashes,
                            lower_sends)
    if groups < 0:  # two keys share a hash: grouped by the keys, as _group does then
        group, first, lower_sends = _group(Gather(batch.buf), l3, is6, proto, sport, dport)
    else:
        order = np.argsort(hashes[:groups])
        rank = np.empty(groups, dtype=np.int64)
        rank[order] = np.arange(groups)
        group, first = rank[group], first[:groups][order]
    return FastColumns(idx, proto, is6, l3, l4, ps, pe, group, first, lower_sends)


def compiled_rank(keys: np.ndarray) -> np.ndarray | None:
    """accounting._rank by the compiled decoder (counting, not sorting), or None where it
    is not in use or the keys are not small non-negative integers."""
    if not native():
        return None
    out = np.empty(len(keys), dtype=np.int64)
    done = _columns.rank(np.ascontiguousarray(keys, dtype=np.int64), out)
    return out if done == 0 else None


def numpy_columns(batch: Batch) -> FastColumns:
    """decode_columns in numpy: the reference."""
    g = Gather(batch.buf)
    a, u16 = g.u8, g.u16be
    off, cap = batch.data_off, batch.caplen
    et, l3 = _link_layer(g, off, batch.link)
    known = l3 >= 0
    l3 = np.where(known, l3, 0)
    end_cap = off + cap
    b0 = a[l3].astype(np.int64)
    # IPv4 (RFC 791 section 3.1): no fragments, sane header and total lengths.
    ihl = (b0 & 0x0F) << 2
    v4 = known & (et == d.ETH_IPV4) & (b0 >> 4 == 4) & (ihl >= 20) & (end_cap >= l3 + 20)
    tot = u16[l3 + 2]
    v4 &= ((u16[l3 + 6] & 0x3FFF) == 0) & (tot >= ihl)
    # IPv6 (RFC 8200 section 3): transport directly after the fixed header.
    plen = u16[l3 + 4]
    v6 = known & (et == d.ETH_IPV6) & (b0 >> 4 == 6) & (plen > 0) & (end_cap >= l3 + 40)
    proto = np.where(v4, a[l3 + 9], a[l3 + 6]).astype(np.int64)
    l4 = np.where(v4, l3 + ihl, l3 + 40)
    ip_end = np.where(v4, l3 + tot, l3 + 40 + plen)
    udp = proto == d.PROTO_UDP
    tcp = proto == d.PROTO_TCP
    # The bytes the per-packet decoder reads must be there: ports and length for UDP,
    # up to the flags for TCP.
    fast = (v4 | v6) & ((udp & (end_cap >= l4 + 6)) | (tcp & (end_cap >= l4 + 14)))
    idx = np.flatnonzero(fast)
    a_l3, a_l4, a_end = l3[idx], l4[idx], ip_end[idx]
    a_proto = proto[idx]
    sport, dport = u16[a_l4].astype(np.int64), u16[a_l4 + 2].astype(np.int64)
    a_udp = a_proto == d.PROTO_UDP
    tunnel = a_udp & ((sport == d.UDP_GTPU) | (dport == d.UDP_GTPU) | (dport == d.UDP_VXLAN))
    doff = (a[a_l4 + 12].astype(np.int64) >> 4) << 2
    keep = ~tunnel & (a_udp | (doff >= 20))
    if not keep.all():
        idx, a_l3, a_l4, a_end, a_proto = (x[keep] for x in (idx, a_l3, a_l4, a_end, a_proto))
        sport, dport, a_udp, doff = sport[keep], dport[keep], a_udp[keep], doff[keep]
    ulen = u16[a_l4 + 4].astype(np.int64)
    udp_end = np.where((ulen >= 8) & (a_l4 + ulen < a_end), a_l4 + ulen, a_end)
    ps = np.where(a_udp, a_l4 + 8, a_l4 + doff)
    pe = np.where(a_udp, udp_end, a_end)
    is6 = v6[idx]
    group, first, lower_sends = _group(g, a_l3, is6, a_proto, sport, dport)
    return FastColumns(idx, a_proto, is6, a_l3, a_l4, ps, pe, group, first, lower_sends)


def _group(g: Gather, l3: np.ndarray, is6: np.ndarray, proto: np.ndarray,
           sport: np.ndarray, dport: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bidirectional grouping: each endpoint as (address high, address low, port)."""
    m = len(l3)
    zeros = np.zeros(m, dtype=np.uint64)
    src_hi, src_lo, dst_hi, dst_lo = zeros, zeros.copy(), zeros.copy(), zeros.copy()
    v4 = ~is6
    if v4.any():
        src_lo[v4] = g.u32be[l3[v4] + 12]
        dst_lo[v4] = g.u32be[l3[v4] + 16]
    if is6.any():
        src_hi = src_hi.copy()
        src_hi[is6], src_lo[is6] = g.u64be[l3[is6] + 8], g.u64be[l3[is6] + 16]
        dst_hi[is6], dst_lo[is6] = g.u64be[l3[is6] + 24], g.u64be[l3[is6] + 32]
    sp, dp = sport.astype(np.uint64), dport.astype(np.uint64)
    src_greater = (src_hi > dst_hi) | ((src_hi == dst_hi) & (
        (src_lo > dst_lo) | ((src_lo == dst_lo) & (sp > dp))))
    lower_sends = ~src_greater
    meta = (proto.astype(np.uint64) << np.uint64(1)) | is6.astype(np.uint64)
    keys = np.stack([
        meta,
        np.where(src_greater, dst_hi, src_hi), np.where(src_greater, dst_lo, src_lo),
        np.where(src_greater, dp, sp),
        np.where(src_greater, src_hi, dst_hi), np.where(src_greater, src_lo, dst_lo),
        np.where(src_greater, sp, dp),
    ], axis=1)
    mixed = (keys * _MIX).view(np.uint64)
    h = np.bitwise_xor.reduce(mixed ^ (mixed >> np.uint64(29)), axis=1)
    _, first, group = np.unique(h, return_index=True, return_inverse=True)
    if not np.array_equal(keys, keys[first[group]]):  # a hash collision: group exactly
        _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return group.reshape(-1), first, lower_sends
