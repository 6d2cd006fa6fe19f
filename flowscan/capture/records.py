"""What every capture-format reader shares: the packet tuple and the facts about the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from flowscan.capture.source import READ_CHUNK, CaptureSource
from flowscan.errors import CaptureError

# A packet on the hot path is a plain tuple, not an object:
# (timestamp in seconds, link type, captured bytes, length on the wire).
Packet = tuple[float, int, bytes, int]

# Larger than any real link's frame, small enough that a hostile length cannot exhaust memory.
MAX_RECORD = 1 << 24


@dataclass
class DecryptionSecrets:
    """Contents of a pcapng Decryption Secrets Block; never printed, only handed to crypto."""

    secrets_type: int
    data: bytes = field(repr=False)

    @property
    def kind(self) -> str:
        return {0x544C534B: "tls-keylog", 0x57474B4C: "wireguard", 0x5A4E574B: "zigbee-nwk",
                0x5A415053: "zigbee-aps"}.get(self.secrets_type, f"0x{self.secrets_type:08x}")


@dataclass
class CaptureFacts:
    """What a reader learns about the file itself while streaming it."""

    format: str = ""
    link_types: set[int] = field(default_factory=set)
    packets: int = 0
    warnings: list[str] = field(default_factory=list)
    secrets: list[DecryptionSecrets] = field(default_factory=list)
    sections: int = 0
    interfaces: int = 0
    # Address -> names from pcapng name resolution blocks: evidence the capturer recorded.
    names: dict[str, list[str]] = field(default_factory=dict)


class ChunkedReader:
    """Base for readers that walk records across fixed-size reads of the source."""

    format_name = ""

    def __init__(self, source: CaptureSource, head: bytes) -> None:
        self.source = source
        self.facts = CaptureFacts(format=self.format_name)
        self._buf = head
        self._base = 0  # stream offset of self._buf[0]

    def _refill(self, off: int) -> bool:
        """Drop consumed bytes before off and append the next chunk; False at end of stream."""
        more = self.source.read(READ_CHUNK)
        if not more:
            return False
        self._base += off
        self._buf = self._buf[off:] + more
        return True

    def _fail(self, off: int, reason: str) -> CaptureError:
        return CaptureError(
            self.source.display,
            f"{reason} (after packet {self.facts.packets}, byte offset {self._base + off})",
        )

    def _cut_tail(self, off: int, what: str) -> None:
        if self.source.gzip_truncated:
            what = "gzip stream cut short; " + what
        self.facts.warnings.append(
            f"capture is cut short: {what} at byte offset {self._base + off} after packet "
            f"{self.facts.packets}; the rest of the file was skipped"
        )

    def packets(self) -> Iterator[Packet]:
        raise NotImplementedError
