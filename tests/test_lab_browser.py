"""The browser calls through Janus: decrypted with the keys Janus's key-log shim wrote, each
leg gives its truth; what flowscan decrypts is, packet for packet, what Chromium's libwebrtc
logged before protection and after unprotection; the page's SFrame layer opens with the
participants' key and holds Opus; the shim itself logs the secrets of any OpenSSL user."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

import flowscan
from flowscan.crypto import sframe
from flowscan.report.json import dumps

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
JANUS = ["sfu-janus-browser", "sfu-janus-browser-e2ee", "sfu-janus-firefox",
         "sfu-janus-firefox-e2ee"]
BROWSERS = [*JANUS, "p2p-browser-dtls13"]
DUMPED = [name for name in BROWSERS if json.loads((LAB / name / "manifest.json").read_text()).get(
    "rtp_dump")]  # a participant in Chromium: the RTP dump of one is committed
CAPTURES = [("capture", "flows"), ("capture-sfu", "flows_at_sfu")]


def media(report: flowscan.api.Report) -> dict[frozenset[str], object]:
    return {frozenset((f"{f.client.ip}:{f.client.port}", f"{f.server.ip}:{f.server.port}")): f
            for f in report.flows if f.encryption is not None}


@pytest.mark.parametrize("scenario", JANUS)
@pytest.mark.parametrize(("stem", "key"), CAPTURES)
@pytest.mark.parametrize("keys_from", ["keylog", "dsb"])
def test_every_leg_decrypts_to_its_truth(scenario: str, stem: str, key: str,
                                         keys_from: str) -> None:
    folder = LAB / scenario
    manifest = json.loads((folder / "manifest.json").read_text())
    if keys_from == "keylog":
        report = flowscan.scan(str(folder / f"{stem}.pcapng"), keylog=[str(folder / "keys.log")])
    else:
        report = flowscan.scan(str(folder / f"{stem}-dsb.pcapng"))
    flows = media(report)
    entries = [e for e in manifest[key] if e.get("kind") == "media"]
    assert len(entries) == len(flows) >= 2  # a publisher and a subscriber leg per browser
    for entry in entries:
        enc = flows[frozenset(entry["endpoints"])].encryption  # type: ignore[attr-defined]
        truth = entry["truth"]["decrypted"]
        assert (enc.verdict, enc.basis, enc.termination) == (truth["verdict"], "decrypted",
                                                             truth["termination"])
        assert enc.decryption.inner == truth["inner"]
        assert enc.decryption.tag_failures == 0 and enc.decryption.packets_decrypted > 100
    secrets = {line.split()[2] for line in (folder / "keys.log").read_text().splitlines()}
    assert not any(secret in dumps([report]) for secret in secrets), "key material in the report"


def rtp_dump(folder: Path) -> tuple[str, Counter[tuple[str, bytes]]]:
    """The participant whose Chromium logged the dump, and (direction O/I, packet) of every
    RTP and RTCP packet in its RtpDump lines: "O|I hh:mm:ss.mmm 0000 <hex bytes> # RTP_DUMP"
    (text2pcap's hex-dump form)."""
    name = json.loads((folder / "manifest.json").read_text())["rtp_dump"]
    out: Counter[tuple[str, bytes]] = Counter()
    for line in (folder / name).read_text().splitlines():
        fields = line.split()
        assert fields[0] in ("O", "I") and fields[-2:] == ["#", "RTP_DUMP"], line
        out[(fields[0], bytes.fromhex("".join(fields[3:-2])))] += 1
    return name.removeprefix("rtp-dump-").removesuffix(".txt"), out


def decrypted_at_alice(folder: Path, tmp_path: Path, seen_from: str = "alice"
                       ) -> Counter[tuple[str, bytes]]:
    """(direction seen from seen_from, UDP payload) of every packet flowscan replaced by its
    plaintext in alice's capture, read back from `flowscan decrypt`'s output by scapy (an
    independent reader)."""
    from scapy.layers.inet import IP, UDP
    from scapy.utils import rdpcap

    out_file = tmp_path / "clear.pcapng"
    done = subprocess.run([sys.executable, "-m", "flowscan", "decrypt",
                           str(folder / "capture.pcapng"), "--keylog", str(folder / "keys.log"),
                           "-o", str(out_file)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    host = json.loads((folder / "manifest.json").read_text())["hosts"][seen_from]["address"]
    out: Counter[tuple[str, bytes]] = Counter()
    for packet in rdpcap(str(out_file)):
        data = bytes(packet[UDP].payload) if UDP in packet else b""
        if len(data) >= 8 and data[0] >> 6 == 2:  # RTP or RTCP (RFC 7983 demultiplexing)
            out[("O" if packet[IP].src == host else "I", data)] += 1
    return out


def test_the_chromium_calls_have_their_rtp_dump() -> None:
    assert DUMPED == ["sfu-janus-browser", "sfu-janus-browser-e2ee", "p2p-browser-dtls13"]


@pytest.mark.parametrize("scenario", DUMPED)
def test_decryption_matches_chromiums_rtp_dump_packet_for_packet(scenario: str,
                                                                 tmp_path: Path) -> None:
    folder = LAB / scenario
    host, dump = rtp_dump(folder)
    clear = decrypted_at_alice(folder, tmp_path, host)
    rtp = [k for k in dump if not 192 <= k[1][1] <= 223]
    assert len(rtp) > 400 and {d for d, _ in rtp} == {"O", "I"}
    # Every packet libwebrtc protected or unprotected is one flowscan decrypted, byte for
    # byte: SSRC, sequence number, timestamp, extensions and payload.
    assert not dump - clear, sorted(dump - clear)[:3]
    # Chromium stopped logging as the browser closed: at most a few packets after that.
    assert sum((clear - dump).values()) <= 0.03 * sum(clear.values())


@pytest.mark.parametrize("scenario", ["sfu-janus-browser-e2ee", "sfu-janus-firefox-e2ee"])
def test_the_sframe_layer_opens_with_the_participants_key_only(scenario: str,
                                                               tmp_path: Path) -> None:
    """The page's WebCrypto SFrame, in Chromium's encoded streams and in Firefox's
    RTCRtpScriptTransform worker, agrees with flowscan.crypto.sframe (RFC 9605): audio
    payloads (one Opus frame each) open with the participants' base key and hold Opus; a
    wrong key opens none."""
    folder = LAB / scenario
    key = bytes.fromhex((folder / "sframe-base-key.txt").read_text().strip())
    opened, kids = [], set()
    for (direction, data), _ in decrypted_at_alice(folder, tmp_path).items():
        if 192 <= data[1] <= 223 or data[1] & 0x7F not in (109, 111):  # Opus: Firefox, Chromium
            continue
        start = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # header extension (RFC 3550 section 5.3.1)
            start += 4 + 4 * int.from_bytes(data[start + 2:start + 4], "big")
        payload = data[start:]
        plain = sframe.unprotect(key, payload)
        assert plain is not None, (direction, payload[:8].hex())
        opened.append(plain)
        kids.add(sframe.parse_header(payload)[0])  # type: ignore[index]
    assert len(opened) > 100 and kids == {1, 2}  # alice's and bob's frames
    # Opus TOC (RFC 6716 section 3.1): configurations of 20 ms frames only (libwebrtc's
    # ptime), one frame per packet (code 0).
    assert {p[0] >> 3 for p in opened} <= {1, 5, 9, 13, 15, 19, 23, 27, 31}
    assert {p[0] & 0x03 for p in opened} == {0}
    assert sframe.unprotect(bytes(16), payload) is None


@pytest.mark.parametrize("scenario", ["sfu-janus-firefox", "sfu-janus-firefox-e2ee"])
def test_firefox_and_janus_derived_the_same_secrets(scenario: str) -> None:
    """alice's Firefox (NSS) and Janus (OpenSSL, through the shim) logged, each on its own,
    the same master secret for every handshake of alice's legs; Firefox's log alone
    decrypts her capture."""
    folder = LAB / scenario
    inner = json.loads((folder / "manifest.json").read_text())["truth"]["media"][0][
        "decrypted"]["inner"]
    nss = [line for line in (folder / "keys-alice.log").read_text().splitlines()
           if not line.startswith("#")]
    openssl = set((folder / "keys.log").read_text().splitlines())
    assert len(nss) == 2 and set(nss) <= openssl  # a publisher and a subscriber leg
    report = flowscan.scan(str(folder / "capture.pcapng"), keylog=[str(folder / "keys-alice.log")])
    flows = media(report)
    assert len(flows) == 2 and all(
        f.encryption.basis == "decrypted" and f.encryption.decryption.inner == inner  # type: ignore[attr-defined]
        and f.encryption.decryption.tag_failures == 0 for f in flows.values())  # type: ignore[attr-defined]


@pytest.mark.parametrize("keys_from", ["keylog", "dsb"])
def test_firefox_to_chromium_is_dtls13_and_decrypts_by_its_exporter(keys_from: str) -> None:
    """Firefox (NSS) and Chromium (BoringSSL) negotiate DTLS 1.3 (RFC 9147); the SRTP keys
    come from Firefox's EXPORTER_SECRET with the "dtls13" label prefix, the profile (in the
    encrypted EncryptedExtensions) by trial among those offered; every tag verifies."""
    folder = LAB / "p2p-browser-dtls13"
    report = (flowscan.scan(str(folder / "capture.pcapng"), keylog=[str(folder / "keys.log")])
              if keys_from == "keylog" else flowscan.scan(str(folder / "capture-dsb.pcapng")))
    (flow,) = media(report).values()
    enc = flow.encryption  # type: ignore[attr-defined]
    assert (enc.verdict, enc.basis, enc.termination) == ("end-to-end", "decrypted", "peer")
    assert "DTLS 1.3 exporter secret" in enc.decryption.key_source
    assert enc.decryption.tag_failures == 0 and enc.decryption.packets_decrypted > 500
    assert enc.decryption.inner == "codec"
    assert any("DTLS 1.3" in e.detail for e in enc.evidence)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="gcc not installed")
def test_keylog_shim_logs_the_secrets_of_an_openssl_user(tmp_path: Path) -> None:
    """The shim, preloaded into a Python whose ssl module links OpenSSL dynamically as
    Janus does, writes one CLIENT_RANDOM line per TLS 1.2 handshake, without the program
    asking for it."""
    from flowscan.lab.janus import build_shim

    shim = build_shim(tmp_path)
    keylog = tmp_path / "keys.log"
    program = (
        "import socket, ssl, subprocess, threading, sys\n"
        "cert, key = sys.argv[1], sys.argv[2]\n"
        "server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
        "server.maximum_version = ssl.TLSVersion.TLSv1_2\n"
        "server.load_cert_chain(cert, key)\n"
        "client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)\n"
        "client.check_hostname = False\n"
        "client.verify_mode = ssl.CERT_NONE\n"
        "a, b = socket.socketpair()\n"
        "t = threading.Thread(target=lambda: server.wrap_socket(a, server_side=True))\n"
        "t.start(); client.wrap_socket(b); t.join()\n")
    cert, pkey = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(pkey), "-out", str(cert),
                    "-subj", "/CN=lab", "-days", "1"], check=True, capture_output=True)
    env = {"LD_PRELOAD": str(shim), "SSLKEYLOGFILE": str(keylog), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", program, str(cert), str(pkey)], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = keylog.read_text().splitlines()
    assert len(lines) == 2 and all(line.startswith("CLIENT_RANDOM ") for line in lines)
    assert len({line.split()[1] for line in lines}) == 1  # both ends of one handshake
    assert ssl.OPENSSL_VERSION  # the interpreter's ssl is OpenSSL, as the shim expects
