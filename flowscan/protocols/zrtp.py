"""ZRTP packets (RFC 6189): the media-path key agreement between two endpoints.

ZRTP travels on the RTP ports, demultiplexed by its first byte (RFC 7983 section 7: 16 to
19) and its magic cookie 'ZRTP' at bytes 4-7 (RFC 6189 section 5). The keys it agrees
come from a Diffie-Hellman exchange between the two endpoints that carry it, so only they
hold them; a party in the path could read the media only as a man in the middle, which the
short authentication string (SAS) the users compare would expose (section 7).

Packet (section 5): 0x10 0x00, sequence number (16 bits), magic cookie 0x5a525450, source
identifier (the SSRC, 32 bits), the message, CRC-32c (32 bits). Message (section 5.1):
preamble 0x505a, length in 32-bit words (the preamble, length and type block included),
an 8-character type block, the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field

MAGIC_COOKIE = 0x5A525450  # "ZRTP", RFC 6189 section 5
PREAMBLE = 0x505A  # "PZ", section 5.1
HEADER = 12  # first bytes, sequence number, cookie, source identifier
CRC = 4

# Section 5: the message type blocks.
TYPES = frozenset((
    "Hello", "HelloACK", "Commit", "DHPart1", "DHPart2", "Confirm1", "Confirm2",
    "Conf2ACK", "Error", "ErrorACK", "GoClear", "ClearACK", "SASrelay", "RelayACK",
    "Ping", "PingACK",
))
# Section 4.6: the initiator's Confirm2 and the responder's Conf2ACK end the exchange;
# SRTP may start once Confirm1/Confirm2 are received (section 4.6.1).
CONFIRMS = frozenset(("Confirm1", "Confirm2", "Conf2ACK"))


@dataclass
class ZrtpMessage:
    """One ZRTP packet as read."""

    type: str  # "Hello", "Commit", ... (the type block, spaces stripped)
    sequence: int
    ssrc: int
    version: str | None = None  # Hello (section 5.2)
    client: str | None = None  # Hello: the client identifier
    mitm: bool = False  # Hello: the M flag, a PBX able to relay the SAS (section 5.2)
    algorithms: dict[str, list[str]] = field(default_factory=dict)  # Hello: offered
    chosen: dict[str, str] = field(default_factory=dict)  # Commit (section 5.4): chosen


def _text(data: bytes) -> str:
    return data.decode("ascii", "replace").strip(" \0")


def is_zrtp(payload: bytes) -> bool:
    """The fixed fields: first byte, magic cookie and preamble."""
    return (len(payload) >= HEADER + 12 + CRC and payload[0] == 0x10
            and int.from_bytes(payload[4:8], "big") == MAGIC_COOKIE
            and int.from_bytes(payload[12:14], "big") == PREAMBLE)


def parse(payload: bytes) -> ZrtpMessage | None:
    """A ZRTP packet, or None: the cookie, the preamble, a known type block and a length
    that fills the packet up to its CRC must all agree."""
    if not is_zrtp(payload):
        return None
    words = int.from_bytes(payload[14:16], "big")
    if HEADER + words * 4 + CRC != len(payload) or words < 3:
        return None
    kind = _text(payload[16:24])
    if kind not in TYPES:
        return None
    msg = ZrtpMessage(kind, int.from_bytes(payload[2:4], "big"),
                      int.from_bytes(payload[8:12], "big"))
    body = payload[24:len(payload) - CRC]
    if kind == "Hello":
        _hello(msg, body)
    elif kind == "Commit" and len(body) >= 64:
        # Section 5.4: H2 (32 bytes), ZID (12), then hash, cipher, auth tag, key
        # agreement and SAS type, four characters each.
        names = ("hash", "cipher", "auth", "key-agreement", "sas")
        msg.chosen = {name: _text(body[44 + 4 * i:48 + 4 * i]) for i, name in enumerate(names)}
    return msg


def _hello(msg: ZrtpMessage, body: bytes) -> None:
    """Section 5.2: version (4), client identifier (16), H3 (32), ZID (12), the flags and
    counts word, then the algorithm lists, four characters each."""
    if len(body) < 68:
        return
    msg.version = _text(body[0:4])
    msg.client = _text(body[4:20])
    counts = int.from_bytes(body[64:68], "big")
    msg.mitm = bool(counts >> 29 & 1)  # bits: 0, S, M, P, unused (8), hc, cc, ac, kc, sc
    lists = (("hash", (counts >> 16) & 0xF), ("cipher", (counts >> 12) & 0xF),
             ("auth", (counts >> 8) & 0xF), ("key-agreement", (counts >> 4) & 0xF),
             ("sas", counts & 0xF))
    pos = 68
    for name, count in lists:
        if pos + 4 * count > len(body):
            return
        msg.algorithms[name] = [_text(body[pos + 4 * i:pos + 4 * i + 4]) for i in range(count)]
        pos += 4 * count
