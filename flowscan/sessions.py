"""Media sessions: the media flows that belong together, and what a person needs to read
about them. A SIP call groups the RTP its SDP offered; otherwise one local media socket is
one session (ICE checks, a TURN allocation and the media all share it)."""

from __future__ import annotations

from collections.abc import Callable

from flowscan.identify import FlowFacts
from flowscan.protocols.sdp import offers
from flowscan.report.model import (
    ALIKE_KEPT,
    Decryption,
    Encryption,
    Finding,
    Flow,
    MediaSession,
)


def _sip_calls(flows: list[tuple[Flow, FlowFacts]]) -> dict[tuple[str, int], str]:
    calls: dict[tuple[str, int], str] = {}
    for _flow, facts in flows:
        if not facts.sdp_media:
            continue  # most flows carry no SDP
        for offer in offers(facts.sdp_media, facts.sip):
            for endpoint in offer.endpoints:
                if offer.call is not None:  # media of no named call binds nothing
                    calls.setdefault(endpoint, offer.call)
    return calls


def build_sessions(flows: list[tuple[Flow, FlowFacts]]) -> list[MediaSession]:
    calls = _sip_calls(flows)
    groups: dict[tuple[object, ...], list[Flow]] = {}
    for flow, _facts in flows:
        if flow.encryption is None:
            continue
        call = (calls.get((flow.client.ip, flow.client.port)) or calls.get(
            (flow.server.ip, flow.server.port))) if calls else None
        key: tuple[object, ...] = ("sip", call) if call else (
            "socket", flow.transport, flow.client.ip, flow.client.port)
        group = groups.get(key)
        if group is None:
            groups[key] = [flow]
        else:
            group.append(flow)
    sessions = []
    for number, members in enumerate(sorted(groups.values(), key=lambda m: m[0].id), 1):
        _number(members, number)
        sessions.append(_session(number, members))
    return sessions


def _number(members: list[Flow], number: int) -> None:
    """Each member's verdict with the session's number, the last thing any stage sets on
    it: a new Encryption for each kind of verdict among the members (Encryption.likeness),
    as a verdict object may be shared with flows of other sessions. The members alike
    share it: a socket used again and again after the idle timeout is a session of
    thousands of flows judged alike."""
    numbered: dict[tuple[object, ...], Encryption] = {}
    for flow in members:
        enc = flow.encryption
        assert enc is not None
        key = enc.likeness()
        found = numbered.get(key)
        if found is None:
            if len(numbered) >= ALIKE_KEPT:
                numbered.clear()
            found = numbered[key] = enc.in_session(number)
        flow.encryption = found


# Each distinct list of verdicts once: sessions (one per media socket) share a handful.
_VERDICT_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}


def _session(number: int, members: list[Flow]) -> MediaSession:
    app = _main_app(members)
    found = tuple(dict.fromkeys([f.encryption.verdict for f in members if f.encryption]))
    verdicts = _VERDICT_LISTS.setdefault(found, found)
    ids = tuple([f.id for f in members])
    # Many sessions are one flow (a media socket used once): no ranking to do.
    main = members[0] if len(members) == 1 else max(members, key=lambda f: (f.bytes, -f.id))
    enc = main.encryption
    assert enc is not None
    why = _keys_said(enc.decryption) or (enc.evidence[0].detail if enc.evidence else "")
    others = f" (+{len(members) - 1} more flows)" if len(members) > 1 else ""
    if all(map(_handshake_only, members)):
        # No media to speak of: say what there was (issue 17).
        return MediaSession(number, app, ids, verdicts,
                            f"{app or 'unidentified app'}: a handshake "
                            f"{_towards(main).replace('to ', 'with ', 1)}{others} and no "
                            f"media: {why}")
    summary = (f"{app or 'unidentified app'}: media {_towards(main)}"
               f"{others} is {enc.verdict} ({enc.key_exchange}, {enc.confidence} confidence; "
               f"{encryption_path(enc.verdict, enc.termination)}): {why}")
    return MediaSession(number, app, ids, verdicts, summary)


def _main_app(members: list[Flow]) -> str | None:
    """The app most of the session's flows belong to; of equally many, the first seen."""
    counts: dict[str, int] = {}
    for flow in members:
        if flow.app:
            counts[flow.app.name] = counts.get(flow.app.name, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None


def _handshake_only(flow: Flow) -> bool:
    """A flow whose verdict says it carried a handshake and no media."""
    evidence = flow.encryption.evidence if flow.encryption else ()
    return len(evidence) == 1 and evidence[0].signal == "handshake-only"


def _keys_said(dec: Decryption | None) -> str | None:
    """With keys that opened the media, the call line says what they showed (issue 17,
    class 12): how many packets were decrypted and verified, and what is inside; the wire's
    reason ("random payloads") no longer explains the verdict."""
    if dec is None or not dec.packets_decrypted:
        return None
    n = dec.packets_decrypted
    opened = (f"every packet tried decrypted and verified ({n})" if not dec.tag_failures else
              f"{n} packets decrypted and verified, {dec.tag_failures} failed their "
              "authentication tag")
    inside = {
        "codec": "; {detail}: the transport keys were the only protection",
        "sframe": "; {detail}: an end-to-end layer inside the transport encryption",
        "opaque": "; {detail}: another encryption layer may be inside",
        "insufficient": "; {detail}: too few to tell what is inside",
    }.get(dec.inner, "; {detail}")
    return opened + inside.format(detail=dec.inner_detail)


def _towards(flow: Flow) -> str:
    """The flow's remote, never the capture point: where which end is local cannot be told
    (two participants, nothing deciding), both ends are named."""
    remote = flow.remote
    if remote is None or remote.basis == "unknown":
        return (f"between {flow.client.ip}:{flow.client.port} and "
                f"{flow.server.ip}:{flow.server.port}")
    end = flow.client if remote.which == "client" else flow.server
    return f"to {end.ip}:{end.port}"


# Where the encryption of a flow that is not relayed ends, by its termination.
_ENDS_AT = {"peer": "encryption ends at the other participant",
            "server": "encryption ends at a service's server"}


def encryption_path(verdict: str, termination: str) -> str:
    """Where the packets go, in words that cannot be read against the verdict: a relayed
    end-to-end call passes a relay, but its encryption ends at the other participant.
    Media without encryption (or with its keys in the clear) has no end of encryption to
    name: saying where it "ends" would read as if it were protected up to there."""
    if verdict == "plaintext":
        return "not encrypted: anyone on the path can read it"
    if verdict == "keys-exposed":
        return "its keys crossed the network in the clear: anyone who captured them can read it"
    if termination == "relay":
        return ("via a relay that only forwards; encryption ends at the peer behind it"
                if verdict == "end-to-end" else "via a relay; who holds the keys behind it is "
                "unknown")
    return _ENDS_AT.get(termination, "where encryption ends is unknown")


def findings(flows: list[Flow], sessions: list[MediaSession]) -> list[Finding]:
    """What a person must know, flow by flow (FLOW_FINDINGS, in order), then session by
    session."""
    out = [finding for find in FLOW_FINDINGS for finding in find(flows)]
    return out + _mixed_protection(flows, sessions)


def _verdict_finding(verdict: str, kind: str, what: str
                     ) -> Callable[[list[Flow]], list[Finding]]:
    """The media flows judged `verdict`, all in one high-severity finding."""
    def find(flows: list[Flow]) -> list[Finding]:
        hit = [f for f in flows if f.encryption and f.encryption.verdict == verdict]
        if not hit:
            return []
        total = sum(f.bytes for f in hit)
        return [Finding("high", kind, f"{len(hit)} media flow(s), {total} bytes: {what}",
                        [f.id for f in hit])]
    return find


def _with_signal(flows: list[Flow], signal: str) -> list[tuple[Flow, str]]:
    """The flows whose verdict cites `signal`, each with that evidence's detail."""
    out = []
    for f in flows:
        for item in f.encryption.evidence if f.encryption else ():
            if item.signal == signal:
                out.append((f, item.detail))
                break
    return out


def _rtcp_in_clear(flows: list[Flow]) -> list[Finding]:
    leaking = _with_signal(flows, "rtcp-partly-clear")
    if not leaking:
        return []
    return [Finding("medium", "rtcp-in-clear",
                    f"{len(leaking)} encrypted media flow(s) also send RTCP unprotected, so "
                    f"call metadata is readable on the path: {leaking[0][1]}",
                    [f.id for f, _ in leaking])]


def _zrtp_clear_start(flows: list[Flow]) -> list[Finding]:
    clear_start = _with_signal(flows, "zrtp-clear-start")
    if not clear_start:
        return []
    # RFC 6189 section 4.6.1: media flows in the clear until the Confirm exchange.
    what = "; ".join(f"flow {f.id}: " + detail.split(": ", 1)[1].split(";")[0]
                     for f, detail in clear_start[:3])
    return [Finding("medium", "zrtp-clear-start",
                    f"{len(clear_start)} media flow(s) sent media unencrypted before ZRTP "
                    f"completed ({what}): anyone on the path can read that start of the call",
                    [f.id for f, _ in clear_start])]


# The findings read off the flows' verdicts, in the order they are reported. A new one is
# one function and its place here.
FLOW_FINDINGS: tuple[Callable[[list[Flow]], list[Finding]], ...] = (
    _verdict_finding("plaintext", "plaintext-media", "media travels unencrypted"),
    _verdict_finding("keys-exposed", "keys-exposed-media",
                     "media keys travelled in the clear, so anyone on the path can decrypt it"),
    _rtcp_in_clear, _zrtp_clear_start)


def _mixed_protection(flows: list[Flow], sessions: list[MediaSession]) -> list[Finding]:
    by_id: dict[int, Flow] = {}  # made when the first mixed session needs it
    out = []
    for session in sessions:
        if "end-to-end" not in session.verdicts:
            continue
        # An unknown leg (a handshake without media, too little to judge) protects nothing
        # less: it is not a mix of protections.
        others = [v for v in session.verdicts if v not in ("end-to-end", "unknown")]
        if others:
            by_id = by_id or {f.id: f for f in flows}
            out.append(Finding(
                "medium", "mixed-protection",
                f"session {session.id} ({session.app}): some legs are end-to-end and others "
                f"are {', '.join(others)}",
                [i for i in session.flows if by_id[i].encryption]))
    return out
