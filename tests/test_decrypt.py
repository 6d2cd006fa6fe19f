"""Keys and decryption: RFC 3711 vectors, libsrtp as an independent implementation, and the
lab's calls decrypted with their keys (key log and Decryption Secrets Block alike)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
from pathlib import Path

import pytest

import flowscan
from flowscan.crypto import srtp
from flowscan.report.json import dumps

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"


def test_rfc3711_b3_key_derivation() -> None:
    key = bytes.fromhex("E1F97A0D3E018BE0D64FA32C06DE4139")
    salt = bytes.fromhex("0EC675AD498AFEEBB6960B3AABE6")
    assert srtp.kdf(key, salt, 0, 16).hex() == "c61e7a93744f39ee10734afe3ff7a087"
    assert srtp.kdf(key, salt, 1, 20).hex() == "cebe321f6ff7716b6fd4ab49af256a156d38baa4"
    assert srtp.kdf(key, salt, 2, 14).hex() == "30cbbc08863d8c85d49db34a9ae1"


def test_rfc3711_b2_aes_cm_keystream() -> None:
    stream = srtp._aes_ctr(bytes.fromhex("2B7E151628AED2A6ABF7158809CF4F3C"),
                           int("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000", 16), 48)
    assert stream.hex() == ("e03ead0935c95e80e166b16dd92b4eb4d23513162b02d0f72a43a2fe4a5f97ab"
                            "41e95b3bb0a2e8dd477901e4fca894c0")


@pytest.mark.parametrize("name", sorted(srtp.PROFILES))
def test_agrees_with_libsrtp_across_rollover_and_rtcp(name: str) -> None:
    pylibsrtp = pytest.importorskip("pylibsrtp")
    profile = srtp.PROFILES[name]
    ids = {"SRTP_AES128_CM_HMAC_SHA1_80": "SRTP_PROFILE_AES128_CM_SHA1_80",
           "SRTP_AES128_CM_HMAC_SHA1_32": "SRTP_PROFILE_AES128_CM_SHA1_32",
           "SRTP_AEAD_AES_128_GCM": "SRTP_PROFILE_AEAD_AES_128_GCM",
           "SRTP_AEAD_AES_256_GCM": "SRTP_PROFILE_AEAD_AES_256_GCM"}
    key = os.urandom(profile.key_len + profile.salt_len)
    policy = pylibsrtp.Policy(key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
                              srtp_profile=getattr(pylibsrtp.Policy, ids[name]))
    sender = pylibsrtp.Session(policy)
    ctx = srtp.SrtpContext(profile, key[:profile.key_len], key[profile.key_len:])
    for seq in [*range(65530, 65536), *range(0, 6)]:  # the rollover counter must advance
        plain = struct.pack(">BBHII", 0x80, 96, seq, seq * 960, 0xCAFE) + os.urandom(120)
        assert ctx.unprotect_rtp(sender.protect(plain)) == plain
    rtcp = struct.pack(">BBHI", 0x80, 200, 6, 0xCAFE) + os.urandom(20)
    assert ctx.unprotect_rtcp(sender.protect_rtcp(rtcp)) == rtcp
    damaged = bytearray(sender.protect(struct.pack(">BBHII", 0x80, 96, 6, 1, 0xCAFE) + b"x" * 50))
    damaged[20] ^= 1
    assert ctx.unprotect_rtp(bytes(damaged)) is None and ctx.failed == 1
    assert key.hex() not in repr(ctx)


def media(report: flowscan.api.Report) -> list:  # type: ignore[type-arg]
    return [f for f in report.flows if f.encryption is not None]


@pytest.mark.parametrize(("scenario", "verdict", "inner"), [
    ("p2p-webrtc", "end-to-end", "codec"),
    ("p2p-webrtc-turn", "end-to-end", "codec"),
    ("turn-tcp-chromium", "end-to-end", "codec"),  # ChannelData over TCP (RFC 6062)
    # The same inside TLS, opened with the key log; the lab re-sealed the TLS records
    # with the peer's public address inside (test_lab_rewrite_tls.py).
    ("turn-tls-chromium", "end-to-end", "codec"),
    ("rtpengine-webrtc-sip", "hop-by-hop", "codec"),  # the WebRTC leg, ends at rtpengine
    ("sfu-webrtc", "hop-by-hop", "codec"),
    ("sfu-webrtc-e2ee", "end-to-end", "sframe"),
])
@pytest.mark.parametrize("keys_from", ["keylog", "dsb"])
def test_lab_calls_decrypted_with_their_keys(scenario: str, verdict: str, inner: str,
                                             keys_from: str) -> None:
    folder = LAB / scenario
    if keys_from == "keylog":
        report = flowscan.scan(str(folder / "capture.pcapng"),
                               keylog=[str(folder / "keys.log")])
    else:  # the secrets travel inside the pcapng: no option needed
        report = flowscan.scan(str(folder / "capture-dsb.pcapng"))
    (flow,) = media(report)
    enc = flow.encryption
    assert (enc.verdict, enc.basis, enc.confidence) == (verdict, "decrypted", "high")
    assert enc.decryption.inner == inner and enc.decryption.tag_failures == 0
    assert enc.decryption.packets_decrypted > 100
    manifest = json.loads((folder / "manifest.json").read_text())
    truth = next(f["truth"]["decrypted"] for f in manifest["flows"] if f.get("kind") == "media")
    assert enc.verdict == truth["verdict"]
    secrets = {line.split()[2] for line in (folder / "keys.log").read_text().splitlines()}
    text = dumps([report])
    assert not any(secret in text for secret in secrets), "key material in the report"


def test_sdes_call_decrypts_from_the_sdp_alone() -> None:
    report = flowscan.scan(str(LAB / "sip-sdes-srtp" / "capture.pcapng"))
    rtp_flow = max(media(report), key=lambda f: f.bytes)
    enc = rtp_flow.encryption
    assert (enc.verdict, enc.basis, enc.decryption.inner) == ("keys-exposed", "decrypted",
                                                              "codec")
    assert "PCMU" in enc.decryption.inner_detail and enc.decryption.tag_failures == 0
    # baresip sends some RTCP (APP keepalives, the final SDES and BYE) with no SRTCP
    # protection at all: counted apart from tag failures, and a finding with the CNAMEs.
    rtcp_flow = next(f for f in media(report) if f.protocols == ("rtcp",))
    d = rtcp_flow.encryption.decryption
    assert (d.packets_decrypted, d.tag_failures, d.unprotected_rtcp) == (2, 0, 4)
    (finding,) = [f for f in report.findings if f.kind == "rtcp-in-clear"]
    assert finding.flows == [rtcp_flow.id] and "sip:alice@73.15.20.31" in finding.detail


def test_wrong_or_malformed_keylog_is_a_warning_and_analysis_goes_on(tmp_path: Path) -> None:
    other = LAB / "p2p-webrtc" / "keys.log"
    keylog = tmp_path / "keys.log"
    keylog.write_text(other.read_text() + "CLIENT_RANDOM not-hex secret\n")
    report = flowscan.scan(str(LAB / "sfu-webrtc" / "capture.pcapng"), keylog=[str(keylog)])
    (flow,) = media(report)
    assert flow.encryption.basis == "observed" and flow.encryption.verdict == "hop-by-hop"
    warnings = " ".join(report.capture.warnings)
    assert "hold no secret for the DTLS sessions" in warnings
    assert "line " in warnings and "not-hex" not in warnings and "secret" not in warnings.split(
        "hold no secret")[1]


def rtp_flow(report: flowscan.api.Report):  # type: ignore[no-untyped-def]
    """The SDES call's RTP flow (its RTCP, on port + 1, is a flow of its own)."""
    return max(media(report), key=lambda f: f.packets)


def _without_sip(tmp_path: Path) -> tuple[Path, list[str]]:
    """The SDES call with its SIP signalling removed, and the SDP bodies it carried."""
    from scapy.layers.inet import UDP
    from scapy.utils import rdpcap, wrpcap

    packets = rdpcap(str(LAB / "sip-sdes-srtp" / "capture.pcapng"))
    bodies, kept = [], []
    for packet in packets:
        payload = bytes(packet[UDP].payload) if UDP in packet else b""
        if b"SIP/2.0" in payload[:200]:
            _head, _, body = payload.partition(b"\r\n\r\n")
            if body.startswith(b"v=0"):
                bodies.append(body.decode())
            continue
        kept.append(packet)
    out = tmp_path / "media-only.pcap"
    wrpcap(str(out), kept)
    return out, bodies


def _inline_keys(bodies: list[str]) -> list[tuple[str | None, int, str]]:
    """(media address, port, 'SUITE:inline:...') for each SDP body."""
    from flowscan.protocols.sip import parse_sdp

    found = []
    for body in bodies:
        for m in parse_sdp(body):
            if m.crypto:
                found.append((m.address, m.port, f"{m.crypto[0].suite}:{m.crypto[0].key_params}"))
    return found


def test_sdes_keys_from_an_sdp_file_when_the_signalling_is_not_captured(tmp_path: Path
                                                                         ) -> None:
    capture, bodies = _without_sip(tmp_path)
    assert len({b for b in bodies}) >= 2, "offer and answer expected in the lab capture"
    plain = flowscan.scan(str(capture))
    flow = rtp_flow(plain)
    assert flow.encryption.basis == "observed" and flow.encryption.decryption is None
    sdp = tmp_path / "call.sdp"
    sdp.write_text("\r\n".join(bodies))  # offer and answer in one file: v= starts each
    report = flowscan.scan(str(capture), sdp=[str(sdp)])
    flow = rtp_flow(report)
    d = flow.encryption.decryption
    assert (flow.encryption.basis, d.inner, d.tag_failures) == ("decrypted", "codec", 0)
    assert d.packets_decrypted >= flow.packets - 4  # every RTP and RTCP packet but a few
    assert "call.sdp" in d.key_source
    text = dumps([report])
    assert not any(key.split("inline:")[1][:20] in text for *_, key in _inline_keys(bodies))


def test_srtp_keys_given_by_ssrc_or_by_sender_address(tmp_path: Path) -> None:
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    capture, bodies = _without_sip(tmp_path)
    keys = _inline_keys(bodies)
    ssrc_of: dict[tuple[str | None, int], int] = {}
    for packet in rdpcap(str(capture)):
        payload = bytes(packet[UDP].payload)
        if len(payload) > 12 and payload[1] & 0x7F < 72:  # RTP, not RTCP
            ssrc_of.setdefault((packet[IP].src, packet[UDP].sport),
                               struct.unpack("!I", payload[8:12])[0])
    by_ssrc = [f"{ssrc_of[(a, p)]:#010x}={key}" for a, p, key in keys]
    report = flowscan.scan(str(capture), srtp_key=by_ssrc)
    flow = rtp_flow(report)
    d = flow.encryption.decryption
    assert (d.inner, d.tag_failures) == ("codec", 0) and d.key_source.startswith("--srtp-key #")
    both = d.packets_decrypted
    address, port, key = keys[0]
    report = flowscan.scan(str(capture), srtp_key=[f"{address}:{port}={key}"])
    flow = rtp_flow(report)
    d = flow.encryption.decryption
    assert d.tag_failures == 0 and both * 0.4 < d.packets_decrypted < both * 0.6
    # The other party's key under the first party's SSRC: every tag fails, and it says so.
    wrong = f"{ssrc_of[(keys[0][0], keys[0][1])]:#010x}={keys[1][2]}"
    flow = rtp_flow(flowscan.scan(str(capture), srtp_key=[wrong]))
    d = flow.encryption.decryption
    assert d.packets_decrypted == 0 and d.tag_failures > 100


@pytest.mark.parametrize("spec", ["0x1234=AES_CM_128_HMAC_SHA1_80:inline:c2VjcmV0",
                                  "nohost=AES_CM_128_HMAC_SHA1_80:inline:" + "A" * 40,
                                  "0x12=NULL_CIPHER:inline:" + "A" * 40, "just-text"])
def test_bad_srtp_key_spec_is_a_usage_error_that_does_not_echo_the_key(spec: str) -> None:
    from flowscan.errors import UsageError

    with pytest.raises(UsageError) as caught:
        flowscan.scan(str(LAB / "sip-sdes-srtp" / "capture.pcapng"), srtp_key=[spec])
    message = str(caught.value)
    assert message.startswith("--srtp-key #1") and "c2VjcmV0" not in message
    assert "A" * 20 not in message


def test_decrypted_capture_holds_what_libsrtp_decrypts(tmp_path: Path) -> None:
    """`flowscan decrypt`'s capture against libsrtp decrypting the same packets."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    original = LAB / "sip-sdes-srtp" / "capture.pcapng"
    out = tmp_path / "clear.pcapng"
    report = flowscan.decrypt(str(original), str(out))
    assert not list(tmp_path.glob("*.part")) and not report.capture.warnings
    _, bodies = _without_sip(tmp_path)
    receivers = {}
    for address, port, key in _inline_keys(bodies):
        material = base64.b64decode(key.split("inline:")[1].split("|")[0])
        policy = pylibsrtp.Policy(key=material, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
                                  srtp_profile=pylibsrtp.Policy.SRTP_PROFILE_AES128_CM_SHA1_80)
        session = pylibsrtp.Session(policy)
        receivers[(address, port)] = session.unprotect
        receivers[(address, port + 1)] = session.unprotect_rtcp
    before, after = rdpcap(str(original)), rdpcap(str(out))
    assert len(before) == len(after)
    compared = 0
    for old, new in zip(before, after, strict=True):
        sender = (old[IP].src, old[UDP].sport) if UDP in old else None
        if sender not in receivers:
            assert bytes(old) == bytes(new)  # every other frame as it was
            continue
        try:
            clear = receivers[sender](bytes(old[UDP].payload))
        except pylibsrtp.Error:  # baresip's RTCP keepalives and BYE go in the clear
            assert bytes(old) == bytes(new)
            continue
        assert bytes(new[UDP].payload) == clear
        trimmed = len(old[UDP].payload) - len(clear)  # the tag (and SRTCP index)
        assert trimmed in (10, 14)
        assert new[IP].len == old[IP].len - trimmed and new[UDP].len == old[UDP].len - trimmed
        compared += 1
    decrypted = sum(f.encryption.decryption.packets_decrypted for f in media(report))
    assert compared == decrypted > 490
    head = out.read_bytes()[:4096]
    header = head[:struct.unpack("<I", head[4:8])[0]]  # the section header and its comment
    assert b"flowscan" in header and b"SHA-256" in header
    assert not any(key.split("inline:")[1][:16].encode() in header
                   for *_, key in _inline_keys(bodies))


def _tshark_fields(capture: Path, display_filter: str, *fields: str) -> list[str]:
    import subprocess

    args = ["tshark", "-r", str(capture), "-o", "ip.check_checksum:TRUE", "-o",
            "udp.check_checksum:TRUE", "-Y", display_filter, "-T", "fields"]
    for name in fields:
        args += ["-e", name]
    result = subprocess.run(args, capture_output=True, text=True, check=True)
    return [line for line in result.stdout.split("\n") if line]


def test_decrypted_capture_from_a_keylog_shows_the_codec_to_tshark(tmp_path: Path) -> None:
    """The p2p call decrypted with the DTLS key log: VP8 key frames appear in the clear
    (start code 9d 01 2a, RFC 6386 section 9.1), and tshark finds every IP checksum good."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    folder = LAB / "p2p-webrtc"
    out = tmp_path / "clear.pcapng"
    report = flowscan.decrypt(str(folder / "capture.pcapng"), str(out),
                              keylog=[str(folder / "keys.log")])
    (flow,) = media(report)
    assert flow.encryption.decryption.packets_decrypted > 400
    keyframes = "udp contains 9d:01:2a"
    assert _tshark_fields(folder / "capture.pcapng", keyframes, "frame.number") == []
    assert len(_tshark_fields(out, keyframes, "frame.number")) >= 2
    statuses = _tshark_fields(out, "udp", "ip.checksum.status", "udp.checksum.status")
    assert len(statuses) >= flow.packets
    assert all(line.split("\t")[0] == "1" and line.split("\t")[1] in "13" for line in statuses)


def _block_types(capture: Path) -> list[int]:
    """The pcapng block types in a little-endian file, in order."""
    data, pos, kinds = capture.read_bytes(), 0, []
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<II", data[pos:pos + 8])
        kinds.append(kind)
        pos += length
    return kinds


def test_decrypt_command_with_the_capture_own_secrets_writes_none_of_them(tmp_path: Path
                                                                         ) -> None:
    import subprocess
    import sys

    source = LAB / "sfu-webrtc-e2ee" / "capture-dsb.pcapng"
    assert 0x0000000A in _block_types(source)  # the lab capture carries its secrets
    out = tmp_path / "clear.pcapng"
    done = subprocess.run([sys.executable, "-m", "flowscan", "decrypt", str(source), "-o",
                           str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "inside: sframe" in done.stdout and "0 failed authentication" in done.stdout
    assert 0x0000000A not in _block_types(out)
    secrets = [line.split()[2] for line in
               (LAB / "sfu-webrtc-e2ee" / "keys.log").read_text().splitlines()]
    written = out.read_bytes()
    assert not any(bytes.fromhex(s) in written or s.encode() in written for s in secrets)
    # Without keys: exit 1 and a message saying why; no key, no file left half-written.
    plain = subprocess.run([sys.executable, "-m", "flowscan", "decrypt",
                            str(LAB / "sfu-webrtc" / "capture.pcapng"), "-o",
                            str(tmp_path / "none.pcapng")], capture_output=True, text=True)
    assert plain.returncode == 1 and "nothing was decrypted" in plain.stderr
    assert not list(tmp_path.glob("*.part"))


def test_decrypted_report_matches_the_schema() -> None:
    from importlib import resources

    import jsonschema

    folder = LAB / "sfu-webrtc"
    report = flowscan.scan(str(folder / "capture.pcapng"), keylog=[str(folder / "keys.log")])
    document = json.loads(dumps([report]))  # one report: one object
    (flow,) = [f for f in document["flows"] if (f["encryption"] or {}).get("decryption")]
    assert flow["encryption"]["decryption"]["inner"] == "codec"
    schema = json.loads(resources.files("flowscan.report").joinpath("schema.json").read_text())
    jsonschema.validate(document, schema)


def _dtls_pair(cipher: bytes, profile: bytes):  # type: ignore[no-untyped-def]
    """A DTLS 1.2 handshake between two OpenSSL endpoints in memory, with use_srtp."""
    from OpenSSL import SSL
    from openssl_pair import handshake, self_signed

    key, cert = self_signed()
    ends = []
    for server in (False, True):
        ctx = SSL.Context(SSL.DTLS_METHOD)
        ctx.set_cipher_list(cipher)
        ctx.set_tlsext_use_srtp(profile)
        ctx.set_verify(SSL.VERIFY_NONE, lambda *_: True)
        if server:
            ctx.use_privatekey(key)
            ctx.use_certificate(cert)
        end = SSL.Connection(ctx, None)
        end.set_accept_state() if server else end.set_connect_state()
        ends.append(end)
    handshake(ends[0], ends[1])
    return ends[0]


@pytest.mark.parametrize(("cipher", "suite", "profile"), [
    (b"ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B, "SRTP_AES128_CM_HMAC_SHA1_80"),
    (b"ECDHE-ECDSA-AES256-GCM-SHA384", 0xC02C, "SRTP_AEAD_AES_256_GCM"),
    (b"ECDHE-ECDSA-AES128-GCM-SHA256", 0xC02B, "SRTP_AEAD_AES_128_GCM"),
])
def test_dtls_srtp_keys_match_what_openssl_exports(cipher: bytes, suite: int, profile: str
                                                   ) -> None:
    """RFC 5764 section 4.2 keying from the master secret, against OpenSSL's own exporter
    (the stack aiortc uses), over a real handshake with each PRF hash."""
    pytest.importorskip("OpenSSL")
    from flowscan.crypto import dtls_srtp

    names = {"SRTP_AES128_CM_HMAC_SHA1_80": b"SRTP_AES128_CM_SHA1_80"}
    client = _dtls_pair(cipher, names.get(profile, profile.encode()))
    assert client.get_selected_srtp_profile() == names.get(profile, profile.encode())
    p = srtp.PROFILES[profile]
    material = client.export_keying_material(dtls_srtp.LABEL, 2 * (p.key_len + p.salt_len))
    k, s = p.key_len, p.salt_len
    exported = (srtp.SrtpContext(p, material[:k], material[2 * k:2 * k + s]),
                srtp.SrtpContext(p, material[k:2 * k], material[2 * k + s:]))
    ours = dtls_srtp.srtp_contexts(client.master_key(), client.client_random(),
                                   client.server_random(), profile, suite)
    assert [c.fingerprint for c in ours] == [c.fingerprint for c in exported]
    assert ours[0].fingerprint != ours[1].fingerprint


LIBSRTP_PROFILES = {"SRTP_AES128_CM_HMAC_SHA1_80": "SRTP_PROFILE_AES128_CM_SHA1_80",
                    "SRTP_AES128_CM_HMAC_SHA1_32": "SRTP_PROFILE_AES128_CM_SHA1_32",
                    "SRTP_AEAD_AES_128_GCM": "SRTP_PROFILE_AEAD_AES_128_GCM",
                    "SRTP_AEAD_AES_256_GCM": "SRTP_PROFILE_AEAD_AES_256_GCM"}


@pytest.mark.parametrize("scenario", ["p2p-webrtc", "sfu-webrtc", "sfu-webrtc-e2ee"])
def test_lab_dtls_calls_decrypt_as_libsrtp_decrypts_them(scenario: str, tmp_path: Path
                                                         ) -> None:
    """The keys derived from the key log, handed to libsrtp: every packet flowscan writes in
    the clear is what libsrtp makes of the captured one."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    from flowscan.crypto import dtls_srtp

    folder = LAB / scenario
    out = tmp_path / "clear.pcapng"
    report = flowscan.decrypt(str(folder / "capture.pcapng"), str(out),
                              keylog=[str(folder / "keys.log")])
    (flow,) = [f for f in report.flows if f.encryption and f.encryption.decryption]
    assert flow.encryption is not None and flow.encryption.decryption is not None
    hs = flow.details["dtls"]
    secrets = {line.split()[1]: bytes.fromhex(line.split()[2])
               for line in (folder / "keys.log").read_text().splitlines()}
    p = srtp.PROFILES[hs.srtp_profile]
    k, s = p.key_len, p.salt_len
    material = dtls_srtp.prf(secrets[hs.client_random], dtls_srtp.LABEL,
                             bytes.fromhex(hs.client_random) + bytes.fromhex(hs.server_random),
                             2 * (k + s), int(hs.cipher_suite, 16) in dtls_srtp.SHA384_SUITES)
    client_key = material[:k] + material[2 * k:2 * k + s]
    server_key = material[k:2 * k] + material[2 * k + s:]
    dtls_client = flow.client if hs.dtls_client == "client" else flow.server
    receivers = {}
    for end in (flow.client, flow.server):
        key = client_key if end == dtls_client else server_key
        receivers[(end.ip, end.port)] = pylibsrtp.Session(pylibsrtp.Policy(
            key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_INBOUND,
            srtp_profile=getattr(pylibsrtp.Policy, LIBSRTP_PROFILES[hs.srtp_profile])))
    compared = 0
    for old, new in zip(rdpcap(str(folder / "capture.pcapng")), rdpcap(str(out)), strict=True):
        if UDP not in old or (old[IP].src, old[UDP].sport) not in receivers:
            continue
        payload = bytes(old[UDP].payload)
        if not payload or not 128 <= payload[0] <= 191:
            assert bytes(old) == bytes(new)  # STUN, DTLS: as they were
            continue
        session = receivers[(old[IP].src, old[UDP].sport)]
        clear = (session.unprotect_rtcp if 192 <= payload[1] <= 223 else session.unprotect)(
            payload)
        assert bytes(new[UDP].payload) == clear
        compared += 1
    assert compared == flow.encryption.decryption.packets_decrypted > 100


def test_tunnelled_call_decrypts_to_the_same_clear_packets(tmp_path: Path) -> None:
    """The lab call inside VXLAN, behind a VLAN tag: the written capture holds the same
    clear RTP/RTCP as the plain call's, with the outer lengths and checksums fixed."""
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Dot1Q, Ether
    from scapy.layers.vxlan import VXLAN
    from scapy.utils import rdpcap, wrpcap

    folder = LAB / "p2p-webrtc"
    plain = rdpcap(str(folder / "capture.pcapng"))
    wrapped = []
    for packet in plain:
        outer = (Ether() / Dot1Q(vlan=300) / IP(src="10.9.0.1", dst="10.9.0.2")
                 / UDP(sport=50001, dport=4789) / VXLAN(vni=5) / packet)
        outer.time = packet.time
        wrapped.append(outer)
    tunnelled = tmp_path / "vxlan.pcap"
    wrpcap(str(tunnelled), wrapped)
    keys = [str(folder / "keys.log")]
    report = flowscan.decrypt(str(tunnelled), str(tmp_path / "t.pcapng"), keylog=keys)
    flowscan.decrypt(str(folder / "capture.pcapng"), str(tmp_path / "p.pcapng"), keylog=keys)
    assert not any("fragments" in w for w in report.capture.warnings)
    ours = rdpcap(str(tmp_path / "t.pcapng"))
    theirs = rdpcap(str(tmp_path / "p.pcapng"))
    assert len(ours) == len(theirs)
    changed = 0
    for t, p, original in zip(ours, theirs, plain, strict=True):
        assert bytes(t[VXLAN].payload) == bytes(p)
        outer_ip, outer_udp = t[IP], t[UDP]
        assert outer_ip.len == len(outer_ip) and outer_udp.len == len(outer_udp)
        rebuilt = outer_ip.copy()
        rebuilt.chksum = None
        assert IP(bytes(rebuilt)).chksum == outer_ip.chksum  # the header checksum holds
        changed += bytes(p) != bytes(original)
    assert changed == report_decrypted(report) > 100


def report_decrypted(report: flowscan.api.Report) -> int:
    return sum(f.encryption.decryption.packets_decrypted for f in report.flows
               if f.encryption and f.encryption.decryption)


@pytest.mark.parametrize(("params", "mki"), [
    ("|2^20|1:4", b"\0\0\0\x01"), ("|7:1", b"\x07"), ("|2^31", b""), ("", b""),
    ("|2^20|1:4;inline:QUJD|2^20|2:4", b"\0\0\0\x01"), ("|1:0", None), ("|300:1", None),
    ("|1:200", None), ("|x:4", None)])
def test_sdes_key_params_with_lifetime_and_mki(params: str, mki: bytes | None) -> None:
    from flowscan.crypto.keys import sdes_key

    material = base64.b64encode(bytes(range(30))).decode()
    key = sdes_key("AES_CM_128_HMAC_SHA1_80", f"inline:{material}{params}", "test")
    if mki is None:
        assert key is None
    else:
        assert key is not None and key.mki == mki and key.master_key == bytes(range(16))


@pytest.mark.parametrize("name", sorted(srtp.PROFILES))
def test_mki_before_the_tag_or_last_with_gcm(name: str) -> None:
    """libsrtp protects; the MKI goes where RFC 3711 section 3.1 (before the HMAC tag, not
    authenticated) or RFC 7714 section 8 (after the AES-GCM tag) has it."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    profile = srtp.PROFILES[name]
    key = os.urandom(profile.key_len + profile.salt_len)
    sender = pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=getattr(pylibsrtp.Policy, LIBSRTP_PROFILES[name])))
    mki = b"\x00\x00\x00\x2a"
    ctx = srtp.SrtpContext(profile, key[:profile.key_len], key[profile.key_len:], mki)

    def with_mki(packet: bytes, tag_len: int, value: bytes = mki) -> bytes:
        at = len(packet) if profile.aead else len(packet) - tag_len
        return packet[:at] + value + packet[at:]

    for seq in range(5):
        plain = struct.pack(">BBHII", 0x80, 96, seq, seq * 960, 0xCAFE) + os.urandom(100)
        assert ctx.unprotect_rtp(with_mki(sender.protect(plain), profile.tag_len)) == plain
    rtcp = struct.pack(">BBHI", 0x80, 200, 6, 0xCAFE) + os.urandom(20)
    protected = sender.protect_rtcp(rtcp)
    assert ctx.unprotect_rtcp(with_mki(protected, 16 if profile.aead else 10)) == rtcp
    other = sender.protect(struct.pack(">BBHII", 0x80, 96, 9, 1, 0xCAFE) + b"x" * 50)
    assert ctx.unprotect_rtp(with_mki(other, profile.tag_len, b"\0\0\0\x2b")) is None
    assert ctx.unprotect_rtp(other) is None and ctx.failed == 2


@pytest.mark.parametrize("name", ["SRTP_AES128_CM_HMAC_SHA1_80", "SRTP_AEAD_AES_128_GCM"])
def test_several_sdes_keys_are_told_apart_by_mki(name: str) -> None:
    """An a=crypto line with two master keys (RFC 4568 section 6.1): the sender rekeys mid
    call, and each packet's MKI names its key; libsrtp protects with each key in turn."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    from flowscan.crypto.keys import sdes_key

    profile = srtp.PROFILES[name]
    suite = next(s for s, p in srtp.SDES_SUITES.items() if p == name)
    materials = [os.urandom(profile.key_len + profile.salt_len) for _ in range(2)]
    params = ";".join(f"inline:{base64.b64encode(m).decode()}|2^31|{i + 1}:2"
                      for i, m in enumerate(materials))
    key = sdes_key(suite, params, "test")
    assert key is not None and key.mki == b"\0\x01" and len(key.more) == 1
    ctx = key.context()
    senders = [pylibsrtp.Session(pylibsrtp.Policy(
        key=m, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=getattr(pylibsrtp.Policy, LIBSRTP_PROFILES[name]))) for m in materials]

    def with_mki(packet: bytes, tag_len: int, value: bytes) -> bytes:
        at = len(packet) if profile.aead else len(packet) - tag_len
        return packet[:at] + value + packet[at:]

    for seq in range(10):
        which = seq // 5  # the first five packets under key 1, the rest under key 2
        plain = struct.pack(">BBHII", 0x80, 96, seq, seq * 960, 0xCAFE) + os.urandom(60)
        protected = senders[which].protect(plain)
        assert ctx.unprotect_rtp(with_mki(protected, profile.tag_len,
                                          bytes([0, which + 1]))) == plain
    rtcp = struct.pack(">BBHI", 0x80, 200, 6, 0xCAFE) + os.urandom(20)
    protected = senders[1].protect_rtcp(rtcp)
    assert ctx.unprotect_rtcp(with_mki(protected, 16 if profile.aead else 10, b"\0\x02")) \
        == rtcp
    stray = senders[1].protect(struct.pack(">BBHII", 0x80, 96, 10, 1, 0xCAFE) + b"x" * 40)
    assert ctx.unprotect_rtp(with_mki(stray, profile.tag_len, b"\0\x03")) is None
    assert ctx.decrypted == 11 and ctx.failed == 1


@pytest.mark.parametrize("second", ["|2^31", "|2^31|2:4", "|2^31|9:2;inline:!!"])
def test_extra_sdes_keys_without_matching_mki_are_left_out(second: str) -> None:
    """Without an MKI of one length on every key, packets could not name their key: the
    first key alone is used, as before."""
    from flowscan.crypto.keys import sdes_key

    material = base64.b64encode(bytes(range(30))).decode()
    key = sdes_key("AES_CM_128_HMAC_SHA1_80",
                   f"inline:{material}|2^31|1:2;inline:{material}{second}", "test")
    assert key is not None and key.mki == b"\0\x01" and key.more == ()


def test_rtpengine_decrypts_with_the_keys_rtpengine_logged() -> None:
    """The SRTP keys rtpengine itself logged (--log-srtp-keys) open the WebRTC leg as the
    keys flowscan derives from the participant's DTLS key log do: each of its two keys
    opens one direction, every packet, no tag failing; the SIP leg at the relay stays
    plaintext with every key."""
    folder = LAB / "rtpengine-webrtc-sip"
    manifest = json.loads((folder / "manifest.json").read_text())
    (leg,) = [f for f in manifest["flows"] if f.get("kind") == "media"]
    alice, relay = sorted(leg["endpoints"], key=lambda e: e.startswith(
        manifest["hosts"]["relay"]["address"] + ":"))
    logged = {}
    for line in (folder / "rtpengine-srtp-keys.txt").read_text().splitlines():
        direction, suite, key, salt = line.split()
        logged[direction] = (f"{suite}:inline:"
                             + base64.b64encode(base64.b64decode(key) + base64.b64decode(salt))
                             .decode())
    assert sorted(logged) == ["incoming", "outgoing"]
    outcomes = {}
    for alice_key, relay_key in (("incoming", "outgoing"), ("outgoing", "incoming")):
        report = flowscan.scan(str(folder / "capture.pcapng"), srtp_key=[
            f"{alice}={logged[alice_key]}", f"{relay}={logged[relay_key]}"])
        (flow,) = media(report)
        dec = flow.encryption.decryption
        outcomes[alice_key] = (dec.packets_decrypted, dec.tag_failures, dec.inner)
    total = sum(leg["packets"]) - 20  # the ICE checks and the DTLS handshake are no SRTP
    opened = [k for k, (n, failed, inner) in outcomes.items()
              if n > total * 0.9 and not failed and inner == "codec"]
    # As rtpengine 10.5 labels them, the key alice sends with is logged as "outgoing" (by
    # the stream it is attached to in rtpengine, not by who sends with it).
    assert opened == ["outgoing"], outcomes
    at_relay = flowscan.scan(str(folder / "capture-relay-dsb.pcapng"))
    verdicts = sorted((f.encryption.verdict, f.encryption.basis) for f in media(at_relay))
    assert verdicts == [("hop-by-hop", "decrypted"), ("plaintext", "observed"),
                        ("plaintext", "observed")]

