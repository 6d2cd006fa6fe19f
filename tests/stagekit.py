"""Small factories for the per-stage tests (tests/test_stage_*.py): flow records, facts and a
locator answering from a table, so that each stage can be fed crafted inputs directly.

The report model (flowscan/report/model.py) and the FlowFacts dataclasses
(flowscan/identify.py) are used as they are: nothing here re-implements a stage.
"""

from __future__ import annotations

import ipaddress
import struct

from flowscan.geo.locate import Locator, scope_of
from flowscan.identify import FlowFacts, FlowSamples, RtpFacts, SipFacts, identify_samples
from flowscan.media.payload import PayloadStats
from flowscan.protocols.sdp import SdesKey, SdpMedia
from flowscan.report.model import (
    AppInfo,
    DirectionStats,
    Encryption,
    Endpoint,
    EvidenceItem,
    Flow,
    RemoteInfo,
)

UDP, TCP = 17, 6

# Documentation and private addresses stand for the capture host (RFC 1918) and remotes
# (RFC 5737 TEST-NETs are "documentation", not public: tests that need a public address
# use ones the table locator below answers for).
LOCAL = "192.168.1.10"


def raw_key(client: tuple[str, int], server: tuple[str, int]) -> bytes:
    """A flow's raw directional key as the flow table makes it: the client's address, the
    server's, then the client's port and the server's (flows.split_key)."""
    return (ipaddress.ip_address(client[0]).packed + ipaddress.ip_address(server[0]).packed
            + struct.pack(">HH", client[1], server[1]))


def samples_job(payloads: list[tuple[int, bytes]], *, proto: int = UDP,
                client: tuple[str, int] = (LOCAL, 50000),
                server: tuple[str, int] = ("203.0.113.5", 3478),
                step: float = 0.02, ssrcs: tuple[int, int] = (0, 0)) -> FlowSamples:
    """What identify_samples reads: (side, payload) pairs, side 0 from the client, timed
    `step` seconds apart."""
    samples = [(1.0 + i * step, side, data) for i, (side, data) in enumerate(payloads)]
    return proto, raw_key(client, server), samples, ssrcs


def facts_of(payloads: list[tuple[int, bytes]], **kwargs: object) -> FlowFacts:
    return identify_samples(samples_job(payloads, **kwargs))  # type: ignore[arg-type]


def flow(flow_id: int, client: tuple[str, int], server: tuple[str, int], *,
         transport: str = "udp", packets: int = 10, size: int = 1000,
         protocols: list[str] | None = None, app: AppInfo | None = None,
         encryption: Encryption | None = None, remote: RemoteInfo | None = None) -> Flow:
    """A flow record with `packets` packets and `size` bytes each way."""
    return Flow(flow_id, transport, Endpoint(*client), Endpoint(*server), "first-packet",
                DirectionStats(packets, size, 1.0, 2.0), DirectionStats(packets, size, 1.0, 2.0),
                protocols=tuple(protocols or []), app=app, encryption=encryption,
                remote=remote)


def encryption(verdict: str, termination: str = "unknown", key_exchange: str = "unknown",
               signal: str = "crafted") -> Encryption:
    return Encryption(verdict, termination, key_exchange, "observed", "low",
                      [EvidenceItem(signal, f"crafted {verdict} verdict")])


def app_label(name: str, signal: str = "tls-sni", detail: str = "crafted",
              strength: str = "strong") -> AppInfo:
    return AppInfo(name, "high", [EvidenceItem(signal, detail, strength)])


class TableLocator(Locator):
    """A Locator answering from a table (address -> country, ASN, organisation) instead of
    databases: addresses not in it are located nowhere, as unknown ones are. No database
    file is opened (Locator.__init__ is not run); lookup and answers are all it serves."""

    def __init__(self, table: dict[str, tuple[str | None, int | None, str | None]]) -> None:
        self.table = table
        self.databases = []
        self.missing_bundled = ""

    def answers(self, kinds: tuple[str, ...] = ()) -> bool:
        return True

    def lookup(self, ip: str, which: str = "server", basis: str | None = None) -> RemoteInfo:
        scope = scope_of(ip)
        if ip in self.table and scope == "public":
            country, asn, organisation = self.table[ip]
            return RemoteInfo(ip, which, scope, country, asn=asn, organisation=organisation,
                              sources=("crafted table",), basis=basis)
        return RemoteInfo(ip, which, scope, basis=basis)


# -- byte builders the stage tests share (tests/packets.py has STUN and DTLS) -----------

# RFC 4568 section 9.1's example key: 30 bytes of base64 master key and salt.
SDES_KEY = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"


def sdp_offer(address: str, port: int, *, crypto: bool = True) -> bytes:
    """An SDP audio offer (RFC 4566 section 5; RFC 3264 section 5): RTP/SAVP with an
    a=crypto line (RFC 4568 section 9.1) when crypto, else plain RTP/AVP."""
    lines = ["v=0", f"o=alice 2890844526 2890844526 IN IP4 {address}", "s=-",
             f"c=IN IP4 {address}", "t=0 0",
             f"m=audio {port} {'RTP/SAVP' if crypto else 'RTP/AVP'} 0",
             "a=rtpmap:0 PCMU/8000"]
    if crypto:
        lines.append(f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{SDES_KEY}|2^20|1:32")
    return ("\r\n".join(lines) + "\r\n").encode()


def sip_invite(body: bytes, call_id: str = "a84b4c76e66710@pc33.example.com") -> bytes:
    """An INVITE with an SDP body (RFC 3261 section 7; the example of section 24.2)."""
    head = ("INVITE sip:bob@example.com SIP/2.0\r\n"
            "Via: SIP/2.0/UDP pc33.example.com;branch=z9hG4bK776asdhds\r\n"
            "From: Alice <sip:alice@example.com>;tag=1928301774\r\n"
            "To: Bob <sip:bob@example.com>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 314159 INVITE\r\n"
            "Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def rtp_packet(seq: int, timestamp: int, ssrc: int, payload_type: int, payload: bytes
               ) -> bytes:
    """An RTP packet (RFC 3550 section 5.1): V=2, no padding, extension or CSRC."""
    return bytes([0x80, payload_type & 0x7F]) + struct.pack(">HII", seq, timestamp,
                                                           ssrc) + payload


def pcmu_stream(count: int = 12, ssrc: int = 0x1234ABCD, frame: int = 160) -> list[bytes]:
    """G.711 u-law RTP (RFC 3551 sections 4.5.14 and 6: payload type 0, 8000 Hz): `frame`
    bytes per packet and the timestamp stepping by as many samples, the bytes near the
    u-law code for silence (0xff), as speech is."""
    return [rtp_packet(1000 + i, 8000 + frame * i, ssrc, 0,
                       bytes(0xFF - (j * 7 + i) % 5 for j in range(frame)))
            for i in range(count)]


# -- facts as identify leaves them, for the stages after it ------------------------------

def sip_facts(call_id: str, media: list[tuple[str, int]], *, sdes: bool = False,
              protocol: str | None = None) -> FlowFacts:
    """A SIP flow's facts: an INVITE whose SDP offers audio at each (address, port), with
    an a=crypto key (RFC 4568) when sdes; the SDP model and the report's view of it."""
    key = SdesKey("1", "AES_CM_128_HMAC_SHA1_80", f"inline:{SDES_KEY}|2^20|1:32")
    sections = [SdpMedia("audio", port, protocol or ("RTP/SAVP" if sdes else "RTP/AVP"), ["0"],
                         address, crypto=[key] if sdes else [], rtpmap={0: "PCMU/8000"})
                for address, port in media]
    offered: list[dict[str, object]] = [
        {"media": m.media, "address": m.address, "port": m.port, "protocol": m.protocol,
         "codecs": sorted(set(m.rtpmap.values())),
         "sdes": [{"tag": k.tag, "suite": k.suite, "key_sha256": k.fingerprint}
                  for k in m.crypto],
         "dtls_fingerprint": None, "setup": None, "candidates": 0} for m in sections]
    return FlowFacts(protocols=["sip", "sdp"],
                     sip=SipFacts(messages=["INVITE", "200"], call_ids=[call_id],
                                  media=offered), sdp_media=tuple(sections))


def rtp_facts(looks: str = "random", *, packets: int = 40, sides: tuple[str, ...] = (
        "client", "server"), payload_type: int = 111, frames: str | None = None) -> RtpFacts:
    """Validated RTP streams (RFC 3550 appendix A.1) on each side, their payloads looking
    `looks` (media.payload: random, codec-structure, skewed, insufficient)."""
    rtp = RtpFacts(sequence_ok=True)
    for number, side in enumerate(sides):
        ssrc = f"0x{0x1000 + number:08x}"
        # The side maps are read-only (identify.NO_SIDES while empty): assigned whole.
        rtp.packets = {**rtp.packets, side: packets}
        rtp.ssrcs = {**rtp.ssrcs, side: (ssrc,)}
        rtp.payload_types = {**rtp.payload_types, side: (payload_type,)}
        rtp.streams = {**rtp.streams, side: "valid"}
        rtp.sources = {**rtp.sources, side: [[ssrc]]}
        rtp.source_groups = {**rtp.source_groups, side: 1}
        rtp.same_type = {**rtp.same_type, side: (1, payload_type)}
        distinct = packets if looks == "random" else 3  # distinct first payload bytes
        rtp.payload = {**rtp.payload, side: PayloadStats(packets, packets * 160, distinct,
                                                         0.5, 0.5, looks)}
        if frames:
            rtp.frame_sizes = {**rtp.frame_sizes, side: frames}
    return rtp
