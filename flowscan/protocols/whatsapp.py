"""WhatsApp's chat connection: a Noise Pipes session (WhatsApp Encryption Overview, "Transport
Security") opened with a four-byte prologue, 'W' 'A', the Noise protocol version and the
dictionary version, optionally after an edge-routing preamble 'E' 'D' 0 1 with a 3-byte
length and its routing data; every frame after it carries a 3-byte length. The preamble's
'E' (0x45) would otherwise pass for a TURN ChannelData channel number over TCP (RFC 8656
section 12.5) and the frames' length bytes for classic STUN (RFC 3489) message types, so
the connection is recognised before any STUN guess."""

from __future__ import annotations

ROUTING = b"ED\x00\x01"


def is_chat(client_stream: bytes) -> bool:
    """Whether a TCP connection's client bytes open a WhatsApp chat session."""
    data = client_stream
    if data.startswith(ROUTING):
        length = int.from_bytes(data[4:7], "big")
        data = data[7 + length:]
    if len(data) < 7 or data[:2] != b"WA" or not 1 <= data[2] <= 9:
        return False
    frame = int.from_bytes(data[4:7], "big")  # the first Noise handshake frame
    return 0 < frame <= 65535
