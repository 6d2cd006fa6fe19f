"""Is it RTP? Bytes whose first two bits read 2 are not yet a stream.

Other UDP protocols (games, proprietary voice) often have payloads whose first byte falls
in RTP's range; counted as RTP they yield codec guesses from "payload types" and dozens of
"SSRCs". A sender's RTP is a stream only when its packets behave as RFC 3550 says: version
2 in every packet (section 5.1), one SSRC per source kept for its life (section 8),
sequence numbers that count up by one per packet with small gaps for loss (section 5.1,
appendix A.1 validates a source after MIN_SEQUENTIAL such packets), and timestamps that
advance with the sampling clock (section 5.1), which RFC 3551 tables 4 and 5 fix for the
static payload types. Only validated streams count as codec evidence or as sources.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

MIN_SEQUENTIAL = 2  # RFC 3550 appendix A.1
MAX_STEP = 100  # sequence gap allowed between two sampled packets of one source
MIN_CLOCK_SPAN = 0.1  # seconds of packets needed before a clock rate is judged
# Clock rates of the static payload types (RFC 3551 section 6, tables 4 and 5; G.722's
# is 8000 by the table's own note).
CLOCKS = {0: 8000, 3: 8000, 4: 8000, 5: 8000, 6: 16000, 7: 8000, 8: 8000, 9: 8000,
          10: 44100, 11: 44100, 12: 8000, 13: 8000, 14: 90000, 15: 8000, 16: 11025,
          17: 22050, 18: 8000, 25: 90000, 26: 90000, 28: 90000, 31: 90000, 32: 90000,
          33: 90000, 34: 90000}
FASTEST_CLOCK = 192000  # no RTP clock in use runs faster (dynamic types included)


@dataclass
class Packet:
    """One sampled RTP packet of a sender."""

    time: float  # capture time, seconds
    sequence: int
    timestamp: int
    payload_type: int
    payload_length: int


@dataclass
class StreamCheck:
    ssrc: int
    state: str  # "valid", "invalid" or "unconfirmed" (too few packets to tell)
    reason: str
    payload_type: int
    # False when the timestamps run at another rate than the static payload type's clock:
    # the stream may be RTP, but its payload type then names no codec.
    clock_ok: bool = True


def _fmt(ssrc: int) -> str:
    return f"0x{ssrc:08x}"


def check_stream(ssrc: int, packets: list[Packet]) -> StreamCheck:
    """Validate one SSRC's sampled packets, in capture order: enough of them, sequence
    numbers that count up, then timestamps that follow a sampling clock."""
    types = [p.payload_type for p in packets]
    pt = max(set(types), key=types.count)
    if len(packets) < MIN_SEQUENTIAL:
        return StreamCheck(ssrc, "unconfirmed", f"SSRC {_fmt(ssrc)}: one packet sampled, and "
                           "a source needs sequential packets to be validated (RFC 3550 "
                           "appendix A.1)", pt)
    pairs = list(pairwise(packets))
    steps = [(b.sequence - a.sequence) % 65536 for a, b in pairs]
    good = [(a, b) for (a, b), s in zip(pairs, steps, strict=True) if 1 <= s <= MAX_STEP]
    if len(good) < max(1, 0.8 * len(pairs)):
        shown = ", ".join(f"{s:+d}" if s < 32768 else f"{s - 65536:+d}" for s in steps[:6])
        return StreamCheck(ssrc, "invalid", f"SSRC {_fmt(ssrc)}: sequence numbers do not "
                           f"count up (steps {shown}); RTP's go up by one per packet "
                           "(RFC 3550 section 5.1)", pt)
    advance = _timestamp_advance(good, CLOCKS.get(pt))
    if isinstance(advance, str):
        return StreamCheck(ssrc, "invalid", f"SSRC {_fmt(ssrc)}: {advance}", pt)
    return _clock_check(ssrc, packets, pt, advance)


def _timestamp_advance(good: list[tuple[Packet, Packet]], clock: int | None) -> int | str:
    """How far the timestamps advance over sequential neighbours, or why they cannot be a
    sampling clock's (RFC 3550 section 5.1)."""
    advance, backwards = 0, 0
    for a, b in good:
        delta = (b.timestamp - a.timestamp) % (1 << 32)
        if delta >= 1 << 31:
            backwards += 1
            continue
        limit = (clock or FASTEST_CLOCK) * (max(b.time - a.time, 0.0) + 1.0) * 4
        if delta > limit:
            return (f"the timestamp jumps by {delta} between neighbouring packets, far "
                    "beyond any sampling clock (RFC 3550 section 5.1)")
        advance += delta
    if backwards > 0.2 * len(good):
        return "timestamps run backwards between sequential packets (RFC 3550 section 5.1)"
    return advance


def _clock_check(ssrc: int, packets: list[Packet], pt: int, advance: int) -> StreamCheck:
    """A stream whose timestamps advance: valid, and whether its pace fits the static
    payload type's clock (RFC 3551 section 6), without which the type names no codec."""
    span = packets[-1].time - packets[0].time
    if advance == 0 and span >= 2 * MIN_CLOCK_SPAN:
        return StreamCheck(ssrc, "invalid", f"SSRC {_fmt(ssrc)}: the timestamp never "
                           f"advances over {span:.2f} s; RTP's follows the sampling clock "
                           "(RFC 3550 section 5.1)", pt)
    clock = CLOCKS.get(pt)
    rate = advance / span if span >= MIN_CLOCK_SPAN else None
    pace = f", timestamps +{rate:.0f}/s" if rate is not None else ""
    if clock and rate is not None and advance and not clock / 4 <= rate <= clock * 4:
        return StreamCheck(ssrc, "valid", f"SSRC {_fmt(ssrc)}: {len(packets)} packets, "
                           f"sequence numbers counting up{pace}, but payload type {pt} runs "
                           f"a {clock} Hz clock (RFC 3551 section 6), so the type names no "
                           "codec here", pt, clock_ok=False)
    return StreamCheck(ssrc, "valid", f"SSRC {_fmt(ssrc)}: {len(packets)} packets, sequence "
                       f"numbers counting up{pace}", pt)


@dataclass
class SideCheck:
    state: str  # "valid", "invalid", "unconfirmed"
    reason: str
    streams: list[StreamCheck]


def check_side(streams: dict[int, list[Packet]],
               other_versions: dict[int, set[int]] | None = None) -> SideCheck:
    """One sender's RTP: a stream if at least one SSRC validates. other_versions: for an
    SSRC, the version numbers of datagrams that carry it at bytes 8-11 but read as no
    protocol; RTP is version 2 in every packet (RFC 3550 section 5.1), so a "stream" whose
    version bits change is not RTP."""
    checks = [check_stream(ssrc, packets) for ssrc, packets in streams.items()]
    total = sum(len(p) for p in streams.values())
    for ssrc, versions in (other_versions or {}).items():
        if ssrc in streams:
            seen = ", ".join(str(v) for v in sorted(versions | {2}))
            for check in checks:
                if check.ssrc == ssrc:
                    check.state = "invalid"
                    check.reason = (f"SSRC {_fmt(ssrc)}: the version bits of its packets "
                                    f"change ({seen}); RTP carries version 2 in every packet "
                                    "(RFC 3550 section 5.1)")
    valid = [c for c in checks if c.state == "valid"]
    if valid:
        return SideCheck("valid", "; ".join(c.reason for c in valid[:4]), checks)
    invalid = [c for c in checks if c.state == "invalid"]
    if invalid:
        return SideCheck("invalid", invalid[0].reason, checks)
    if total >= 6:
        return SideCheck("invalid", f"{total} packets with {len(streams)} different SSRCs: "
                         "an RTP source keeps its SSRC (RFC 3550 section 8); these bytes "
                         "only resemble RTP headers", checks)
    return SideCheck("unconfirmed", "too few packets per SSRC to validate a stream (RFC 3550 "
                     "appendix A.1)", checks)


def source_groups(streams: dict[int, list[Packet]], checks: list[StreamCheck]
                  ) -> list[list[int]]:
    """Validated SSRCs grouped with their companions: a retransmission stream carries the
    RTP timestamps of the packets it repeats (RFC 4588 section 4), and FEC sent as a
    separate stream those of the media it protects (RFC 5109 section 7.1), so an SSRC
    whose timestamps all occur in another's is that one's RTX or FEC companion."""
    valid = [c.ssrc for c in checks if c.state == "valid"]
    stamps = {s: {p.timestamp for p in streams[s]} for s in valid}
    # Primaries first: the sources with the most packets.
    order = sorted(valid, key=lambda s: (-len(streams[s]), s))
    groups: list[list[int]] = []
    for ssrc in order:
        home = next((g for g in groups if stamps[ssrc] <= stamps[g[0]]), None)
        if home is not None:
            home.append(ssrc)
        else:
            groups.append([ssrc])
    return groups
