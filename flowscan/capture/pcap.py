"""Classic libpcap files: both byte orders, microsecond and nanosecond timestamps.

Format: draft-ietf-opsawg-pcap (global header of 24 bytes, then 16-byte record headers).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import numpy as np

from flowscan.capture.records import MAX_RECORD, Batch, ChunkedReader
from flowscan.capture.source import CaptureSource
from flowscan.capture.vector import Gather
from flowscan.capture.walk import pcap_starts

# magic as stored -> (byte order, fraction scale, extra bytes per record header)
PCAP_MAGICS: dict[bytes, tuple[str, float, int]] = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6, 0),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6, 0),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9, 0),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9, 0),
    # Alexey Kuznetzov's "modified" pcap: 8 more bytes per record (ifindex, protocol, type).
    b"\x34\xcd\xb2\xa1": ("<", 1e-6, 8),
    b"\xa1\xb2\xcd\x34": (">", 1e-6, 8),
}
GLOBAL_HEADER = 24


class PcapReader(ChunkedReader):
    format_name = "pcap"

    def __init__(self, source: CaptureSource, head: bytes) -> None:
        super().__init__(source, head)
        while self._len < GLOBAL_HEADER and self._refill(0):
            pass
        if self._len < GLOBAL_HEADER:
            raise self._fail(self._len, "pcap global header is cut short")
        self._order, self._scale, self._extra = PCAP_MAGICS[bytes(self._buf[:4])]
        if self._scale == 1e-9:
            self.facts.format = "pcap-ns"
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
            self._order + "HHiIII", self._buf, 4
        )
        if major != 2:
            self.facts.warnings.append(f"pcap version {major} is unusual; read as version 2")
        # The link type is the low 16 bits; the top bits may carry FCS length (draft section 4).
        self.link_type = network & 0xFFFF
        self.snaplen = snaplen
        self.facts.link_types.add(self.link_type)
        self.facts.sections = 1
        self.facts.interfaces = 1

    def batches(self) -> Iterator[Batch]:
        incl_at = struct.Struct(self._order + "I").unpack_from
        hdr = 16 + self._extra
        off = GLOBAL_HEADER
        while True:
            buf = self._buf
            n = self._len
            starts, off = pcap_starts(buf, off, n, hdr, self._order)
            if len(starts):
                self.facts.packets += len(starts)
                yield self._batch(buf, starts)
            if off + hdr <= n:
                (incl,) = incl_at(buf, off + 8)
                if incl > MAX_RECORD:
                    raise self._fail(off, f"record length {incl} is absurd; file is corrupt")
            if not self._refill(off):
                if off < self._len:
                    self._cut_tail(off, "last record incomplete")
                return
            off = 0

    def _batch(self, buf: bytearray, starts: np.ndarray) -> Batch:
        g = Gather(buf)
        u32 = g.u32(self._order)
        incl = u32[starts + 8].astype(np.int64)
        too_long = incl > MAX_RECORD
        if too_long.any():
            i = int(np.argmax(too_long))
            raise self._fail(int(starts[i]), f"record length {int(incl[i])} is absurd; file "
                             "is corrupt", self.facts.packets - len(starts) + i)
        ts = u32[starts].astype(np.float64) + u32[starts + 4].astype(np.float64) * self._scale
        link = np.full(len(starts), self.link_type, dtype=np.int64)
        return Batch(buf, starts + 16 + self._extra, incl, u32[starts + 12].astype(np.int64),
                     ts, link)
