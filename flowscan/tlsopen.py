"""With a key log: TURN over TLS opened before the verdicts, so that what it relays is
judged as over TCP.

A TCP flow with TLS on it whose secrets are in the key log is read again from the capture:
each direction put back in order (framing.Reassembler, as TURN over TCP is), its records
opened (crypto.tls_records), and the application data walked as STUN and ChannelData
(RFC 8656 section 3.1, RFC 6062) or RFC 4571 frames. What the frames carry is identified
as a UDP flow's datagrams would be, and joins the flow's facts: the verdicts then see the
DTLS-SRTP inside, and decryption finds its keys in the same key log. A flow whose
client does not open with a STUN request (HTTPS, say) is left as it was.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace

from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import PROTO_TCP, PROTO_UDP
from flowscan.capture.edit import LayerDecoder, tcp_sequence
from flowscan.crypto.keylog import KeyLog
from flowscan.crypto.tls_records import HEAD, TlsKeys, TlsWalker, tls_keys
from flowscan.flows import CLASS_BUDGET, TCP_SYN, reverse_key
from flowscan.identify import FlowFacts, facts_to_details, identify_samples, reported_protocols
from flowscan.protocols import demux, framing, rtp
from flowscan.report.model import Flow

Endpoint = tuple[str, int]
# Datagrams kept per direction and kind for identification: RTP and the rest as the flow
# table keeps of a UDP flow (flows.CLASS_BUDGET), but STUN and DTLS as the start of a TCP
# stream shows them, every TURN request, ICE check and handshake record of the call's
# start, since TURN over TCP's sampled stream start holds them all.
BUDGET = {demux.STUN: 64, demux.DTLS: 16, demux.RTP: CLASS_BUDGET[2]}
OTHER_BUDGET = CLASS_BUDGET[3]


def directions(flow: Flow) -> list[tuple[bytes, Endpoint]]:
    """The decoder's flow key for each direction of the flow, with that direction's sender."""
    client, server = (flow.client.ip, flow.client.port), (flow.server.ip, flow.server.port)
    family = socket.AF_INET6 if ":" in client[0] else socket.AF_INET
    key = (socket.inet_pton(family, client[0]) + socket.inet_pton(family, server[0])
           + client[1].to_bytes(2, "big") + server[1].to_bytes(2, "big"))
    return [(key, client), (reverse_key(key), server)]


def flow_tls_keys(facts: FlowFacts, keylog: KeyLog) -> TlsKeys | None:
    """The record keys of a TCP flow's TLS, picked by its ClientHello's random."""
    hello = facts.tls
    if "tls" not in facts.protocols or hello is None or not hello.client_random or \
            not hello.cipher_suite:
        return None
    return tls_keys(keylog, bytes.fromhex(hello.client_random),
                    bytes.fromhex(hello.server_random) if hello.server_random else None,
                    int(hello.cipher_suite, 16), hello.version)


@dataclass
class _Opening:
    """One TLS flow being opened: both directions' streams and what their frames carry."""

    flow: Flow
    facts: FlowFacts
    keys: TlsKeys
    streams: list[framing.Reassembler] = field(default_factory=list)
    walkers: list[TlsWalker] = field(default_factory=list)
    samples: list[tuple[float, int, bytes]] = field(default_factory=list)
    kept: dict[tuple[int, str | None], int] = field(default_factory=dict)
    ssrcs: tuple[set[bytes], set[bytes]] = field(default_factory=lambda: (set(), set()))
    unread: bool = False
    dropped: bool = False
    last_ts: float = 0.0

    def __post_init__(self) -> None:
        self.walkers = list(self.keys.walkers())
        self.streams = [framing.Reassembler(w) for w in self.walkers]

    def frames(self, side: int, ts: float, frames: list[tuple[framing.Frame, bytes]]) -> None:
        self.last_ts = ts
        for frame, raw in frames:
            # What the relay forwards (ChannelData's data, a Send or Data indication's
            # DATA) decides the kind: the ICE checks and the DTLS handshake often travel in
            # indications before a channel is bound (RFC 8656 sections 10 and 11).
            relayed = raw[frame.data_start - frame.start:frame.data_end - frame.start]
            for datagram in framing.datagrams(raw):
                self._keep(side, ts, datagram, relayed or datagram)
        client = self.walkers[0]
        if client.plain >= HEAD and not framing.opens_with_stun(client.head):
            self.dropped = True  # application data, but not a TURN or ICE-TCP client's

    def _keep(self, side: int, ts: float, datagram: bytes, inner: bytes) -> None:
        kind = demux.classify(inner)
        if kind == demux.RTP and len(inner) >= 12 and not rtp.is_rtcp_type(inner[1]):
            self.ssrcs[side].add(inner[8:12])
        budget = BUDGET.get(kind or "", OTHER_BUDGET)
        count = self.kept.get((side, kind), 0)
        if count >= budget:
            self.unread = self.unread or kind != demux.STUN
            return
        self.kept[(side, kind)] = count + 1
        self.samples.append((ts, side, datagram))

    def finish(self) -> None:
        for side, stream in enumerate(self.streams):
            self.frames(side, self.last_ts, stream.finish())

    def merge(self) -> None:
        """What the frames carried joins the flow's facts and its record."""
        key = directions(self.flow)[0][0]
        counts = (len(self.ssrcs[0]), len(self.ssrcs[1]))
        inner = identify_samples((PROTO_UDP, key, self.samples, counts))
        facts = self.facts
        for name in inner.protocols:
            facts.add(name)
        for name in ("stun", "turn", "dtls", "rtp"):
            if getattr(facts, name) is None:
                setattr(facts, name, getattr(inner, name))
        facts.public_addresses += tuple(a for a in inner.public_addresses
                                        if a not in facts.public_addresses)
        facts.media_unread = facts.media_unread or self.unread
        records = [w.records for w in self.walkers]
        facts.tls_opened = (f"{self.keys.description}; {sum(r.opened for r in records)} "
                            f"records opened, {sum(r.failed for r in records)} did not verify "
                            f"(TLS secrets sha256 {self.keys.key_sha256})")
        self.flow.protocols = reported_protocols(facts)
        self.flow.details = facts_to_details(facts)


def open_tls_flows(path: str, keylog: KeyLog, flows: list[tuple[Flow, FlowFacts]]) -> None:
    """Every TCP flow with TLS the key log opens, read again and its frames identified."""
    by_key = _openings(keylog, flows)
    if not by_key:
        return
    _read_segments(path, by_key)
    for opening in {id(o): o for o, _ in by_key.values()}.values():
        if not opening.dropped:
            opening.finish()
        if not opening.dropped and opening.samples and \
                framing.opens_with_stun(opening.walkers[0].head):
            opening.merge()


def _openings(keylog: KeyLog, flows: list[tuple[Flow, FlowFacts]]
              ) -> dict[bytes, tuple[_Opening, int]]:
    """The TCP flows whose TLS secrets the key log holds, by each direction's flow key."""
    by_key: dict[bytes, tuple[_Opening, int]] = {}
    for index, (flow, facts) in enumerate(flows):
        keys = flow_tls_keys(facts, keylog) if flow.transport == "tcp" else None
        if keys is not None:
            # Flows with the same facts share one object (identify_workers.SharedFacts):
            # what the opening adds (merge) goes to this flow's own copy. Its fields are
            # replaced there, never changed, except the protocols list.
            facts = replace(facts, protocols=list(facts.protocols))
            flows[index] = flow, facts
            opening = _Opening(flow, facts, keys)
            for side, (direction, _sender) in enumerate(directions(flow)):
                by_key[direction] = (opening, side)
    return by_key


def _read_segments(path: str, by_key: dict[bytes, tuple[_Opening, int]]) -> None:
    """The capture again: each segment of those flows into its direction's stream."""
    decoder = LayerDecoder()
    with CaptureSource(path) as source:
        for ts, link, data, _wire in open_reader(source).packets():
            try:
                decoded = decoder.decode(link, data)
            except (IndexError, ValueError):
                continue
            hit = by_key.get(decoded[1]) if decoded and decoded[0] == PROTO_TCP else None
            seq = tcp_sequence(data, decoder.layers) if hit and not hit[0].dropped else None
            if hit is None or decoded is None or seq is None:
                continue
            opening, side = hit
            payload = data[decoded[2]:min(decoded[3], len(data))]
            taken = opening.streams[side].take(seq, bool(decoded[4] & TCP_SYN), payload)
            if taken is not None:
                opening.frames(side, ts, taken[1])
