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

import zlib
from dataclasses import dataclass
from typing import Protocol

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


def opens_with_stun(head: bytes) -> bool:
    """Whether a client's stream opens as a TURN client's (an Allocate or a Binding request,
    RFC 8656 section 3.1) or an ICE-TCP agent's (a connectivity check behind RFC 4571's
    length) does: a STUN request with its magic cookie. Stricter than detect, whose
    ChannelData first byte (0x40-0x4F) is also ASCII, as in HTTP's "GET"."""
    return (len(head) >= 8 and head[0] == 0 and head[4:8] == _COOKIE) or (
        len(head) >= 10 and head[2] == 0 and head[6:10] == _COOKIE)


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
        self.fresh = True  # from the connection's first byte, not from a gap

    def gap(self, offset: int) -> None:
        """The capture lacks the bytes up to offset: what is held is cut off, and the
        framing must be found again after the gap."""
        self.skipped += offset - self.base
        self.fresh = False
        self.buf = bytearray()
        self.base = offset
        self.synced = False

    def feed(self, data: bytes) -> list[tuple[Frame, bytes]]:
        """Frames completed by data, with stream offsets, and each frame's bytes."""
        self.buf += data
        out: list[tuple[Frame, bytes]] = []
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
            out.append((Frame(frame.kind, frame.start + self.base, frame.end + self.base,
                              frame.data_start + self.base, frame.data_end + self.base),
                        bytes(self.buf[frame.start:frame.end])))
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
        if self.mode is None and self._at_start(pos):
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

    def _at_start(self, pos: int) -> bool:
        return self.fresh and self.base + pos == 0

    def _too_long(self, at: int, mode: str) -> bool:
        if self._at_start(at) or at + 4 > len(self.buf):
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
                return True if self._at_start(pos) and at > pos else None
            assert isinstance(frame, Frame)
            if not _plausible(self.buf, frame):
                return False
            at = frame.end
        return True


class Walker(Protocol):
    """What a Reassembler delivers a direction's bytes to, in order."""

    @property
    def base(self) -> int: ...

    def gap(self, offset: int) -> None: ...

    def feed(self, data: bytes) -> list[tuple[Frame, bytes]]: ...


MAX_REORDER = 1 << 18  # bytes held past a hole before the hole is taken as never captured


class Reassembler:
    """One TCP direction put back in order (RFC 9293 section 3.10.7.4: data is delivered in
    sequence), from the segments as captured: retransmitted and overlapping bytes are
    delivered once; segments after a hole wait for it to fill; a hole that the capture never
    fills (MAX_REORDER bytes later, or at the end) is passed over, and counted."""

    def __init__(self, walker: Walker | None = None) -> None:
        self.origin: int | None = None  # sequence number of stream offset 0
        self.next = 0  # stream offset expected next
        self.pending: dict[int, bytes] = {}
        self.held = 0
        # The frames' walker: StreamWalker, or one that first takes TLS off.
        self.walker: Walker = walker or StreamWalker()
        self.missing = 0  # bytes never captured

    def take(self, seq: int, syn: bool, payload: bytes
             ) -> tuple[int, list[tuple[Frame, bytes]]] | None:
        """A captured segment: its stream offset and the frames it completes; None if it
        adds nothing (no payload, or bytes from before the stream's start)."""
        if syn:
            self.syn(seq)
        if not payload:
            return None
        off = self.offset(seq)
        return None if off is None else (off, self.add(off, payload))

    def syn(self, seq: int) -> None:
        """The SYN's sequence number: the data starts one after it (RFC 9293 3.4.1)."""
        if self.origin is None:
            self.origin = (seq + 1) & 0xFFFFFFFF

    def offset(self, seq: int) -> int | None:
        if self.origin is None:
            # The connection began before the capture: its framing must be found.
            self.origin = seq
            self.walker.gap(0)
        rel = (seq - self.origin) & 0xFFFFFFFF
        return None if rel >= 1 << 31 else rel  # before the start: nothing to add

    def add(self, off: int, payload: bytes) -> list[tuple[Frame, bytes]]:
        """The frames that the segment at stream offset off completes."""
        if off + len(payload) <= self.next:
            return []  # all of it delivered already
        if off > self.next:
            if len(payload) > len(self.pending.get(off, b"")):
                self.held += len(payload) - len(self.pending.get(off, b""))
                self.pending[off] = payload
            return self._skip() if self.held > MAX_REORDER else []
        return self._deliver(payload[self.next - off:]) + self._drain()

    def finish(self) -> list[tuple[Frame, bytes]]:
        """At the end of the capture: what waited behind holes, the holes passed over."""
        out: list[tuple[Frame, bytes]] = []
        while self.pending:
            out += self._skip()
        return out

    def _deliver(self, data: bytes) -> list[tuple[Frame, bytes]]:
        self.next += len(data)
        return self.walker.feed(data)

    def _drain(self) -> list[tuple[Frame, bytes]]:
        out: list[tuple[Frame, bytes]] = []
        while True:
            ready = [o for o in self.pending if o <= self.next]
            if not ready:
                return out
            for off in sorted(ready):
                data = self.pending.pop(off)
                self.held -= len(data)
                if off + len(data) > self.next:
                    out += self._deliver(data[self.next - off:])

    def _skip(self) -> list[tuple[Frame, bytes]]:
        first = min(self.pending)
        self.missing += first - self.next
        self.walker.gap(first)
        self.next = first
        return self._drain()


def _padded_rtp(plain: bytes, size: int) -> bytes | None:
    """RTP of `size` bytes: the packet with RTP padding (RFC 3550 section 5.1, the P bit and
    a count in the last octet) where the authentication tag and MKI were."""
    extra = size - len(plain)
    if extra <= 0:
        return plain if extra == 0 else None
    count = extra + (plain[-1] if plain[0] & 0x20 else 0)
    if count > 255:
        return None
    return bytes([plain[0] | 0x20]) + plain[1:] + bytes(extra - 1) + bytes([count])


EMPTY_SDES = b"\x80\xca\x00\x00"  # an SDES packet of no chunks (RFC 3550 6.5: SC 0 is valid)


def _padded_rtcp(plain: bytes, size: int) -> bytes | None:
    """An RTCP compound of `size` bytes: the compound, then empty SDES packets. RTCP padding
    (the P bit, RFC 3550 section 6.4.1) would do as well, but Wireshark reads the padding
    of a lone Receiver Report as malformed report extensions."""
    extra = size - len(plain)
    if extra < 0 or extra % 4 or len(plain) % 4:
        return None
    return plain + EMPTY_SDES * (extra // 4)


def _fix_fingerprint(message: bytearray) -> None:
    """FINGERPRINT (RFC 8489 section 14.7), if the message ends with one, recomputed over
    the edited message."""
    if len(message) >= stun.HEADER + 8 and int.from_bytes(message[-8:-6], "big") == \
            stun.ATTR_FINGERPRINT:
        crc = zlib.crc32(bytes(message[:-8])) ^ 0x5354554E
        message[-4:] = crc.to_bytes(4, "big")


def clear_frame(frame: Frame, raw: bytes, plain: bytes, rtcp: bool) -> bytes | None:
    """The frame rewritten with the decrypted packet, exactly as long as it was, so that no
    TCP sequence number moves: SRTP becomes RTP with RTP padding where the tag was; SRTCP
    becomes RTCP followed by empty SDES packets, as long as the framing can hold
    (ChannelData and STUN attributes are padded to four bytes anyway; an RFC 4571 frame
    two bytes short is followed by a null packet). None when no such rewrite exists (an
    odd MKI length)."""
    start, end = frame.data_start - frame.start, frame.data_end - frame.start
    size = end - start
    if not rtcp:
        body = _padded_rtp(plain, size)
        if body is None:
            return None
        out = bytearray(raw[:start] + body + raw[end:])
    elif frame.kind == "rfc4571":
        target = size if (size - len(plain)) % 4 == 0 else size - 2
        body = _padded_rtcp(plain, target)
        if body is None:
            return None
        out = bytearray(target.to_bytes(2, "big") + body + bytes(size - target))
    else:
        target = size + (-size % 4)  # the length field of ChannelData or DATA, then padding
        body = _padded_rtcp(plain, target)
        if body is None or end + (-size % 4) > len(raw):
            return None
        out = bytearray(raw[:start - 2] + target.to_bytes(2, "big") + body
                        + raw[end + (-size % 4):])
    if frame.kind == "stun":
        _fix_fingerprint(out)
    return bytes(out) if len(out) == len(raw) else None
