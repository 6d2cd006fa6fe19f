"""The report model: typed dataclasses that serialise to the JSON schema flowscan.report/1.

Fields that later stages fill (protocols, app, encryption, remote, jurisdiction, findings)
exist from the start so the schema stays stable as the analysis grows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flowscan.report.vocab import ENCRYPTION_MEMBERS, ENCRYPTION_WORDS

SCHEMA = "flowscan.report/1"


class Serialised:
    """The base of the report's slots dataclasses, for orjson's speed: orjson asks a
    dataclass instance for its __dict__ first, and a slots instance, having none, raises
    an AttributeError that orjson clears (about 0.3 us an object, a dozen objects a flow).
    This class attribute answers at once; orjson then sees __slots__ and writes the fields
    one by one as before, the same bytes."""

    __slots__ = ()
    __dict__ = None  # type: ignore[assignment]


@dataclass(slots=True)
class ToolInfo(Serialised):
    name: str
    version: str


@dataclass(slots=True)
class SecretsInfo(Serialised):
    """What decryption secrets the capture carries: kinds and counts, never the content."""

    blocks: int = 0
    kinds: list[str] = field(default_factory=list)


@dataclass(slots=True)
class CaptureInfo(Serialised):
    path: str
    sha256: str
    size_bytes: int
    compressed: bool
    format: str
    link_types: list[str]
    sections: int
    interfaces: int
    packets: int
    bytes: int
    first_timestamp: float | None
    last_timestamp: float | None
    ip_packets: int = 0
    non_ip_packets: int = 0
    undecoded_packets: int = 0
    ip_fragments: int = 0
    decryption_secrets: SecretsInfo = field(default_factory=SecretsInfo)
    warnings: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Endpoint(Serialised):
    """Frozen, so that a server's endpoint is one object for all its flows (records.py)."""

    ip: str
    port: int


@dataclass(frozen=True, slots=True)
class DirectionStats(Serialised):
    packets: int
    bytes: int
    first_timestamp: float | None
    last_timestamp: float | None


@dataclass(slots=True)
class TcpHandshake(Serialised):
    """Round trips seen from the capture point, in milliseconds (None where not seen)."""

    syn_to_synack_ms: float | None
    synack_to_ack_ms: float | None


@dataclass(frozen=True, slots=True)
class EvidenceItem(Serialised):
    """One signal an identification or a verdict rests on, in words a regulator reads.
    Frozen, so that an item of fixed words can be one object shared by every flow it
    explains (a verdict adds items to its own list, never changes one)."""

    signal: str
    detail: str
    strength: str | None = None


@dataclass(slots=True)
class AppInfo(Serialised):
    name: str
    confidence: str  # high / medium / low
    evidence: list[EvidenceItem] = field(default_factory=list)


@dataclass(slots=True)
class AppGroup(Serialised):
    """All flows of one application in the capture."""

    name: str
    confidence: str
    flows: list[int]
    packets: int
    bytes: int


@dataclass(slots=True)
class GeoDatabase(Serialised):
    """One database the report used: what it is and how old."""

    name: str
    kind: str  # country, city, asn, registration
    build_date: str
    path: str
    license: str | None = None
    attribution: str | None = None


@dataclass(slots=True)
class VantagePoint(Serialised):
    """Where the capture was taken (--vantage): a country's centre or the coordinates
    given. Maps start their arcs here; the plausibility checks measure from it."""

    label: str
    latitude: float
    longitude: float
    country: str | None = None


@dataclass(frozen=True, slots=True)
class RemoteInfo(Serialised):
    """Frozen, so that one object serves every flow to the same remote, judged the same
    way (geo/locate.py); a flow with more to say of it gets its own copy."""

    ip: str
    which: str  # the flow side taken as remote: server or client
    scope: str  # public, private, cgnat, loopback, link-local, multicast, documentation...
    country: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    asn: int | None = None
    organisation: str | None = None
    registered_country: str | None = None
    # Tuples, not lists: a flow's are shared with the locator's answer for its address (or
    # are the one empty tuple), not copied per flow.
    sources: tuple[str, ...] = ()
    # With --vantage: whether the location fits the round-trip time seen (geo/plausibility).
    plausibility: Any = None
    # Location hints in the names the capture gives this address (evidence, not the answer).
    name_hints: tuple[dict[str, str], ...] = ()
    # Why that side is the remote: given (--capture-host), capture-host, tcp-handshake,
    # stun-server, service-port, stun-reflexive, private-address, vantage (the end outside
    # the capture's country), or unknown (two participants, either could be the capture
    # point).
    basis: str | None = None


@dataclass(slots=True)
class Jurisdiction(Serialised):
    """The flow's remote against the user's home jurisdiction (given with --home)."""

    home: str
    remote_country: str | None  # the end outside home if any, else the remote's country
    foreign: bool | None  # any public end located outside home; None: nothing located
    countries: list[str] = field(default_factory=list)  # where the flow's public ends are
    registered_country: str | None = None
    registered_foreign: bool | None = None
    # EU adequacy decisions for the foreign countries that have one (country, decision, date).
    adequacy: list[dict[str, str]] = field(default_factory=list)


@dataclass(slots=True)
class Decryption(Serialised):
    """What the keys revealed (basis decrypted): packets opened and what was inside."""

    packets_decrypted: int
    tag_failures: int  # packets whose authentication tag did not verify with the key
    key_source: str  # the key log files, the capture's secrets block, or SDES
    key_sha256: str  # the key named by a short fingerprint, never the key
    inner: str  # codec, sframe, opaque, insufficient
    inner_detail: str
    streams: int = 0
    # RTCP whose tag failed because it has none: it parses to its end, sent in the clear.
    unprotected_rtcp: int = 0
    truncated: int = 0  # packets cut short by the capture's snap length: not tried
    # Media over TCP: bytes of the stream the capture never holds (holes no retransmission
    # filled); frames in them could not be tried.
    stream_gap_bytes: int = 0


# Kinds of verdict remembered to share (Encryption.likeness): past that many, as where
# every flow's evidence is its own, the memory starts afresh rather than grow per flow.
ALIKE_KEPT = 4096


@dataclass(slots=True, init=False)
class Encryption(Serialised):
    """How a media flow is protected and who can read it, with the evidence (issue #5).

    verdict: plaintext | keys-exposed | hop-by-hop | end-to-end | encrypted-unverified |
    unknown. termination: peer | server | relay | unknown. key_exchange: dtls-srtp | sdes |
    zrtp | proprietary | none | unknown. basis: observed (no keys). confidence: high |
    medium | low.
    """

    verdict: str
    termination: str
    key_exchange: str
    basis: str
    confidence: str
    # Always a tuple, assigned whole: the evidence of fixed words is one object for every
    # flow it explains (verdict/rules.py), and the Encryption is each flow's own.
    evidence: Sequence[EvidenceItem] = ()
    session: int | None = None
    decryption: Decryption | None = None

    def __init__(self, verdict: str, termination: str, key_exchange: str, basis: str,
                 confidence: str, evidence: Sequence[EvidenceItem] = (),
                 session: int | None = None, decryption: Decryption | None = None) -> None:
        """The words checked as __setattr__ checks them, in one call: one is made per
        media flow, and nine calls of a Python __setattr__ cost ten times the rest."""
        put = object.__setattr__
        put(self, "verdict", _word("verdict", verdict))
        put(self, "termination", _word("termination", termination))
        put(self, "key_exchange", _word("key_exchange", key_exchange))
        put(self, "basis", _word("basis", basis))
        put(self, "confidence", _word("confidence", confidence))
        put(self, "evidence", tuple(evidence))
        put(self, "session", session)
        put(self, "decryption", decryption)

    def in_session(self, session: int) -> Encryption:
        """A copy of this verdict numbered for `session` (sessions.py: a verdict object may
        be shared by flows of other sessions), made as dataclasses.replace would make it
        at half its cost (one per session: a million on a capture of a million sockets)."""
        return Encryption(self.verdict, self.termination, self.key_exchange, self.basis,
                          self.confidence, self.evidence, session, self.decryption)

    def likeness(self) -> tuple[object, ...]:
        """Equal for two verdicts alike in every field: the same words and session, the
        very same evidence and decryption objects (by id: whoever compares must hold both
        verdicts, so that no id is reused meanwhile). Flows judged alike share one
        Encryption (pipeline.judge_flows, sessions.py: each remembers up to ALIKE_KEPT
        kinds, then starts afresh); a stage that changes a verdict afterwards changes its
        flow's own copy."""
        return (self.verdict, self.termination, self.key_exchange, self.basis,
                self.confidence, id(self.evidence), self.session, id(self.decryption))

    def __setattr__(self, name: str, value: Any) -> None:
        """Each word checked against its vocabulary (report/vocab.py), when made and when
        a later stage (decryption) changes it: ValueError for a word nobody defined."""
        if name in ENCRYPTION_MEMBERS:
            value = _word(name, value)
        elif name == "evidence":
            value = tuple(value)
        object.__setattr__(self, name, value)


def _word(name: str, value: str) -> str:
    """The member of field `name`'s vocabulary that `value` spells; an unknown word goes
    to the vocabulary itself, whose ValueError names it."""
    member = ENCRYPTION_MEMBERS[name].get(str(value))
    return member if member is not None else ENCRYPTION_WORDS[name](str(value))


@dataclass(slots=True)
class MediaSession(Serialised):
    """Media flows that belong together: one SIP call, or one local media socket (ICE,
    TURN and the media on it)."""

    id: int
    app: str | None
    flows: tuple[int, ...]
    verdicts: tuple[str, ...]  # one tuple for all sessions with the same (sessions.py)
    summary: str  # one line a person can read: app, remote, verdict, why


@dataclass(slots=True)
class Finding(Serialised):
    severity: str  # high / medium / info
    kind: str
    detail: str
    flows: list[int] = field(default_factory=list)


@dataclass(slots=True)
class Flow(Serialised):
    id: int
    transport: str
    client: Endpoint
    server: Endpoint
    # How the client side was decided: tcp-syn, tcp-syn-ack, well-known-port, first-packet.
    client_basis: str
    to_server: DirectionStats
    to_client: DirectionStats
    encapsulation: tuple[str, ...] = ()
    tcp_handshake: TcpHandshake | None = None
    protocols: tuple[str, ...] = ()  # one tuple for all flows with the same (identify.py)
    # Protocol facts by protocol (stun, turn, dtls, tls, quic, rtp, zoom, sip, dns): what the
    # identification read from the flow's first packets. Never key material.
    details: Mapping[str, Any] = field(default_factory=dict)
    app: AppInfo | None = None
    encryption: Encryption | None = None
    remote: RemoteInfo | None = None
    jurisdiction: Jurisdiction | None = None

    @property
    def packets(self) -> int:
        return self.to_server.packets + self.to_client.packets

    @property
    def bytes(self) -> int:
        return self.to_server.bytes + self.to_client.bytes


@dataclass(kw_only=True, slots=True)
class Report(Serialised):
    schema: str = SCHEMA
    tool: ToolInfo
    capture: CaptureInfo
    flows: list[Flow] = field(default_factory=list)
    apps: list[AppGroup] = field(default_factory=list)
    # A list, or sessions.Sessions: each made as it is read (a million one-flow sessions).
    sessions: Sequence[MediaSession] = field(default_factory=list)
    # Address -> names, from DNS answers and pcapng name resolution blocks in the capture.
    names: dict[str, list[str]] = field(default_factory=dict)
    # Every geolocation database used, with its build date (DB-IP Lite needs this credit).
    geodata: list[GeoDatabase] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    # The plain answers (issue 16): is the media end-to-end encrypted, where did data go.
    answers: Answers | None = None
    # Where the capture was taken, when --vantage said it.
    vantage: VantagePoint | None = None

    def flows_records(self) -> list[dict[str, Any]]:
        """One flat dict per flow, the CSV's columns (report.rows): what
        pandas.DataFrame(report.flows_records()) and polars.DataFrame(...) read directly."""
        from flowscan.report.rows import flow_rows

        return flow_rows([self])


# -- Plain answers (issue 16): what a regulator asks first, answered from the rest ------


@dataclass(slots=True)
class VerdictShare(Serialised):
    """Media flows and bytes that got one verdict."""

    verdict: str
    flows: int
    bytes: int


@dataclass(slots=True)
class EncryptionAnswer(Serialised):
    """Is the media end-to-end encrypted? answer: yes | no | cannot-tell."""

    answer: str
    sentence: str  # the reason, in one plain sentence a regulator can quote
    settle: list[str] = field(default_factory=list)  # what would settle a cannot-tell
    verdicts: list[VerdictShare] = field(default_factory=list)
    flows: list[int] = field(default_factory=list)  # the media flows the answer rests on


@dataclass(slots=True)
class Destination(Serialised):
    """Traffic to one country or one operator (network), media and signalling apart.

    key: a country code, an AS number as text ("AS31898"), or "unlocated" (private,
    multicast or addresses the databases do not know)."""

    key: str
    name: str | None
    flows: int
    bytes: int
    media_flows: int = 0
    media_bytes: int = 0
    signalling_flows: int = 0
    signalling_bytes: int = 0
    registered_country: str | None = None  # operators: where the network is registered


@dataclass(slots=True)
class LeavingFlow(Serialised):
    """A flow with an end located outside home (--home); kind: media | signalling | other."""

    flow: int
    kind: str
    countries: list[str]  # the located ends outside home
    bytes: int
    verdict: str | None = None  # media: its encryption verdict
    name: str | None = None  # the remote's name (SNI or DNS) where the capture gives one


@dataclass(slots=True)
class ForeignOperator(Serialised):
    """Media the network's operator can read where that network is registered in another
    country than the one its server is located in (with --home: a server located at home on
    a network registered outside it)."""

    flow: int
    verdict: str
    located: str | None
    registered: str
    asn: int | None
    organisation: str | None
    sentence: str


@dataclass(slots=True)
class DataAnswer(Serialised):
    """Where did the data go? Countries and operators by bytes, and with --home what left."""

    sentence: str
    home: str | None = None
    countries: list[Destination] = field(default_factory=list)
    operators: list[Destination] = field(default_factory=list)
    leaving: list[LeavingFlow] = field(default_factory=list)
    foreign_operators: list[ForeignOperator] = field(default_factory=list)


@dataclass(slots=True)
class LegendEntry(Serialised):
    word: str
    meaning: str


@dataclass(slots=True)
class Answers(Serialised):
    """The report's plain answers, built from its flows (report.answers); the same object
    feeds the text report, the JSON and any later renderer."""

    encryption: EncryptionAnswer
    data: DataAnswer
    legend: list[LegendEntry] = field(default_factory=list)
