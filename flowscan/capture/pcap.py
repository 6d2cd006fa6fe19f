"""Classic libpcap files: both byte orders, microsecond and nanosecond timestamps.

Format: draft-ietf-opsawg-pcap (global header of 24 bytes, then 16-byte record headers).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

from flowscan.capture.records import MAX_RECORD, ChunkedReader, Packet
from flowscan.capture.source import CaptureSource

# magic as read little-endian -> (byte order, fraction scale, extra bytes per record header)
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
        while len(self._buf) < GLOBAL_HEADER and self._refill(0):
            pass
        if len(self._buf) < GLOBAL_HEADER:
            raise self._fail(len(self._buf), "pcap global header is cut short")
        order, self._scale, self._extra = PCAP_MAGICS[self._buf[:4]]
        if self._scale == 1e-9:
            self.facts.format = "pcap-ns"
        major, _minor, _zone, _sigfigs, snaplen, network = struct.unpack_from(
            order + "HHiIII", self._buf, 4
        )
        if major != 2:
            self.facts.warnings.append(f"pcap version {major} is unusual; read as version 2")
        # The link type is the low 16 bits; the top bits may carry FCS length (draft section 4).
        self.link_type = network & 0xFFFF
        self.snaplen = snaplen
        self._rec = struct.Struct(order + "IIII")
        self.facts.link_types.add(self.link_type)
        self.facts.sections = 1
        self.facts.interfaces = 1

    def packets(self) -> Iterator[Packet]:
        unpack = self._rec.unpack_from
        scale = self._scale
        hdr = 16 + self._extra
        link = self.link_type
        facts = self.facts
        off = GLOBAL_HEADER
        buf = self._buf
        count = 0
        try:
            while True:
                n = len(buf)
                while off + hdr <= n:
                    sec, frac, incl, orig = unpack(buf, off)
                    if incl > MAX_RECORD:
                        facts.packets = count
                        raise self._fail(off, f"record length {incl} is absurd; file is corrupt")
                    end = off + hdr + incl
                    if end > n:
                        break
                    count += 1
                    yield sec + frac * scale, link, buf[off + hdr:end], orig
                    off = end
                facts.packets = count
                if not self._refill(off):
                    if off < len(self._buf):
                        self._cut_tail(off, "last record incomplete")
                    return
                buf = self._buf
                off = 0
        finally:
            facts.packets = count
