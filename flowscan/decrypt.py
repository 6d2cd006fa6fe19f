"""With keys: remove the transport encryption of media flows and look at what is inside.

Keys come from NSS key log files, from the capture's own Decryption Secrets Blocks, and from
SDES a=crypto lines seen in the clear. A second pass over the capture decrypts the packets
of the flows that have keys, verifying every authentication tag, and classifies the inner
payloads (codec frames, or an SFrame layer). Key material never reaches the report: keys are
named by a short SHA-256.
"""

from __future__ import annotations

import base64
import socket
from dataclasses import dataclass, field

from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import PROTO_UDP, Decoder
from flowscan.crypto import dtls_srtp, inner
from flowscan.crypto.keylog import KeyLog, fingerprint
from flowscan.crypto.srtp import PROFILES, SDES_SUITES, SrtpContext
from flowscan.identify import FlowFacts
from flowscan.protocols import rtp
from flowscan.report.model import Decryption, Flow

MAX_INNER_SAMPLES = 48  # decrypted payloads kept per SSRC for the inner-layer check


@dataclass
class _Job:
    flow: Flow
    contexts: dict[tuple[str, int], SrtpContext]  # sender endpoint -> its context
    source: str
    key_fingerprint: str
    payloads: dict[int, list[bytes]] = field(default_factory=dict)  # ssrc -> payloads
    payload_types: dict[int, int] = field(default_factory=dict)


def _endpoint_key(src: tuple[str, int], dst: tuple[str, int]) -> bytes:
    family = socket.AF_INET6 if ":" in src[0] else socket.AF_INET
    return (socket.inet_pton(family, src[0]) + socket.inet_pton(family, dst[0])
            + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big"))


def _dtls_job(flow: Flow, facts: FlowFacts, keylog: KeyLog, sources: str) -> _Job | None:
    d = facts.dtls
    if d is None or not (d.client_random and d.server_random and d.srtp_profile):
        return None
    master = keylog.master_secret(bytes.fromhex(d.client_random))
    if master is None or d.srtp_profile not in PROFILES:
        return None
    client_ctx, server_ctx = dtls_srtp.srtp_contexts(
        master, bytes.fromhex(d.client_random), bytes.fromhex(d.server_random),
        d.srtp_profile, int(d.cipher_suite or "0", 16))
    client, server = (flow.client.ip, flow.client.port), (flow.server.ip, flow.server.port)
    # Whoever sent the ClientHello writes with the client keys (RFC 5764 section 4.2).
    dtls_client = client if d.dtls_client != "server" else server
    other = server if dtls_client == client else client
    return _Job(flow, {dtls_client: client_ctx, other: server_ctx}, sources,
                fingerprint(master))


def _sdes_jobs(flows: list[tuple[Flow, FlowFacts]]) -> dict[int, _Job]:
    """Each party's SDES key protects what that party sends from its SDP media address."""
    keys: dict[tuple[str, int], tuple[tuple[object, bytes, bytes], str]] = {}
    for _flow, facts in flows:
        if facts.sip is None:
            continue
        crypto = iter(facts.sdes_keys)
        for media in facts.sip.media:
            for _ in media.get("sdes") or []:  # type: ignore[union-attr]
                key = next(crypto, None)
                address, port = media.get("address"), media.get("port")
                if key is None or not isinstance(address, str) or not isinstance(port, int):
                    continue
                name = SDES_SUITES.get(key.suite)
                if name is None or not key.key_params.startswith("inline:"):
                    continue
                try:
                    material = base64.b64decode(key.key_params[7:].split("|")[0])
                except ValueError:
                    continue
                profile = PROFILES[name]
                if len(material) < profile.key_len + profile.salt_len:
                    continue
                spec = (profile, material[:profile.key_len],
                        material[profile.key_len:profile.key_len + profile.salt_len])
                for endpoint in ((address, port), (address, port + 1)):
                    keys.setdefault(endpoint, (spec, key.fingerprint))
    jobs: dict[int, _Job] = {}
    for flow, _facts in flows:
        ends = [(flow.client.ip, flow.client.port), (flow.server.ip, flow.server.port)]
        found = {e: keys[e] for e in ends if e in keys}
        if found and flow.encryption is not None:
            # A context of its own per flow: counts and rollover state are per flow.
            contexts = {e: SrtpContext(*v[0]) for e, v in found.items()}  # type: ignore[arg-type]
            jobs[flow.id] = _Job(flow, contexts, "SDES (a=crypto in SDP)",
                                 next(iter(found.values()))[1])
    return jobs


def decrypt_flows(path: str, flows: list[tuple[Flow, FlowFacts]], keylog: KeyLog
                  ) -> dict[int, Decryption]:
    jobs = _sdes_jobs(flows)
    sources = ", ".join(keylog.sources) or "key log"
    for flow, facts in flows:
        if flow.encryption is not None and flow.id not in jobs:
            job = _dtls_job(flow, facts, keylog, sources)
            if job is not None:
                jobs[flow.id] = job
    if not jobs:
        return {}
    by_key: dict[bytes, tuple[_Job, tuple[str, int]]] = {}
    for job in jobs.values():
        f = job.flow
        client, server = (f.client.ip, f.client.port), (f.server.ip, f.server.port)
        by_key[_endpoint_key(client, server)] = (job, client)
        by_key[_endpoint_key(server, client)] = (job, server)
    decoder = Decoder()
    with CaptureSource(path) as source:
        for _ts, link, data, _wire in open_reader(source).packets():
            try:
                decoded = decoder.decode(link, data)
            except (IndexError, ValueError):
                continue
            if decoded is None or decoded[0] != PROTO_UDP:
                continue
            hit = by_key.get(decoded[1])
            if hit is None:
                continue
            job, sender = hit
            ctx = job.contexts.get(sender)
            payload = data[decoded[2]:decoded[3]]
            if payload[:1] and 0x40 <= payload[0] <= 0x4F and len(payload) >= 4:  # ChannelData
                payload = payload[4:4 + int.from_bytes(payload[2:4], "big")]
            if ctx is None or not payload or not 128 <= payload[0] <= 191:
                continue
            _unprotect(job, ctx, payload)
    return {flow_id: _result(job) for flow_id, job in jobs.items()}


def _unprotect(job: _Job, ctx: SrtpContext, packet: bytes) -> None:
    if rtp.is_rtcp_type(packet[1] if len(packet) > 1 else 0):
        ctx.unprotect_rtcp(packet)
        return
    plain = ctx.unprotect_rtp(packet)
    if plain is None:
        return
    header = rtp.parse_rtp(plain)
    if header is None:
        return
    kept = job.payloads.setdefault(header.ssrc, [])
    job.payload_types.setdefault(header.ssrc, header.payload_type)
    if len(kept) < MAX_INNER_SAMPLES:
        kept.append(plain[header.header_length:header.header_length + header.payload_length])


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
    return Decryption(decrypted, failed, job.source, job.key_fingerprint, kind, detail,
                      len(job.payloads))
