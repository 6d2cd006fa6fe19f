"""Per-flow protocol identification: run the parsers over a closed flow's payload samples
and keep what later stages and the report need (small, JSON-ready, no key material)."""

from __future__ import annotations

import dataclasses
import keyword
import operator
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import suppress
from dataclasses import dataclass, field, make_dataclass
from itertools import pairwise
from typing import Any, ClassVar

from flowscan.flows import (
    OTHER_CLASS,
    RTP_CLASS,
    SAMPLE_CLASSES,
    TCP_MEDIA_CLASS,
    FlowState,
    Sample,
    tcp_media_frame,
    unpack_samples,
)
from flowscan.media import streams as rtp_streams
from flowscan.media.payload import PayloadStats, frame_sizes, payload_stats
from flowscan.protocols import demux, dns, framing, quic, rtp, sip, stun, tls, whatsapp, zoom, zrtp
from flowscan.protocols import hello as hs
from flowscan.protocols.dtls import DtlsSide
from flowscan.protocols.sip import SdpMedia
from flowscan.report.model import Serialised


class Facts(Serialised):
    """The base of the facts dataclasses: pickled as the class and its fields' values in
    field order, the arguments that make it again, not as a map of field names to values
    (the default for slots). Identified flows' facts are pickled on a worker and, where
    the reader identifies, to tell equal facts apart (identify_workers.SharedFacts): the
    default costs about 20 us for an RTP flow's facts and writes every field's name."""

    __slots__ = ()

    def __reduce__(self) -> tuple[Any, ...]:
        return type(self), _field_values(type(self))(self)


_FIELD_VALUES: dict[type, Callable[[object], tuple[Any, ...]]] = {}


def _field_values(cls: type) -> Callable[[object], tuple[Any, ...]]:
    """A C getter of the class's fields, in the order its __init__ takes them."""
    getter = _FIELD_VALUES.get(cls)
    if getter is None:
        fields = dataclasses.fields(cls)
        if len(fields) < 2 or any(not f.init or f.kw_only for f in fields):
            raise TypeError(f"{cls.__name__}: pickled by position, so every field must be "
                            "an __init__ argument by position, and there must be two or more")
        getter = _FIELD_VALUES[cls] = operator.attrgetter(*(f.name for f in fields))
    return getter


SIDES = ("client", "server")
DNS_PORTS = (53, 5353, 5355)
SIP_PORTS = (5060, 5061)
# Malformed SIP and SDP lines named per flow, at most: enough to show what went wrong.
MAX_MALFORMED_LINES = 50


@dataclass(slots=True)
class StunFacts(Facts):
    messages: int = 0
    classic: bool = False
    methods: dict[str, int] = field(default_factory=dict)  # "binding-request" -> count
    requests_from: list[str] = field(default_factory=list)  # sides sending requests
    software: list[str] = field(default_factory=list)
    usernames: list[str] = field(default_factory=list)
    ice_roles: dict[str, str] = field(default_factory=dict)  # side -> controlling/controlled
    use_candidate: bool = False
    mapped_addresses: list[str] = field(default_factory=list)  # as "ip:port"
    # side a success response went to -> the address its sender saw that side at
    # (XOR-MAPPED-ADDRESS, RFC 8489 section 14.2): the first one seen
    reflexive: dict[str, str] = field(default_factory=dict)
    peer_addresses: list[str] = field(default_factory=list)
    relayed_addresses: list[str] = field(default_factory=list)
    channels: list[int] = field(default_factory=list)
    attributes: list[str] = field(default_factory=list)  # every attribute type seen, hex
    zoom_signature: bool = False
    rtt_ms: float | None = None  # shortest request (client) to response (server) round trip
    # full: both sides send connectivity checks; lite-or-server: one side only answers
    # (ICE-lite, RFC 8445 section 2.5, as media servers do); one-direction: the checks of
    # only one side were captured and nothing came back, so nothing can be inferred about
    # the other side. Set when the flow is done.
    ice: str | None = None


@dataclass(slots=True)
class TurnFacts(Facts):
    channel_data: int = 0
    data_indications: int = 0
    relayed: dict[str, int] = field(default_factory=dict)  # inner protocol -> packets


@dataclass(slots=True)
class HandshakeFacts(Facts):
    """The clear part of a TLS, DTLS or QUIC handshake, per side."""

    version: str | None = None
    sni: str | None = None
    alpn_offered: list[str] = field(default_factory=list)
    alpn: str | None = None
    cipher_suite: str | None = None
    srtp_profiles_offered: list[str] = field(default_factory=list)
    srtp_profile: str | None = None
    srtp_mki: str | None = None  # hex, when use_srtp carries one (RFC 5764 section 4.1.1)
    client_random: str | None = None
    server_random: str | None = None
    certificates: dict[str, list[dict[str, object]]] = field(default_factory=dict)
    encrypted_records: dict[str, int] = field(default_factory=dict)
    complete: bool = False
    dtls_client: str | None = None  # which flow side (client/server) is the DTLS client


class _NoSides(dict[str, Any]):
    """The empty per-side map: one object, shared by the RtpFacts of every flow whose side
    maps stay empty (most flows validate no RTP), and the details of every flow without
    any. It refuses to change: the maps are typed read-only and assigned whole where
    identification fills them. Pickled by name, so the facts a worker process sends back
    share it too."""

    def __setitem__(self, key: str, value: object) -> None:
        raise TypeError("the shared empty map does not change: assign a new map")

    def __delitem__(self, key: str) -> None:
        raise TypeError("the shared empty map does not change: assign a new map")

    def __reduce__(self) -> str:
        return "NO_SIDES"


    def _refuse(self, *args: object, **kwargs: object) -> Any:
        raise TypeError("a shared per-side map does not change: assign a new map")

    clear = pop = popitem = setdefault = update = __ior__ = _refuse  # type: ignore[assignment]


NO_SIDES: Mapping[str, Any] = _NoSides()


class _SharedSides(_NoSides):
    """A filled per-side map that flows share (shared_sides); read-only like NO_SIDES.
    Pickled by its items, so a worker's maps are shared again where they arrive."""

    def __reduce__(self) -> tuple[Any, ...]:  # type: ignore[override]
        return (shared_sides, (tuple(self.items()),))


# Each distinct per-side map once, up to a bound: past it (maps of unique values, such as
# many validated streams' reasons) a map is its own, and the table stops growing.
_SHARED_SIDES: dict[tuple[tuple[str, Hashable], ...], Mapping[str, Any]] = {}
SHARED_SIDES_MAX = 4096


class _Fields(Serialised, Mapping[str, Any]):
    """A small read-only map held as a slots dataclass of its keys (fields_map): about a
    fifth of a dict's size. orjson and dataclasses.asdict write a dataclass as an object of
    its fields in order, so it serialises exactly as the dict it stands for."""

    __slots__ = ()
    KEYS: ClassVar[tuple[str, ...]] = ()

    def __getitem__(self, key: str) -> Any:
        if key not in self.KEYS:
            raise KeyError(key)
        return getattr(self, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self.KEYS)

    def __len__(self) -> int:
        return len(self.KEYS)

    def __repr__(self) -> str:
        return repr(dict(self))

    def __reduce__(self) -> tuple[Any, ...]:
        return (fields_map, (tuple(self.items()),))


# One class per key order: a few dozen (the sides, the details' protocol combinations).
_FIELDS_CLASSES: dict[tuple[str, ...], type[_Fields]] = {}


def fields_map(items: Iterable[tuple[str, Any]]) -> Mapping[str, Any]:
    """The read-only map of these items, in their order, for a map held per flow: NO_SIDES
    when empty, a dict where a key could not be a field name."""
    pairs = tuple(items)
    if not pairs:
        return NO_SIDES
    keys = tuple(k for k, _ in pairs)
    cls = _FIELDS_CLASSES.get(keys)
    if cls is None:
        if not all(k.isidentifier() and not keyword.iskeyword(k) and not hasattr(_Fields, k)
                   for k in keys) or len(set(keys)) != len(keys):
            return dict(pairs)
        cls = _FIELDS_CLASSES[keys] = make_dataclass(
            "Fields", keys, bases=(_Fields,), namespace={"KEYS": keys}, slots=True,
            eq=False, repr=False)
    return cls(*(v for _, v in pairs))


def shared_sides(items: Iterable[tuple[str, Hashable]]) -> Mapping[str, Any]:
    """The read-only map of these (side, value) items, in their order: NO_SIDES when
    empty, else one object for every flow with the same items."""
    key = tuple(items)
    if not key:
        return NO_SIDES
    found = _SHARED_SIDES.get(key)
    if found is None:
        found = _SharedSides(key)
        if len(_SHARED_SIDES) < SHARED_SIDES_MAX:
            _SHARED_SIDES[key] = found
    return found


def _no_sides() -> Mapping[str, Any]:
    return NO_SIDES


@dataclass(slots=True)
class RtpFacts(Facts):
    # The per-side maps are read-only, assigned whole (NO_SIDES while empty); the counts,
    # payload types and stream states are shared maps (shared_sides): a one-packet RTP flow
    # has those of thousands of others.
    packets: Mapping[str, int] = field(default_factory=_no_sides)  # side -> RTP packets parsed
    ssrcs: Mapping[str, tuple[str, ...]] = field(default_factory=_no_sides)  # side -> hex
    payload_types: Mapping[str, tuple[int, ...]] = field(default_factory=_no_sides)
    sequence_ok: bool = False  # sequence numbers advance by small steps per SSRC
    # Small sets kept in the order seen, as tuples: most flows have none, and every flow
    # then shares the one empty tuple instead of holding an empty list of its own.
    header_extensions: tuple[str, ...] = ()  # one-byte / two-byte
    rtcp_types: tuple[str, ...] = ()
    # Every RTCP compound parsed to its end: no SRTCP index and tag after it (RFC 3711 3.4).
    rtcp_clear: bool | None = None
    # SRTCP trailers seen: an E flag with an index counting up per sender (RFC 3711 3.4).
    srtcp_index: str | None = None  # e.g. "aead: 1, 2"
    # RTCP compounds that parse to their very end (no SRTCP trailer: sent unprotected), and
    # those with bytes after them; a mix means some RTCP left the SRTP session in the clear.
    rtcp_clear_packets: int = 0
    rtcp_trailer_packets: int = 0
    rtcp_clear_types: tuple[str, ...] = ()
    rtcp_clear_cnames: tuple[str, ...] = ()
    # Distinct SSRCs each side sent over the whole flow (not just the samples), counted by
    # the flow table on anything RTP-shaped: kept only for sides whose RTP validated.
    ssrc_count: Mapping[str, int] = field(default_factory=_no_sides)
    # Per side: is its RTP a stream (RFC 3550)? "valid", "invalid" (the bytes only resemble
    # RTP) or "unconfirmed" (too few packets), and why.
    streams: Mapping[str, str] = field(default_factory=_no_sides)
    stream_check: Mapping[str, str] = field(default_factory=_no_sides)
    # Per side: validated SSRCs grouped with their RTX/FEC companions (RFC 4588, RFC 5109),
    # and the number of such source groups estimated over the whole flow.
    sources: Mapping[str, list[list[str]]] = field(default_factory=_no_sides)
    source_groups: Mapping[str, int] = field(default_factory=_no_sides)
    # Per side: the most source groups whose primary SSRCs share one payload type, as
    # (count, payload type): one participant sends one source of a kind (simulcast layers
    # go only to a media server), so several of one type come from several senders.
    same_type: Mapping[str, tuple[int, int]] = field(default_factory=_no_sides)
    # Per side: payloads that are exactly a static payload type's codec frames, leaving no
    # room for an SRTP authentication tag (evidence of plaintext).
    frame_sizes: Mapping[str, str] = field(default_factory=_no_sides)
    payload: Mapping[str, PayloadStats] = field(default_factory=_no_sides)  # side -> statistics


@dataclass(slots=True)
class ZoomFacts(Facts):
    form: str = ""
    packets: int = 0
    # Packets of the media form (server outer type 0x05, or a recognised p2p media type),
    # as opposed to session set-up (outer types 1-4).
    media_packets: int = 0
    media: list[str] = field(default_factory=list)
    directions: list[str] = field(default_factory=list)
    rtp_ssrcs: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ZrtpFacts(Facts):
    """A ZRTP exchange in the media path (RFC 6189): who sent which messages, and where the
    media switched from clear RTP to SRTP."""

    messages: dict[str, list[str]] = field(default_factory=dict)  # side -> types, in order
    clients: dict[str, str] = field(default_factory=dict)  # side -> Hello client identifier
    version: str | None = None
    key_agreement: list[str] = field(default_factory=list)  # offered in Hello
    chosen: dict[str, str] = field(default_factory=dict)  # from the Commit
    mitm: list[str] = field(default_factory=list)  # sides whose Hello set the M flag
    confirmed: bool = False  # Confirm1 and Confirm2 (or Conf2ACK) seen: SRTP keys agreed
    switch_ts: float | None = None  # capture time of the last Confirm/Conf2ACK sampled
    # RTP sampled before the switch, per side: packets, and the span in ms they cover.
    clear_packets: dict[str, int] = field(default_factory=dict)
    clear_ms: dict[str, float] = field(default_factory=dict)
    clear_at_least: bool = False  # the clear samples ran out before the switch
    # With the samples run out: at most this many, by the sequence numbers of the first
    # sample after the switch (RFC 3550 section 5.1), per side.
    clear_at_most: dict[str, int] = field(default_factory=dict)
    after_sampled: int = 0  # RTP packets sampled after the switch, judged as the media


@dataclass(slots=True)
class SipFacts(Facts):
    messages: list[str] = field(default_factory=list)  # "INVITE", "200", ...
    call_ids: list[str] = field(default_factory=list)
    media: list[dict[str, object]] = field(default_factory=list)
    # Lines skipped as malformed, so that one bad line hides nothing else: each names the
    # message (its place in the flow, from 1), the line in it (the start line is 1) and
    # why, never the line's content, which may hold a key. A whole message is skipped
    # only for a malformed start line (line 1).
    malformed_lines: list[dict[str, object]] = field(default_factory=list)


@dataclass(slots=True)
class FlowFacts(Facts):
    protocols: list[str] = field(default_factory=list)
    stun: StunFacts | None = None
    turn: TurnFacts | None = None
    dtls: HandshakeFacts | None = None
    tls: HandshakeFacts | None = None
    quic: HandshakeFacts | None = None
    rtp: RtpFacts | None = None
    zoom: ZoomFacts | None = None
    sip: SipFacts | None = None
    zrtp: ZrtpFacts | None = None
    dns: dict[str, list[str]] | None = None  # name -> addresses / cnames answered
    # The fields below are tuples (an empty one shared by every flow) where most flows have
    # nothing to keep.
    dns_queries: tuple[str, ...] = ()
    # Sides whose datagrams all begin with one 16-byte tag: a relay's peer tag (Telegram's
    # reflectors), the rest of the datagram opaque.
    peer_tag: tuple[str, ...] = ()
    discord_ip_discovery: bool = False
    discord_ping: bool = False
    public_addresses: tuple[str, ...] = ()  # the client as others see it
    # The flow table keeps a few payload samples per direction and kind of first byte
    # (flows.CLASS_BUDGET); True when the RTP or "other" kind (ChannelData, proprietary
    # media, TCP) ran out, so packets that may be media were never read.
    media_unread: bool = False
    # Kept for the decryption stage, never reported: SDES keys seen in SDP bodies.
    # The SDP media as parsed, a=crypto keys included: for decryption, never reported.
    sdp_media: tuple[SdpMedia, ...] = field(default=(), repr=False)
    # TURN over TLS opened with the key log (tlsopen): version, suite, records opened, and
    # the secrets' short SHA-256, for the verdict's evidence; never a key.
    tls_opened: str = ""

    def add(self, protocol: str) -> None:
        if protocol not in self.protocols:
            self.protocols.append(protocol)


ZOOM_P2P_STREAM = 2  # packets of one inner SSRC that make the peer-to-peer form a stream


def _hex(n: int) -> str:
    return f"0x{n:08x}"


class _Collector:
    """Gathers facts over one flow's samples."""

    def __init__(self, proto: int, raw_key: bytes) -> None:
        self.facts = FlowFacts()
        self.stun_requests: set[str] = set()
        self.dtls = (DtlsSide(), DtlsSide())
        self.rtp_packets: dict[tuple[int, int], list[rtp_streams.Packet]] = {}
        self.rtp_payloads_by: dict[tuple[int, int], list[bytes]] = {}
        # (side, bytes 8-11) -> versions of datagrams no parser recognised: an "RTP" SSRC
        # also seen with other version bits is not RTP (RFC 3550 section 5.1).
        self.other_versions: dict[tuple[int, int], set[int]] = {}
        self.stun_answers: set[str] = set()  # sides that answered a STUN request
        self.now = 0.0  # capture time of the datagram being read (relayed ones: its carrier)
        self.quic_initials: list[quic.QuicInitial] = []
        self.srtcp_last: dict[tuple[int, str], int] = {}  # (ssrc, trailer layout) -> index
        self.stun_sent: dict[bytes, float] = {}
        self.ts = 0.0
        self.gquic: quic.GoogleQuicHello | None = None
        # The raw key ends with the client's port, then the server's (flows.split_key).
        # (Tested port by port, not with any() over a generator: this runs once per flow.)
        client, server = int.from_bytes(raw_key[-4:-2], "big"), int.from_bytes(raw_key[-2:], "big")
        self.zoom_port = client in zoom.SERVER_PORTS or server in zoom.SERVER_PORTS
        self.zoom_rtp: dict[int, int] = {}  # packets per inner RTP SSRC
        self.dns_port = client in DNS_PORTS or server in DNS_PORTS
        self.sip_port = client in SIP_PORTS or server in SIP_PORTS
        self.sip_messages = 0  # SIP messages seen, skipped ones included
        self.relayed: bytes | None = None  # the DATA of the indication just read

    # -- UDP ---------------------------------------------------------------------------
    def udp(self, side: int, payload: bytes, depth: int = 0, ts: float = -1.0) -> None:
        # Round trips are measured to the endpoint itself, not through a relay.
        self.ts = ts if depth == 0 else -1.0
        if depth == 0:
            self.now = ts
        if not self._udp(side, payload, depth) and depth == 0 and len(payload) >= 12 and (
                payload[0] >> 6 != 2):
            key = (side, int.from_bytes(payload[8:12], "big"))
            self.other_versions.setdefault(key, set()).add(payload[0] >> 6)

    def _udp(self, side: int, payload: bytes, depth: int) -> bool:
        """Read one datagram; whether some parser recognised it."""
        if depth == 0 and self._zoom_or_dns(payload):
            return True
        if self._demuxed(side, payload, depth, demux.classify(payload)):
            return True
        if side == 0 and depth == 0 and self._quic(payload):
            return True
        if self._sip(payload):
            return True
        return depth == 0 and self._discord_or_zoom(payload)

    def _zoom_or_dns(self, payload: bytes) -> bool:
        """On their servers' ports: Zoom's server framing, DNS."""
        if self.zoom_port:
            packet = zoom.parse_server(payload)
            if packet is not None:
                self._zoom(packet)
                return True
        return self.dns_port and self._dns(payload)

    def _demuxed(self, side: int, payload: bytes, depth: int, kind: str | None) -> bool:
        """The kinds RFC 7983 section 7 tells apart by the first byte."""
        if kind == demux.STUN:
            return self._stun_datagram(side, payload, depth)
        if kind == demux.TURN_CHANNEL:
            return depth == 0 and self._channel_data(side, payload)
        if kind == demux.DTLS and self.dtls[side].add_datagram(payload):
            self.facts.add("dtls")
            return True
        if kind == demux.RTP:
            return self._rtp(side, payload)
        return kind == demux.ZRTP and self._zrtp(side, payload)

    def _stun_datagram(self, side: int, payload: bytes, depth: int) -> bool:
        if not self._stun(side, payload, exact=True, outer=depth == 0):
            return False
        relayed, self.relayed = self.relayed, None
        if relayed and depth == 0:  # a Send or Data indication's DATA (RFC 8656 10, 11)
            self.udp(side, relayed, depth + 1)
        return True

    def _channel_data(self, side: int, payload: bytes) -> bool:
        """TURN ChannelData (RFC 8656 section 12.4), and the datagram it relays."""
        channel = stun.parse_channel_data(payload, exact=True)
        if channel is None:
            return False
        turn = self.facts.turn = self.facts.turn or TurnFacts()
        turn.channel_data += 1
        self.facts.add("turn")
        inner = demux.classify(channel.payload) or "other"
        turn.relayed[inner] = turn.relayed.get(inner, 0) + 1
        self.udp(side, channel.payload, 1)
        return True

    def _quic(self, payload: bytes) -> bool:
        """The client's QUIC Initial packets (long header), else a Google QUIC CHLO."""
        if payload and payload[0] & 0xC0 == 0xC0:
            initials = quic.parse_client_initials(payload)
            if initials:
                self.quic_initials.extend(initials)
                self.facts.add("quic")
                return True
        if self.gquic is None:
            self.gquic = quic.parse_gquic_chlo(payload)
            if self.gquic is not None:
                self.facts.add("gquic")
                return True
        return False

    def _discord_or_zoom(self, payload: bytes) -> bool:
        if self._discord(payload):
            return True
        if payload and payload[0] in zoom.MEDIA_TYPES:
            packet = zoom.parse_p2p(payload)
            if packet is not None:
                self._zoom(packet)
                return True
        return False

    def _stun(self, side: int, data: bytes, *, exact: bool, outer: bool = True) -> bool:
        msg = stun.parse(data, exact=exact)
        if msg is None:
            return False
        facts = self.facts.stun = self.facts.stun or StunFacts()
        self.facts.add("stun")
        self._stun_counts(facts, msg, side)
        self._stun_rtt(facts, msg, side)
        self._stun_attributes(facts, msg, side, data, outer)
        if msg.method in ("allocate", "channel-bind", "send", "data", "create-permission"):
            self._turn(msg)
        return True

    def _stun_counts(self, facts: StunFacts, msg: stun.StunMessage, side: int) -> None:
        facts.messages += 1
        facts.classic = facts.classic or msg.classic
        name = msg.method_code
        facts.methods[name] = facts.methods.get(name, 0) + 1
        if msg.msg_class == "request" and SIDES[side] not in facts.requests_from:
            facts.requests_from.append(SIDES[side])
        if msg.msg_class in ("success", "error") and msg.method == "binding":
            self.stun_answers.add(SIDES[side])

    def _stun_rtt(self, facts: StunFacts, msg: stun.StunMessage, side: int) -> None:
        """The round trip from the client's request to the server's answer."""
        if self.ts < 0:
            return
        if msg.msg_class == "request" and side == 0:
            self.stun_sent.setdefault(msg.transaction_id, self.ts)
        elif msg.msg_class in ("success", "error") and side == 1:
            sent = self.stun_sent.get(msg.transaction_id)
            if sent is not None and self.ts >= sent:
                rtt = round((self.ts - sent) * 1000.0, 3)
                facts.rtt_ms = rtt if facts.rtt_ms is None else min(facts.rtt_ms, rtt)

    @staticmethod
    def _stun_attributes(facts: StunFacts, msg: stun.StunMessage, side: int,
                         data: bytes, outer: bool) -> None:
        for value, target in ((msg.software, facts.software), (msg.username, facts.usernames)):
            if value and value not in target:
                target.append(value)
        if msg.ice_role:
            facts.ice_roles[SIDES[side]] = msg.ice_role
        facts.use_candidate = facts.use_candidate or msg.use_candidate
        mapped = msg.xor_mapped or msg.mapped
        if mapped and msg.msg_class == "success" and outer:  # not relayed inside TURN
            facts.reflexive.setdefault(SIDES[1 - side], mapped[0])
        for addr, target in ((mapped, facts.mapped_addresses),
                             (msg.xor_peer, facts.peer_addresses),
                             (msg.xor_relayed, facts.relayed_addresses)):
            if addr:
                text = f"[{addr[0]}]:{addr[1]}" if ":" in addr[0] else f"{addr[0]}:{addr[1]}"
                if text not in target:
                    target.append(text)
        if msg.channel is not None and msg.channel not in facts.channels:
            facts.channels.append(msg.channel)
        for attr in msg.attributes:
            text = f"0x{attr:04x}"
            if text not in facts.attributes:
                facts.attributes.append(text)
        if msg.classic and zoom.zoom_stun_signature(msg.attributes, data):
            facts.zoom_signature = True

    def _turn(self, msg: stun.StunMessage) -> None:
        """A TURN method (RFC 8656); a Send or Data indication's DATA is read next."""
        self.facts.add("turn")
        if msg.data:
            self.relayed = msg.data
            turn = self.facts.turn = self.facts.turn or TurnFacts()
            turn.data_indications += 1
            inner = demux.classify(msg.data) or "other"
            turn.relayed[inner] = turn.relayed.get(inner, 0) + 1

    def _zrtp(self, side: int, payload: bytes) -> bool:
        msg = zrtp.parse(payload)
        if msg is None:
            return False
        facts = self.facts.zrtp = self.facts.zrtp or ZrtpFacts()
        self.facts.add("zrtp")
        facts.messages.setdefault(SIDES[side], []).append(msg.type)
        if msg.client is not None:
            facts.clients.setdefault(SIDES[side], msg.client)
            if msg.mitm and SIDES[side] not in facts.mitm:
                facts.mitm.append(SIDES[side])
            facts.version = facts.version or msg.version
            for name in msg.algorithms.get("key-agreement", []):
                if name not in facts.key_agreement:
                    facts.key_agreement.append(name)
        facts.chosen = facts.chosen or msg.chosen
        if msg.type in zrtp.CONFIRMS:
            facts.switch_ts = max(facts.switch_ts or self.now, self.now)
        return True

    def _discord(self, payload: bytes) -> bool:
        """Discord voice IP discovery: type 1 request or 2 response, length 70, SSRC, the
        address as NUL-padded ASCII (64 bytes) and the port; and its 8-byte server ping."""
        if len(payload) == 8 and payload[:4] == b"\x13\x37\xca\xfe":
            self.facts.discord_ping = True
            self.facts.add("discord-voice")
            return True
        if len(payload) != 74 or payload[:2] not in (b"\x00\x01", b"\x00\x02") or (
                payload[2:4] != b"\x00\x46"):
            return False
        self.facts.discord_ip_discovery = True
        self.facts.add("discord-voice")
        if payload[1] == 2:
            address = payload[8:72].split(b"\0", 1)[0].decode("ascii", "replace")
            port = int.from_bytes(payload[72:74], "big")
            text = f"{address}:{port}"
            if address and text not in self.facts.public_addresses:
                self.facts.public_addresses += (text,)
        return True

    def _rtp(self, side: int, data: bytes) -> bool:
        if rtp.is_rtcp_type(data[1] if len(data) > 1 else 0):
            compound = rtp.parse_rtcp(data)
            if compound is None:
                return False
            facts = self.facts.rtp = self.facts.rtp or RtpFacts()
            self.facts.add("rtcp")
            for packet in compound.packets:
                if packet.name not in facts.rtcp_types:
                    facts.rtcp_types += (packet.name,)
            facts.rtcp_clear = compound.trailing == 0 and facts.rtcp_clear is not False
            if compound.trailing:
                facts.rtcp_trailer_packets += 1
            else:
                facts.rtcp_clear_packets += 1
                for packet in compound.packets:
                    if packet.name not in facts.rtcp_clear_types:
                        facts.rtcp_clear_types += (packet.name,)
                for cname in rtp.sdes_cnames(data, compound):
                    if cname not in facts.rtcp_clear_cnames:
                        facts.rtcp_clear_cnames += (cname,)
            if compound.trailing and compound.packets[0].ssrc is not None:
                self._srtcp_trailer(facts, compound.packets[0].ssrc, data)
            return True
        header = rtp.parse_rtp(data)
        if header is None:
            return False
        self._rtp_header(side, header, data)
        return True

    def _srtcp_trailer(self, facts: RtpFacts, ssrc: int, data: bytes) -> None:
        """Two packets of one sender whose indices step up by a little, with the E flag set
        in both, are an SRTCP trailer rather than chance."""
        for layout, index in rtp.srtcp_trailers(data).items():
            last = self.srtcp_last.get((ssrc, layout))
            self.srtcp_last[(ssrc, layout)] = index
            if facts.srtcp_index is None and last is not None and 0 < index - last <= 64:
                facts.srtcp_index = (f"SRTCP trailer ({layout} layout) from SSRC {ssrc:#010x}:"
                                     f" E flag set, index {last} then {index}")

    def _rtp_header(self, side: int, header: rtp.RtpHeader, data: bytes = b"") -> None:
        key = (side, header.ssrc)
        if data:
            payload = data[header.header_length:header.header_length + header.payload_length]
            self.rtp_payloads_by.setdefault(key, []).append(payload)
        facts = self.facts.rtp = self.facts.rtp or RtpFacts()
        self.facts.add("rtp")
        name = SIDES[side]
        # The per-side maps change only on a new SSRC or payload type (a new map each
        # time, in first-seen order); the packets are counted at the end (_validate_rtp).
        if key not in self.rtp_packets:
            facts.ssrcs = {**facts.ssrcs, name: (*facts.ssrcs.get(name, ()), _hex(header.ssrc))}
        pts = facts.payload_types.get(name, ())
        if header.payload_type not in pts:
            facts.payload_types = {**facts.payload_types, name: (*pts, header.payload_type)}
        if header.extension_form and header.extension_form not in facts.header_extensions:
            facts.header_extensions += (header.extension_form,)
        self.rtp_packets.setdefault(key, []).append(rtp_streams.Packet(
            self.now, header.sequence, header.timestamp, header.payload_type,
            header.payload_length))

    def _zoom(self, packet: zoom.ZoomPacket) -> None:
        facts = self.facts.zoom = self.facts.zoom or ZoomFacts(form=packet.form)
        self.facts.add("zoom")
        facts.packets += 1
        if packet.outer_type == zoom.OUTER_MEDIA or packet.media:
            facts.media_packets += 1
        if packet.media and packet.media not in facts.media:
            facts.media.append(packet.media)
        if packet.direction and packet.direction not in facts.directions:
            facts.directions.append(packet.direction)
        if packet.rtp is not None:
            self.facts.add("rtp")
            ssrc = packet.rtp.ssrc
            self.zoom_rtp[ssrc] = self.zoom_rtp.get(ssrc, 0) + 1
            if _hex(packet.rtp.ssrc) not in facts.rtp_ssrcs:
                facts.rtp_ssrcs.append(_hex(packet.rtp.ssrc))

    def _zoom_confirmed(self, facts: ZoomFacts) -> bool:
        """The server form rides Zoom's own ports. The peer-to-peer form has nothing but
        its shape (a media type byte, an RTP header at that type's offset), which a random
        encrypted datagram takes now and then: 4 of 150 flows of 80 random datagrams had one
        such packet. It counts once a stream shows: an inner RTP SSRC seen twice."""
        return facts.form != "p2p" or any(n >= ZOOM_P2P_STREAM for n in self.zoom_rtp.values())

    def _forget_zoom(self) -> None:
        """What a chance match of the peer-to-peer form added: its facts, its protocol, and
        RTP where no RTP was seen outside it."""
        self.facts.zoom = None
        self.facts.protocols.remove("zoom")
        if self.facts.rtp is None and "rtp" in self.facts.protocols:
            self.facts.protocols.remove("rtp")

    def _dns(self, payload: bytes, *, tcp: bool = False) -> bool:
        messages = dns.parse_tcp(payload) if tcp else [m for m in [dns.parse(payload)] if m]
        if not messages:
            return False
        self.facts.add("dns")
        for msg in messages:
            for q in msg.questions:
                if q not in self.facts.dns_queries:
                    self.facts.dns_queries += (q,)
            for name, _rtype, value in msg.answers:
                if self.facts.dns is None:
                    self.facts.dns = {}
                answers = self.facts.dns.setdefault(name, [])
                if value not in answers:
                    answers.append(value)
        return True

    def _sip(self, payload: bytes) -> bool:
        if not (self.sip_port or payload[:4] in (b"INVI", b"SIP/")):
            return False
        pos = 0
        found = False
        while pos < len(payload):
            # RFC 3261 section 7.5: CRLFs before a start line are ignored; in a stream they
            # are keepalives (RFC 5626 section 3.5.1), and must not end the reading.
            while payload.startswith(b"\r\n", pos):
                pos += 2
            msg = sip.parse(payload[pos:]) if pos < len(payload) else None
            if msg is None:
                break
            found = True
            self._sip_message(msg)
            pos += max(msg.length, 1)
        return found

    def _sip_message(self, msg: sip.SipMessage) -> None:
        facts = self.facts.sip = self.facts.sip or SipFacts()
        self.facts.add("sip")
        self.sip_messages += 1
        if len(facts.malformed_lines) < MAX_MALFORMED_LINES:
            bad = ([(1, msg.skipped + "; the message is skipped")] if msg.skipped
                   else []) + msg.malformed
            facts.malformed_lines.extend(
                {"message": self.sip_messages, "line": line, "reason": reason}
                for line, reason in bad[:MAX_MALFORMED_LINES - len(facts.malformed_lines)])
        if msg.skipped:
            return
        facts.messages.append(msg.method or str(msg.status))
        if msg.call_id and msg.call_id not in facts.call_ids:
            facts.call_ids.append(msg.call_id)
        if msg.media:
            self.facts.add("sdp")
        self.facts.sdp_media += tuple(msg.media)
        for m in msg.media:
            facts.media.append({
                "media": m.media, "address": m.address, "port": m.port, "protocol": m.protocol,
                "codecs": sorted(set(m.rtpmap.values())),
                "sdes": [{"tag": k.tag, "suite": k.suite, "key_sha256": k.fingerprint}
                         for k in m.crypto],
                "dtls_fingerprint": m.fingerprint, "setup": m.setup,
                "candidates": len(m.candidates), "zrtp_hash": m.zrtp_hash,
            })

    # -- TCP ---------------------------------------------------------------------------
    def tcp(self, streams: tuple[bytes, bytes]) -> None:
        sides = [tls.parse_stream(s) for s in streams]
        if any(sides):
            self.facts.add("tls")
            self.facts.tls = _tls_facts(sides[0], sides[1])
            return
        if whatsapp.is_chat(streams[0]):  # Noise frames, not classic STUN
            self.facts.add("whatsapp-chat")
            return
        for side, data in enumerate(streams):
            if not data:
                continue
            if self.dns_port and self._dns(data, tcp=True):
                continue
            if self._sip(data):
                continue
            # ICE-TCP framing (RFC 4571) or STUN/TURN messages back to back (RFC 8489
            # 6.2.2): each message is then read as a datagram would be, ChannelData and
            # the media inside included.
            messages = stun.split_stream(data)
            for message in messages:
                self.udp(side, message)
            if messages:
                continue
            # Classic STUN (RFC 3489, no magic cookie): the first message only, framed or not.
            framed = data[2:] if len(data) > 2 and int.from_bytes(data[:2], "big") + 2 <= len(
                data) else b""
            if framed and demux.classify(framed) == demux.STUN and self._stun(
                    side, framed, exact=False):
                continue
            self._stun(side, data, exact=False)

    def finish(self) -> FlowFacts:
        stun_facts = self.facts.stun
        if stun_facts is not None and stun_facts.methods.get("binding-request"):
            stun_facts.ice = _ice(stun_facts.requests_from, self.stun_answers)
        dtls_client, dtls_server = self.dtls
        if dtls_client.records or dtls_server.records:
            self.facts.dtls = _dtls_facts(dtls_client, dtls_server)
        if self.quic_initials:
            hello = quic.client_hello(self.quic_initials)
            qf = HandshakeFacts(version=f"QUIC 0x{self.quic_initials[0].version:08x}")
            if hello is not None:
                qf.sni, qf.alpn_offered = hello.sni, hello.alpn
            self.facts.quic = qf
        elif self.gquic is not None:
            self.facts.quic = HandshakeFacts(version=f"gQUIC {self.gquic.version}",
                                             sni=self.gquic.sni)
        if self.facts.rtp is not None:
            self._validate_rtp(self.facts.rtp)
        if self.facts.zoom is not None and not self._zoom_confirmed(self.facts.zoom):
            self._forget_zoom()
        dtls_facts = self.facts.dtls
        if dtls_facts is not None:
            # DTLS 1.3 sends the chosen profile encrypted (in EncryptedExtensions).
            hidden = dtls_facts.version == "DTLS 1.3" and bool(dtls_facts.srtp_profiles_offered)
            if (dtls_facts.srtp_profile or hidden) and "rtp" in self.facts.protocols:
                self.facts.add("srtp")
        return self.facts

    def _validate_rtp(self, facts: RtpFacts) -> None:
        """RTP counts as media, codec evidence and sources only as validated streams."""
        steps = [(b.sequence - a.sequence) % 65536 for packets in self.rtp_packets.values()
                 for a, b in pairwise(packets)]
        facts.sequence_ok = bool(steps) and sum(
            1 for s in steps if 0 < s < 64) >= 0.8 * len(steps)
        counts: dict[str, int] = {}  # in the order the sides were first seen
        for (side, _), packets in self.rtp_packets.items():
            counts[SIDES[side]] = counts.get(SIDES[side], 0) + len(packets)
        facts.packets = shared_sides(counts.items())
        facts.ssrcs = fields_map(facts.ssrcs.items())
        facts.payload_types = shared_sides(facts.payload_types.items())
        checks: list[tuple[str, rtp_streams.SideCheck]] = []
        for side, name in enumerate(SIDES):
            streams = {ssrc: packets for (s, ssrc), packets in self.rtp_packets.items()
                       if s == side}
            if not streams:
                continue
            check = rtp_streams.check_side(streams, {
                ssrc: v for (s, ssrc), v in self.other_versions.items() if s == side})
            checks.append((name, check))
            if check.state == "valid":
                self._valid_side(facts, side, streams, check)
        facts.streams = shared_sides((name, check.state) for name, check in checks)
        facts.stream_check = shared_sides((name, check.reason) for name, check in checks)
        states = [check.state for _, check in checks]
        if states and all(state == "invalid" for state in states):
            # Not RTP after all: the bytes only resembled its header.
            self.facts.protocols = [p for p in self.facts.protocols if p not in ("rtp", "srtp")]

    def _valid_side(self, facts: RtpFacts, side: int,
                    streams: dict[int, list[rtp_streams.Packet]],
                    check: rtp_streams.SideCheck) -> None:
        """Sources, payload statistics and frame sizes of one side's validated streams."""
        name = SIDES[side]
        valid = [c for c in check.streams if c.state == "valid"]
        groups = rtp_streams.source_groups(streams, check.streams)
        facts.sources = {**facts.sources, name: [[_hex(s) for s in g] for g in groups]}
        pts = {c.ssrc: c.payload_type for c in valid}
        shared = Counter(pts[g[0]] for g in groups).most_common(1)
        if shared:
            facts.same_type = {**facts.same_type, name: (shared[0][1], shared[0][0])}
        payloads = [p for c in valid for p in self.rtp_payloads_by.get((side, c.ssrc), [])]
        # A static payload type names its codec only if the clock matches it.
        types = [c.payload_type if c.clock_ok else None for c in valid]
        if payloads:
            stats = payload_stats(payloads, max(set(types), key=types.count))
            facts.payload = {**facts.payload, name: stats}
        _frame_sizes(facts, name, streams, valid)

    def source_groups(self, facts: RtpFacts, whole: tuple[int, int]) -> None:
        """Source groups over the whole flow: the sampled groups, plus the SSRCs the flow
        table saw beyond those validated in the sample, counted as if each came with a
        companion (RTX or FEC) so that a participant's own streams are not mistaken for
        several sources."""
        for side, name in enumerate(SIDES):
            groups = facts.sources.get(name)
            if groups is None:
                continue
            extra = max(0, whole[side] - sum(len(g) for g in groups))
            facts.source_groups = {**facts.source_groups, name: len(groups) + (extra + 1) // 2}


def _frame_sizes(facts: RtpFacts, name: str, streams: dict[int, list[rtp_streams.Packet]],
                 valid: list[rtp_streams.StreamCheck]) -> None:
    """The frame sizes of the first validated stream whose clock fits its payload type."""
    for c in valid:
        packets = streams[c.ssrc]
        frames = frame_sizes(c.payload_type, [
            (p.sequence, p.timestamp, p.payload_length) for p in packets
            if p.payload_type == c.payload_type]) if c.clock_ok else None
        if frames is not None:
            facts.frame_sizes = {**facts.frame_sizes, name: frames}
            return


def _ice(requests_from: list[str], answered: set[str]) -> str:
    """Full ICE when both sides send checks; ICE-lite (RFC 8445 section 2.5) only when one
    side's checks were answered by the other, which was seen and never checked itself. A
    capture of one direction shows nothing about the other side's checks."""
    if len(requests_from) == 2:
        return "full"
    if requests_from and (set(SIDES) - set(requests_from)) <= answered:
        return "lite-or-server"
    return "one-direction"


def _certs(certificates: list[bytes]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for der in certificates[:3]:
        info = hs.describe_certificate(der)
        if info is not None:
            out.append({"subject": info.subject, "issuer": info.issuer, "sha256": info.sha256,
                        "dns_names": info.dns_names[:20]})
    return out


def _handshake(ch: hs.ClientHello | None, sh: hs.ServerHello | None) -> HandshakeFacts:
    facts = HandshakeFacts()
    if ch is not None:
        facts.sni = ch.sni
        facts.alpn_offered = ch.alpn
        facts.client_random = ch.random.hex()
        facts.srtp_profiles_offered = [hs.SRTP_PROFILES.get(p, f"0x{p:04x}")
                                       for p in ch.srtp_profiles]
        facts.srtp_mki = ch.srtp_mki.hex() or None
        facts.version = hs.version_name(ch.legacy_version)
    if sh is not None:
        facts.version = hs.version_name(sh.version)
        facts.cipher_suite = f"0x{sh.cipher_suite:04x}"
        facts.alpn = sh.alpn
        facts.server_random = sh.random.hex()
        if sh.srtp_profile is not None:
            facts.srtp_mki = sh.srtp_mki.hex() or None
            facts.srtp_profile = hs.SRTP_PROFILES.get(sh.srtp_profile,
                                                      f"0x{sh.srtp_profile:04x}")
    return facts


def _tls_facts(client: tls.TlsSide | None, server: tls.TlsSide | None) -> HandshakeFacts:
    facts = _handshake(client.client_hello if client else None,
                       server.server_hello if server else None)
    if server and server.certificates:
        facts.certificates["server"] = _certs(server.certificates)
    facts.complete = bool(client and client.application_data and server and
                          server.application_data)
    return facts


def _dtls_facts(client: DtlsSide, server: DtlsSide) -> HandshakeFacts:
    # Either flow side may be the DTLS client; whoever sent the ClientHello is.
    if server.client_hello is not None and client.client_hello is None:
        client, server = server, client
        roles = ("server", "client")
    else:
        roles = ("client", "server")
    facts = _handshake(client.client_hello, server.server_hello)
    facts.certificates = {role: _certs(side.certificates)
                          for role, side in zip(roles, (client, server), strict=True)
                          if side.certificates}
    facts.encrypted_records = {role: side.encrypted_records
                               for role, side in zip(roles, (client, server), strict=True)}
    facts.complete = client.encrypted_records > 0 and server.encrypted_records > 0
    if facts.version is None and (client.version or server.version):
        facts.version = hs.version_name(client.version or server.version or 0)
    facts.dtls_client = roles[0]
    return facts


# What identification needs of a flow: (ip protocol, client-to-server raw key, samples,
# distinct SSRCs each side sent).
FlowSamples = tuple[int, bytes, list[Sample], tuple[int, int]]


# All that identification reads of a closed flow, in plain values that pickle, so that a
# worker process can identify it (identify_workers.py): the flow's samples (packed as the
# flow holds them: flows.SAMPLE_HEAD), whether its media samples ran out
# (FlowFacts.media_unread), and its late RTP samples (packed too).
PackedFlowSamples = tuple[int, bytes, bytes | bytearray, tuple[int, int]]
IdentifyJob = tuple[PackedFlowSamples, bool, bytes | bytearray]
_MEDIA_BUDGETS = tuple(d * SAMPLE_CLASSES + c for d in (0, 1)
                       for c in (RTP_CLASS, OTHER_CLASS, TCP_MEDIA_CLASS))
# The media budgets of a flow's budget list, picked in C (job_of runs once per flow).
_media_budgets = operator.itemgetter(*_MEDIA_BUDGETS)


def job_of(state: FlowState) -> IdentifyJob:
    """The flow's part that identification reads."""
    return ((state.proto, state.key, state.samples, (len(state.ssrcs[0]), len(state.ssrcs[1]))),
            0 in _media_budgets(state.budget), state.late)


def identify(state: FlowState) -> FlowFacts:
    """Facts of one flow from its payload samples; never raises on bad payloads."""
    return identify_job(job_of(state))


def identify_job(job: IdentifyJob) -> FlowFacts:
    """identify() of a flow given as job_of() made it."""
    (proto, key, packed, counts), media_unread, late = job
    flow = (proto, key, unpack_samples(packed), counts)
    facts = identify_samples(flow)
    facts.media_unread = media_unread
    if facts.zrtp is not None:
        with suppress(Exception):  # as in identify_samples
            _after_zrtp(flow, unpack_samples(late), facts)
    if flow[0] == 17:
        facts.peer_tag = _peer_tag(flow[2])
    return facts


PEER_TAG = 16  # bytes


def _peer_tag(samples: list[Sample]) -> tuple[str, ...]:
    """Sides whose sampled datagrams (at least 4, each longer than the tag) all start with
    the same 16 bytes: RTP, STUN and DTLS never do, as their sequence numbers or
    transaction IDs change within those bytes."""
    out = []
    for side, name in enumerate(SIDES):
        heads = [p[:PEER_TAG] for _t, d, p in samples if d == side]
        if len(heads) >= 4 and len(set(heads)) == 1 and all(
                len(p) > PEER_TAG + 8 for _t, d, p in samples if d == side):
            out.append(name)
    return tuple(out)


def _after_zrtp(job: FlowSamples, late: list[Sample],
                facts: FlowFacts) -> None:
    """RFC 6189 section 4.6.1: SRTP starts once Confirm1 and Confirm2 are exchanged, and
    RTP before that is sent in the clear. The flow's RTP facts become those of the media
    after the switch (the first samples after it, else a run of later samples); the clear
    start is counted apart, as its own finding, not as the verdict of the flow."""
    z = facts.zrtp
    assert z is not None
    seen = {t for types in z.messages.values() for t in types}
    z.confirmed = "Conf2ACK" in seen or {"Confirm1", "Confirm2"} <= seen
    if not z.confirmed or z.switch_ts is None:
        return
    proto, key, samples, counts = job
    switch = z.switch_ts
    media = [s for s in samples if demux.classify(s[2]) == demux.RTP]
    after = _after_switch(media, late, switch)
    _count_clear_start(z, [s for s in media if s[0] <= switch], after, switch)
    z.after_sampled = len(after)
    if not after:
        return
    rest = [s for s in samples if demux.classify(s[2]) != demux.RTP]
    judged = identify_samples((proto, key, sorted(rest + after, key=lambda s: s[0]), counts))
    facts.rtp = judged.rtp
    for name in judged.protocols:
        facts.add(name)


def _after_switch(media: list[Sample], late: list[Sample], switch: float) -> list[Sample]:
    """The RTP samples after the switch to SRTP: one run per side (the longer of the
    first samples and the late ones), so the sequence numbers count up as RFC 3550
    section 5.1 has them."""
    after: list[Sample] = []
    for side in (0, 1):
        early = [s for s in media if s[1] == side and s[0] > switch]
        later = [s for s in late if s[1] == side and s[0] > switch]
        after += early if len(early) >= len(later[:8]) else later[:8]
    return after


def _count_clear_start(z: ZrtpFacts, clear: list[Sample], after: list[Sample],
                       switch: float) -> None:
    """Per side, the RTP sent in the clear before the switch: packets (at least those
    sampled, and the sequence span), milliseconds, and an upper bound where the samples
    run on to the first packet after the switch."""
    for side, name in enumerate(SIDES):
        mine = [s for s in clear if s[1] == side]
        if not mine:
            continue
        z.clear_packets[name] = max(len(mine), _sequence_span(mine))
        z.clear_ms[name] = round((switch - mine[0][0]) * 1000.0, 1)
        if len(mine) >= 8:
            z.clear_at_least = True
            bound = _sequence_span(mine + [s for s in after if s[1] == side][:1]) - 1
            if bound > z.clear_packets[name]:
                z.clear_at_most[name] = bound


def _sequence_span(packets: list[Sample]) -> int:
    """RTP packets one sender sent from its first to its last sample, by sequence number
    (RFC 3550 section 5.1), largest over its SSRCs; RTCP (RFC 5761 section 4) aside."""
    first: dict[bytes, int] = {}
    span = 0
    for _ts, _side, p in packets:
        if len(p) < 12 or 192 <= p[1] <= 223:
            continue
        seq = int.from_bytes(p[2:4], "big")
        start = first.setdefault(p[8:12], seq)
        span = max(span, (seq - start) % 65536 + 1)
    return span


def identify_samples(job: FlowSamples) -> FlowFacts:
    proto, key, samples, ssrc_counts = job
    collector = _Collector(proto, key)
    if proto == 17:
        for ts, side, payload in samples:
            try:
                collector.udp(side, payload, ts=ts)
            except Exception:  # noqa: BLE001 - a parser bug must not stop the analysis
                continue
    elif proto == 6:
        # Segments that are one media frame each were sampled apart (flows.tcp_media_frame);
        # the others are the start of each direction's stream.
        frames = [(t, d, p) for t, d, p in samples if tcp_media_frame(p, 0, len(p))]
        streams = (b"".join(p for t, d, p in samples if d == 0 and (t, d, p) not in frames),
                   b"".join(p for t, d, p in samples if d == 1 and (t, d, p) not in frames))
        with suppress(Exception):  # as above: a parser bug must not stop the analysis
            collector.tcp(streams)
        for ts, side, payload in frames:
            for datagram in framing.datagrams(payload):
                with suppress(Exception):
                    collector.udp(side, datagram, ts=ts)
    facts = collector.finish()
    if facts.rtp is not None:
        facts.rtp.ssrc_count = {side: n for side, n in zip(SIDES, ssrc_counts, strict=True)
                                if n and facts.rtp.streams.get(side) == "valid"} or NO_SIDES
        collector.source_groups(facts.rtp, ssrc_counts)
    return facts


# Each distinct list of protocols once: a capture has a few dozen, and its flows share them.
_PROTOCOL_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}


def reported_protocols(facts: FlowFacts) -> tuple[str, ...]:
    """The flow's protocols as its record lists them: a tuple shared by every flow with the
    same list, not a list per flow."""
    found = tuple(facts.protocols)
    return _PROTOCOL_LISTS.setdefault(found, found)


DETAIL_FIELDS = ("stun", "turn", "dtls", "tls", "quic", "rtp", "zoom", "sip", "zrtp")


def facts_to_details(facts: FlowFacts) -> Mapping[str, Any]:
    """The report's per-protocol facts; the dataclasses themselves (serialised as they are,
    no copies), and never the SDES keys FlowFacts also holds. Held per flow, so a compact
    read-only map (fields_map), not a dict."""
    out: dict[str, Any] = {name: getattr(facts, name) for name in DETAIL_FIELDS
                           if getattr(facts, name) is not None}
    if facts.dns or facts.dns_queries:
        out["dns"] = {"queries": facts.dns_queries, "answers": facts.dns or {}}
    if facts.discord_ip_discovery or facts.discord_ping:
        out["discord"] = {"ip_discovery": facts.discord_ip_discovery,
                          "voice_ping": facts.discord_ping}
    if facts.public_addresses:
        out["public_addresses"] = facts.public_addresses
    if facts.peer_tag:
        out["peer_tag"] = facts.peer_tag
    return fields_map(out.items())
