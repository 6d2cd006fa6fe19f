"""TLS over TCP: records (RFC 8446 section 5.1) and the clear part of the handshake."""

from __future__ import annotations

from dataclasses import dataclass, field

from flowscan.protocols import hello as hs

CONTENT_CCS = 20
CONTENT_ALERT = 21
CONTENT_HANDSHAKE = 22
CONTENT_APPLICATION = 23


@dataclass
class TlsSide:
    """What one direction of a TLS connection shows in the clear."""

    records: int = 0
    client_hello: hs.ClientHello | None = None
    server_hello: hs.ServerHello | None = None
    certificates: list[bytes] = field(default_factory=list)
    application_data: bool = False


def looks_like_tls(data: bytes) -> bool:
    return (len(data) >= 5 and data[0] in (CONTENT_CCS, CONTENT_ALERT, CONTENT_HANDSHAKE,
                                           CONTENT_APPLICATION)
            and data[1] == 3 and data[2] <= 4)


def parse_stream(data: bytes) -> TlsSide | None:
    """The records at the start of one direction's byte stream."""
    if not looks_like_tls(data):
        return None
    side = TlsSide()
    handshake = bytearray()
    pos, n = 0, len(data)
    while n - pos >= 5:  # type, legacy version, length (RFC 8446 section 5.1)
        ctype, major, length = data[pos], data[pos + 1], (data[pos + 3] << 8) | data[pos + 4]
        if ctype not in (20, 21, 22, 23, 24) or major != 3:
            break
        side.records += 1
        pos += 5
        if pos + length > n:
            break  # the stream sample ends inside this record
        if ctype == CONTENT_HANDSHAKE and not side.application_data:
            handshake += data[pos:pos + length]
        pos += length
        if ctype == CONTENT_APPLICATION:
            side.application_data = True
            break  # nothing after this is readable
    tls13 = False
    for mtype, body in hs.split_messages(bytes(handshake)):
        if mtype == hs.CLIENT_HELLO and side.client_hello is None:
            side.client_hello = hs.parse_client_hello(body)
        elif mtype == hs.SERVER_HELLO and side.server_hello is None:
            side.server_hello = hs.parse_server_hello(body)
            tls13 = bool(side.server_hello and side.server_hello.version == 0x0304)
            if tls13:
                break  # the rest of a TLS 1.3 handshake is encrypted
        elif mtype == hs.CERTIFICATE and not side.certificates:
            side.certificates = hs.parse_certificates(body)
    return side
