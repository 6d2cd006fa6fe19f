"""pcapng files (draft-ietf-opsawg-pcapng): sections, interfaces, packet and secrets blocks.

Every block is: type (4), total length (4), body, total length again (4), in the byte order
of the section, which the Section Header Block's byte-order magic sets (section 4.1).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from flowscan.capture.records import (
    MAX_RECORD,
    Batch,
    ChunkedReader,
    DecryptionSecrets,
    single_batch,
)
from flowscan.capture.source import CaptureSource
from flowscan.capture.vector import Gather
from flowscan.capture.walk import EPB, epb_starts  # EPB: the walker's, one definition

SHB = 0x0A0D0D0A
IDB = 0x00000001
OPB = 0x00000002  # obsolete packet block (appendix A)
SPB = 0x00000003
NRB = 0x00000004
ISB = 0x00000005
DSB = 0x0000000A
BYTE_ORDER_MAGIC = 0x1A2B3C4D

OPT_ENDOFOPT = 0
OPT_IF_TSRESOL = 9
OPT_IF_TSOFFSET = 14

SHB_MAGIC_BYTES = b"\x0a\x0d\x0d\x0a"


@dataclass
class Interface:
    link_type: int
    snaplen: int
    units_per_second: float = 1e6
    offset_seconds: int = 0


def iter_options(body: bytes, start: int, order: str) -> Iterator[tuple[int, bytes]]:
    """Options are (code 2, length 2, value padded to 4); a cut option ends the list."""
    head = struct.Struct(order + "HH")
    off = start
    end = len(body)
    while off + 4 <= end:
        code, length = head.unpack_from(body, off)
        if code == OPT_ENDOFOPT:
            return
        value = body[off + 4:off + 4 + length]
        if len(value) < length:
            return
        yield code, value
        off += 4 + ((length + 3) & ~3)


def parse_tsresol(value: bytes) -> float:
    """if_tsresol (section 4.2): high bit clear means 10^-n, set means 2^-n seconds."""
    if not value:
        return 1e6
    v = value[0]
    exponent = v & 0x7F
    if v & 0x80:
        return float(2**exponent) if exponent < 64 else 1e6
    return float(10**exponent) if exponent <= 18 else 1e6


BYTE_ORDERS = {b"\x4d\x3c\x2b\x1a": "<", b"\x1a\x2b\x3c\x4d": ">"}
NRB_IPV4 = 1
NRB_IPV6 = 2


class PcapngReader(ChunkedReader):
    format_name = "pcapng"

    def __init__(self, source: CaptureSource, head: bytes) -> None:
        super().__init__(source, head)
        self.interfaces: list[Interface] = []
        self._order = "<"
        self._tail_start = 0
        self._secrets_blocks = 0  # decryption secrets blocks seen, corrupt ones included

    def _need(self, off: int, size: int) -> int:
        """Make sure size bytes from off are buffered; returns the (possibly moved) offset,
        or -1 at the end of the stream (then self._tail_start is where the block began)."""
        while self._len - off < size:
            if not self._refill(off):
                self._tail_start = off
                return -1
            off = 0
        return off

    def batches(self) -> Iterator[Batch]:
        off = 0
        while True:
            off = self._need(off, 8)
            if off >= 0 and self._buf[off:off + 4] == SHB_MAGIC_BYTES:
                off = self._need(off, 12)
            if off < 0:
                if self._len > self._tail_start:
                    self._cut_tail(self._tail_start, "last block header incomplete")
                return
            buf = self._buf
            if buf[off:off + 4] == SHB_MAGIC_BYTES:
                magic = bytes(buf[off + 8:off + 12])
                if magic not in BYTE_ORDERS:
                    raise self._fail(off, "section header has no valid byte-order magic")
                self._order = BYTE_ORDERS[magic]
            head = struct.Struct(self._order + "II").unpack_from
            btype, blen = head(buf, off)
            self._check_length(off, btype, blen)
            if self.facts.sections == 0 and btype != SHB:
                raise self._fail(off, "pcapng does not start with a section header")
            off = self._need(off, blen)
            if off < 0:
                self._cut_tail(self._tail_start, f"block of {blen} bytes incomplete")
                return
            buf = self._buf
            if btype != EPB:
                yield from self._other(buf, off, btype, blen, self._order)
                off += blen
                continue
            # A run of enhanced packet blocks, walked at once; any other block ends the
            # run, so the changes it makes apply in order.
            starts, off, bad = epb_starts(buf, off, self._len, self._order)
            if bad is not None:
                self._check_length(off, EPB, bad, len(starts))
            yield self._epb_batch(buf, starts)

    def _check_length(self, off: int, btype: int, blen: int, pending: int = 0) -> None:
        if blen < 12 or blen % 4 or blen > MAX_RECORD:
            raise self._fail(off, f"block of type 0x{btype:08x} has bad length {blen}",
                             self.facts.packets + pending)

    def _epb_batch(self, buf: bytearray, starts: np.ndarray) -> Batch:
        """Enhanced packet blocks (section 4.3) as columns, each checked as a whole."""
        u32 = Gather(buf).u32(self._order)
        blen = u32[starts + 4].astype(np.int64)
        if_id = u32[starts + 8].astype(np.int64)
        ts_hi = u32[starts + 12]
        ts_lo = u32[starts + 16]
        incl = u32[starts + 20].astype(np.int64)
        orig = u32[starts + 24].astype(np.int64)
        trailer = u32[starts + blen - 4].astype(np.int64)
        n_if = len(self.interfaces)
        bad = (trailer != blen) | (blen < 32) | (28 + incl > blen - 4) | (if_id >= n_if)
        if bad.any():
            i = int(np.argmax(bad))
            off = int(starts[i])
            done = self.facts.packets + i
            if trailer[i] != blen[i]:
                raise self._fail(off, f"block of type 0x{EPB:08x} is corrupt (trailing length "
                                 f"{int(trailer[i])} differs from {int(blen[i])})", done)
            raise self._fail(off, "enhanced packet block is corrupt (captured length or "
                             f"interface {int(if_id[i])} out of range)", done)
        self.facts.packets += len(starts)
        units = np.array([i.units_per_second for i in self.interfaces], dtype=np.float64)
        shift = np.array([i.offset_seconds for i in self.interfaces], dtype=np.float64)
        links = np.array([i.link_type for i in self.interfaces], dtype=np.int64)
        ticks = ts_hi.astype(np.float64) * 4294967296.0 + ts_lo.astype(np.float64)
        ts = ticks / units[if_id] + shift[if_id]
        return Batch(buf, starts + 28, incl, orig, ts, links[if_id])

    def _other(self, buf: bytearray, off: int, btype: int, blen: int, order: str
               ) -> Iterator[Batch]:
        """Any block but an enhanced packet block, whole in buf at off."""
        (trailer,) = struct.unpack_from(order + "I", buf, off + blen - 4)
        if trailer != blen:
            raise self._fail(off, f"block of type 0x{btype:08x} is corrupt (trailing length "
                             f"{trailer} differs from {blen})")
        if self.facts.sections == 0 and btype != SHB:
            raise self._fail(off, "pcapng does not start with a section header")
        if btype == SPB:
            if not self.interfaces:
                raise self._fail(off, "simple packet block before any interface")
            (orig,) = struct.unpack_from(order + "I", buf, off + 8)
            iface = self.interfaces[0]
            incl = min(orig, blen - 16)
            if iface.snaplen:
                incl = min(incl, iface.snaplen)
            self.facts.packets += 1
            # Simple packet blocks carry no timestamp (section 4.4).
            yield single_batch(buf, off + 12, incl, orig, 0.0, iface.link_type)
        elif btype == OPB:
            if blen < 32:
                raise self._fail(off, "packet block too short")
            if_id, _drops, ts_hi, ts_lo, incl, orig = struct.unpack_from(
                order + "HHIIII", buf, off + 8)
            if 28 + incl > blen - 4 or if_id >= len(self.interfaces):
                raise self._fail(off, "packet block is corrupt")
            iface = self.interfaces[if_id]
            self.facts.packets += 1
            ts = ((ts_hi << 32) | ts_lo) / iface.units_per_second + iface.offset_seconds
            yield single_batch(buf, off + 28, incl, orig, ts, iface.link_type)
        else:
            self._other_block(btype, bytes(buf[off:off + blen]), order, off)

    def _other_block(self, btype: int, block: bytes, order: str, off: int) -> None:
        body = block[8:-4]
        if btype == SHB:
            if len(body) < 16:
                raise self._fail(off, "section header too short")
            self.facts.sections += 1
            self.interfaces.clear()
        elif btype == IDB:
            if len(body) < 8:
                raise self._fail(off, "interface description too short")
            link, _reserved, snaplen = struct.unpack_from(order + "HHI", body, 0)
            iface = Interface(link_type=link, snaplen=snaplen)
            for code, value in iter_options(body, 8, order):
                if code == OPT_IF_TSRESOL:
                    iface.units_per_second = parse_tsresol(value)
                elif code == OPT_IF_TSOFFSET and len(value) == 8:
                    (iface.offset_seconds,) = struct.unpack(order + "q", value)
            self.interfaces.append(iface)
            self.facts.interfaces += 1
            self.facts.link_types.add(link)
        elif btype == DSB:
            # Section 4.7: secrets type, secrets length, then the secrets. The block's own
            # length was checked with every other block's, so a bad secrets length spoils
            # only this block: it is skipped with a warning naming it, never its content,
            # and the packets and the other blocks are still read.
            self._secrets_blocks += 1
            number = self._secrets_blocks
            stype, slen = struct.unpack_from(order + "II", body, 0) if len(body) >= 8 else (0, -1)
            if not 0 <= slen <= len(body) - 8:
                self.facts.warnings.append(
                    f"decryption secrets block {number} (byte offset {self._base + off}) is "
                    "corrupt: its secrets length does not fit the block; it was skipped")
                return
            self.facts.secrets.append(DecryptionSecrets(stype, body[8:8 + slen], number))
        elif btype == NRB:
            self._name_records(body, order)
        # Statistics, custom (0x00000BAD, 0x40000BAD) and unknown blocks are
        # skipped: they carry nothing the flow analysis needs (section 4.5, 4.6, 4.7).

    def _name_records(self, body: bytes, order: str) -> None:
        """Name resolution records (section 4.5): address then NUL-separated names."""
        head = struct.Struct(order + "HH")
        off = 0
        while off + 4 <= len(body):
            rtype, length = head.unpack_from(body, off)
            if rtype == 0:
                return
            value = body[off + 4:off + 4 + length]
            alen = {NRB_IPV4: 4, NRB_IPV6: 16}.get(rtype)
            if alen and len(value) > alen:
                addr = ipaddress.ip_address(value[:alen])
                names = [n.decode("utf-8", "replace") for n in value[alen:].split(b"\0") if n]
                self.facts.names.setdefault(str(addr), []).extend(names)
            off += 4 + ((length + 3) & ~3)
