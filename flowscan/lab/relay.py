"""Relayed calls: a Chromium participant reaching coturn only over TCP or TLS (RFC 8656
section 3.1, RFC 6062 framing), and rtpengine bridging a WebRTC leg to a SIP phone.

Registered into scenarios.SCENARIOS when scenarios is imported; the machinery (namespaces,
capture, rewrite, manifest) is scenarios.py's.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from flowscan.lab import scenarios as lab
from flowscan.lab.netns import LabError, LabNetwork
from flowscan.lab.rewrite import long_term_key, short_term_key

CHROMIUM_PROGRAMS = ("chromium", "chromedriver")
lab.DEBIAN_PACKAGES.update({"chromium": "chromium", "chromedriver": "chromium-driver",
                            "openssl": "openssl", "rtpengine": "rtpengine-daemon"})


def _self_signed(work: Path) -> tuple[Path, Path]:
    """A certificate for the TURN server's TLS listener, made for this run only. Its name
    is no address: the lab's private addresses must not reach the capture, and TLS 1.2
    would show the certificate in the clear."""
    cert, key = work / "turn-cert.pem", work / "turn-key.pem"
    lab._tool(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
               "-subj", "/CN=turn.lab.example", "-keyout", str(key), "-out", str(cert)])
    return cert, key


def _coturn(net: LabNetwork, work: Path, tls: bool) -> subprocess.Popen[bytes]:
    """coturn taking clients over TCP only (port 3478), or over TLS only (port 5349): no
    UDP or DTLS listener, so a client cannot fall back to UDP. The relayed side to the
    peer stays UDP, as with every browser's TURN allocation (RFC 8656 section 3.1)."""
    ip = net.host("relay").address
    args = ["turnserver", "-n", "--listening-ip", ip, "--relay-ip", ip, "--min-port", "49160",
            "--max-port", "49200", "--lt-cred-mech", "--user",
            f"{lab.TURN_USER}:{lab.TURN_PASSWORD}", "--realm", lab.TURN_REALM, "--no-udp",
            "--no-dtls", "--no-cli", "--log-file", str(work / "coturn.log"), "--simple-log",
            "--listening-port", "3478", "--tls-listening-port", "5349"]
    if tls:
        cert, key = _self_signed(work)
        args += ["--no-tcp", "--cert", str(cert), "--pkey", str(key)]
    else:
        args += ["--no-tls"]
    proc = subprocess.Popen([*net.exec_args("relay"), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if proc.poll() is not None:
        raise LabError(f"coturn exited at start (code {proc.returncode})")
    return proc


def _chromium(net: LabNetwork, host: str, work: Path, turn_url: str, keylog: Path
              ) -> lab._Helper:
    return lab._Helper(f"Chromium at {host}",
                       [*net.exec_args(host), sys.executable, "-m",
                        "flowscan.lab.chromium_peer", "--turn", turn_url, "--turn-user",
                        lab.TURN_USER, "--turn-password", lab.TURN_PASSWORD, "--duration",
                        "5", "--tls-keylog", str(keylog)], work / f"{host}.log")


def _send(proc: lab._Helper, message: dict[str, Any]) -> None:
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(message) + "\n")
    proc.stdin.flush()


def _end_browser(proc: lab._Helper) -> None:
    """Ask the Chromium helper to stop, so that it quits chromedriver and Chromium; kill it
    only if it does not."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def turn_tcp_call(scenario: lab.Scenario, net: LabNetwork, work: Path, *, tls: bool
                  ) -> dict[str, Any]:
    """Chromium at alice, relay candidates only, reaching coturn over TCP or TLS; the
    aiortc peer at bob answers with host candidates and writes the DTLS key log (the same
    session secrets decrypt both directions)."""
    keylog = work / "keys.log"
    relay_ip = net.host("relay").address
    url = (f"turns:{relay_ip}:5349?transport=tcp" if tls
           else f"turn:{relay_ip}:3478?transport=tcp")
    turn = _coturn(net, work, tls)
    capture = lab._tcpdump(net, scenario.captured_at, work / "raw.pcap")
    alice = _chromium(net, "alice", work, url, keylog)
    bob = lab._peer(net, "bob", "answer", keylog, "--duration", "8")
    try:
        offer = lab._read(alice, "sdp", timeout=60)
        _send(bob, offer)
        answer = lab._read(bob, "sdp")
        _send(alice, answer)
        states = [lab._final_state(p) for p in (alice, bob)]
        lab._read(alice, "done", timeout=30)
    finally:
        _end_browser(alice)
        if bob.poll() is None:
            bob.kill()
        time.sleep(0.3)
        lab._stop(capture)
        turn.kill()
    passwords = lab._ice_credentials(offer["sdp"]) + lab._ice_credentials(answer["sdp"])
    keys = [short_term_key(p) for p in passwords]
    keys.append(long_term_key(lab.TURN_USER, lab.TURN_REALM, lab.TURN_PASSWORD))
    return {"keys": keys, "states": states, "keylog": keylog, "ice_passwords": passwords}


_TURN_HOSTS = {
    "alice": lab.Place("participant", "81.2.69.160", "GB", "BT (residential)"),
    "bob": lab.Place("participant", "24.114.20.15", "CA", "Rogers (residential)"),
    "relay": lab.Place("relay", "78.46.100.21", "DE", "Hetzner (data centre)"),
}


def _turn_truth(tls: bool) -> dict[str, Any]:
    """Over TCP the wire shows what it shows over UDP (p2p-webrtc-turn): DTLS-SRTP with
    the peer behind a relay that forwards ChannelData. Over TLS it shows a TLS connection
    to a TURN port and nothing of what is inside: unknown, at a relay. With the key log
    (Chromium's TLS secrets, the DTLS ones) the TLS opens and shows what the TCP twin shows
    on the wire: the address rewrite re-sealed each TLS record with those secrets
    (tls_reseal.py), so the TURN messages inside name the peer's public address, and the
    DTLS-SRTP inside decrypts to codec frames: end-to-end through the relay."""
    seen = ({"verdict": "unknown", "termination": "relay"} if tls
            else {"verdict": "end-to-end", "termination": "relay"})
    opened = ({"verdict": "end-to-end", "termination": "relay", "inner": "codec"}
              if tls else seen)
    media: dict[str, Any] = {
        "between": ["alice", "relay"], "app": "webrtc",
        "protocols": ["tls", "turn"] if tls else ["stun", "turn", "dtls", "rtp", "srtp"],
        "codecs": ["opus", "vp8"], "encryption_terminates": "bob",
        "key_exchange": "dtls-srtp", "relay_sees": "ciphertext only",
        "participants": {"alice": "Chromium (libwebrtc)", "bob": "aiortc"},
        "keys": "DTLS: bob's (aiortc's key log; the session's secrets decrypt both "
                "directions); Chromium exports no DTLS secrets",
        "observed": seen, "decrypted": opened,
    }
    if tls:
        media["inside_tls"] = ("TURN (STUN and ChannelData), DTLS-SRTP inside it: end-to-end "
                               "between alice and bob")
        media["keys"] += ("; TLS to the relay: Chromium's (--ssl-key-log-file), TLS 1.3. "
                          "The address rewrite opened each TLS record with these secrets, "
                          "gave the TURN messages inside the public addresses and sealed "
                          "the record again at its own length (tls_rewritten)")
    return {"media": [media]}


lab._register(lab.Scenario(
    "turn-tcp-chromium",
    "Chromium (relay candidates only) calls an aiortc peer through coturn reached over TCP "
    "(RFC 6062 framing: STUN and ChannelData back to back in the stream); the relay forwards "
    "to bob over UDP. Captured at alice.",
    _TURN_HOSTS, "alice", lambda s, n, w: turn_tcp_call(s, n, w, tls=False),
    _turn_truth(tls=False), modules=("aiortc", "scapy", "selenium"),
    programs=("turnserver", *CHROMIUM_PROGRAMS),
))
lab._register(lab.Scenario(
    "turn-tls-chromium",
    "The same call with coturn reached over TLS on port 5349 (turns:): the TURN framing, "
    "and the DTLS-SRTP media inside it, are inside the TLS connection. Captured at alice.",
    {**_TURN_HOSTS, "alice": lab.Place("participant", "81.2.69.161", "GB", "BT (residential)")},
    "alice", lambda s, n, w: turn_tcp_call(s, n, w, tls=True), _turn_truth(tls=True),
    modules=("aiortc", "scapy", "selenium"),
    programs=("turnserver", "openssl", *CHROMIUM_PROGRAMS),
))


def _rtpengine(net: LabNetwork, work: Path) -> subprocess.Popen[bytes]:
    """rtpengine forwarding in userspace (--table=-1: no kernel module), controlled over ng
    on the relay's loopback; log level 7 with --log-srtp-keys puts the SRTP keys it
    negotiates in its log, beside the DTLS key log of the WebRTC peer."""
    ip = net.host("relay").address
    with (work / "rtpengine.log").open("w") as log:
        proc = subprocess.Popen(
            [*net.exec_args("relay"), "rtpengine", "--config-file=none", "--foreground",
             "--log-stderr", "--log-level=7", "--log-srtp-keys", "--table=-1",
             f"--interface={ip}", "--listen-ng=127.0.0.1:2223", "--port-min=30000",
             "--port-max=30100"], stdout=log, stderr=subprocess.STDOUT)
    time.sleep(1.0)
    if proc.poll() is not None:
        raise LabError(f"rtpengine exited at start (code {proc.returncode})")
    return proc


def rtpengine_call(scenario: lab.Scenario, net: LabNetwork, work: Path) -> dict[str, Any]:
    """The aiortc peer at alice (audio, DTLS-SRTP, ICE) calls the baresip phone at bob
    through rtpengine at the relay, which the lab's gateway signals for (sip_gateway.py):
    DTLS-SRTP on alice's leg, plain RTP on bob's. Captured at alice and at the relay."""
    keylog = work / "keys.log"
    relay_ip, bob_ip = net.host("relay").address, net.host("bob").address
    tone = work / "tone.wav"
    lab._tone(tone)
    lab._baresip_config(work / "bob", bob_ip, f"<sip:bob@{bob_ip}>;regint=0;answermode=auto;"
                        "audio_codecs=PCMU", tone)
    engine = _rtpengine(net, work)
    captures = [lab._tcpdump(net, "alice", work / "raw.pcap"),
                lab._tcpdump(net, "relay", work / "raw-relay.pcap")]
    with (work / "bob" / "baresip.log").open("w") as log:
        phone = subprocess.Popen([*net.exec_args("bob"), "baresip", "-f", str(work / "bob"),
                                  "-t", "15"], stdout=log, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
    time.sleep(1.0)
    gateway = lab._Helper("the SIP gateway", [
        *net.exec_args("relay"), sys.executable, "-m", "flowscan.lab.sip_gateway", "--local",
        relay_ip, "--phone", bob_ip, "--duration", "6"], work / "gateway.log")
    alice = lab._peer(net, "alice", "offer", keylog, "--duration", "6", "--audio-only")
    try:
        offer = lab._read(alice, "sdp")
        _send(gateway, offer)
        answer = lab._read(gateway, "sdp")
        _send(alice, answer)
        states = [lab._final_state(alice)]
        lab._read(alice, "done")
        lab._read(gateway, "done")
    finally:
        for proc in (alice, gateway, phone, engine):
            if proc.poll() is None:
                proc.kill()
        time.sleep(0.3)
        for capture in captures:
            lab._stop(capture)
    passwords = lab._ice_credentials(offer["sdp"]) + lab._ice_credentials(answer["sdp"])
    srtp_keys = work / "rtpengine-srtp-keys.txt"
    srtp_keys.write_text(rtpengine_keys(work / "rtpengine.log"))
    return {"keys": [short_term_key(p) for p in passwords], "states": states,
            "keylog": keylog, "ice_passwords": passwords,
            "captures": {"capture": "raw.pcap", "capture-relay": "raw-relay.pcap"},
            "files": [srtp_keys]}


def rtpengine_keys(log: Path) -> str:
    """The SRTP keys rtpengine logs once DTLS-SRTP is negotiated (--log-srtp-keys: an
    "SRTP keys, incoming:" or "outgoing:" line, then "--- SUITE key BASE64 salt BASE64"),
    one line each, "incoming|outgoing SUITE KEY SALT", without the log's addresses. They
    are an independent truth: the keys the relay itself used, against those flowscan
    derives from the participant's DTLS key log."""
    found: set[str] = set()
    direction = None
    for line in log.read_text(errors="replace").splitlines():
        if "SRTP keys, " in line:
            direction = line.rsplit("SRTP keys, ", 1)[1].rstrip(":")
            continue
        words = line.split("--- ", 1)[-1].split()
        if direction and len(words) == 5 and words[1] == "key" and words[3] == "salt":
            found.add(f"{direction} {words[0]} {words[2]} {words[4]}")
        direction = None
    if not found:
        raise LabError("rtpengine logged no SRTP keys")
    return "\n".join(sorted(found)) + "\n"


lab._register(lab.Scenario(
    "rtpengine-webrtc-sip",
    "rtpengine bridges a WebRTC leg to a SIP phone: the aiortc peer at alice (DTLS-SRTP, "
    "ICE, audio) and baresip at bob (plain RTP, G.711), the lab's gateway signalling both "
    "and driving rtpengine over its ng protocol; rtpengine terminates DTLS-SRTP and "
    "forwards in userspace. Captured at alice and at the relay.",
    {"alice": lab.Place("participant", "90.12.34.58", "FR", "Orange (residential)"),
     "relay": lab.Place("relay", "78.46.100.22", "DE", "Hetzner (data centre)"),
     "bob": lab.Place("participant", "73.15.20.33", "US", "Comcast (residential)")},
    "alice", rtpengine_call,
    {"media": [
        {"between": ["alice", "relay"], "app": "webrtc", "protocols":
         ["stun", "dtls", "rtp", "rtcp", "srtp"], "codecs": ["pcmu"],
         "encryption_terminates": "relay", "key_exchange": "dtls-srtp",
         "keys": "alice's DTLS secrets (keys.log, aiortc's key log); the SRTP keys "
                 "rtpengine used, from its log (--log-srtp-keys), in "
                 "rtpengine-srtp-keys.txt",
         "observed": {"verdict": "hop-by-hop", "termination": "server"},
         "decrypted": {"verdict": "hop-by-hop", "termination": "server"}},
        # Seen at the relay, this leg's far end is the phone: no encryption, and the
        # remote is the participant, as between two phones (sip-rtp-plain).
        {"between": ["bob", "relay"], "app": "sip", "protocols": ["rtp", "rtcp"],
         "codecs": ["pcmu"], "encryption_terminates": None, "key_exchange": "none",
         "observed": {"verdict": "plaintext", "termination": "peer"},
         "decrypted": {"verdict": "plaintext", "termination": "peer"}}]},
    modules=("aiortc", "scapy"), programs=("rtpengine", "baresip"),
))
