"""Media framed in a TCP byte stream: TURN over TCP and ICE-TCP.

Two framings carry datagrams over TCP. TURN over TCP (RFC 8656 section 3.1, RFC 6062) sends
STUN messages (RFC 8489 section 6.2.2: their own length says where they end) and ChannelData
messages padded to a multiple of four bytes (RFC 8656 section 12.5) back to back; the
relayed datagram is the ChannelData's data or a Send or Data indication's DATA attribute.
ICE-TCP (RFC 6544 section 3) frames each STUN, DTLS, RTP or RTCP packet with RFC 4571's
16-bit length; a length of zero is the null packet (RFC 4571 section 2).

`StreamWalker` reads one direction of a connection, delivered in order, frame by frame,
and after a gap in the capture finds the framing again: a position where several frames in
a row parse, with plausible contents.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowscan.protocols import stun

TURN = "turn"  # STUN and padded ChannelData back to back
RFC4571 = "rfc4571"  # 16-bit length prefix
_COOKIE = stun.MAGIC_COOKIE.to_bytes(4, "big")
RESYNC_FRAMES = 3  # frames in a row that must parse before a guessed position is believed
MAX_RESYNC_FRAME = 4096  # larger frames are not believed while resynchronising
MAX_HELD = 1 << 20  # bytes held while a frame or a resynchronisation is undecided


@dataclass(frozen=True)
class Frame:
    """One frame of the stream: where it sits (stream offsets) and its datagram, the part a
    UDP datagram would carry (data_start to data_end), or no datagram (STUN that is not a
    Send or Data indication)."""

    kind: str  # "channel-data", "stun", "rfc4571", "null"
    start: int
    end: int  # padding included
    data_start: int
    data_end: int

    @property
    def has_data(self) -> bool:
        return self.data_end > self.data_start


def detect(head: bytes) -> str | None:
    """The framing a direction's first bytes show, if any: STUN with its magic cookie (or
    ChannelData) at the start, or RFC 4571 with STUN or RTP/RTCP inside."""
    if len(head) < 8:
        return None
    if (head[0] <= 1 and head[4:8] == _COOKIE) or 0x40 <= head[0] <= 0x4F:
        return TURN
    if len(head) >= 10 and head[2] <= 1 and head[6:10] == _COOKIE:
        return RFC4571
    if 128 <= head[2] <= 191 and int.from_bytes(head[:2], "big") >= 12:
        return RFC4571
    return None


def datagrams(segment: bytes) -> list[bytes]:
    """What UDP datagrams would carry for a segment of whole frames (flows.tcp_media_frame):
    each ChannelData or STUN message as it is, each RFC 4571 frame without its length."""
    mode = TURN if segment[:1] and (0x40 <= segment[0] <= 0x4F or segment[4:8] == _COOKIE) \
        else RFC4571
    out: list[bytes] = []
    pos = 0
    while True:
        frame = frame_at(segment, pos, mode)
        if not isinstance(frame, Frame):
            return out
        if frame.kind != "null":
            out.append(segment[frame.data_start:frame.data_end] if mode == RFC4571
                       else segment[frame.start:frame.data_end if frame.kind ==
                                    "channel-data" else frame.end])
        pos = frame.end


def _indication_data(buf: bytes | bytearray, pos: int, size: int) -> tuple[int, int]:
    """The DATA attribute's value in a Send or Data indication (RFC 8656 sections 10 and
    11; attributes as RFC 8489 section 14 lays them out), as offsets in buf."""
    if buf[pos + 1] not in (0x16, 0x17) or buf[pos] != 0:
        return 0, 0
    at, end = pos + stun.HEADER, pos + size
    while end - at >= 4:
        atype = int.from_bytes(buf[at:at + 2], "big")
        alen = int.from_bytes(buf[at + 2:at + 4], "big")
        if at + 4 + alen > end:
            break
        if atype == stun.ATTR_DATA:
            return at + 4, at + 4 + alen
        at += 4 + alen + (-alen % 4)
    return 0, 0


def frame_at(buf: bytes | bytearray, pos: int, mode: str) -> Frame | bool | None:
    """The frame at buf[pos:] (offsets relative to buf); None if it does not fit yet;
    False if no frame of this framing starts there."""
    if mode == RFC4571:
        if pos + 2 > len(buf):
            return None
        size = int.from_bytes(buf[pos:pos + 2], "big")
        if pos + 2 + size > len(buf):
            return None
        return Frame("null" if not size else "rfc4571", pos, pos + 2 + size, pos + 2,
                     pos + 2 + size)
    if pos + 4 > len(buf):
        return None
    first = buf[pos]
    length = int.from_bytes(buf[pos + 2:pos + 4], "big")
    if 0x40 <= first <= 0x4F:
        end = pos + 4 + length + (-length % 4)
        return None if end > len(buf) else Frame("channel-data", pos, end, pos + 4,
                                                  pos + 4 + length)
    if first & 0xC0 or length % 4:
        return False
    if pos + 8 > len(buf):
        return None
    if buf[pos + 4:pos + 8] != _COOKIE:
        return False
    end = pos + stun.HEADER + length
    if end > len(buf):
        return None
    start, stop = _indication_data(buf, pos, stun.HEADER + length)
    return Frame("stun", pos, end, start, stop)


def _plausible(buf: bytes | bytearray, frame: Frame) -> bool:
    """A frame found while resynchronising must hold something a media stream would."""
    if frame.kind == "stun":
        return True
    body = buf[frame.data_start:frame.data_end]
    if len(body) < 12:  # null packets and scraps: zeros after a gap would chain as these
        return False
    return 128 <= body[0] <= 191 or 20 <= body[0] <= 63 or (
        body[0] <= 1 and body[4:8] == _COOKIE)


class StreamWalker:
    """One direction's bytes, fed in stream order, walked frame by frame."""

    def __init__(self) -> None:
        self.buf = bytearray()
        self.base = 0  # stream offset of buf[0]
        self.mode: str | None = None
        self.synced = False
        self.skipped = 0  # bytes passed over: gaps in the capture, or no frame found

    def gap(self, offset: int) -> None:
        """The capture lacks the bytes up to offset: what is held is cut off, and the
        framing must be found again after the gap."""
        self.skipped += len(self.buf) + (offset - self.base - len(self.buf))
        self.buf = bytearray()
        self.base = offset
        self.synced = False

    def feed(self, data: bytes) -> list[Frame]:
        """Frames completed by data, with stream offsets."""
        self.buf += data
        out: list[Frame] = []
        pos = 0
        while True:
            if not self.synced:
                pos, self.synced = self._resync(pos)
                if not self.synced:
                    break
            assert self.mode is not None
            frame = frame_at(self.buf, pos, self.mode)
            if frame is None:
                break
            if frame is False:
                self.synced = False
                pos += 1
                self.skipped += 1
                continue
            assert isinstance(frame, Frame)
            out.append(Frame(frame.kind, frame.start + self.base, frame.end + self.base,
                             frame.data_start + self.base, frame.data_end + self.base))
            pos = frame.end
        del self.buf[:pos]
        self.base += pos
        if len(self.buf) > MAX_HELD:  # nothing decided in a megabyte: let it go
            self.gap(self.base + len(self.buf))
        return out

    def _resync(self, pos: int) -> tuple[int, bool]:
        """From pos, the first position where RESYNC_FRAMES frames in a row parse (at the
        stream's very start, where the framing was detected, one is enough), and True; or
        where to look again once more bytes come, and False. Bytes passed over are counted
        as skipped."""
        if self.mode is None and self.base + pos == 0:
            # The stream's first byte: its framing shows there.
            if len(self.buf) < 10:
                return pos, False
            self.mode = detect(bytes(self.buf[:10]))
        modes = [self.mode] if self.mode else [TURN, RFC4571]
        waiting = None  # the first position that more bytes could still make a frame
        for start in range(pos, len(self.buf)):
            for mode in modes:
                verdict = self._chain(start, mode)
                if verdict is None and waiting is None:
                    waiting = start
                if verdict:
                    self.mode = mode
                    self.skipped += start - pos
                    return start, True
        stop = len(self.buf) if waiting is None else waiting
        self.skipped += stop - pos
        return stop, False

    def _too_long(self, at: int, mode: str) -> bool:
        if self.base + at == 0 or at + 4 > len(self.buf):
            return False
        head = 0 if mode == RFC4571 else 2
        return int.from_bytes(self.buf[at + head:at + head + 2], "big") > MAX_RESYNC_FRAME

    def _chain(self, pos: int, mode: str) -> bool | None:
        at = pos
        for _ in range(RESYNC_FRAMES):
            frame = frame_at(self.buf, at, mode)
            if frame is False or self._too_long(at, mode):
                return False
            if frame is None:
                # Undecided; at the stream's start the framing detected is enough.
                return True if self.base + pos == 0 and at > pos else None
            assert isinstance(frame, Frame)
            if not _plausible(self.buf, frame):
                return False
            at = frame.end
        return True
