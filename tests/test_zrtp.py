"""ZRTP (RFC 6189): keys agreed in the media path between the endpoints, after a clear start.

The crafted calls follow RFC 6189's message flow (section 4): both ends send Hello and
HelloACK, the initiator Commit, then DHPart1, DHPart2, Confirm1, Confirm2, Conf2ACK; RTP
flows in the clear before the Confirm exchange and as SRTP after it (section 4.6.1).
"""

from __future__ import annotations

import os
import random
import struct
from pathlib import Path

from capfiles import ether, pcap
from packets import (
    zrtp_commit,
    zrtp_confirm,
    zrtp_dhpart,
    zrtp_hello,
    zrtp_packet,
)
from scapy.layers.inet import IP, UDP

import flowscan
from flowscan.protocols import zrtp
from flowscan.report.model import Flow, Report

A, B = "192.0.2.10", "198.51.100.20"
A_PORT, B_PORT = 40000, 50000
SSRC = {A: 0x1111AAAA, B: 0x2222BBBB}


def _g711(rng: random.Random) -> bytes:
    """PCMU-like bytes of quiet speech: mu-law codes near the top of each half (RFC 3551
    section 4.5.14), far from uniform."""
    return bytes(rng.choice((rng.randint(0xE8, 0xFF), rng.randint(0x68, 0x7F)))
                 for _ in range(160))


def _rtp(seq: int, ssrc: int, payload: bytes) -> bytes:
    return struct.pack(">BBHII", 0x80, 0, seq, seq * 160, ssrc) + payload


def sip(src: str, dst: str, first: str, sdp_port: int, zrtp_hash: bool) -> bytes:
    sdp = (f"v=0\r\no=- 1 1 IN IP4 {src}\r\ns=-\r\nc=IN IP4 {src}\r\nt=0 0\r\n"
           f"m=audio {sdp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
           + ("a=zrtp-hash:1.10 " + "ab" * 32 + "\r\n" if zrtp_hash else "")).encode()
    return (f"{first}\r\nCall-ID: z1@example.com\r\nCSeq: 1 INVITE\r\n"
            f"Content-Type: application/sdp\r\nContent-Length: {len(sdp)}\r\n\r\n").encode() + sdp


def zrtp_call(tmp_path: Path, *, confirm: bool = True, answer: bool = True,
              mitm: bool = False, clear: int = 15, after: int = 120,
              encrypt: bool = True, zrtp_hash: bool = True, quick: bool = False) -> str:
    """A SIP call from A to B whose phones agree keys with ZRTP after `clear` packets of
    clear PCMU each way, then send `after` packets each way (SRTP if `encrypt`); media
    goes on during the exchange unless `quick` (three packets then, all told)."""
    rng = random.Random(6189)
    frames: list[tuple[float, bytes]] = []

    def udp(t: float, src: str, payload: bytes, sport: int = 0, dport: int = 0) -> None:
        dst = B if src == A else A
        frames.append((t, bytes(ether() / IP(src=src, dst=dst) / UDP(
            sport=sport or (A_PORT if src == A else B_PORT),
            dport=dport or (B_PORT if src == A else A_PORT)) / payload)))

    udp(0.0, A, sip(A, B, "INVITE sip:bob@example.com SIP/2.0", A_PORT, zrtp_hash), 5060, 5060)
    udp(0.1, B, sip(B, A, "SIP/2.0 200 OK", B_PORT, zrtp_hash), 5060, 5060)
    seq = {A: 100, B: 7000}
    t = 0.2

    def media(count: int, protected: bool) -> None:
        nonlocal t
        for _ in range(count):
            for end in (A, B):
                payload = os.urandom(170) if protected else _g711(rng)  # SRTP: 10-byte tag
                udp(t, end, _rtp(seq[end], SSRC[end], payload))
                seq[end] += 1
            t += 0.02

    media(clear, False)
    zid = {A: os.urandom(12), B: os.urandom(12)}
    exchange = [(A, "Hello", zrtp_hello(zid[A])), (B, "Hello", zrtp_hello(zid[B], mitm))]
    if answer:
        exchange += [(B, "HelloACK", b""), (A, "HelloACK", b""), (A, "Commit", zrtp_commit(
            zid[A])), (B, "DHPart1", zrtp_dhpart()), (A, "DHPart2", zrtp_dhpart())]
        if confirm:
            exchange += [(B, "Confirm1", zrtp_confirm()), (A, "Confirm2", zrtp_confirm()),
                         (B, "Conf2ACK", b"")]
    else:
        exchange = exchange[:1] * 6  # Hello retransmitted, never answered (section 6)
    for number, (end, kind, body) in enumerate(exchange):
        udp(t, end, zrtp_packet(number, SSRC[end], kind, body))
        t += 0.005
        if not quick or number < 3:
            media(1, False)
    media(after, encrypt and confirm and answer)
    path = tmp_path / "zrtp.pcap"
    path.write_bytes(pcap(sorted(frames, key=lambda f: f[0])))
    return str(path)


def media_flow(report: Report) -> Flow:
    (flow,) = [f for f in report.flows if f.encryption]
    return flow


def test_parser_reads_hello_and_commit() -> None:
    hello = zrtp.parse(zrtp_packet(1, 0xABCD, "Hello", zrtp_hello(b"z" * 12, mitm=True)))
    assert hello is not None and hello.type == "Hello" and hello.ssrc == 0xABCD
    assert hello.version == "1.10" and hello.client == "GNU ZRTP 4.6.6" and hello.mitm
    assert hello.algorithms["key-agreement"] == ["DH3k", "Mult"]
    commit = zrtp.parse(zrtp_packet(2, 1, "Commit", zrtp_commit(b"z" * 12)))
    assert commit is not None and commit.chosen["key-agreement"] == "DH3k"
    assert commit.chosen["sas"] == "B32"
    # RTP, STUN, a wrong length or an unknown type block are not ZRTP.
    packet = zrtp_packet(3, 1, "Conf2ACK")
    assert zrtp.parse(packet[:-1]) is None
    assert zrtp.parse(packet.replace(b"Conf2ACK", b"Nonsense")) is None
    assert zrtp.parse(_rtp(1, 2, bytes(160))) is None


def test_zrtp_call_is_end_to_end_after_a_clear_start(tmp_path: Path) -> None:
    report = flowscan.scan(zrtp_call(tmp_path))
    flow = media_flow(report)
    enc = flow.encryption
    assert enc is not None
    assert (enc.verdict, enc.termination, enc.key_exchange) == ("end-to-end", "peer", "zrtp")
    assert enc.confidence == "medium"
    signals = {e.signal: e.detail for e in enc.evidence}
    assert "Confirm2" in signals["zrtp-exchange"] and "DH3k" in signals["zrtp-exchange"]
    assert "a=zrtp-hash" in signals["sdp-zrtp-hash"]
    assert "man in the middle" in signals["zrtp-end-to-end"]
    # 25 clear packets each way: 8 sampled, the first sample after the switch bounds them.
    assert "between 8 and 2" in signals["zrtp-clear-start"]
    kinds = [f.kind for f in report.findings]
    assert "zrtp-clear-start" in kinds and "plaintext-media" not in kinds
    assert "zrtp" in flow.protocols


def test_short_call_is_judged_on_later_samples(tmp_path: Path) -> None:
    """The clear start used up the first samples and the call is short: the later run of
    samples (from the sender's 32nd packet) is the media judged."""
    flow = media_flow(flowscan.scan(zrtp_call(tmp_path, clear=2, after=25)))
    assert flow.encryption is not None and flow.encryption.verdict == "end-to-end"
    detail = next(e.detail for e in flow.encryption.evidence if e.signal == "zrtp-clear-start")
    assert "from the client" in detail and ("at least 8" in detail or "between 8 and" in detail)


def test_clear_start_within_the_first_samples_is_counted_exactly(tmp_path: Path) -> None:
    flow = media_flow(flowscan.scan(zrtp_call(tmp_path, clear=0, answer=True, after=40,
                                              quick=True)))
    assert flow.encryption is not None and flow.encryption.verdict == "end-to-end"
    detail = next(e.detail for e in flow.encryption.evidence if e.signal == "zrtp-clear-start")
    assert "at least" not in detail and "3 from the client" in detail


def test_unanswered_zrtp_leaves_clear_media_plaintext(tmp_path: Path) -> None:
    flow = media_flow(flowscan.scan(zrtp_call(tmp_path, answer=False, encrypt=False)))
    assert flow.encryption is not None
    assert (flow.encryption.verdict, flow.encryption.key_exchange) == ("plaintext", "none")
    assert any(e.signal == "zrtp-incomplete" for e in flow.encryption.evidence)


def test_zrtp_without_confirm_agreed_no_keys(tmp_path: Path) -> None:
    flow = media_flow(flowscan.scan(zrtp_call(tmp_path, confirm=False)))
    assert flow.encryption is not None and flow.encryption.verdict == "plaintext"


def test_media_still_clear_after_zrtp_is_plaintext(tmp_path: Path) -> None:
    flow = media_flow(flowscan.scan(zrtp_call(tmp_path, encrypt=False)))
    enc = flow.encryption
    assert enc is not None and (enc.verdict, enc.key_exchange) == ("plaintext", "zrtp")
    assert any(e.signal == "no-srtp-after-zrtp" for e in enc.evidence)


def test_pbx_that_terminates_zrtp_is_hop_by_hop(tmp_path: Path) -> None:
    """The Hello's M flag: a PBX acting as a trusted man in the middle (section 7.3)."""
    flow = media_flow(flowscan.scan(zrtp_call(tmp_path, mitm=True)))
    enc = flow.encryption
    assert enc is not None
    assert (enc.verdict, enc.termination, enc.key_exchange) == ("hop-by-hop", "server", "zrtp")
