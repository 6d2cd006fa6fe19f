"""DNS messages (RFC 1035 section 4), for the address -> names map of the capture."""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass, field

from flowscan.protocols.cursor import Cursor, Truncated

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
MAX_POINTERS = 32


@dataclass
class DnsMessage:
    transaction_id: int
    response: bool
    rcode: int
    questions: list[str] = field(default_factory=list)
    # (name, type, value) for A, AAAA and CNAME answers; value is an address or a name
    answers: list[tuple[str, int, str]] = field(default_factory=list)


def _name(data: bytes, cur: Cursor) -> str:
    """A possibly compressed domain name (RFC 1035 section 4.1.4), loops refused."""
    labels: list[bytes] = []
    pos = cur.pos
    jumped = False
    for _ in range(MAX_POINTERS + 64):
        if pos >= len(data):
            raise Truncated
        length = data[pos]
        if length & 0xC0 == 0xC0:
            if pos + 1 >= len(data):
                raise Truncated
            if not jumped:
                cur.pos = pos + 2
                jumped = True
            pos = ((length & 0x3F) << 8) | data[pos + 1]
            continue
        if length == 0:
            if not jumped:
                cur.pos = pos + 1
            # Decoded and lowered once for the whole name, not per label: the same text,
            # as both work character by character (ASCII, U+FFFD for any other byte).
            return b".".join(labels).decode("ascii", "replace").lower()
        label = data[pos + 1:pos + 1 + length]
        if len(label) < length:
            raise Truncated
        labels.append(label)
        pos += 1 + length
    raise Truncated


def parse(data: bytes) -> DnsMessage | None:
    if len(data) < 12:
        return None
    cur = Cursor(data)
    try:
        tid, flags = cur.u16(), cur.u16()
        qd, an = cur.u16(), cur.u16()
        cur.skip(4)
        if flags & 0x7800 or qd > 16 or an > 256:  # standard queries only
            return None
        msg = DnsMessage(tid, bool(flags & 0x8000), flags & 0x000F)
        for _ in range(qd):
            msg.questions.append(_name(data, cur))
            cur.skip(4)
        for _ in range(an):
            name = _name(data, cur)
            rtype, _rclass, _ttl, rdlen = cur.u16(), cur.u16(), cur.u32(), cur.u16()
            start = cur.pos
            rdata = cur.take(rdlen)
            if rtype == TYPE_A and rdlen == 4:
                # inet_ntop writes what str(IPv4Address) does, dotted decimal, in C.
                msg.answers.append((name, rtype, socket.inet_ntop(socket.AF_INET, rdata)))
            elif rtype == TYPE_AAAA and rdlen == 16:
                msg.answers.append((name, rtype, str(ipaddress.IPv6Address(rdata))))
            elif rtype == TYPE_CNAME:
                msg.answers.append((name, rtype, _name(data, Cursor(data, start))))
    except Truncated:
        return None
    return msg


def parse_tcp(stream: bytes) -> list[DnsMessage]:
    """DNS over TCP: messages with a two-byte length prefix (RFC 1035 section 4.2.2)."""
    out = []
    pos = 0
    while pos + 2 <= len(stream):
        length = int.from_bytes(stream[pos:pos + 2], "big")
        msg = parse(stream[pos + 2:pos + 2 + length])
        if msg is None:
            break
        out.append(msg)
        pos += 2 + length
    return out
