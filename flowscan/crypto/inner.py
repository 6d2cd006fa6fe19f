"""What is left once the transport encryption is removed: codec frames, or another layer.

A codec bitstream (Opus, VP8, H.264...) means the transport was the only protection and
whoever held its keys could read the media. An SFrame layer (RFC 9605: a header whose key
ID stays the same for a sender while its counter rises) followed by ciphertext means the
media was also protected end to end.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from flowscan.crypto.sframe import parse_header
from flowscan.media.payload import payload_stats


def vp8_descriptor_length(payload: bytes) -> int | None:
    """Length of a VP8 payload descriptor (RFC 7741 section 4.2), or None."""
    if not payload:
        return None
    b0 = payload[0]
    if b0 & 0x40:  # reserved bit must be zero
        return None
    pos = 1
    if b0 & 0x80:  # X: extension byte
        if len(payload) < 2:
            return None
        x = payload[1]
        pos = 2
        if x & 0x80:  # I: PictureID, 7 or 15 bits
            if len(payload) <= pos:
                return None
            pos += 2 if payload[pos] & 0x80 else 1
        if x & 0x40:  # L: TL0PICIDX
            pos += 1
        if x & 0x30:  # T or K
            pos += 1
    return pos if pos < len(payload) else None


@dataclass
class InnerLayer:
    kind: str  # "sframe", "codec", "opaque", "insufficient"
    detail: str


def _sframe_candidates(payloads: list[bytes]) -> list[tuple[int, int]]:
    """(KID, CTR) of the payloads that start an SFrame, directly or after a VP8 descriptor
    whose start-of-partition bit is set."""
    out = []
    for p in payloads:
        for offset in (0, vp8_descriptor_length(p)):
            if offset is None or (offset and not p[0] & 0x10):
                continue
            parsed = parse_header(p[offset:])
            if parsed is not None and len(p) - offset - parsed[2] >= 16:
                out.append(parsed[:2])
                break
    return out


def classify(payloads: list[bytes], payload_type: int | None) -> InnerLayer:
    payloads = [p for p in payloads if p]
    if len(payloads) < 4:
        return InnerLayer("insufficient", f"only {len(payloads)} payloads decrypted")
    candidates = _sframe_candidates(payloads)
    kids = {kid for kid, _ in candidates}
    ctrs = [ctr for _, ctr in candidates]
    rising = all(b > a for a, b in itertools.pairwise(ctrs))
    if len(candidates) >= max(3, len(payloads) // 3) and len(kids) == 1 and rising:
        return InnerLayer("sframe", f"SFrame headers (RFC 9605) with key ID {kids.pop()} and a "
                          f"counter rising {ctrs[0]}..{ctrs[-1]} over {len(candidates)} frames, "
                          "then ciphertext: an end-to-end layer the transport keys do not open")
    stats = payload_stats(payloads, payload_type)
    if stats.looks in ("codec-structure", "skewed"):
        return InnerLayer("codec", "codec frames in the clear once the transport layer is off"
                          + (f": {stats.codec}" if stats.codec else f" ({stats.detail})"))
    if all(vp8_descriptor_length(p) for p in payloads) and any(
            b"\x9d\x01\x2a" in p[:16] for p in payloads):
        return InnerLayer("codec", "VP8 payload descriptors and key frames in the clear")
    return InnerLayer("opaque", "decrypted payloads are still high-entropy with no codec or "
                      f"SFrame structure ({stats.detail})")
