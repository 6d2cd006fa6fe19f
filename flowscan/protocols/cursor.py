"""A bounds-checked reader over bytes, shared by every parser."""

from __future__ import annotations

import struct


class Truncated(Exception):
    """The data ends before the structure does; parsers turn this into None or a partial."""


class Cursor:
    __slots__ = ("data", "end", "pos")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else min(end, len(data))

    @property
    def remaining(self) -> int:
        return self.end - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise Truncated
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def skip(self, n: int) -> None:
        if n < 0 or self.pos + n > self.end:
            raise Truncated
        self.pos += n

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    # The fixed-size reads below are written out rather than built on take(): they are the
    # parsers' most frequent calls, and a call saved is most of their cost.
    def u8(self) -> int:
        p = self.pos
        if p >= self.end:
            raise Truncated
        self.pos = p + 1
        return self.data[p]

    def u16(self) -> int:
        p = self.pos
        if p + 2 > self.end:
            raise Truncated
        self.pos = p + 2
        d = self.data
        return (d[p] << 8) | d[p + 1]

    def u24(self) -> int:
        p = self.pos
        if p + 3 > self.end:
            raise Truncated
        self.pos = p + 3
        d = self.data
        return (d[p] << 16) | (d[p + 1] << 8) | d[p + 2]

    def u32(self) -> int:
        p = self.pos
        if p + 4 > self.end:
            raise Truncated
        self.pos = p + 4
        return int.from_bytes(self.data[p:p + 4], "big")

    def vector(self, length_bytes: int) -> bytes:
        """A length-prefixed opaque vector (TLS presentation language, RFC 8446 3.4)."""
        p, end, d = self.pos, self.end, self.data
        start = p + length_bytes
        if start > end:
            raise Truncated
        if length_bytes == 1:
            n = d[p]
        elif length_bytes == 2:
            n = (d[p] << 8) | d[p + 1]
        else:
            n = int.from_bytes(d[p:start], "big")
        if start + n > end:
            raise Truncated
        self.pos = start + n
        return d[start:start + n]

    def sub(self, n: int) -> Cursor:
        """A cursor over the next n bytes; this one moves past them."""
        if n < 0 or self.pos + n > self.end:
            raise Truncated
        inner = Cursor(self.data, self.pos, self.pos + n)
        self.pos += n
        return inner


def u16_list(data: bytes) -> list[int]:
    """A vector of 16-bit values (cipher suites, versions, SRTP profiles); an odd last
    byte is ignored."""
    return list(struct.unpack_from(f">{len(data) // 2}H", data))
