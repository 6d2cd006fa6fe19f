"""Folding batches of packets into the flow table.

Most packets only add to counters; they are summed per flow with numpy. Packets that need
judgement go one by one through the per-packet decoder and FlowTable.add, which are the
reference: a flow's first packet (client side), TCP packets while the handshake is watched,
any packet the columnar decoder does not handle (tunnels, fragments, other protocols,
malformed), and every packet of a flow whose timing could end it by the idle timeout inside
the batch. Payload samples of the other packets are copied in capture order after those.
The result equals feeding every packet to FlowTable.add; a test holds the two to that.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from flowscan.capture.columns import FastColumns, compiled_rank, decode_columns
from flowscan.capture.decode import PROTO_TCP, SUPPORTED_LINKS, Decoder
from flowscan.capture.records import Batch
from flowscan.capture.vector import Gather
from flowscan.flows import (
    CLASS_OF,
    HANDSHAKE_WINDOW,
    LATE_RTP,
    MAX_SSRCS,
    OTHER_CLASS,
    RTP_CLASS,
    SAMPLE_CLASSES,
    TCP_MEDIA_CLASS,
    FlowState,
    FlowTable,
    pack_sample_head,
)

CLASS_TABLE = np.asarray(CLASS_OF, dtype=np.int64)
LATE_COUNTS = np.asarray(sorted(LATE_RTP), dtype=np.int64)


class _MergePlan(NamedTuple):
    """What _plan found for the packets a batch can sum per flow, in _merge's order."""

    fast: np.ndarray  # indices into the batch's IP columns, summed not walked
    sampled: np.ndarray  # of those, the ones whose payload is kept as a sample
    before: np.ndarray  # packets per (group, sender) before this batch
    whole: np.ndarray  # groups that go packet by packet
    column: np.ndarray  # 0: the lower endpoint sends, 1: the upper
    known: dict[int, tuple[FlowState, int]]  # group -> existing flow and its lower side
    klass: np.ndarray  # payload class of each packet
    rtp: np.ndarray  # fast packets with an RTP header
    ssrc: np.ndarray  # their SSRCs
    late: np.ndarray  # fast RTP-class packets at a LATE_RTP count of their sender


_COOKIE = 0x2112A442


def _tcp_media(gather: Gather, cols: FastColumns, batch: Batch, which: np.ndarray
               ) -> np.ndarray:
    """flows.tcp_media_frame for the packets `which` (indices into cols) at once."""
    ps, n = cols.ps[which], cols.pe[which] - cols.ps[which]
    rows = cols.idx[which]
    stop = batch.data_off[rows] + batch.caplen[rows]  # the captured bytes' end
    ok = (n >= 8) & (ps + 8 <= stop)
    at = np.where(ok, ps, 0)  # reads of packets that fail the test stay in bounds
    last = len(gather.u8) - 8

    def u8(i: np.ndarray) -> np.ndarray:
        return gather.u8[np.clip(i, 0, last)].astype(np.int64)

    def u16(i: np.ndarray) -> np.ndarray:
        return gather.u16be[np.clip(i, 0, last)].astype(np.int64)

    first, second, length = u8(at), u8(at + 1), u16(at + 2)
    in_channel = (first >= 0x40) & (first <= 0x4F)
    end = 4 + length + (-length % 4)
    channel = in_channel & (((n - 4 - length >= 0) & (n - 4 - length <= 3)) | (
        (end + 4 <= n) & (at + end + 2 <= stop) & (u16(at + end) == u16(at))))
    stun = (first == 0) & ((second == 0x16) | (second == 0x17))
    data = at + 24 + u16(at + 22)
    indication = (stun & (gather.u32be[at + 4] == _COOKIE) & (20 + length == n)
                  & (data + 5 <= stop) & (u16(data) == 0x13) & (u8(data + 4) >= 128)
                  & (u8(data + 4) <= 191))
    end = 2 + u16(at)
    after = u8(at + end + 2)
    framed = (~in_channel & ~stun & (u8(at + 2) >= 128) & (u8(at + 2) <= 191) & (
        (end == n) | ((end + 3 <= n) & (at + end + 3 <= stop) & (after >= 128)
                      & (after <= 191))))
    return ok & (channel | indication | framed)


def _classes(gather: Gather, cols: FastColumns, batch: Batch, captured: np.ndarray
             ) -> np.ndarray:
    """Each packet's payload class (flows.CLASS_OF): UDP by the first payload byte, TCP
    media frames or other. Only TCP packets are read as frames: a UDP packet with nothing
    captured is of the other class, whatever its bytes."""
    tcp = cols.proto == PROTO_TCP
    klass = np.where(captured & ~tcp, CLASS_TABLE[gather.u8[cols.ps]], OTHER_CLASS)
    segments = np.flatnonzero(tcp)
    klass[segments[_tcp_media(gather, cols, batch, segments)]] = TCP_MEDIA_CLASS
    return klass


class FlowAccounting:
    def __init__(self, table: FlowTable, decoder: Decoder, columnar: bool = True) -> None:
        self.table = table
        self.decoder = decoder
        self.columnar = columnar
        self.ip_packets = 0
        self.malformed = 0
        self.unsupported: dict[int, int] = {}
        self.bytes = 0
        self.first_ts = float("inf")
        self.last_ts = float("-inf")

    def add_batch(self, batch: Batch) -> None:
        if not len(batch):
            return
        self.bytes += int(batch.wirelen.sum())
        self.first_ts = min(self.first_ts, float(batch.ts.min()))
        self.last_ts = max(self.last_ts, float(batch.ts.max()))
        table = self.table
        table.autosweep = False
        try:
            if self.columnar:
                cols = decode_columns(batch)
                slow, merge = self._plan(batch, cols)
            else:
                slow, merge = np.ones(len(batch), dtype=bool), None
            self._per_packet(batch, np.flatnonzero(slow))
            if merge is not None:
                self._merge(batch, cols, *merge)
        finally:
            table.autosweep = True
        table.note_time(float(batch.ts.max()))
        table.sweep_if_due()

    def _per_packet(self, batch: Batch, indices: np.ndarray) -> None:
        buf = memoryview(batch.buf)
        decode = self.decoder.decode
        add = self.table.add
        offs = batch.data_off[indices].tolist()
        caps = batch.caplen[indices].tolist()
        wires = batch.wirelen[indices].tolist()
        stamps = batch.ts[indices].tolist()
        links = batch.link[indices].tolist()
        for off, cap, wire, ts, link in zip(offs, caps, wires, stamps, links, strict=True):
            data = bytes(buf[off:off + cap])
            try:
                decoded = decode(link, data)
            except (IndexError, ValueError):
                self.malformed += 1
                continue
            if decoded is None:
                if link not in SUPPORTED_LINKS:
                    self.unsupported[link] = self.unsupported.get(link, 0) + 1
                continue
            self.ip_packets += 1
            add(ts, wire, decoded, data)

    def _raw_key(self, batch: Batch, cols: FastColumns, i: int) -> bytes:
        """The per-packet decoder's key for fast packet i: addresses then ports."""
        l3, l4 = int(cols.l3[i]), int(cols.l4[i])
        buf = batch.buf
        if cols.is6[i]:
            return bytes(buf[l3 + 8:l3 + 40]) + bytes(buf[l4:l4 + 4])
        return bytes(buf[l3 + 12:l3 + 20]) + bytes(buf[l4:l4 + 4])

    def _plan(self, batch: Batch, cols: FastColumns
              ) -> tuple[np.ndarray, _MergePlan | None]:
        """Which packets go one by one; for the rest, what the merge needs."""
        n = len(batch)
        slow = np.ones(n, dtype=bool)
        m = len(cols.idx)
        if not m:
            return slow, None
        table = self.table
        group, first = cols.group, cols.first
        groups = len(first)
        # Per group, the flow as it stands before this batch.
        exists = np.zeros(groups, dtype=bool)
        last_seen = np.zeros(groups)
        before = np.zeros((groups, 2), dtype=np.int64)  # packets per lower/upper sender
        budget = np.zeros((groups, 2, SAMPLE_CLASSES), dtype=np.int64)
        tracking = np.zeros(groups, dtype=bool)
        protos = cols.proto[first].tolist()
        lower_first = cols.lower_sends[first].tolist()
        known: dict[int, tuple[FlowState, int]] = {}
        for g, i in enumerate(first.tolist()):
            entry = table.lookup(protos[g], self._raw_key(batch, cols, i))
            if entry is None:
                budget[g] = table.class_budget
                tracking[g] = protos[g] == PROTO_TCP
                continue
            flow, d = entry
            exists[g] = True
            last_seen[g] = flow.last_seen
            # Column 0 is "the lower endpoint sends"; map the flow's directions onto it.
            d_lower = d if lower_first[g] else 1 - d
            known[g] = flow, d_lower
            before[g] = flow.pkts[d_lower], flow.pkts[1 - d_lower]
            budget[g, 0] = flow.budget[d_lower * SAMPLE_CLASSES:(d_lower + 1) * SAMPLE_CLASSES]
            budget[g, 1] = flow.budget[(1 - d_lower) * SAMPLE_CLASSES:
                                       (2 - d_lower) * SAMPLE_CLASSES]
            tracking[g] = flow.tracking
        # A flow may end by idle timeout inside the batch only if the batch spans more than
        # the timeout or the flow was already quiet; such flows go packet by packet.
        newest = float(batch.ts.max())
        span = newest - float(batch.ts.min())
        quiet = exists & (newest - last_seen > table.idle_timeout)
        whole = quiet | (span > table.idle_timeout)
        # Rank of each packet within its group, and of each payload packet within its
        # (group, sender) pair, in capture order.
        rank = _rank(group)
        column = np.where(cols.lower_sends, 0, 1)
        has_payload = cols.pe > cols.ps
        rows = cols.idx
        captured = cols.ps < batch.data_off[rows] + batch.caplen[rows]
        gather = Gather(batch.buf)
        klass = _classes(gather, cols, batch, captured)
        triple = (group * 2 + column) * SAMPLE_CLASSES + klass
        prank = np.full(m, np.iinfo(np.int64).max)
        pay = np.flatnonzero(has_payload)
        prank[pay] = _rank(triple[pay])
        window = np.where(tracking, HANDSHAKE_WINDOW - before.sum(axis=1), 0)
        window = np.where(exists, window, np.maximum(window, 1))  # a new flow's first packet
        one_by_one = whole[group] | (rank < window[group])
        sampled = np.flatnonzero(~one_by_one & (prank < budget[group, column, klass]))
        slow[cols.idx[~one_by_one]] = False
        fast = np.flatnonzero(~one_by_one)
        # RTP (not RTCP) headers of the fast packets, for the per-flow SSRC count.
        rtp = fast[(klass[fast] == RTP_CLASS) & (cols.pe[fast] - cols.ps[fast] >= 12)
                   & (cols.ps[fast] + 12 <= batch.data_off[rows[fast]]
                      + batch.caplen[rows[fast]])]
        second = gather.u8[cols.ps[rtp] + 1]
        rtp = rtp[(second < 192) | (second > 223)]
        ssrc = gather.u32be[cols.ps[rtp] + 8].astype(np.int64)
        # Each packet's count among its sender's packets, as FlowTable.add has it then.
        count = before[group, column] + _rank(group * 2 + column) + 1
        late = fast[(klass[fast] == RTP_CLASS) & has_payload[fast]
                    & np.isin(count[fast], LATE_COUNTS)]
        return slow, _MergePlan(fast, sampled, before, whole, column, known, klass, rtp, ssrc,
                                late)

    def _merge(self, batch: Batch, cols: FastColumns, fast: np.ndarray, sampled: np.ndarray,
               before: np.ndarray, whole: np.ndarray, column: np.ndarray,
               known: dict[int, tuple[FlowState, int]], klass: np.ndarray,
               rtp: np.ndarray, ssrc: np.ndarray, late: np.ndarray) -> None:
        """Add the summed packets to their flows; first/last times come from all packets."""
        self.ip_packets += len(fast)
        if not len(fast):
            return
        groups = len(cols.first)
        group = cols.group
        ts = batch.ts[cols.idx]
        pair = group * 2 + column
        fast_pair = pair[fast]
        packets = np.bincount(fast_pair, minlength=2 * groups).reshape(groups, 2)
        octets = np.bincount(fast_pair, weights=batch.wirelen[cols.idx[fast]],
                             minlength=2 * groups).reshape(groups, 2)
        # First and last packet of each (group, sender) among all its packets here.
        first_at = np.full(2 * groups, -1, dtype=np.int64)
        last_at = np.full(2 * groups, -1, dtype=np.int64)
        # Ranked within its pair, each pair's first packet is at rank 0 and its last at
        # rank (its packets - 1): one packet each, so every index is assigned once.
        rank = _rank(pair)
        at = np.flatnonzero(rank == 0)
        first_at[pair[at]] = at
        at = np.flatnonzero(rank == np.bincount(pair, minlength=2 * groups)[pair] - 1)
        last_at[pair[at]] = at
        first_at, last_at = (np.reshape(first_at, (groups, 2)),
                             np.reshape(last_at, (groups, 2)))
        # Existing flows were found before the per-packet pass; new ones exist since it.
        # Plain lists: indexing numpy arrays one element at a time is slow.
        todo = np.flatnonzero((packets.sum(axis=1) > 0) & ~whole)
        n_pk, n_oct = packets[todo].tolist(), octets[todo].astype(np.int64).tolist()
        firsts, lasts = first_at[todo], last_at[todo]
        t_first = np.where(firsts >= 0, ts[firsts], 0.0).tolist()
        t_last = np.where(lasts >= 0, ts[lasts], 0.0).tolist()
        had, seen = before[todo].tolist(), (lasts >= 0).tolist()
        flows = known
        touched = self.table.touched
        for j, g in enumerate(todo.tolist()):
            flow, d_lower = known.get(g) or self._resolve(batch, cols, g)
            flows[g] = flow, d_lower
            dirs = (d_lower, 1 - d_lower)
            for c in (0, 1):
                if not seen[j][c]:
                    continue
                fd = dirs[c]
                flow.pkts[fd] += n_pk[j][c]
                flow.octets[fd] += n_oct[j][c]
                flow.last[fd] = t_last[j][c]
                if not had[j][c]:
                    flow.first[fd] = t_first[j][c]
        if len(rtp):
            # Distinct (group, sender, SSRC) as one int64 each: a plain sort, where
            # np.unique over rows would sort them as opaque records, ~30x slower.
            keys = np.unique((pair[rtp] << 32) | ssrc)
            for key in keys.tolist():
                g, c, value = key >> 33, (key >> 32) & 1, key & 0xFFFFFFFF
                flow, d_lower = flows[g]
                seen = flow.ssrcs[d_lower if c == 0 else 1 - d_lower]
                if len(seen) < MAX_SSRCS:
                    before_ssrcs = len(seen)
                    seen.add(value.to_bytes(4, "big"))
                    if touched is not None and len(seen) > before_ssrcs:
                        touched.add(flow)
        buf = memoryview(batch.buf)
        # A sample stops at the payload's end, its class's size, or the captured length.
        rows = cols.idx[sampled]
        kinds = klass[sampled]
        limits = np.asarray(self.table.class_bytes, dtype=np.int64)[kinds]
        stop = np.minimum(np.minimum(cols.pe[sampled], cols.ps[sampled] + limits),
                          batch.data_off[rows] + batch.caplen[rows])
        for g, c, k, start, end, when in zip(
            group[sampled].tolist(), column[sampled].tolist(), kinds.tolist(),
            cols.ps[sampled].tolist(), stop.tolist(), ts[sampled].tolist(), strict=True,
        ):
            flow, d_lower = flows[g]
            fd = d_lower if c == 0 else 1 - d_lower
            flow.budget[fd * SAMPLE_CLASSES + k] -= 1
            end = max(start, end)
            flow.samples += pack_sample_head(when, fd, end - start)
            flow.samples += buf[start:end]
            if touched is not None:
                touched.add(flow)
        rows = cols.idx[late]
        stop = np.minimum(np.minimum(cols.pe[late], cols.ps[late] + self.table.class_bytes[
            RTP_CLASS]), batch.data_off[rows] + batch.caplen[rows])
        for g, c, start, end, when in zip(group[late].tolist(), column[late].tolist(),
                                          cols.ps[late].tolist(), stop.tolist(),
                                          ts[late].tolist(), strict=True):
            flow, d_lower = flows[g]
            end = max(start, end)
            flow.late += pack_sample_head(when, d_lower if c == 0 else 1 - d_lower, end - start)
            flow.late += buf[start:end]
            if touched is not None:
                touched.add(flow)

    def _resolve(self, batch: Batch, cols: FastColumns, g: int) -> tuple[FlowState, int]:
        """A group's flow, and its direction for packets sent by the lower endpoint."""
        i = int(cols.first[g])
        entry = self.table.lookup(int(cols.proto[i]), self._raw_key(batch, cols, i))
        if entry is None:  # cannot happen: the group's first packet made or found the flow
            raise RuntimeError("flow vanished while merging a batch")
        flow, d = entry
        return flow, d if cols.lower_sends[i] else 1 - d


def _rank(keys: np.ndarray) -> np.ndarray:
    """Position of each element among the elements with the same key, in array order."""
    ranked = compiled_rank(keys)
    return ranked if ranked is not None else numpy_rank(keys)


def numpy_rank(keys: np.ndarray) -> np.ndarray:
    """_rank by a stable sort: the reference."""
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    run_start = np.repeat(starts, np.diff(np.r_[starts, len(keys)]))
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys)) - run_start
    return rank
