"""Encryption verdicts from traffic alone, on the shared real captures and on crafted calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from capfiles import ether, pcap
from conftest import REAL_CAPTURES, real_capture
from packets import (
    dtls_client_hello,
    dtls_encrypted,
    dtls_server_hello,
    ice_check,
    ice_response,
    srtp_like,
)
from scapy.layers.inet import IP, UDP

import flowscan
from flowscan.report.json import dumps
from flowscan.report.model import Flow, Report


def flows_to(report: Report, ip: str, port: int | None = None) -> list[Flow]:
    return [f for f in report.flows if (f.server.ip == ip and port in (None, f.server.port))
            or (f.client.ip == ip and port in (None, f.client.port))]


def verdict(flow: Flow) -> tuple[str, str, str]:
    assert flow.encryption is not None, flow
    assert flow.encryption.evidence, "every verdict names its evidence"
    return flow.encryption.verdict, flow.encryption.termination, flow.encryption.key_exchange


def test_zoom_media_to_the_multimedia_router_is_hop_by_hop() -> None:
    report = flowscan.scan(str(real_capture("zoom.pcap")))
    plain = flows_to(report, "109.94.160.99", 8801)
    tunnelled = flows_to(report, "193.122.35.237", 8801)
    assert len(plain) == 3 and len(tunnelled) == 1
    assert tunnelled[0].encapsulation[-1] == "gtp-u"
    for flow in plain + tunnelled:
        assert verdict(flow) == ("hop-by-hop", "server", "proprietary")
        assert flow.encryption is not None and flow.encryption.confidence == "medium"
        assert "inner-layer" in [e.signal for e in flow.encryption.evidence]


def test_zoom_peer_to_peer_media_is_unverified_at_the_peer() -> None:
    report = flowscan.scan(str(real_capture("zoom_p2p.pcapng")))
    (media,) = flows_to(report, "192.168.1.226", 46757)
    assert verdict(media) == ("encrypted-unverified", "peer", "proprietary")


@pytest.mark.parametrize(("name", "server"), [
    ("stun_google_meet.pcapng", "142.250.82.76"),
    ("stun_google_meet.pcapng", "2001:4860:4864:6::81"),
    ("stun_dtls_rtp.pcapng", "142.250.82.76"),
])
def test_dtls_srtp_to_google_media_servers_is_hop_by_hop(name: str, server: str) -> None:
    report = flowscan.scan(str(real_capture(name)))
    (media,) = [f for f in flows_to(report, server, 19305) if f.encryption]
    assert verdict(media) == ("hop-by-hop", "server", "dtls-srtp")
    assert "ice-lite" in [e.signal for e in media.encryption.evidence]  # type: ignore[union-attr]


def test_sip_and_plain_rtp_are_plaintext() -> None:
    sip = flowscan.scan(str(real_capture("sip.pcap")))
    for port in (40392, 40393):
        (flow,) = flows_to(sip, "212.242.33.36", port)
        assert verdict(flow) == ("plaintext", "unknown", "none")
    assert [f.kind for f in sip.findings] == ["plaintext-media"]
    rtp = flowscan.scan(str(real_capture("rtp.pcapng")))
    for ip, port in (("10.204.220.171", 6000), ("148.153.85.97", 6008)):
        (flow,) = flows_to(rtp, ip, port)
        assert verdict(flow)[0] == "plaintext"
    # The capture also holds a Discord voice flow, whose payloads are ciphertext.
    (discord,) = flows_to(rtp, "192.113.193.227", 50003)
    assert verdict(discord) == ("hop-by-hop", "server", "proprietary")


def test_whatsapp_relayed_media_ends_at_the_relay_never_end_to_end() -> None:
    report = flowscan.scan(str(real_capture("stun_wa_call.pcapng")))
    relayed = [f for f in report.flows if f.encryption and f.server.port == 3478]
    assert relayed
    for flow in relayed:
        assert verdict(flow)[:2] == ("encrypted-unverified", "relay")
    (direct,) = flows_to(report, "93.33.118.87", 41107)
    assert verdict(direct) == ("encrypted-unverified", "peer", "proprietary")


@pytest.mark.parametrize("path", REAL_CAPTURES or [None], ids=lambda p: p.name if p else "-")
def test_no_shared_capture_is_called_end_to_end(path: Path | None) -> None:
    """None of the shared captures shows the positive evidence end-to-end needs."""
    if path is None:
        pytest.skip("shared real captures not present")
    report = flowscan.scan(str(path))
    assert not [f.id for f in report.flows if f.encryption and
                f.encryption.verdict == "end-to-end"]
    for flow in report.flows:
        if flow.encryption is not None:
            assert flow.encryption.evidence and flow.encryption.basis == "observed"
            assert flow.encryption.session is not None


A, B = "192.0.2.10", "198.51.100.77"


def webrtc_call(tmp_path: Path, *, remote_checks: bool, a: str = A, b: str = B) -> str:
    """ICE, DTLS-SRTP (no SNI, as WebRTC endpoints send none) and SRTP between a:40000 and
    b:50000."""
    A, B = a, b  # the frames below name the two ends as the module does
    def frame(src: str, dst: str, sp: int, dp: int, payload: bytes) -> bytes:
        return bytes(ether() / IP(src=src, dst=dst) / UDP(sport=sp, dport=dp) / payload)

    out, t = [], 1.0
    for i in range(3):
        tx = bytes([i]) * 12
        out.append((t, frame(A, B, 40000, 50000, ice_check(tx, controlling=True))))
        out.append((t + 0.01, frame(B, A, 50000, 40000, ice_response(tx))))
        if remote_checks:
            tx2 = bytes([0x40 + i]) * 12
            out.append((t + 0.02, frame(B, A, 50000, 40000, ice_check(tx2, controlling=False))))
            out.append((t + 0.03, frame(A, B, 40000, 50000, ice_response(tx2))))
        t += 0.05
    out.append((t, frame(A, B, 40000, 50000, dtls_client_hello(b""))))
    out.append((t + 0.01, frame(B, A, 50000, 40000, dtls_server_hello())))
    for i in range(3):
        out.append((t + 0.02 + i / 100, frame(A, B, 40000, 50000, dtls_encrypted(i + 1))))
        out.append((t + 0.03 + i / 100, frame(B, A, 50000, 40000, dtls_encrypted(i + 1))))
    for i in range(12):
        out.append((t + 0.1 + i * 0.02, frame(A, B, 40000, 50000, srtp_like(i, 0x1111))))
        out.append((t + 0.11 + i * 0.02, frame(B, A, 50000, 40000, srtp_like(i, 0x2222))))
    path = tmp_path / "call.pcap"
    path.write_bytes(pcap(out))
    return str(path)


def test_full_ice_dtls_srtp_between_participants_is_end_to_end(tmp_path: Path) -> None:
    """Full ICE alone is not enough (media servers run it too, issue 17): both ends here
    are on residential networks (Rogers, Vodafone), which is the positive evidence."""
    report = flowscan.scan(webrtc_call(tmp_path, remote_checks=True, a="24.114.20.10",
                                       b="91.64.10.20"))
    (flow,) = report.flows
    assert verdict(flow) == ("end-to-end", "peer", "dtls-srtp")
    assert flow.encryption is not None and flow.encryption.confidence == "medium"
    assert {"dtls-srtp", "ice-full", "access-networks", "no-server-signal"} <= {
        e.signal for e in flow.encryption.evidence}


def test_full_ice_alone_is_encrypted_unverified(tmp_path: Path) -> None:
    report = flowscan.scan(webrtc_call(tmp_path, remote_checks=True))
    (flow,) = report.flows
    assert verdict(flow) == ("encrypted-unverified", "unknown", "dtls-srtp")


def test_remote_that_only_answers_checks_makes_it_hop_by_hop(tmp_path: Path) -> None:
    report = flowscan.scan(webrtc_call(tmp_path, remote_checks=False))
    (flow,) = report.flows
    assert verdict(flow) == ("hop-by-hop", "server", "dtls-srtp")
    assert flow.encryption is not None
    assert "cannot be excluded" in flow.encryption.evidence[-1].detail


def test_sdes_keys_in_clear_sip_expose_the_media(tmp_path: Path) -> None:
    key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
    sdp = ("v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
           "m=audio 40000 RTP/SAVP 0\r\n"
           f"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{key}|2^20|1:32\r\n").encode()
    invite = (b"INVITE sip:bob@example.com SIP/2.0\r\nCall-ID: c1@example.com\r\n"
              b"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: "
              + str(len(sdp)).encode() + b"\r\n\r\n" + sdp)
    frames = [(1.0, bytes(ether() / IP(src=A, dst=B) / UDP(sport=5060, dport=5060) / invite))]
    for i in range(10):
        frames.append((2 + i / 50, bytes(ether() / IP(src=B, dst=A) / UDP(
            sport=50000, dport=40000) / srtp_like(i, 0x3333, pt=0))))
    path = tmp_path / "sdes.pcap"
    path.write_bytes(pcap(frames))
    report = flowscan.scan(str(path))
    (media,) = [f for f in report.flows if f.encryption]
    assert verdict(media) == ("keys-exposed", "unknown", "sdes")
    assert report.findings[0].kind == "keys-exposed-media"
    text = dumps([report])
    assert key not in text and key[:12] not in text


def test_srtcp_trailer_is_evidence_in_the_sfu_call() -> None:
    """The lab's SFU call (aiortc, AES-GCM SRTCP): the trailer index counting up is named."""
    capture = Path(__file__).resolve().parent.parent / "captures/lab/sfu-webrtc/capture.pcapng"
    (flow,) = [f for f in flowscan.scan(str(capture)).flows if f.encryption]
    assert flow.encryption is not None
    kinds = {e.signal: e.detail for e in flow.encryption.evidence}
    assert "aead layout" in kinds["srtcp-trailer"] and "index 1 then 2" in kinds["srtcp-trailer"]
    plain = Path(__file__).resolve().parent.parent / "captures/lab/sip-rtp-plain/capture.pcapng"
    assert not any(e.signal == "srtcp-trailer" for f in flowscan.scan(str(plain)).flows
                   if f.encryption for e in f.encryption.evidence)


@pytest.mark.parametrize(("scenario", "path"), [
    ("p2p-webrtc-turn", "via a relay that only forwards; encryption ends at the peer behind it"),
    ("sfu-webrtc", "encryption ends at a service's server"),
    ("p2p-webrtc", "encryption ends at the other participant"),
])
def test_session_summary_says_where_encryption_ends(scenario: str, path: str) -> None:
    """A relayed end-to-end call passes a relay; its summary must not read as if the
    encryption ended there."""
    lab = Path(__file__).resolve().parent.parent / "captures" / "lab" / scenario
    (session,) = flowscan.scan(str(lab / "capture.pcapng")).sessions
    assert f"; {path})" in session.summary
    assert "ends at relay" not in session.summary
