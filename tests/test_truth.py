"""Classes of wrong verdicts found on field captures (issue 17), each reproduced on a capture
crafted after the RFCs: ICE (RFC 8445), DTLS-SRTP (RFC 5764), RTP (RFC 3550, RFC 3551),
RTX (RFC 4588). Addresses are chosen by the network they sit on in the bundled ASN data:
24.114.20.10 (Rogers) and 91.64.10.20 (Vodafone) are residential, 3.120.0.10 (Amazon) and
5.9.1.1 (Hetzner) data-centre; 192.0.2.0/24 and 198.51.100.0/24 are documentation ranges,
on no known network."""

from __future__ import annotations

import datetime
import os
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from capfiles import ether, pcap
from conftest import real_capture
from packets import (
    dtls_certificate,
    dtls_client_hello,
    dtls_encrypted,
    dtls_server_hello,
    ice_check,
    ice_response,
)
from scapy.layers.inet import IP, UDP

import flowscan
from flowscan.report.model import Flow, Report

ALICE, BOB = "24.114.20.10", "91.64.10.20"  # residential (Rogers, Vodafone)
CLOUD, HETZNER = "3.120.0.10", "5.9.1.1"  # data-centre (Amazon, Hetzner)
DOC_A, DOC_B = "192.0.2.10", "198.51.100.77"  # documentation: no network known
PHONE = "192.168.1.20"  # behind the capture's own NAT


def certificate(cn: str, organisation: str | None = None) -> bytes:
    """A self-signed certificate, DER; WebRTC stacks make one per call with a random CN."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    name = x509.Name(attrs)
    start = datetime.datetime(2026, 1, 1)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(start)
            .not_valid_after(start + datetime.timedelta(days=30)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def throwaway() -> bytes:
    return certificate(os.urandom(16).hex())


def rtp(seq: int, ts: int, ssrc: int, pt: int, payload: bytes, version: int = 2) -> bytes:
    """RFC 3550 section 5.1 fixed header, then the payload as given."""
    return bytes([version << 6, pt & 0x7F]) + struct.pack(">HII", seq & 0xFFFF,
                                                          ts & 0xFFFFFFFF, ssrc) + payload


@dataclass
class Call:
    """Packets between a (the capture side, first to send) and b."""

    a: str
    b: str
    a_port: int = 40000
    b_port: int = 50000
    frames: list[tuple[float, bytes]] = field(default_factory=list)
    t: float = 1.0

    def send(self, from_a: bool, payload: bytes, dt: float = 0.005) -> None:
        src, dst, sp, dp = ((self.a, self.b, self.a_port, self.b_port) if from_a else
                            (self.b, self.a, self.b_port, self.a_port))
        self.frames.append((self.t, bytes(ether() / IP(src=src, dst=dst) / UDP(
            sport=sp, dport=dp) / payload)))
        self.t += dt

    def ice(self, *, b_checks: bool = True, b_answers: bool = True) -> None:
        for i in range(3):
            tx = bytes([i]) * 12
            self.send(True, ice_check(tx, controlling=True))
            if b_answers:
                self.send(False, ice_response(tx))
            if b_checks:
                tx2 = bytes([0x40 + i]) * 12
                self.send(False, ice_check(tx2, controlling=False))
                self.send(True, ice_response(tx2))

    def dtls(self, cert_a: bytes | None, cert_b: bytes | None, *, sni: bytes = b"",
             b_answers: bool = True) -> None:
        self.send(True, dtls_client_hello(sni))
        if b_answers:
            self.send(False, dtls_server_hello() + (dtls_certificate([cert_b]) if cert_b
                                                    else b""))
        if cert_a:
            self.send(True, dtls_certificate([cert_a]))
        for i in range(3):
            self.send(True, dtls_encrypted(i + 2))
            if b_answers:
                self.send(False, dtls_encrypted(i + 2))

    def write(self, tmp_path: Path, name: str = "call.pcap") -> str:
        path = tmp_path / name
        path.write_bytes(pcap(self.frames))
        return str(path)


def srtp_audio(call: Call, from_a: bool, ssrc: int, count: int = 12) -> None:
    """Opus-like SRTP: 20 ms packets, timestamp +960 at 48 kHz, random (ciphertext) payload."""
    for i in range(count):
        call.send(from_a, rtp(1000 + i, 5000 + 960 * i, ssrc, 111, os.urandom(120)), dt=0.02)


def webrtc(tmp_path: Path, a: str, b: str, cert_a: bytes | None, cert_b: bytes | None, *,
           sni: bytes = b"") -> str:
    call = Call(a, b)
    call.ice()
    call.dtls(cert_a, cert_b, sni=sni)
    for i in range(12):
        call.send(True, rtp(100 + i, 960 * i, 0x1111, 111, os.urandom(120)), dt=0.01)
        call.send(False, rtp(700 + i, 960 * i, 0x2222, 111, os.urandom(120)), dt=0.01)
    return call.write(tmp_path)


def only_flow(report: Report) -> Flow:
    (flow,) = [f for f in report.flows if f.encryption]
    assert flow.encryption is not None and flow.encryption.evidence
    return flow


def signals(flow: Flow) -> list[str]:
    assert flow.encryption is not None
    return [e.signal for e in flow.encryption.evidence]


def summary(flow: Flow) -> tuple[str, str, str]:
    assert flow.encryption is not None
    return flow.encryption.verdict, flow.encryption.termination, flow.encryption.key_exchange


# 1. A media server behind full ICE ---------------------------------------------------------

def test_media_router_behind_full_ice_is_not_end_to_end(tmp_path: Path) -> None:
    """Both sides check (full ICE), nothing else in ICE points to a server; but the DTLS
    certificate names a video platform's media router and the address is Amazon's."""
    router = certificate("mediarouter-fra1.examplevideo.com", "Example Video Inc.")
    flow = only_flow(flowscan.scan(webrtc(tmp_path, BOB, CLOUD, throwaway(), router)))
    assert summary(flow) == ("hop-by-hop", "server", "dtls-srtp")
    assert {"dtls-certificate", "remote-network"} <= set(signals(flow))
    detail = {e.signal: e.detail for e in flow.encryption.evidence}  # type: ignore[union-attr]
    assert "mediarouter-fra1.examplevideo.com" in detail["dtls-certificate"]
    assert "Amazon" in detail["remote-network"]


@pytest.mark.parametrize(("remote", "cert", "signal"), [
    (BOB, lambda: certificate("mediarouter-fra1.examplevideo.com"), "dtls-certificate"),
    (BOB, lambda: certificate("a1b2c3d4e5f6a7b8", "Example Video Inc."), "dtls-certificate"),
    (HETZNER, throwaway, "remote-network"),
])
def test_each_server_signal_alone_blocks_end_to_end(tmp_path: Path, remote: str, cert: object,
                                                    signal: str) -> None:
    flow = only_flow(flowscan.scan(webrtc(tmp_path, ALICE, remote, throwaway(),
                                          cert())))  # type: ignore[operator]
    assert summary(flow)[0] == "hop-by-hop" and signal in signals(flow)


def test_sni_in_the_dtls_hello_names_a_server(tmp_path: Path) -> None:
    flow = only_flow(flowscan.scan(webrtc(tmp_path, ALICE, BOB, throwaway(), throwaway(),
                                          sni=b"sfu.example.net")))
    assert summary(flow)[0] == "hop-by-hop" and "dtls-sni" in signals(flow)


def test_full_ice_with_nothing_positive_is_encrypted_unverified(tmp_path: Path) -> None:
    """Full ICE and throwaway certificates, on addresses of no known network: media servers
    run full ICE too, so nothing shows the DTLS peer is a participant."""
    flow = only_flow(flowscan.scan(webrtc(tmp_path, DOC_A, DOC_B, throwaway(), throwaway())))
    assert summary(flow) == ("encrypted-unverified", "unknown", "dtls-srtp")
    assert "termination-unknown" in signals(flow) and "ice-full" in signals(flow)


def test_full_ice_between_residential_participants_is_end_to_end(tmp_path: Path) -> None:
    flow = only_flow(flowscan.scan(webrtc(tmp_path, ALICE, BOB, throwaway(), throwaway())))
    assert summary(flow) == ("end-to-end", "peer", "dtls-srtp")
    assert {"ice-full", "access-networks", "throwaway-certificates", "no-server-signal"} <= set(
        signals(flow))
    detail = {e.signal: e.detail for e in flow.encryption.evidence}  # type: ignore[union-attr]
    assert "Rogers" in detail["access-networks"] and "Vodafone" in detail["access-networks"]


def xor_address(ip: str, port: int) -> bytes:
    """XOR-MAPPED-ADDRESS encoding (RFC 8489 section 14.2), IPv4."""
    return struct.pack(">BBH", 0, 1, port ^ 0x2112) + bytes(
        a ^ b for a, b in zip(bytes(map(int, ip.split("."))), b"\x21\x12\xa4\x42",
                              strict=True))


def test_media_to_a_turn_relayed_address_is_not_end_to_end(tmp_path: Path) -> None:
    """The remote address is one a TURN server handed out (XOR-RELAYED-ADDRESS, RFC 8656
    section 18.5): the packets pass a relay, and who is behind it is not seen."""
    from packets import stun_message

    relayed = BOB, 61000
    allocation = Call(ALICE, HETZNER, 40000, 3478)
    allocation.send(True, stun_message(0x0003, b"\x01" * 12, []))
    allocation.send(False, stun_message(0x0103, b"\x01" * 12,
                                        [(0x0016, xor_address(*relayed))]))
    call = Call(ALICE, relayed[0], 40001, relayed[1])
    call.t = allocation.t + 0.1
    call.ice()
    call.dtls(throwaway(), throwaway())
    srtp_audio(call, True, 0x1111)
    srtp_audio(call, False, 0x2222)
    call.frames = allocation.frames + call.frames
    report = flowscan.scan(call.write(tmp_path))
    (media,) = [f for f in report.flows if f.encryption and f.server.port == relayed[1]]
    assert summary(media)[:2] == ("encrypted-unverified", "relay")
    assert "turn-relayed-address" in signals(media)


def relayed_call(tmp_path: Path, peer: tuple[str, int]) -> str:
    """A call through TURN (RFC 8656): allocation, a channel bound to the peer's address
    (XOR-PEER-ADDRESS), then ICE both ways, DTLS-SRTP and SRTP inside ChannelData."""
    from packets import stun_message

    call = Call(ALICE, HETZNER, 40000, 3478)
    call.send(True, stun_message(0x0003, b"\x01" * 12, []))
    call.send(False, stun_message(0x0103, b"\x01" * 12,
                                  [(0x0016, xor_address(HETZNER, 49163))]))
    call.send(True, stun_message(0x0009, b"\x02" * 12, [
        (0x000C, b"\x40\x00\x00\x00"), (0x0012, xor_address(*peer))]))
    call.send(False, stun_message(0x0109, b"\x02" * 12, []))
    inner = Call(ALICE, HETZNER, 40000, 3478)
    inner.ice()
    inner.dtls(throwaway(), throwaway())
    srtp_audio(inner, True, 0x1111)
    srtp_audio(inner, False, 0x2222)
    for when, frame in inner.frames:
        payload = bytes(UDP(frame[34:]).payload)
        from_a = frame[26:30] == bytes(map(int, ALICE.split(".")))
        call.t = when + 1
        call.send(from_a, b"\x40\x00" + len(payload).to_bytes(2, "big") + payload, dt=0)
    return call.write(tmp_path, "relayed.pcap")


def test_relayed_call_to_a_peer_on_a_data_centre_is_unverified(tmp_path: Path) -> None:
    """ICE checks both ways through the relay do not make the peer behind it a participant:
    a media server behind a TURN relay runs them too."""
    flow = only_flow(flowscan.scan(relayed_call(tmp_path, (CLOUD, 50000))))
    assert summary(flow) == ("encrypted-unverified", "relay", "dtls-srtp")
    assert "ice-full" in signals(flow)


def test_relayed_call_to_a_residential_peer_is_end_to_end(tmp_path: Path) -> None:
    flow = only_flow(flowscan.scan(relayed_call(tmp_path, (BOB, 50000))))
    assert summary(flow) == ("end-to-end", "relay", "dtls-srtp")
    assert "peer-access-network" in signals(flow)


def test_lab_p2p_call_rests_on_access_networks() -> None:
    """The lab's direct call (aiortc, alice on Rogers, bob on Vodafone) keeps its truth,
    end-to-end at the peer, now on positive evidence: both ends on residential networks,
    both certificates per-call throwaways."""
    lab = Path(__file__).resolve().parent.parent / "captures/lab/p2p-webrtc/capture.pcapng"
    flow = only_flow(flowscan.scan(str(lab)))
    assert summary(flow) == ("end-to-end", "peer", "dtls-srtp")
    assert {"access-networks", "throwaway-certificates"} <= set(signals(flow))


# 2. A handshake without media ---------------------------------------------------------------

def test_handshake_only_flow_gets_no_media_verdict(tmp_path: Path) -> None:
    call = Call(ALICE, BOB)
    call.ice()
    call.dtls(throwaway(), throwaway())
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert summary(flow) == ("unknown", "unknown", "dtls-srtp")
    assert signals(flow) == ["handshake-only"]
    assert "no media packets" in flow.encryption.evidence[0].detail  # type: ignore[union-attr]
    (session,) = flowscan.scan(call.write(tmp_path)).sessions
    assert "a handshake between" in session.summary and "media to" not in session.summary


def test_real_dtls_handshakes_are_handshake_only() -> None:
    report = flowscan.scan(str(real_capture("dtls.pcap")))
    flows = [f for f in report.flows if f.encryption]
    assert flows
    for flow in flows:
        assert summary(flow)[0] == "unknown" and signals(flow) == ["handshake-only"]


# 3. and 5. Bytes that only resemble RTP -----------------------------------------------------

def game_traffic(tmp_path: Path, *, alternate: bool) -> str:
    """A game's UDP state updates: a fixed 12-byte header whose bits read as RTP version 2,
    payload type 31 (H.261), with a "sequence number", "timestamp" and "SSRC" that never
    change; with alternate, every other packet's first byte reads as version 1."""
    call = Call(DOC_A, DOC_B, 27015, 27016)
    for i in range(40):
        version = 1 if alternate and i % 2 else 2
        call.send(i % 4 != 3, rtp(7, 0x1000, 0xCAFEF00D, 31, bytes(range(40)), version),
                  dt=0.016)
    return call.write(tmp_path)


@pytest.mark.parametrize("alternate", [True, False])
def test_game_traffic_resembling_rtp_is_not_plaintext(tmp_path: Path, alternate: bool) -> None:
    report = flowscan.scan(game_traffic(tmp_path, alternate=alternate))
    (flow,) = report.flows
    assert flow.encryption is None, flow.encryption
    assert "rtp" not in flow.protocols
    assert not report.findings
    check = flow.details["rtp"].stream_check  # type: ignore[union-attr]
    assert any("version bits" in why or "do not count up" in why for why in check.values())


def test_random_payloads_make_no_ssrcs_and_no_fan_in(tmp_path: Path) -> None:
    """A protocol with random payloads after an ICE and DTLS-SRTP set-up: a quarter of
    its datagrams start with RTP's version bits, each with another "SSRC"."""
    call = Call(ALICE, BOB)
    call.ice()
    call.dtls(throwaway(), throwaway())
    for i in range(120):
        call.send(i % 2 == 0, b"\x80" + bytes([os.urandom(1)[0] & 0x7F]) + os.urandom(98),
                  dt=0.01)
    report = flowscan.scan(call.write(tmp_path))
    (flow,) = report.flows
    rtp_facts = flow.details["rtp"]
    assert len(rtp_facts.ssrcs["client"]) > 3  # type: ignore[union-attr]
    assert rtp_facts.streams == {"client": "invalid", "server": "invalid"}  # type: ignore[union-attr]
    assert not rtp_facts.ssrc_count  # type: ignore[union-attr]
    assert flow.encryption is not None and flow.encryption.verdict != "hop-by-hop"
    assert "fan-in" not in signals(flow)
    assert not flow.details["rtp"].source_groups  # type: ignore[union-attr]


def test_g711_rtp_still_validates_and_is_plaintext(tmp_path: Path) -> None:
    """The same checks pass a real stream: PCMU (PT 0), 160 samples per 20 ms at 8 kHz."""
    call = Call(DOC_A, DOC_B)
    for i in range(20):
        call.send(True, rtp(300 + i, 160 * i, 0x5151, 0, bytes([0xFF, 0x7F, 0xFE] * 53 + [0])),
                  dt=0.02)
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert summary(flow)[0] == "plaintext"
    assert flow.details["rtp"].streams == {"client": "valid"}  # type: ignore[union-attr]


# 6. One-sided captures ------------------------------------------------------------------------

def test_one_sided_capture_is_not_ice_lite(tmp_path: Path) -> None:
    """Only the A-to-B direction was captured: B's checks (and answers) were never seen,
    which says nothing about whether B checks."""
    call = Call(DOC_A, DOC_B)
    call.ice(b_checks=False, b_answers=False)
    call.dtls(throwaway(), None, b_answers=False)
    srtp_audio(call, True, 0x1111)
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert flow.details["stun"].ice == "one-direction"  # type: ignore[union-attr]
    assert "ice-lite" not in signals(flow)
    assert summary(flow)[0] == "encrypted-unverified"


@pytest.mark.parametrize("name", ["zoom_p2p.pcapng", "teams.pcap", "stun_wa_call.pcapng"])
def test_unanswered_checks_in_real_captures_are_not_ice_lite(name: str) -> None:
    """Binding requests that nothing answered (candidate pairs that failed, or a direction
    the capture did not see) were read as ICE-lite servers."""
    report = flowscan.scan(str(real_capture(name)))
    one_way = [f for f in report.flows if f.details.get("stun") and not f.to_client.packets
               and f.details["stun"].methods.get("binding-request")]  # type: ignore[union-attr]
    assert one_way
    for flow in one_way:
        assert flow.details["stun"].ice == "one-direction"  # type: ignore[union-attr]


def test_remote_that_answers_but_never_checks_is_still_ice_lite(tmp_path: Path) -> None:
    call = Call(DOC_A, DOC_B)
    call.ice(b_checks=False)
    call.dtls(throwaway(), throwaway())
    srtp_audio(call, True, 0x1111)
    srtp_audio(call, False, 0x2222)
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert summary(flow)[0] == "hop-by-hop" and "ice-lite" in signals(flow)


# 4. A phone's own streams are not fan-in -----------------------------------------------------

def phone_streams(call: Call, from_a: bool, sources: Iterable[tuple[int, int, int]],
                  rtx: dict[int, int] | None = None, rounds: int = 4) -> None:
    """Each (ssrc, payload type, clock per 20 ms) sends one packet per round; an RTX stream
    (RFC 4588 section 4) repeats the packets of the source it names with their timestamps,
    its own SSRC, payload type 97 and sequence numbers."""
    sent: dict[int, list[int]] = {}
    for r in range(rounds):
        for ssrc, pt, step in sources:
            ts = 9000 * ssrc % 100000 + step * r
            sent.setdefault(ssrc, []).append(ts)
            call.send(from_a, rtp(r, ts, ssrc, pt, os.urandom(100)), dt=0.004)
        for rtx_ssrc, of in (rtx or {}).items():
            call.send(from_a, rtp(50 + r, sent[of][-1], rtx_ssrc, 97, os.urandom(102)),
                      dt=0.004)


def test_a_phones_own_audio_video_and_rtx_are_not_fan_in(tmp_path: Path) -> None:
    call = Call(PHONE, ALICE)
    call.ice()
    call.dtls(throwaway(), throwaway())
    # The phone: audio (Opus), video (VP8) and the video's RTX; the peer: audio and video.
    phone_streams(call, True, [(0xA1, 111, 960), (0xB1, 96, 1800)], rtx={0xC1: 0xB1})
    phone_streams(call, False, [(0xA2, 111, 960), (0xB2, 96, 1800)])
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert flow.details["rtp"].sources["client"] == [  # type: ignore[union-attr]
        ["0x000000a1"], ["0x000000b1", "0x000000c1"]]
    assert "fan-in" not in signals(flow)
    assert summary(flow) == ("end-to-end", "peer", "dtls-srtp")


def test_a_remote_with_rtx_and_fec_companions_is_one_participant(tmp_path: Path) -> None:
    """Audio, video, the video's RTX and a FEC stream carrying the video's timestamps
    (RFC 5109 section 7.1): four SSRCs, two source groups, no fan-in."""
    call = Call(DOC_A, DOC_B)
    call.ice()
    call.dtls(throwaway(), throwaway())
    phone_streams(call, False, [(0xA2, 111, 960), (0xB2, 96, 1800)],
                  rtx={0xC2: 0xB2, 0xD2: 0xB2}, rounds=2)
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert flow.details["rtp"].source_groups == {"server": 2}  # type: ignore[union-attr]
    assert "fan-in" not in signals(flow)


def test_many_sources_from_the_remote_are_fan_in(tmp_path: Path) -> None:
    """An SFU forwarding five participants' audio to a phone behind NAT."""
    call = Call(PHONE, DOC_B)
    call.ice()
    call.dtls(throwaway(), throwaway())
    phone_streams(call, True, [(0xA1, 111, 960)], rounds=3)
    phone_streams(call, False, [(0x10 + i, 111, 960) for i in range(5)], rounds=2)
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert summary(flow)[0] == "hop-by-hop" and "fan-in" in signals(flow)


# 7. Plaintext by frame sizes ------------------------------------------------------------------

def g729_call(tmp_path: Path, tag: int) -> str:
    """G.729 (static payload type 18, RFC 3551 section 4.5.6): two 10-byte frames per packet,
    timestamp +160 every 20 ms; compressed, so the bytes look random. tag: bytes appended
    as an SRTP authentication tag would be (RFC 3711 section 3.1)."""
    call = Call(DOC_A, DOC_B)
    for i in range(16):
        call.send(True, rtp(40 + i, 160 * i, 0x7297, 18, os.urandom(20 + tag)), dt=0.02)
    return call.write(tmp_path, f"g729-{tag}.pcap")


def test_g729_frames_with_no_room_for_a_tag_are_plaintext(tmp_path: Path) -> None:
    report = flowscan.scan(g729_call(tmp_path, 0))
    flow = only_flow(report)
    assert summary(flow)[0] == "plaintext"
    detail = {e.signal: e.detail for e in flow.encryption.evidence}  # type: ignore[union-attr]
    assert "G.729" in detail["codec-frame-sizes"] and "20 bytes" in detail["codec-frame-sizes"]
    assert [f.kind for f in report.findings] == ["plaintext-media"]


@pytest.mark.parametrize("tag", [4, 10, 16])
def test_g729_frames_followed_by_a_tag_are_not_plaintext(tmp_path: Path, tag: int) -> None:
    flow = only_flow(flowscan.scan(g729_call(tmp_path, tag)))
    assert summary(flow)[0] != "plaintext"
    assert "codec-frame-sizes" not in signals(flow)


def test_frame_sizes_of_static_payload_types() -> None:
    from flowscan.media.payload import frame_sizes

    def run(pt: int, step: int, size: int) -> str | None:
        return frame_sizes(pt, [(i, step * i, size) for i in range(6)])

    assert run(0, 160, 160) and run(8, 80, 80) and run(8, 240, 240) and run(9, 160, 160)
    assert run(3, 160, 33) and run(4, 240, 24) and run(4, 240, 20) and run(18, 80, 10)
    assert not run(0, 160, 170) and not run(3, 160, 37) and not run(18, 160, 30)
    assert not run(111, 960, 80)  # a dynamic type names no codec


def test_a_handshake_only_leg_is_no_mixed_protection(tmp_path: Path) -> None:
    """ICE tried a second candidate pair from the same socket and only the handshake went
    there; the media went end-to-end on the first. That is not mixed protection."""
    call = Call(ALICE, BOB)
    call.ice()
    call.dtls(throwaway(), throwaway())
    srtp_audio(call, True, 0x1111)
    srtp_audio(call, False, 0x2222)
    other = Call(ALICE, "91.64.10.21", 40000, 50002)
    other.t = call.t
    other.ice()
    other.dtls(throwaway(), throwaway())
    call.frames += other.frames
    report = flowscan.scan(call.write(tmp_path))
    (session,) = report.sessions
    assert sorted(session.verdicts) == ["end-to-end", "unknown"]
    assert not [f for f in report.findings if f.kind == "mixed-protection"]


def test_a_remote_named_by_dns_in_the_capture_is_a_server(tmp_path: Path) -> None:
    """A DNS answer in the capture led to the remote's address (RFC 1035 section 4.1.3):
    participants' devices are not looked up by name, a service's servers are."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR

    answer = DNS(id=7, qr=1, qd=DNSQR(qname="media7.examplevideo.com"),
                 an=DNSRR(rrname="media7.examplevideo.com", type="A", rdata=BOB))
    call = Call(ALICE, BOB)
    dns = Call(ALICE, DOC_B, 53000, 53)
    dns.send(False, bytes(answer))
    call.ice()
    call.dtls(throwaway(), throwaway())
    srtp_audio(call, True, 0x1111)
    srtp_audio(call, False, 0x2222)
    call.frames = dns.frames + call.frames
    report = flowscan.scan(call.write(tmp_path))
    (flow,) = [f for f in report.flows if f.encryption]
    assert summary(flow)[0] == "hop-by-hop" and "dns-name" in signals(flow)


@pytest.mark.parametrize(("asn", "organisation", "kind"), [
    (16509, "Amazon.com, Inc.", "hosting"), (None, "Zoom Video Communications, Inc", "hosting"),
    (64512, "Example Cloud Hosting Ltd", "hosting"), (3209, "Vodafone GmbH", "access"),
    (7922, "Comcast Cable Communications, LLC", "access"),
    (64513, "Example Broadband Co-op", "access"), (16591, "Google Fiber Inc.", "access"),
    (64514, "Capgemini Nederland B.V.", None),
])
def test_network_kinds(asn: int | None, organisation: str, kind: str | None) -> None:
    from flowscan.verdict.endpoints import network_kind

    found = network_kind(asn, organisation)
    assert (found[0] if found else None) == kind


@pytest.mark.parametrize(("subject", "issuer", "names", "server", "throwaway_cert"), [
    ("CN=13cfee497d9b3a47cdab42a29937e06f", None, [], False, True),  # aiortc
    ("CN=WebRTC", None, [], False, True),  # libwebrtc
    ("CN=mediarouter-fra1.examplevideo.com", None, [], True, False),
    ("CN=a1b2c3,O=Example Video Inc.", None, [], True, False),
    ("CN=x1y2z3w4", None, ["sfu.example.net"], True, False),
    ("CN=jvb-media-bridge", None, [], True, False),
    ("CN=a1b2c3d4e5", "CN=Example CA,O=Example", [], True, False),
])
def test_certificates_of_servers_and_of_participants(
        subject: str, issuer: str | None, names: list[str], server: bool,
        throwaway_cert: bool) -> None:
    from flowscan.verdict.endpoints import server_certificate, throwaway_certificate

    cert: dict[str, object] = {"subject": subject, "issuer": issuer or subject,
                               "dns_names": names}
    assert (server_certificate(cert) is not None) == server
    assert throwaway_certificate(cert) == throwaway_cert


def test_four_kinds_from_one_remote_are_not_fan_in(tmp_path: Path) -> None:
    """Audio, camera, screen share and a data-like stream, each its own payload type, with
    no companion in the sample to group: four groups, but one source of each kind, as one
    participant sends."""
    call = Call(DOC_A, DOC_B)
    call.ice()
    call.dtls(throwaway(), throwaway())
    phone_streams(call, False, [(0xA2, 111, 960), (0xB2, 96, 1800), (0xC2, 98, 1800),
                                (0xD2, 100, 1800)], rounds=2)
    flow = only_flow(flowscan.scan(call.write(tmp_path)))
    assert flow.details["rtp"].source_groups == {"server": 4}  # type: ignore[union-attr]
    assert "fan-in" not in signals(flow)
