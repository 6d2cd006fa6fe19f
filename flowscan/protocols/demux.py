"""Which protocol a UDP payload belongs to by its first byte (RFC 7983 section 7, with the
TURN ChannelData range of RFC 8656 section 12)."""

from __future__ import annotations

STUN = "stun"
ZRTP = "zrtp"
DTLS = "dtls"
TURN_CHANNEL = "turn-channel"
RTP = "rtp"  # RTP or RTCP; rtp.py tells them apart by payload type


def classify(payload: bytes) -> str | None:
    if not payload:
        return None
    b = payload[0]
    if b <= 3:
        return STUN
    if 16 <= b <= 19:
        return ZRTP
    if 20 <= b <= 63:
        return DTLS
    if 64 <= b <= 79:
        return TURN_CHANNEL
    if 128 <= b <= 191:
        return RTP
    return None
