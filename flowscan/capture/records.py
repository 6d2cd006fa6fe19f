"""What every capture-format reader shares: batches of packets and facts about the file."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from flowscan.capture.source import CaptureSource
from flowscan.capture.vector import PAD
from flowscan.errors import CaptureError

# A single packet, for consumers that want one at a time:
# (timestamp in seconds, link type, captured bytes, length on the wire).
Packet = tuple[float, int, bytes, int]

# Larger than any real link's frame, small enough that a hostile length cannot exhaust memory.
MAX_RECORD = 1 << 24
# How much of the file one batch covers: large enough that per-batch work is amortised,
# small enough that memory stays flat whatever the capture's size.
BATCH_BYTES = 4 << 20


@dataclass
class Batch:
    """Consecutive packets of a capture as columns over one buffer (no per-packet objects)."""

    buf: bytearray  # capture bytes followed by PAD zero bytes
    data_off: np.ndarray  # int64: where each packet's bytes start in buf
    caplen: np.ndarray  # int64: captured length
    wirelen: np.ndarray  # int64: length on the wire
    ts: np.ndarray  # float64: seconds since the epoch
    link: np.ndarray  # int64: link type of each packet

    def __len__(self) -> int:
        return len(self.data_off)

    def packets(self) -> Iterator[Packet]:
        buf = memoryview(self.buf)
        for off, cap, wire, ts, link in zip(
            self.data_off.tolist(), self.caplen.tolist(), self.wirelen.tolist(),
            self.ts.tolist(), self.link.tolist(), strict=True,
        ):
            yield ts, link, bytes(buf[off:off + cap]), wire


def single_batch(buf: bytearray, off: int, cap: int, wire: int, ts: float, link: int) -> Batch:
    return Batch(buf, np.array([off], np.int64), np.array([cap], np.int64),
                 np.array([wire], np.int64), np.array([ts], np.float64),
                 np.array([link], np.int64))


@dataclass
class DecryptionSecrets:
    """Contents of a pcapng Decryption Secrets Block; never printed, only handed to crypto."""

    secrets_type: int
    data: bytes = field(repr=False)
    number: int = 0  # its place among the file's secrets blocks, from 1: how warnings name it

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
    """Base for readers that walk records across large reads of the source."""

    format_name = ""

    def __init__(self, source: CaptureSource, head: bytes) -> None:
        self.source = source
        self.facts = CaptureFacts(format=self.format_name)
        # The buffer holds self._len bytes of capture followed by PAD zero bytes. Each
        # refill makes a new buffer, so a batch's buffer never changes under it.
        self._buf = bytearray(head) + bytes(PAD)
        self._len = len(head)
        self._spare: bytearray | None = None
        self._base = 0  # stream offset of self._buf[0]

    def _refill(self, off: int) -> bool:
        """Keep the bytes from off on and read the next chunk after them; False at the end.

        Two buffers take turns, so a batch's buffer stays intact until the batch after it
        has been handed out (consumers finish with a batch before asking for the next).
        """
        keep = self._len - off
        want = self.source.read_hint(BATCH_BYTES)
        size = keep + want + PAD
        buf = self._spare
        self.source.wait_hashed()
        if buf is None or len(buf) < size or len(buf) > 2 * size + BATCH_BYTES:
            buf = bytearray(size)
        buf[:keep] = self._buf[off:self._len]
        got = self.source.readinto(memoryview(buf)[keep:keep + want])
        buf[keep + got:keep + got + PAD] = bytes(PAD)
        if not got:
            return False
        self._spare = self._buf
        self._base += off
        self._buf = buf
        self._len = keep + got
        return True

    def _fail(self, off: int, reason: str, packets: int | None = None) -> CaptureError:
        done = self.facts.packets if packets is None else packets
        return CaptureError(
            self.source.display,
            f"{reason} (after packet {done}, byte offset {self._base + off})",
        )

    def _cut_tail(self, off: int, what: str) -> None:
        if self.source.gzip_truncated:
            what = "gzip stream cut short; " + what
        self.facts.warnings.append(
            f"capture is cut short: {what} at byte offset {self._base + off} after packet "
            f"{self.facts.packets}; the rest of the file was skipped"
        )

    def batches(self) -> Iterator[Batch]:
        raise NotImplementedError

    def packets(self) -> Iterator[Packet]:
        for batch in self.batches():
            yield from batch.packets()
