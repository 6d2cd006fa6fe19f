"""Payload statistics that tell a codec bitstream from ciphertext.

The first payload byte of an RTP packet is codec structure in the clear: Opus's TOC byte
(RFC 6716 section 3.1) is constant for a stream's configuration, VP8's payload descriptor
(RFC 7741 section 4.2) and H.264's NAL unit header (RFC 6184 section 1.3) take a handful of
values. Under SRTP (RFC 3711) the payload is ciphertext and that byte is uniformly random.
Sample-based G.711 speech is far from uniform over all its bytes, which a chi-square test
shows; compressed codecs are not, so that test alone never calls a stream plaintext.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from flowscan.report.model import Serialised

MIN_PACKETS = 6
MIN_BYTES = 1024


# Static RTP payload types (RFC 3551 section 6): the codec is named by the type itself.
STATIC_TYPES = {0: "PCMU (G.711 u-law)", 3: "GSM", 4: "G.723", 8: "PCMA (G.711 A-law)",
                9: "G.722", 18: "G.729", 26: "JPEG", 31: "H.261", 32: "MPEG video",
                34: "H.263"}


def codec_structure(payloads: list[bytes], payload_type: int | None) -> str | None:
    """What codec structure shows in the clear; a codec is named only on specific evidence
    (a static payload type, VP8's key-frame start code), never guessed from one byte."""
    if not payloads:
        return None
    if payload_type in STATIC_TYPES:
        return f"{STATIC_TYPES[payload_type]} (static payload type {payload_type})"
    # VP8 key frame (RFC 7741 section 4.2, RFC 6386 section 9.1): after a 1-6 byte payload
    # descriptor and the 3-byte frame tag, the start code 9d 01 2a.
    if any(b"\x9d\x01\x2a" in p[4:12] for p in payloads if p and p[0] & 0x10):
        return "VP8 key frame start code 9d 01 2a after the payload descriptor"
    firsts = {p[0] for p in payloads}
    if len(firsts) <= 3:
        values = ", ".join(f"0x{b:02x}" for b in sorted(firsts))
        return (f"the first payload byte takes only {values}, as codec headers do (Opus's "
                "TOC byte, VP8's payload descriptor, H.264's NAL header); ciphertext does not")
    return None


@dataclass(slots=True)
class PayloadStats(Serialised):
    packets: int
    payload_bytes: int
    first_byte_values: int  # distinct first bytes among the packets
    first_byte_top_share: float  # share of the most common first byte
    chi_square_p: float | None  # uniformity of all payload bytes (None: too few bytes)
    looks: str  # "codec-structure", "random", "skewed", "insufficient"
    codec: str | None = None  # the codec structure recognised in the clear, if any

    @property
    def detail(self) -> str:
        p = "n/a" if self.chi_square_p is None else f"{self.chi_square_p:.2g}"
        codec = f"; {self.codec}" if self.codec else ""
        return (f"{self.packets} RTP payloads: {self.first_byte_values} distinct first bytes "
                f"(top {self.first_byte_top_share:.0%}), byte uniformity p={p}{codec}")


def chi_square_uniform_p(data: bytes) -> float:
    """p-value of the chi-square test of uniform bytes (255 degrees of freedom), with the
    Wilson-Hilferty normal approximation of the chi-square distribution."""
    counts = np.bincount(np.frombuffer(data, dtype=np.uint8), minlength=256)
    expected = len(data) / 256
    statistic = float(((counts - expected) ** 2).sum()) / expected
    df = 255
    z = ((statistic / df) ** (1 / 3) - (1 - 2 / (9 * df))) / math.sqrt(2 / (9 * df))
    return 0.5 * math.erfc(z / math.sqrt(2))


def payload_stats(payloads: list[bytes], payload_type: int | None = None) -> PayloadStats:
    payloads = [p for p in payloads if p]
    firsts = Counter(p[0] for p in payloads)
    joined = b"".join(payloads)
    n = len(payloads)
    top = max(firsts.values()) / n if n else 0.0
    p = chi_square_uniform_p(joined) if len(joined) >= MIN_BYTES else None
    if n < MIN_PACKETS:
        looks = "insufficient"
    elif p is not None and p < 1e-6 and len(firsts) <= n // 2:
        looks = "skewed"  # sample codecs such as G.711: plainly not ciphertext
    elif len(firsts) <= max(3, n // 3):
        looks = "codec-structure"
    elif p is None or p > 1e-4:
        looks = "random"
    else:
        looks = "skewed"
    codec = codec_structure(payloads, payload_type) if looks in (
        "codec-structure", "skewed") else None
    return PayloadStats(n, len(joined), len(firsts), round(top, 3),
                        None if p is None else float(f"{p:.3g}"), looks, codec)


# Frame sizes of static payload types' codecs, per timestamp step (RFC 3551 section 4.5):
# G.711 (PCMU 0, PCMA 8) and G.722 (9, clocked at 8000 by RFC 3551's note) carry one byte
# per timestamp tick; G.729 (18) 10 bytes per 80 ticks (a 2-byte Annex B SID frame may end
# a packet); G.723.1 (4) 24 or 20 bytes per 240 ticks (4-byte SID); GSM (3) 33 bytes per
# 160 ticks.
def _frames_expected(payload_type: int, step: int) -> set[int]:
    if payload_type in (0, 8, 9):
        return {step}
    if payload_type == 18 and step % 80 == 0:
        n = step // 80
        return {10 * n, 10 * (n - 1) + 2}
    if payload_type == 4 and step % 240 == 0:
        n = step // 240
        return {24 * n, 20 * n, 24 * (n - 1) + 4, 20 * (n - 1) + 4}
    if payload_type == 3 and step % 160 == 0:
        return {33 * (step // 160)}
    return set()


FRAME_CODECS = {0: "G.711 u-law", 8: "G.711 A-law", 9: "G.722", 18: "G.729", 4: "G.723.1",
                3: "GSM"}
MIN_FRAME_PACKETS = 4


def frame_sizes(payload_type: int, packets: list[tuple[int, int, int]]) -> str | None:
    """Evidence that a static payload type's packets carry exactly its codec frames and
    nothing more: (sequence, timestamp, payload length) in capture order. SRTP appends an
    authentication tag to every packet (RFC 3711 section 3.1: 10 or 4 bytes with
    HMAC-SHA1, 16 with AES-GCM, RFC 7714 section 7.2), so payloads that are exactly whole
    frames for the timestamp step leave no room for one: plaintext RTP, or SRTP with
    authentication switched off."""
    if payload_type not in FRAME_CODECS or len(packets) < MIN_FRAME_PACKETS:
        return None
    checked = 0
    sizes: list[int] = []
    for (seq_a, ts_a, _), (seq_b, ts_b, size) in pairwise(packets):
        if (seq_b - seq_a) % 65536 != 1:
            continue
        step = (ts_b - ts_a) % (1 << 32)
        if size not in _frames_expected(payload_type, step) or not size:
            return None
        checked += 1
        sizes.append(size)
    if checked < MIN_FRAME_PACKETS - 1:
        return None
    steps = sorted({(b[1] - a[1]) % (1 << 32) for a, b in pairwise(packets)})
    return (f"{FRAME_CODECS[payload_type]} (static payload type {payload_type}): "
            f"{checked} payloads of {', '.join(map(str, sorted(set(sizes))))} bytes are "
            f"exactly whole codec frames for their timestamp steps "
            f"(+{', +'.join(map(str, steps[:3]))}), with no room for an SRTP authentication "
            "tag (RFC 3711 section 3.1): plaintext, or SRTP with authentication switched off")
