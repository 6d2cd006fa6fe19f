"""Media sessions: the media flows that belong together, and what a person needs to read
about them. A SIP call groups the RTP its SDP offered; otherwise one local media socket is
one session (ICE checks, a TURN allocation and the media all share it)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import overload

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


def build_sessions(flows: list[tuple[Flow, FlowFacts]]) -> Sessions:
    calls = _sip_calls(flows)
    # A group's members: the one flow where it has one (most sessions are one media
    # socket used once), a list from its second. Keyed by the call, or by the local
    # socket: its Endpoint (the record's own: no key made per flow), with the transport
    # where it is not UDP.
    groups: dict[object, Flow | list[Flow]] = {}
    for flow, _facts in flows:
        if flow.encryption is None:
            continue
        call = (calls.get((flow.client.ip, flow.client.port)) or calls.get(
            (flow.server.ip, flow.server.port))) if calls else None
        key: object = ("sip", call) if call else (
            flow.client if flow.transport == "udp" else (flow.transport, flow.client))
        group = groups.get(key)
        if group is None:
            groups[key] = flow
        elif isinstance(group, list):
            group.append(flow)
        else:
            groups[key] = [group, flow]
    sessions = Sessions()
    for number, group in enumerate(sorted(groups.values(), key=_first_id), 1):
        members = group if isinstance(group, list) else [group]
        _number(members, number)
        sessions.add(members)
    return sessions


def _first_id(group: Flow | list[Flow]) -> int:
    return group[0].id if isinstance(group, list) else group.id


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


class Sessions(Sequence[MediaSession]):
    """A capture's media sessions, numbered from 1 in the order of their first flow, each
    MediaSession made as it is read. What is kept per session is what makes it: its
    members' ids (the one id of a one-flow session), its app, its list of verdicts (one
    tuple for all sessions with the same), its main flow (the largest), and whether it was
    all handshakes. Its summary line is written from the main flow when the session is
    read: made here for every session, the lines were over half of what a million
    one-flow sessions held (a line names the remote, so no two are alike). The flows'
    records must be final (the sessions stage runs after every stage that sets a verdict,
    a remote or an app). A session read is a new object: changing it changes nothing
    here. Pickled, it is a list."""

    __slots__ = ("_apps", "_handshakes", "_mains", "_members", "_verdicts")

    def __init__(self) -> None:
        self._members: list[int | tuple[int, ...]] = []
        self._apps: list[str | None] = []
        self._verdicts: list[tuple[str, ...]] = []
        self._mains: list[Flow] = []
        self._handshakes = bytearray()

    def add(self, members: list[Flow]) -> None:
        """The next session: its members, judged and numbered, in the order of their ids."""
        found = tuple(dict.fromkeys([f.encryption.verdict for f in members if f.encryption]))
        self._verdicts.append(_VERDICT_LISTS.setdefault(found, found))
        self._apps.append(_main_app(members))
        if len(members) == 1:  # no ranking to do
            self._members.append(members[0].id)
            self._mains.append(members[0])
        else:
            self._members.append(tuple([f.id for f in members]))
            self._mains.append(max(members, key=lambda f: (f.bytes, -f.id)))
        self._handshakes.append(all(map(_handshake_only, members)))

    def __len__(self) -> int:
        return len(self._members)

    @overload
    def __getitem__(self, index: int) -> MediaSession: ...

    @overload
    def __getitem__(self, index: slice) -> list[MediaSession]: ...

    def __getitem__(self, index: int | slice) -> MediaSession | list[MediaSession]:
        if isinstance(index, slice):
            return [self._session(i) for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("session index out of range")
        return self._session(index)

    def __iter__(self) -> Iterator[MediaSession]:
        return map(self._session, range(len(self)))

    def heads(self) -> Iterator[tuple[int, str | None, tuple[int, ...], tuple[str, ...]]]:
        """Each session's number, app, flows and verdicts: what reading it gives but the
        summary, which is not written."""
        for i, members in enumerate(self._members):
            yield i + 1, self._apps[i], _ids(members), self._verdicts[i]

    def _session(self, i: int) -> MediaSession:
        ids = _ids(self._members[i])
        app = self._apps[i]
        return MediaSession(i + 1, app, ids, self._verdicts[i],
                            _summary(self._mains[i], len(ids), app, bool(self._handshakes[i])))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence):
            return NotImplemented
        return len(self) == len(other) and all(a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Sessions({list(self)!r})"

    def __reduce__(self) -> tuple[type[list[MediaSession]], tuple[list[MediaSession]]]:
        return list, (list(self),)


def _ids(members: int | tuple[int, ...]) -> tuple[int, ...]:
    return members if isinstance(members, tuple) else (members,)


def _summary(main: Flow, count: int, app: str | None, handshakes: bool) -> str:
    """The session's line a person reads: app, remote, verdict, why (issue 17)."""
    enc = main.encryption
    assert enc is not None
    why = _keys_said(enc.decryption) or (enc.evidence[0].detail if enc.evidence else "")
    others = f" (+{count - 1} more flows)" if count > 1 else ""
    if handshakes:
        # No media to speak of: say what there was (issue 17).
        return (f"{app or 'unidentified app'}: a handshake "
                f"{_towards(main).replace('to ', 'with ', 1)}{others} and no media: {why}")
    return (f"{app or 'unidentified app'}: media {_towards(main)}"
            f"{others} is {enc.verdict} ({enc.key_exchange}, {enc.confidence} confidence; "
            f"{encryption_path(enc.verdict, enc.termination)}): {why}")


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


def findings(flows: list[Flow], sessions: Sessions) -> list[Finding]:
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


def _mixed_protection(flows: list[Flow], sessions: Sessions) -> list[Finding]:
    by_id: dict[int, Flow] = {}  # made when the first mixed session needs it
    out = []
    for number, app, ids, verdicts in sessions.heads():
        if "end-to-end" not in verdicts:
            continue
        # An unknown leg (a handshake without media, too little to judge) protects nothing
        # less: it is not a mix of protections.
        others = [v for v in verdicts if v not in ("end-to-end", "unknown")]
        if others:
            by_id = by_id or {f.id: f for f in flows}
            out.append(Finding(
                "medium", "mixed-protection",
                f"session {number} ({app}): some legs are end-to-end and others "
                f"are {', '.join(others)}",
                [i for i in ids if by_id[i].encryption]))
    return out
