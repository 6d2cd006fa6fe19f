"""Reading captures: format detection, streaming readers, link layers and tunnels."""

from __future__ import annotations

from flowscan.capture.pcap import PCAP_MAGICS, PcapReader
from flowscan.capture.pcapng import SHB_MAGIC_BYTES, PcapngReader
from flowscan.capture.records import CaptureFacts, ChunkedReader, DecryptionSecrets, Packet
from flowscan.capture.source import CaptureSource, displayable
from flowscan.errors import CaptureError

__all__ = [
    "CaptureFacts",
    "CaptureSource",
    "DecryptionSecrets",
    "Packet",
    "displayable",
    "open_reader",
]


def open_reader(source: CaptureSource) -> ChunkedReader:
    """Pick the reader by the file's magic number, never by its name."""
    head = source.read(4)
    if not head:
        raise CaptureError(source.display, "file is empty")
    while len(head) < 4:
        more = source.read(4 - len(head))
        if not more:
            break
        head += more
    if head in PCAP_MAGICS:
        return PcapReader(source, head)
    if head == SHB_MAGIC_BYTES:
        return PcapngReader(source, head)
    raise CaptureError(
        source.display,
        f"not a pcap or pcapng capture (starts with {head.hex()}"
        + (", after gzip decompression)" if source.compressed else ")"),
    )
