"""DTLS 1.3 keying: the TLS 1.3 exporter checked against OpenSSL, and a DTLS 1.3 call whose
SRTP profile is hidden in the encrypted extensions, decrypted from the key log's
EXPORTER_SECRET and checked against libsrtp."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from capfiles import ether, pcap
from packets import dtls13_ciphertext, dtls13_client_hello, dtls13_server_hello
from scapy.layers.inet import IP, UDP

import flowscan
from flowscan.crypto import dtls_srtp, srtp
from flowscan.protocols.dtls import DtlsSide
from flowscan.report.json import dumps


def _tls13_pair(suite: bytes):  # type: ignore[no-untyped-def]
    """A TLS 1.3 handshake between two OpenSSL endpoints in memory; the client's key log."""
    from OpenSSL import SSL
    from openssl_pair import handshake, self_signed

    key, cert = self_signed()
    lines: list[bytes] = []
    ends = []
    for server in (False, True):
        ctx = SSL.Context(SSL.TLS_METHOD)
        ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
        ctx.set_tls13_ciphersuites(suite)
        if server:
            ctx.use_privatekey(key)
            ctx.use_certificate(cert)
        else:
            ctx.set_keylog_callback(lambda _conn, line: lines.append(line))
        end = SSL.Connection(ctx, None)
        end.set_accept_state() if server else end.set_connect_state()
        ends.append(end)
    handshake(ends[0], ends[1])
    return ends[0], lines


@pytest.mark.parametrize(("suite", "sha384"), [(b"TLS_AES_128_GCM_SHA256", False),
                                                (b"TLS_AES_256_GCM_SHA384", True),
                                                (b"TLS_CHACHA20_POLY1305_SHA256", False)])
def test_tls13_exporter_matches_openssl(suite: bytes, sha384: bool) -> None:
    """RFC 8446 section 7.5 from the key log's EXPORTER_SECRET, against OpenSSL's
    export_keying_material over a real handshake. DTLS 1.3 differs only in the label prefix
    (RFC 9147 section 5.9), which no local DTLS 1.3 stack can check."""
    pytest.importorskip("OpenSSL")
    client, lines = _tls13_pair(suite)
    assert client.get_cipher_name() == suite.decode()
    (secret,) = [bytes.fromhex(line.split()[2].decode()) for line in lines
                 if line.startswith(b"EXPORTER_SECRET ")]
    for label, context, length in ((dtls_srtp.LABEL, None, 60), (b"flowscan", b"ctx", 88)):
        ours = dtls_srtp.exporter13(secret, label, context or b"", length, sha384,
                                    prefix=b"tls13 ")
        assert ours == client.export_keying_material(label, length, context)
    dtls = dtls_srtp.exporter13(secret, dtls_srtp.LABEL, b"", 60, sha384)
    assert dtls != client.export_keying_material(dtls_srtp.LABEL, 60)  # "dtls13" prefix


A, B = ("192.0.2.10", 40000), ("198.51.100.77", 50000)
CLIENT_RANDOM, SERVER_RANDOM = bytes(range(32)), bytes(range(32, 64))
OFFERED = [0x0001, 0x0007]  # AES128_CM_HMAC_SHA1_80, then AEAD_AES_128_GCM
CHOSEN = "SRTP_AEAD_AES_128_GCM"
LIBSRTP = {"SRTP_AEAD_AES_128_GCM": "SRTP_PROFILE_AEAD_AES_128_GCM"}


def _rtp(seq: int, ssrc: int) -> bytes:
    return (bytes([0x80, 111]) + seq.to_bytes(2, "big") + (seq * 960).to_bytes(4, "big")
            + ssrc.to_bytes(4, "big") + os.urandom(120))


def dtls13_call(tmp_path: Path, mki: bytes = b"", suite: int = 0x1301,
                server_hello: bool = True) -> tuple[Path, Path, list[bytes]]:
    """A DTLS 1.3 handshake, then SRTP from both ends protected by libsrtp with the keys
    RFC 5764 section 4.2 derives from the exporter secret for the second offered profile."""
    pylibsrtp = pytest.importorskip("pylibsrtp")
    exporter = os.urandom(32)
    material = dtls_srtp.exporter13(exporter, dtls_srtp.LABEL, b"",
                                    dtls_srtp.material_length(CHOSEN), suite == 0x1302)
    p = srtp.PROFILES[CHOSEN]
    k, s = p.key_len, p.salt_len
    keys = {A: material[:k] + material[2 * k:2 * k + s],  # A sent the ClientHello
            B: material[k:2 * k] + material[2 * k + s:]}
    senders = {end: pylibsrtp.Session(pylibsrtp.Policy(
        key=key, ssrc_type=pylibsrtp.Policy.SSRC_ANY_OUTBOUND,
        srtp_profile=getattr(pylibsrtp.Policy, LIBSRTP[CHOSEN]))) for end, key in keys.items()}

    def frame(src: tuple[str, int], payload: bytes) -> bytes:
        dst = B if src == A else A
        return bytes(ether() / IP(src=src[0], dst=dst[0]) / UDP(sport=src[1], dport=dst[1])
                     / payload)

    out = [(1.0, frame(A, dtls13_client_hello(CLIENT_RANDOM, OFFERED, mki)))]
    if server_hello:
        out.append((1.01, frame(B, dtls13_server_hello(SERVER_RANDOM, suite))))
    for i in range(3):
        out += [(1.02 + i / 100, frame(B, dtls13_ciphertext(i))),
                (1.03 + i / 100, frame(A, dtls13_ciphertext(i)))]
    clear = []
    for i in range(40):
        for end, ssrc in ((A, 0x1111), (B, 0x2222)):
            packet = _rtp(i, ssrc)
            clear.append(packet)
            # With AES-GCM the MKI goes last (RFC 7714 section 8.1).
            out.append((1.1 + i / 50, frame(end, senders[end].protect(packet) + mki)))
    path = tmp_path / "dtls13.pcap"
    path.write_bytes(pcap(out))
    keylog = tmp_path / "keys.log"
    keylog.write_text(f"EXPORTER_SECRET {CLIENT_RANDOM.hex()} {exporter.hex()}\n")
    return path, keylog, clear


@pytest.mark.parametrize("mki", [b"", b"\x01\x02"])
def test_dtls13_call_decrypts_from_the_exporter_secret_with_the_profile_found_by_trial(
        tmp_path: Path, mki: bytes) -> None:
    path, keylog, clear = dtls13_call(tmp_path, mki)
    out = tmp_path / "clear.pcapng"
    report = flowscan.decrypt(str(path), str(out), keylog=[str(keylog)])
    (flow,) = report.flows
    hs = flow.details["dtls"]
    assert hs.version == "DTLS 1.3" and hs.srtp_profile is None
    assert hs.srtp_mki == (mki.hex() or None)
    assert hs.encrypted_records == {"client": 3, "server": 3}
    assert "srtp" in flow.protocols
    assert flow.encryption is not None
    d = flow.encryption.decryption
    assert d is not None and (d.packets_decrypted, d.tag_failures) == (80, 0)
    assert "DTLS 1.3 exporter secret" in d.key_source and CHOSEN in d.key_source
    assert flow.encryption.basis == "decrypted"
    from scapy.utils import rdpcap

    written = [bytes(p[UDP].payload) for p in rdpcap(str(out))
               if UDP in p and 128 <= bytes(p[UDP].payload)[0] <= 191]
    assert written == clear
    assert keylog.read_text().split()[2] not in dumps([report])


def test_dtls13_without_the_exporter_secret_stays_undecrypted(tmp_path: Path) -> None:
    path, keylog, _clear = dtls13_call(tmp_path)
    keylog.write_text(f"EXPORTER_SECRET {'ab' * 32} {'cd' * 32}\n")
    report = flowscan.scan(str(path), keylog=[str(keylog)])
    (flow,) = report.flows
    assert flow.encryption is not None and flow.encryption.decryption is None
    assert any("hold no secret" in w for w in report.capture.warnings)


def test_unified_header_records_count_only_after_a_clear_dtls_record() -> None:
    """0x20-0x3F opens text as readily as a DTLS 1.3 record: a side must first show a clear
    record before its unified-header datagrams count as DTLS (RFC 9147 section 4)."""
    side = DtlsSide()
    assert not side.add_datagram(b"200 OK and some text that is long enough")
    assert not side.add_datagram(dtls13_ciphertext(1))
    assert side.add_datagram(dtls13_server_hello(SERVER_RANDOM))
    assert side.add_datagram(dtls13_ciphertext(2)) and side.encrypted_records == 1
    assert not side.add_datagram(dtls13_ciphertext(3)[:10]) and side.encrypted_records == 1


def test_dtls13_call_without_its_server_hello_tries_both_exporter_hashes(tmp_path: Path
                                                                         ) -> None:
    """The ServerHello lost (capture started late, or dropped): the suite is unknown, so the
    SHA-384 exporter is tried beside SHA-256, each with every offered profile."""
    path, keylog, _clear = dtls13_call(tmp_path, suite=0x1302, server_hello=False)
    report = flowscan.scan(str(path), keylog=[str(keylog)])
    (flow,) = report.flows
    d = flow.encryption.decryption if flow.encryption else None
    assert d is not None and (d.packets_decrypted, d.tag_failures) == (80, 0)
