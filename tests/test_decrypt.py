"""Keys and decryption: RFC 3711 vectors, libsrtp as an independent implementation, and the
lab's calls decrypted with their keys (key log and Decryption Secrets Block alike)."""

from __future__ import annotations

import json
import os
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
