"""With keys: remove the transport encryption of media flows and look at what is inside.

Keys come from NSS key log files, from the capture's own Decryption Secrets Blocks, and from
SDES a=crypto lines seen in the clear. A second pass over the capture decrypts the packets
of the flows that have keys, verifying every authentication tag, and classifies the inner
payloads (codec frames, or an SFrame layer). Key material never reaches the report: keys are
named by a short SHA-256.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import PROTO_TCP, PROTO_UDP, Decoded
from flowscan.capture.edit import (
    Layer,
    LayerDecoder,
    replace_tcp_bytes,
    replace_udp_payload,
    tcp_sequence,
)
from flowscan.capture.writer import PcapngWriter
from flowscan.crypto import dtls_srtp, inner
from flowscan.crypto.keylog import KeyLog, fingerprint
from flowscan.crypto.keys import Endpoint, ExplicitKeys, SrtpKey, media_keys
from flowscan.crypto.srtp import PROFILES, SrtpContext
from flowscan.flows import TCP_SYN
from flowscan.identify import FlowFacts
from flowscan.protocols import rtp
from flowscan.protocols.framing import Frame, Reassembler, Walker, clear_frame
from flowscan.report.model import Decryption, Flow
from flowscan.tlsopen import directions, flow_tls_keys

MAX_INNER_SAMPLES = 48  # decrypted payloads kept per SSRC for the inner-layer check


@dataclass
class _Job:
    flow: Flow
    contexts: dict[Endpoint, SrtpContext]  # sender endpoint (or SSRC) -> its context
    source: str
    key_fingerprint: str
    payloads: dict[int, list[bytes]] = field(default_factory=dict)  # ssrc -> payloads
    payload_types: dict[int, int] = field(default_factory=dict)
    # Other profiles' contexts, tried while no packet has verified (DTLS 1.3 hides the
    # profile); the first that verifies replaces `contexts` for good.
    alternatives: list[dict[Endpoint, SrtpContext]] = field(default_factory=list)
    verified: bool = False
    by_trial: bool = False  # the profile was not seen, but found among those offered
    unprotected_rtcp: int = 0
    truncated: int = 0
    stream_gap_bytes: int = 0  # over TCP: bytes of the stream never captured
    senders: dict[int, Endpoint] = field(default_factory=dict)  # keyed SSRC -> its sender


def _dtls_job(flow: Flow, facts: FlowFacts, keylog: KeyLog, sources: str) -> _Job | None:
    d = facts.dtls
    if d is None or not d.client_random:
        return None
    client_random, suite = bytes.fromhex(d.client_random), int(d.cipher_suite or "0", 16)
    mki = bytes.fromhex(d.srtp_mki or "")
    master = keylog.master_secret(client_random)
    exporter = keylog.exporter_secret(client_random)
    pairs: list[tuple[SrtpContext, SrtpContext]] = []
    if master is not None and d.server_random and d.srtp_profile in PROFILES:
        pairs.append(dtls_srtp.srtp_contexts(master, client_random,
                                             bytes.fromhex(d.server_random),
                                             d.srtp_profile, suite, mki))
        secret, source = master, sources
    elif exporter is not None:
        # DTLS 1.3 sends the chosen profile in the encrypted EncryptedExtensions: unless the
        # ServerHello showed it, each offered profile is a candidate, and the first whose
        # tags verify is the one (RFC 5764 section 4.1.1; RFC 9147 section 5).
        # Without the ServerHello the suite, and so the exporter's hash, is unknown too:
        # both hashes are then tried (TLS_AES_256_GCM_SHA384 or the SHA-256 suites).
        profiles = [d.srtp_profile] if d.srtp_profile else d.srtp_profiles_offered
        suites = [suite] if d.cipher_suite else [0x1301, 0x1302]
        pairs = [dtls_srtp.srtp_contexts13(exporter, name, s, mki)
                 for s in suites for name in profiles if name in PROFILES]
        secret, source = exporter, f"{sources} (DTLS 1.3 exporter secret)"
    if not pairs:
        return None
    client, server = (flow.client.ip, flow.client.port), (flow.server.ip, flow.server.port)
    # Whoever sent the ClientHello writes with the client keys (RFC 5764 section 4.2).
    dtls_client = client if d.dtls_client != "server" else server
    other = server if dtls_client == client else client
    candidates = [{dtls_client: c, other: s} for c, s in pairs]
    return _Job(flow, candidates[0], source, fingerprint(secret),
                alternatives=candidates[1:], by_trial=len(candidates) > 1)


def _sdes_keys(flows: list[tuple[Flow, FlowFacts]]) -> dict[Endpoint, SrtpKey]:
    """Each party's SDES key protects what that party sends from its SDP media address."""
    keys: dict[Endpoint, SrtpKey] = {}
    for _flow, facts in flows:
        if facts.sdp_media:
            for endpoint, key in media_keys(facts.sdp_media, "SDES (a=crypto in SDP)").items():
                keys.setdefault(endpoint, key)
    return keys


def _endpoint_jobs(flows: list[tuple[Flow, FlowFacts]], keys: dict[Endpoint, SrtpKey]
                   ) -> dict[int, _Job]:
    jobs: dict[int, _Job] = {}
    for flow, _facts in flows:
        ends = [(flow.client.ip, flow.client.port), (flow.server.ip, flow.server.port)]
        found = {e: keys[e] for e in ends if e in keys}
        if found and flow.encryption is not None:
            # A context of its own per flow: counts and rollover state are per flow.
            contexts = {e: k.context() for e, k in found.items()}
            first = next(iter(found.values()))
            jobs[flow.id] = _Job(flow, contexts, first.source, first.fingerprint)
    return jobs


# Settles a frame whose edit waits on later packets: (settled, the edited frame or None);
# its argument says to settle now with what is known.
Resolver = Callable[[bool], tuple[bool, bytes | None]]
MAX_QUEUED = 20000  # frames held behind one that waits, at most


class DecryptedCapture:
    """Where `flowscan decrypt` writes: every frame, SRTP and SRTCP replaced by the clear."""

    def __init__(self, stream: BinaryIO, comment: str) -> None:
        self.writer = PcapngWriter(stream, comment)
        self.left_encrypted = 0  # decrypted, but in frames that could not be edited (fragments)
        # Decrypted over TCP, but written as captured: split over segments, captured before
        # a hole filled, or with no same-length rewrite.
        self.left_in_tcp = 0
        self.left_in_tls = 0  # decrypted inside TLS opened with the key log: kept as captured
        self.queue: deque[tuple[float, int, bytes, int, bytes | None, Resolver | None]] = (
            deque())

    def add(self, ts: float, link: int, data: bytes, wire: int, replaced: bytes | None,
            waiting: Resolver | None = None) -> None:
        """A frame to write, or one whose edit waits on later packets (a TCP segment whose
        frames are not all walked yet): frames are written in capture order, so those after
        a waiting one wait with it."""
        if waiting is None and not self.queue:
            self._write(ts, link, data, wire, replaced)
            return
        self.queue.append((ts, link, data, wire, replaced, waiting))
        self.flush()

    def flush(self, force: bool = False) -> None:
        """Writes the frames no longer waiting; with force (or a queue grown too long)
        the first that waits is settled with what is known."""
        while self.queue:
            ts, link, data, wire, replaced, waiting = self.queue[0]
            if waiting is not None:
                done, replaced = waiting(force or len(self.queue) > MAX_QUEUED)
                if not done:
                    return
            self.queue.popleft()
            self._write(ts, link, data, wire, replaced)

    def _write(self, ts: float, link: int, data: bytes, wire: int, replaced: bytes | None
               ) -> None:
        if replaced is None:
            self.writer.add(ts, link, data, wire)
            return
        # The frame's length on the wire shrinks with it: the tags are gone.
        self.writer.add(ts, link, replaced, wire - len(data) + len(replaced))


@dataclass
class KeySources:
    """Everything decryption needs beside the flows: the capture again, and the keys."""

    path: str
    keylog: KeyLog
    explicit: ExplicitKeys = field(default_factory=ExplicitKeys)
    output: DecryptedCapture | None = None


def decrypt_flows(keys: KeySources, flows: list[tuple[Flow, FlowFacts]]
                  ) -> dict[int, Decryption]:
    """Decrypts what the keys open, in a second pass over the capture (writing the
    decrypted capture too, when asked), and says per flow what was inside."""
    plan = _Plan.of(keys, flows)
    if not plan.jobs and not plan.unkeyed and keys.output is None:
        return {}
    tcp = _second_pass(keys, plan, _framed(flows), _tls_walkers(flows, keys.keylog))
    for direction_key, stream in tcp.directions.items():
        job = plan.job_of(direction_key)
        if job is not None:
            job.stream_gap_bytes += stream.stream.missing
    return {flow_id: _result(job) for flow_id, job in plan.jobs.items()}


@dataclass
class _Plan:
    """Which flows have keys (jobs), and which directions are tried with SSRC keys."""

    explicit: ExplicitKeys
    jobs: dict[int, _Job]
    unkeyed: dict[bytes, tuple[Flow, Endpoint]]  # direction -> flow, sender: SSRC keys
    by_key: dict[bytes, tuple[_Job, Endpoint]] = field(default_factory=dict)
    ssrc_contexts: dict[tuple[int, int], SrtpContext] = field(default_factory=dict)

    @classmethod
    def of(cls, keys: KeySources, flows: list[tuple[Flow, FlowFacts]]) -> _Plan:
        jobs = _keyed_jobs(keys, flows)
        plan = cls(keys.explicit, jobs, _ssrc_keyed(keys.explicit, flows, jobs))
        for job in jobs.values():
            for direction, sender in directions(job.flow):
                plan.by_key[direction] = (job, sender)
        return plan

    def wants(self, direction: bytes) -> bool:
        return direction in self.by_key or direction in self.unkeyed

    def job_of(self, direction: bytes) -> _Job | None:
        hit, other = self.by_key.get(direction), self.unkeyed.get(direction)
        return hit[0] if hit else self.jobs.get(other[0].id) if other else None

    def open(self, payload: bytes, direction: bytes) -> bytes | None:
        return _open(payload, direction, self.by_key, self.unkeyed, self.explicit, self.jobs,
                     self.ssrc_contexts)


def _keyed_jobs(keys: KeySources, flows: list[tuple[Flow, FlowFacts]]) -> dict[int, _Job]:
    """Flows with keys for their senders: given outright first (the user named them for
    these senders), then SDES seen in the capture, then DTLS-SRTP from the key log."""
    endpoint_keys = dict(keys.explicit.by_endpoint)
    for endpoint, key in _sdes_keys(flows).items():
        endpoint_keys.setdefault(endpoint, key)
    jobs = _endpoint_jobs(flows, endpoint_keys) if endpoint_keys else {}
    if not keys.keylog:
        return jobs  # no DTLS secret to look up: most scans are given no keys
    sources = ", ".join(keys.keylog.sources) or "key log"
    for flow, facts in flows:
        if flow.encryption is not None and flow.id not in jobs:
            job = _dtls_job(flow, facts, keys.keylog, sources)
            if job is not None:
                jobs[flow.id] = job
    return jobs


def _ssrc_keyed(explicit: ExplicitKeys, flows: list[tuple[Flow, FlowFacts]],
                jobs: dict[int, _Job]) -> dict[bytes, tuple[Flow, Endpoint]]:
    """Flows still without keys: an SSRC key, if given, is tried on their packets."""
    unkeyed: dict[bytes, tuple[Flow, Endpoint]] = {}
    if explicit.by_ssrc:
        for flow, _facts in flows:
            if flow.encryption is not None and flow.id not in jobs:
                for direction, sender in directions(flow):
                    unkeyed[direction] = (flow, sender)
    return unkeyed


def _framed(flows: list[tuple[Flow, FlowFacts]]) -> set[bytes]:
    """TCP flows are walked only where identification saw media framing in them (TURN over
    TCP, ICE-TCP), never inside TLS unless the key log opened it (tlsopen): its records
    are no frames to look for."""
    return {direction for flow, facts in flows if flow.transport == "tcp"
            and ("tls" not in facts.protocols or facts.tls_opened)
            and {"stun", "turn", "rtp", "rtcp", "dtls"} & set(facts.protocols)
            for direction, _ in directions(flow)}


def _tls_walkers(flows: list[tuple[Flow, FlowFacts]], keylog: KeyLog) -> dict[bytes, Walker]:
    """The directions of flows whose TLS the key log opened (TURN over TLS), each with
    the walker that takes its records off before the frames are looked for."""
    in_tls: dict[bytes, Walker] = {}
    for flow, facts in flows:
        tls_keys = flow_tls_keys(facts, keylog) if facts.tls_opened else None
        if tls_keys is not None:
            for (direction, _), walker in zip(directions(flow), tls_keys.walkers(),
                                              strict=True):
                in_tls[direction] = walker
    return in_tls


def _second_pass(keys: KeySources, plan: _Plan, framed: set[bytes],
                 in_tls: dict[bytes, Walker]) -> _TcpMedia:
    """Every packet of the capture again: those of keyed flows decrypted, each written to
    the decrypted capture (when asked) as it was or in the clear."""
    output = keys.output
    decoder = LayerDecoder()
    tcp = _TcpMedia(plan.open, output, in_tls)
    with CaptureSource(keys.path) as source:
        for ts, link, data, wire in open_reader(source).packets():
            replaced, waiting = None, None
            try:
                decoded = decoder.decode(link, data)
            except (IndexError, ValueError):
                decoded = None
            if decoded is not None and plan.wants(decoded[1]):
                if decoded[0] == PROTO_UDP:
                    replaced = _packet(data, decoded, decoder.layers, plan.by_key,
                                       plan.unkeyed, plan.explicit, plan.jobs,
                                       plan.ssrc_contexts, output)
                elif decoded[0] == PROTO_TCP and decoded[1] in framed:
                    waiting = tcp.segment(data, decoded, decoder.layers)
            if output is not None:
                output.add(ts, link, data, wire, replaced, waiting)
    tcp.finish()
    if output is not None:
        output.flush(force=True)
    return tcp


MAX_EDITS = 4096  # clear frames remembered per direction, for retransmissions of them


@dataclass
class _TcpDirection:
    stream: Reassembler = field(default_factory=Reassembler)
    # Inside TLS (opened with the key log): the decrypted capture cannot put clear frames
    # in place of TLS records, so it keeps them as captured.
    in_tls: bool = False
    # (start, end, the frame in the clear) by stream offset, in stream order: what each
    # segment written is edited with, retransmissions included.
    edits: deque[tuple[int, int, bytes]] = field(default_factory=lambda: deque(maxlen=MAX_EDITS))
    raw_until = 0  # stream bytes up to here were written as captured before being walked
    finished = False


class _TcpMedia:
    """SRTP and SRTCP carried over TCP (TURN over TCP, RFC 6062 and RFC 8656; ICE-TCP, RFC
    6544): each direction put back in order, its frames walked, each packet decrypted as
    over UDP. The decrypted capture keeps every segment's length, so that the stream stays
    consistent without moving a sequence number: each frame is rewritten in place, at the
    same length (framing.clear_frame). A segment is written once every frame it holds a
    part of has been walked (frames after it wait with it, to keep the capture's order);
    a segment that cannot wait (a hole never filled, too much held) is written with what
    is known, and the frames it held a part of are left as captured, counted in
    left_in_tcp. Inside TLS opened with the key log (TURN over TLS), the frames are
    walked in the TLS application data, and the segments written as captured."""

    def __init__(self, opener: Callable[[bytes, bytes], bytes | None],
                 output: DecryptedCapture | None, in_tls: dict[bytes, Walker]) -> None:
        self.open = opener
        self.output = output
        self.directions: dict[bytes, _TcpDirection] = {}
        self.in_tls = in_tls

    def segment(self, data: bytes, decoded: Decoded, layers: list[Layer]) -> Resolver | None:
        direction = self.directions.get(decoded[1])
        if direction is None:
            walker = self.in_tls.get(decoded[1])
            direction = self.directions[decoded[1]] = _TcpDirection(Reassembler(walker),
                                                                    walker is not None)
        seq = tcp_sequence(data, layers)
        if seq is None:
            return None
        # Bytes the snap length cut off are a hole, as if never captured.
        start, end = decoded[2], min(decoded[3], len(data))
        taken = direction.stream.take(seq, bool(decoded[4] & TCP_SYN),
                                      data[start:end] if end > start else b"")
        if taken is None:
            return None
        off, frames = taken
        for frame, raw in frames:
            self._frame(decoded[1], direction, frame, raw)
        if self.output is None:
            return None
        stop = off + end - start

        def resolve(force: bool) -> tuple[bool, bytes | None]:
            walked = direction.stream.walker.base >= stop or direction.finished
            if not walked and not force:
                return False, None
            if not walked:
                direction.raw_until = max(direction.raw_until, stop)
            return True, self._edited(direction, data, layers, off, start, end)

        return resolve

    def _frame(self, key: bytes, direction: _TcpDirection, frame: Frame, raw: bytes) -> None:
        if not frame.has_data:
            return
        payload = raw[frame.data_start - frame.start:frame.data_end - frame.start]
        plain = self.open(payload, key)
        if plain is None or self.output is None:
            return
        if direction.in_tls:
            self.output.left_in_tls += 1
            return
        clear = None
        if frame.start >= direction.raw_until:  # else a part of it is written already
            clear = clear_frame(frame, raw, plain, rtp.is_rtcp_type(payload[1]))
        if clear is None:
            self.output.left_in_tcp += 1
        else:
            direction.edits.append((frame.start, frame.end, clear))

    @staticmethod
    def _edited(direction: _TcpDirection, data: bytes, layers: list[Layer], off: int,
                start: int, end: int) -> bytes | None:
        """The segment with the clear frames it holds, whole or in part."""
        payload = bytearray(data[start:end])
        stop = off + len(payload)
        hit = False
        for first, last, clear in reversed(direction.edits):
            if last <= off:
                break
            if first >= stop:
                continue
            lo, hi = max(first, off), min(last, stop)
            payload[lo - off:hi - off] = clear[lo - first:hi - first]
            hit = True
        return replace_tcp_bytes(data, layers, start, bytes(payload)) if hit else None

    def finish(self) -> None:
        """What waited behind holes the capture never filled: decrypted and counted; the
        segments that held it are then written."""
        for key, direction in self.directions.items():
            for frame, raw in direction.stream.finish():
                self._frame(key, direction, frame, raw)
            direction.finished = True


def _packet(data: bytes, decoded: Decoded, layers: list[Layer],
            by_key: dict[bytes, tuple[_Job, Endpoint]],
            unkeyed: dict[bytes, tuple[Flow, Endpoint]], explicit: ExplicitKeys,
            jobs: dict[int, _Job], ssrc_contexts: dict[tuple[int, int], SrtpContext],
            output: DecryptedCapture | None) -> bytes | None:
    """Decrypts one packet of a keyed flow; the frame with the packet in the clear if an
    output capture is written and the frame can be edited."""
    start, end = decoded[2], decoded[3]
    if end > len(data):  # cut short by the capture's snap length: nothing to verify
        hit = by_key.get(decoded[1])
        if hit is not None:
            hit[0].truncated += 1
        return None
    channel = b""
    if end - start >= 4 and 0x40 <= data[start] <= 0x4F:  # TURN ChannelData (RFC 8656 12.4)
        channel, start = data[start:start + 2], start + 4
        end = min(end, start + int.from_bytes(data[start - 2:start], "big"))
    plain = _open(data[start:end], decoded[1], by_key, unkeyed, explicit, jobs,
                  ssrc_contexts)
    if plain is None or output is None:
        return None
    if channel:
        start, end = start - 4, decoded[3]
        plain = channel + len(plain).to_bytes(2, "big") + plain
    frame = replace_udp_payload(data, layers, start, end, plain)
    output.left_encrypted += frame is None
    return frame


def _open(payload: bytes, direction: bytes, by_key: dict[bytes, tuple[_Job, Endpoint]],
          unkeyed: dict[bytes, tuple[Flow, Endpoint]], explicit: ExplicitKeys,
          jobs: dict[int, _Job], ssrc_contexts: dict[tuple[int, int], SrtpContext]
          ) -> bytes | None:
    """One SRTP or SRTCP packet of a keyed flow's direction in the clear, its tag verified;
    None if it is not one or does not verify."""
    if len(payload) < 12 or not 128 <= payload[0] <= 191:
        return None
    hit = by_key.get(direction)
    if hit is None:
        ctx, job = _ssrc_context(payload, *unkeyed[direction], explicit, jobs, ssrc_contexts)
    else:
        job, sender = hit
        ctx = job.contexts.get(sender)
    if ctx is None or job is None:
        return None
    plain = _unprotect(job, ctx, payload)
    if plain is None and job.alternatives and not job.verified and hit is not None:
        plain = _try_alternatives(job, hit[1], payload)
    job.verified = job.verified or plain is not None
    return plain


def _try_alternatives(job: _Job, sender: Endpoint, payload: bytes) -> bytes | None:
    """The packet under each other candidate profile; the one that verifies is kept. The
    failures counted before it belong to the wrong guess and leave with it."""
    for i, contexts in enumerate(job.alternatives):
        ctx = contexts.get(sender)
        plain = None if ctx is None else _unprotect(job, ctx, payload)
        if plain is not None:
            job.contexts = contexts
            job.alternatives = job.alternatives[:i] + job.alternatives[i + 1:]
            return plain
    return None


def _ssrc_context(packet: bytes, flow: Flow, sender: Endpoint, explicit: ExplicitKeys,
                  jobs: dict[int, _Job],
                  contexts: dict[tuple[int, int], SrtpContext]
                  ) -> tuple[SrtpContext | None, _Job | None]:
    """The sender SSRC sits at bytes 4-8 of SRTCP (RFC 3550 6.4) and 8-12 of SRTP."""
    offset = 4 if rtp.is_rtcp_type(packet[1]) else 8
    ssrc = int.from_bytes(packet[offset:offset + 4], "big")
    ctx = contexts.get((flow.id, ssrc))
    if ctx is not None:
        return ctx, jobs[flow.id]
    job = jobs.get(flow.id)
    key = explicit.by_ssrc.get(ssrc)
    if key is None and job is not None:
        key = _same_sender_key(packet, ssrc, flow, sender, job, explicit, contexts)
    if key is None:
        return None, None
    ctx = contexts[(flow.id, ssrc)] = key.context()
    if job is None:
        job = jobs[flow.id] = _Job(flow, {}, key.source, key.fingerprint)
    job.contexts[(f"ssrc {ssrc:#010x}", 0)] = ctx
    if ssrc in explicit.by_ssrc:
        job.senders.setdefault(ssrc, sender)
    return ctx, job


MAX_KEY_TRIALS = 8  # packets of an SSRC without a key tried with the flow's other keys


def _same_sender_key(packet: bytes, ssrc: int, flow: Flow, sender: Endpoint, job: _Job,
                     explicit: ExplicitKeys, contexts: dict[tuple[int, int], SrtpContext]
                     ) -> SrtpKey | None:
    """A key given for one SSRC also protects what its sender sends under another (WebRTC
    sends RTCP from the placeholder SSRC 0xFA17FA17 under its session's keys): the keys of
    the SSRCs this sender was seen using are tried, and one counts only if the packet's
    authentication tag verifies with it; failed trials are not tag failures."""
    trials = contexts.get((flow.id, ~ssrc))  # failed trials are counted under ~ssrc
    if trials is not None and trials.failed >= MAX_KEY_TRIALS:
        return None
    used = {explicit.by_ssrc[s].fingerprint: explicit.by_ssrc[s]
            for s, seen_from in job.senders.items() if seen_from == sender}
    for key in used.values():
        trial = key.context()
        opened = (trial.unprotect_rtcp(packet) if rtp.is_rtcp_type(packet[1])
                  else trial.unprotect_rtp(packet))
        if opened is not None:
            return key
    if used:
        if trials is None:
            trials = contexts[(flow.id, ~ssrc)] = next(iter(used.values())).context()
        trials.failed += 1
    return None


def _unprotect(job: _Job, ctx: SrtpContext, packet: bytes) -> bytes | None:
    if rtp.is_rtcp_type(packet[1]):
        clear = ctx.unprotect_rtcp(packet)
        compound = rtp.parse_rtcp(packet) if clear is None else None
        if compound is not None and compound.trailing == 0:
            # No SRTCP index or tag at all (RFC 3711 section 3.4): not a failed tag but
            # RTCP sent unprotected, counted apart.
            ctx.failed -= 1
            job.unprotected_rtcp += 1
        return clear
    plain = ctx.unprotect_rtp(packet)
    if plain is None:
        return None
    header = rtp.parse_rtp(plain)
    if header is None:
        return plain
    kept = job.payloads.setdefault(header.ssrc, [])
    job.payload_types.setdefault(header.ssrc, header.payload_type)
    if len(kept) < MAX_INNER_SAMPLES:
        kept.append(plain[header.header_length:header.header_length + header.payload_length])
    return plain


def _result(job: _Job) -> Decryption:
    contexts = list({id(c): c for c in job.contexts.values()}.values())
    decrypted = sum(c.decrypted for c in contexts)
    failed = sum(c.failed for c in contexts)
    layers = [inner.classify(payloads, job.payload_types.get(ssrc))
              for ssrc, payloads in sorted(job.payloads.items())]
    kinds = [layer.kind for layer in layers if layer.kind != "insufficient"]
    kind = ("sframe" if "sframe" in kinds else "codec" if "codec" in kinds
            else "opaque" if kinds else "insufficient")
    detail = next((layer.detail for layer in layers if layer.kind == kind),
                  "too few packets decrypted to tell what is inside")
    source = job.source
    if job.by_trial and job.verified:
        profile = next(iter(job.contexts.values())).profile.name
        source += f"; SRTP profile {profile}, found by trial among those offered"
    return Decryption(decrypted, failed, source, job.key_fingerprint, kind, detail,
                      len(job.payloads), job.unprotected_rtcp, job.truncated,
                      job.stream_gap_bytes)
