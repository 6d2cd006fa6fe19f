"""Reference scenarios: real stacks in lab namespaces, captured on the wire, with the truth.

Each scenario writes capture.pcapng (public addresses), capture-dsb.pcapng (the same with
the DTLS secrets in a Decryption Secrets Block), keys.log where there are keys, and
manifest.json: the scenario's geo profile and, for each flow by its rewritten 5-tuple, what
is true about it, with the verdict expected from the wire alone ("observed") and once the
keys are used ("decrypted").
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowscan.crypto.keylog import KeyLog
from flowscan.lab.netns import LabError, LabNetwork
from flowscan.lab.rewrite import long_term_key, rewrite_capture, short_term_key

TURN_USER, TURN_PASSWORD, TURN_REALM = "lab", "lab-secret", "lab.example"

# Programs every scenario runs: namespaces (ip), the capture (tcpdump), pcapng and its
# secrets block (editcap), the manifest's independent flow list (tshark).
BASE_PROGRAMS = ("ip", "tcpdump", "editcap", "tshark")
DEBIAN_PACKAGES = {"ip": "iproute2", "tcpdump": "tcpdump", "editcap": "wireshark-common",
                   "tshark": "tshark", "turnserver": "coturn", "baresip": "baresip",
                   "janus": "janus libjs-janus-gateway", "chromium": "chromium",
                   "chromedriver": "chromium-driver", "gcc": "gcc", "firefox-esr": "firefox-esr"}
PIP_EXTRA = "pip install 'flowscan[lab]'"


@dataclass
class Place:
    """A lab host as the scenario presents it: its public address and country."""

    role: str  # participant / relay / server
    address: str
    country: str
    network: str


@dataclass
class Scenario:
    name: str
    summary: str
    hosts: dict[str, Place]
    captured_at: str
    run: Callable[[Scenario, LabNetwork, Path], dict[str, Any]]
    truth: dict[str, Any] = field(default_factory=dict)
    modules: tuple[str, ...] = ("scapy",)  # Python packages of the lab extra it imports
    programs: tuple[str, ...] = ()  # beside BASE_PROGRAMS

    def missing(self) -> str | None:
        """What this machine lacks for the scenario, as one line saying how to get it; None
        when nothing is."""
        lacking = _lacking(self.modules, (*BASE_PROGRAMS, *self.programs), load=True)
        return f"{self.name} needs {lacking}" if lacking else None


def missing_for_any() -> str | None:
    """What this machine lacks for some scenario, as one line; cheap enough for `lab list`
    (modules are looked up, not imported)."""
    modules = sorted({m for s in SCENARIOS.values() for m in s.modules})
    programs = sorted({p for s in SCENARIOS.values() for p in (*BASE_PROGRAMS, *s.programs)})
    return _lacking(tuple(modules), tuple(programs), load=False)


def _lacking(modules: tuple[str, ...], programs: tuple[str, ...], *, load: bool
             ) -> str | None:
    absent_modules = [m for m in modules if not _importable(m, load)]
    absent_programs = [p for p in programs if shutil.which(p) is None]
    parts = []
    if absent_modules:
        parts.append(f"the Python packages {', '.join(absent_modules)} ({PIP_EXTRA})")
    if absent_programs:
        packages = " ".join(sorted({DEBIAN_PACKAGES[p] for p in absent_programs}))
        parts.append(f"the programs {', '.join(absent_programs)} (apt install {packages})")
    return " and ".join(parts) or None


def _importable(module: str, load: bool) -> bool:
    """Whether the module imports: a package present but broken (a missing shared library
    under aiortc's av) counts as missing, which only importing it finds out."""
    try:
        if not load:
            return importlib.util.find_spec(module) is not None
        importlib.import_module(module)
    except Exception:  # noqa: BLE001 - whatever breaks the import, the answer is "no"
        return False
    return True


class _Helper(subprocess.Popen[str]):
    """A lab process (a WebRTC peer, the SFU) talking JSON lines on stdin/stdout; its stderr,
    tracebacks included, goes to a log file that a failure points to, never to the user."""

    def __init__(self, name: str, args: list[str], log: Path) -> None:
        self.name = name
        self.log = log
        with log.open("w") as stderr:
            super().__init__(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=stderr, text=True,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})


def _tool(cmd: list[str]) -> str:
    """Run a lab tool to completion; its failure is one LabError line, not a traceback."""
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as exc:
        raise LabError(f"{cmd[0]}: {exc.strerror}") from None
    if done.returncode:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        raise LabError(f"{cmd[0]} failed: {last}")
    return done.stdout


def _tcpdump(net: LabNetwork, host: str, out: Path, expression: str = "udp or tcp"
             ) -> subprocess.Popen[bytes]:
    if shutil.which("tcpdump") is None:
        raise LabError("the lab needs tcpdump (apt install tcpdump)")
    iface = net.host(host).interface
    proc = subprocess.Popen([*net.exec_args(host), "tcpdump", "-i", iface, "-U", "-s", "0",
                             "-w", str(out), expression],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    assert proc.stderr is not None
    line = said = b""
    while time.monotonic() < deadline and b"listening" not in line:
        line = proc.stderr.readline()
        said = line.strip() or said
        if not line and proc.poll() is not None:
            why = said.decode(errors="replace") or f"exit code {proc.returncode}"
            raise LabError(f"tcpdump did not start ({why})")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _peer(net: LabNetwork, host: str, role: str, keylog: Path, *extra: str) -> _Helper:
    return _Helper(f"the WebRTC peer at {host}",
                   [*net.exec_args(host), sys.executable, "-m", "flowscan.lab.webrtc_peer",
                    "--role", role, "--keylog", str(keylog), *extra],
                   keylog.parent / f"{host}.log")


def _read(proc: _Helper, key: str, timeout: float = 30) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            proc.wait()
            raise LabError(f"{proc.name} exited early (code {proc.returncode})")
        try:
            message = json.loads(line)
        except ValueError:
            raise LabError(f"{proc.name} said something other than JSON") from None
        if key in message:
            return message
    raise LabError(f"{proc.name} did not answer in time")


def _final_state(proc: _Helper) -> str:
    while True:
        state = _read(proc, "state")["state"]
        if state in ("connected", "failed", "closed"):
            return str(state)


def _ice_credentials(sdp: str) -> list[str]:
    return [line.split(":", 1)[1].strip() for line in sdp.splitlines()
            if line.startswith("a=ice-pwd:")]


def _webrtc_call(scenario: Scenario, net: LabNetwork, work: Path, *, relay: bool = False
                 ) -> dict[str, Any]:
    keylog = work / "keys.log"
    extra: list[str] = ["--duration", "3"]
    turn = None
    if relay:
        relay_ip = net.host("relay").address
        turn = subprocess.Popen(
            [*net.exec_args("relay"), "turnserver", "-n", "--listening-ip", relay_ip,
             "--relay-ip", relay_ip, "--listening-port", "3478", "--min-port", "49160",
             "--max-port", "49200", "--lt-cred-mech", "--user",
             f"{TURN_USER}:{TURN_PASSWORD}", "--realm", TURN_REALM, "--no-tls", "--no-dtls",
             "--no-cli", "--allow-loopback-peers", "--cli-password", "x", "--log-file",
             "stdout", "--simple-log"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        extra += ["--turn", f"{relay_ip}:3478", "--turn-user", TURN_USER, "--turn-password",
                  TURN_PASSWORD, "--relay-only"]
    capture = _tcpdump(net, scenario.captured_at, work / "raw.pcap")
    alice = _peer(net, "alice", "offer", keylog, *extra)
    bob = _peer(net, "bob", "answer", keylog, *extra)
    try:
        assert alice.stdin is not None and bob.stdin is not None
        offer = _read(alice, "sdp")
        bob.stdin.write(json.dumps(offer) + "\n")
        bob.stdin.flush()
        answer = _read(bob, "sdp")
        alice.stdin.write(json.dumps(answer) + "\n")
        alice.stdin.flush()
        states = [_final_state(p) for p in (alice, bob)]
        _read(alice, "done")
        _read(bob, "done")
    finally:
        for proc in (alice, bob):
            if proc.poll() is None:
                proc.kill()
        time.sleep(0.3)
        _stop(capture)
        if turn is not None:
            turn.kill()
    passwords = _ice_credentials(offer["sdp"]) + _ice_credentials(answer["sdp"])
    keys = [short_term_key(p) for p in passwords]
    keys.append(long_term_key(TURN_USER, TURN_REALM, TURN_PASSWORD))
    return {"keys": keys, "states": states, "keylog": keylog, "ice_passwords": passwords}


def _sfu_call(scenario: Scenario, net: LabNetwork, work: Path, *, e2ee: bool = False
              ) -> dict[str, Any]:
    """Three participants and an SFU that terminates each leg's DTLS-SRTP and forwards RTP
    re-encrypted per leg; with e2ee the participants add SFrame to every frame."""
    keylog = work / "keys.log"
    participants = [name for name, place in scenario.hosts.items()
                    if place.role == "participant"]
    captures = [_tcpdump(net, "alice", work / "raw.pcap"),
                _tcpdump(net, "sfu", work / "raw-sfu.pcap")]
    sfu = _Helper("the SFU", [*net.exec_args("sfu"), sys.executable, "-m", "flowscan.lab.sfu",
                              "--participants", str(len(participants)), "--keylog",
                              str(keylog), "--duration", "3.5"], work / "sfu.log")
    base_key = os.urandom(16).hex()
    peers = {}
    for kid, name in enumerate(participants, start=1):
        extra = ["--duration", "2.5", "--name", name]
        if e2ee:
            extra += ["--sframe-key", base_key, "--sframe-kid", str(kid)]
        peers[name] = _peer(net, name, "offer", keylog, *extra)
    states = []
    passwords: list[str] = []
    try:
        assert sfu.stdin is not None
        for name, peer in peers.items():
            assert peer.stdin is not None
            offer = _read(peer, "sdp")
            passwords += _ice_credentials(str(offer["sdp"]))
            sfu.stdin.write(json.dumps(offer) + "\n")
            sfu.stdin.flush()
            answer = _read(sfu, "sdp")
            passwords += _ice_credentials(str(answer["sdp"]))
            peer.stdin.write(json.dumps(answer) + "\n")
            peer.stdin.flush()
            del name
        states = [_final_state(peer) for peer in peers.values()]
        for peer in peers.values():
            _read(peer, "done")
        _read(sfu, "done")
    finally:
        for proc in [*peers.values(), sfu]:
            if proc.poll() is None:
                proc.kill()
        time.sleep(0.3)
        for capture in captures:
            _stop(capture)
    return {"keys": [short_term_key(p) for p in passwords], "states": states,
            "keylog": keylog, "ice_passwords": passwords,
            "captures": {"capture": "raw.pcap", "capture-sfu": "raw-sfu.pcap"}}


def _tone(path: Path, seconds: int = 10) -> None:
    """An 8 kHz two-tone WAV for the SIP phones to send (G.711 runs at 8 kHz)."""
    import math
    import struct
    import wave

    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"".join(struct.pack("<h", int(
            8000 * math.sin(2 * math.pi * 440 * i / 8000)
            + 3000 * math.sin(2 * math.pi * 1210 * i / 8000))) for i in range(8000 * seconds)))


def _baresip_config(folder: Path, address: str, account: str, tone: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config").write_text("\n".join([
        "poll_method epoll", f"sip_listen {address}:5060",
        f"audio_player aufile,{folder / 'received.wav'}", f"audio_source aufile,{tone}",
        "rtp_ports 40000-40100", "module_path /usr/lib/baresip/modules", "module g711.so",
        "module aufile.so", "module srtp.so", "module_app account.so", "module_app menu.so",
        ""]))
    (folder / "accounts").write_text(account + "\n")
    (folder / "contacts").write_text("")


def _sip_call(scenario: Scenario, net: LabNetwork, work: Path, *, sdes: bool = False
              ) -> dict[str, Any]:
    """A real SIP user agent (baresip) on each side: INVITE, 200, ACK over UDP, then G.711
    audio for a few seconds; with sdes, SRTP keyed by a=crypto lines in the SDP."""
    if shutil.which("baresip") is None:
        raise LabError("the SIP scenarios need baresip (apt install baresip)")
    tone = work / "tone.wav"
    _tone(tone)
    a, b = net.host("alice").address, net.host("bob").address
    enc = ";mediaenc=srtp-mand" if sdes else ""
    _baresip_config(work / "alice", a, f"<sip:alice@{a}>;regint=0;audio_codecs=PCMU{enc}", tone)
    _baresip_config(work / "bob", b,
                    f"<sip:bob@{b}>;regint=0;answermode=auto;audio_codecs=PCMU{enc}", tone)
    capture = _tcpdump(net, scenario.captured_at, work / "raw.pcap")
    logs = [(work / name / "baresip.log").open("w") for name in ("alice", "bob")]
    callee = subprocess.Popen([*net.exec_args("bob"), "baresip", "-f", str(work / "bob"),
                               "-t", "7"], stdout=logs[1], stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL)
    time.sleep(1.0)
    caller = subprocess.Popen([*net.exec_args("alice"), "baresip", "-f", str(work / "alice"),
                               "-e", f"/dial sip:bob@{b}", "-t", "5"], stdout=logs[0],
                              stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        caller.wait(timeout=30)
        callee.wait(timeout=30)
    except subprocess.TimeoutExpired:
        raise LabError("baresip did not end the call within 30 s") from None
    finally:
        for proc in (caller, callee):
            if proc.poll() is None:
                proc.kill()
        for log in logs:
            log.close()
        time.sleep(0.3)
        _stop(capture)
    established = "Call established" in (work / "alice" / "baresip.log").read_text()
    return {"keys": [], "states": ["connected" if established else "failed"],
            "keylog": work / "no-keys.log"}


def _finish(scenario: Scenario, net: LabNetwork, work: Path, out: Path,
            result: dict[str, Any]) -> None:
    mapping = {net.host(name).address: place.address for name, place in scenario.hosts.items()}
    out.mkdir(parents=True, exist_ok=True)
    keylog: Path = result["keylog"]
    if keylog.exists():
        lines = sorted(set(keylog.read_text().splitlines()))
        (out / "keys.log").write_text("\n".join(lines) + "\n")
    for extra in result.get("files", []):  # evidence a scenario adds (an RTP dump, keys)
        shutil.copyfile(extra, out / extra.name)
    notes = _rewrite_captures(work, out, mapping, result)
    manifest = {
        "scenario": scenario.name,
        "flows": _flows_with_truth(scenario, out / "capture.pcapng"),
        # Each other capture point's flows, by its host: capture-sfu.pcapng -> flows_at_sfu.
        **{f"flows_at_{stem.removeprefix('capture-')}": _flows_with_truth(
            scenario, out / f"{stem}.pcapng") for stem in result.get("captures", {})
           if stem != "capture"},
        "summary": scenario.summary,
        "captured_at": scenario.captured_at,
        "hosts": {name: vars(place) for name, place in scenario.hosts.items()},
        "truth": scenario.truth,
        # Lab credentials, so tests can check STUN MESSAGE-INTEGRITY after the rewrite.
        "stun_credentials": {"ice_passwords": result.get("ice_passwords", []),
                             "turn": [TURN_USER, TURN_REALM, TURN_PASSWORD]},
        "generated_by": "flowscan lab run " + scenario.name,
        # Per capture, TLS whose records the address rewrite opened and sealed again
        # (tls_rewritten), and STUN it rewrote inside TURN (stun_inside_turn_rewritten).
        **notes,
        **result.get("manifest", {}),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def _rewrite_captures(work: Path, out: Path, mapping: dict[str, str],
                      result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each raw capture given the public addresses, as pcapng and, with keys, with them in
    a Decryption Secrets Block; the manifest's notes of what the rewrite re-sealed in TLS
    and rewrote inside TURN, by file (only those that are not empty)."""
    keylog = out / "keys.log"  # written by _finish when the scenario has keys
    secrets = None
    if result["keylog"].exists():  # TURN over TLS is rewritten inside its records with them
        secrets = KeyLog()
        secrets.add_file(str(keylog))
    notes: dict[str, dict[str, Any]] = {"tls_rewritten": {},
                                        "stun_inside_turn_rewritten": {}}
    for stem, raw in result.get("captures", {"capture": "raw.pcap"}).items():
        rewritten = work / f"{stem}.pcap"
        done = rewrite_capture(work / raw, rewritten, mapping, result["keys"], secrets)
        if done.notes:
            notes["tls_rewritten"][f"{stem}.pcapng"] = done.notes
        if (relayed := done.stun.describe()) is not None:
            notes["stun_inside_turn_rewritten"][f"{stem}.pcapng"] = relayed
        _tool(["editcap", "-F", "pcapng", str(rewritten), str(out / f"{stem}.pcapng")])
        if secrets is not None:
            _tool(["editcap", "--inject-secrets", f"tls,{keylog}",
                   str(out / f"{stem}.pcapng"), str(out / f"{stem}-dsb.pcapng")])
    return {field: by_file for field, by_file in notes.items() if by_file}


def conversations(capture: Path) -> dict[tuple[str, str], list[int]]:
    """UDP and TCP conversations by tshark (independent of flowscan): sorted endpoint pair
    -> [packets from the first endpoint, packets from the second]."""
    return {key: counts for key, (_transport, counts) in _conversations(capture).items()}


def _conversations(capture: Path) -> dict[tuple[str, str], tuple[str, list[int]]]:
    rows = _tool(["tshark", "-r", str(capture), "-Y", "(udp || tcp) && !icmp", "-T",
                  "fields", "-e", "ip.src", "-e", "udp.srcport", "-e", "tcp.srcport", "-e",
                  "ip.dst", "-e", "udp.dstport", "-e", "tcp.dstport"]).splitlines()
    out: dict[tuple[str, str], tuple[str, list[int]]] = {}
    for row in rows:
        src, usport, tsport, dst, udport, tdport = row.split("\t")[:6]
        transport = "udp" if usport else "tcp"
        sport, dport = (usport, udport) if usport else (tsport, tdport)
        a, b = f"{src}:{sport.split(',')[0]}", f"{dst}:{dport.split(',')[0]}"
        key = (a, b) if a <= b else (b, a)
        counts = out.setdefault(key, (transport, [0, 0]))[1]
        counts[0 if key[0] == a else 1] += 1
    return out


def _flows_with_truth(scenario: Scenario, capture: Path) -> list[dict[str, Any]]:
    """Each UDP flow of the capture with what the scenario makes true of it."""
    who = {place.address: name for name, place in scenario.hosts.items()}
    flows = []
    for (a, b), (transport, (from_a, from_b)) in sorted(_conversations(capture).items()):
        hosts = sorted(who.get(e.rsplit(":", 1)[0], "?") for e in (a, b))
        ports = {int(e.rsplit(":", 1)[1]) for e in (a, b)}
        entry: dict[str, Any] = {"transport": transport, "endpoints": [a, b],
                                 "hosts": hosts, "packets": [from_a, from_b]}
        if ports == {5060}:
            entry["kind"] = "signalling"
            entry["truth"] = {"app": "sip", "protocols": ["sip", "sdp"]}
        else:
            for media in scenario.truth.get("media", []):
                if sorted(media["between"]) == hosts:
                    entry["kind"] = "media"
                    entry["truth"] = media
        flows.append(entry)
    return flows


SCENARIOS: dict[str, Scenario] = {}


def _register(scenario: Scenario) -> None:
    SCENARIOS[scenario.name] = scenario


_register(Scenario(
    "p2p-webrtc",
    "Two aiortc peers call each other directly: ICE with host candidates, DTLS-SRTP, Opus "
    "and VP8. Captured at alice.",
    {"alice": Place("participant", "24.114.20.10", "CA", "Rogers (residential)"),
     "bob": Place("participant", "91.64.10.20", "DE", "Vodafone Kabel (residential)")},
    "alice",
    lambda s, n, w: _webrtc_call(s, n, w),
    {"media": [{"between": ["alice", "bob"], "app": "webrtc", "protocols":
                ["stun", "dtls", "rtp", "rtcp", "srtp"], "codecs": ["opus", "vp8"],
                "encryption_terminates": "bob", "key_exchange": "dtls-srtp",
                "observed": {"verdict": "end-to-end", "termination": "peer"},
                "decrypted": {"verdict": "end-to-end", "termination": "peer"}}]},
    modules=("aiortc", "scapy"),
))
_register(Scenario(
    "p2p-webrtc-turn",
    "The same call forced through a coturn relay (relay candidates only): TURN allocations "
    "and ChannelData on the wire. Captured at alice.",
    {"alice": Place("participant", "90.12.34.56", "FR", "Orange (residential)"),
     "bob": Place("participant", "24.114.20.11", "CA", "Rogers (residential)"),
     "relay": Place("relay", "78.46.100.20", "DE", "Hetzner (data centre)")},
    "alice",
    lambda s, n, w: _webrtc_call(s, n, w, relay=True),
    {"media": [{"between": ["alice", "relay"], "app": "webrtc", "protocols":
                ["stun", "turn", "dtls", "rtp", "srtp"], "codecs": ["opus", "vp8"],
                "encryption_terminates": "bob", "key_exchange": "dtls-srtp",
                "relay_sees": "ciphertext only",
                "observed": {"verdict": "end-to-end", "termination": "relay"},
                "decrypted": {"verdict": "end-to-end", "termination": "relay"}}]},
    modules=("aiortc", "scapy"), programs=("turnserver",),
))


_register(Scenario(
    "sip-rtp-plain",
    "A SIP call between two baresip user agents (INVITE, 200, ACK over UDP) with G.711 "
    "audio as plain RTP. Captured at alice.",
    {"alice": Place("participant", "73.15.20.30", "US", "Comcast (residential)"),
     "bob": Place("participant", "24.114.20.12", "CA", "Rogers (residential)")},
    "alice",
    lambda s, n, w: _sip_call(s, n, w),
    {"media": [{"between": ["alice", "bob"], "app": "sip", "protocols": ["rtp", "rtcp"],
                "codecs": ["pcmu"], "encryption_terminates": None, "key_exchange": "none",
                "observed": {"verdict": "plaintext", "termination": "peer"},
                "decrypted": {"verdict": "plaintext", "termination": "peer"}}]},
    programs=("baresip",),
))
_register(Scenario(
    "sip-sdes-srtp",
    "A SIP call over plain UDP whose SDP carries the SRTP keys (a=crypto, SDES) between two "
    "baresip user agents, with SRTP audio. Captured at alice.",
    {"alice": Place("participant", "73.15.20.31", "US", "Comcast (residential)"),
     "bob": Place("participant", "24.114.20.13", "CA", "Rogers (residential)")},
    "alice",
    lambda s, n, w: _sip_call(s, n, w, sdes=True),
    {"media": [{"between": ["alice", "bob"], "app": "sip", "protocols": ["rtp", "rtcp"],
                "codecs": ["pcmu"], "encryption_terminates": "bob", "key_exchange": "sdes",
                "observed": {"verdict": "keys-exposed", "termination": "peer"},
                "decrypted": {"verdict": "keys-exposed", "termination": "peer"}}]},
    programs=("baresip",),
))


_SFU_HOSTS = {
    "alice": Place("participant", "24.114.20.14", "CA", "Rogers (residential)"),
    "bob": Place("participant", "73.15.20.32", "US", "Comcast (residential)"),
    "carol": Place("participant", "90.12.34.57", "FR", "Orange (residential)"),
    "sfu": Place("server", "34.192.10.20", "US", "Amazon AWS (data centre)"),
}


def _sfu_truth(e2ee: bool, names: tuple[str, ...] = ("alice", "bob", "carol")
               ) -> dict[str, Any]:
    decrypted = {"verdict": "end-to-end" if e2ee else "hop-by-hop", "termination": "server",
                 "inner": "sframe" if e2ee else "codec"}
    return {"media": [{"between": [name, "sfu"], "app": "webrtc",
                       "protocols": ["stun", "dtls", "rtp", "rtcp", "srtp"],
                       "codecs": ["opus", "vp8"], "encryption_terminates": "sfu",
                       "key_exchange": "dtls-srtp",
                       "inner_layer": "SFrame (RFC 9605), key held by participants only"
                       if e2ee else None,
                       "observed": {"verdict": "hop-by-hop", "termination": "server"},
                       "decrypted": decrypted}
                      for name in names]}


_register(Scenario(
    "sfu-webrtc",
    "Three aiortc participants through an SFU that terminates each leg's DTLS-SRTP and "
    "forwards RTP re-encrypted per leg without decoding. Captured at alice and at the SFU.",
    _SFU_HOSTS, "alice", lambda s, n, w: _sfu_call(s, n, w), _sfu_truth(e2ee=False),
    modules=("aiortc", "scapy"),
))
_register(Scenario(
    "sfu-webrtc-e2ee",
    "The same SFU call with SFrame (RFC 9605, AES-GCM) on every frame, keyed by a secret only "
    "the participants hold; the SFU forwards what it cannot read. Captured at alice and at "
    "the SFU.",
    _SFU_HOSTS, "alice", lambda s, n, w: _sfu_call(s, n, w, e2ee=True), _sfu_truth(e2ee=True),
    modules=("aiortc", "scapy"),
))


def _janus(e2ee: bool, firefox: tuple[str, ...] = ()
           ) -> Callable[[Scenario, LabNetwork, Path], dict[str, Any]]:
    def run(scenario: Scenario, net: LabNetwork, work: Path) -> dict[str, Any]:
        from flowscan.lab.janus import janus_call  # imports this module: not at the top

        return janus_call(scenario, net, work, e2ee=e2ee, firefox=firefox)
    return run


def _janus_scenario(name: str, summary: str, hosts: tuple[Place, Place, str], *, e2ee: bool,
                    firefox: tuple[str, ...] = ()) -> None:
    """A browser call through Janus: alice and bob, and the SFU at the given address."""
    alice, bob, sfu = hosts
    _register(Scenario(
        name, summary,
        {"alice": alice, "bob": bob, "sfu": Place("server", sfu, "US", "Amazon AWS (data centre)")},
        "alice", _janus(e2ee, firefox), _sfu_truth(e2ee, ("alice", "bob")),
        modules=("selenium", "marionette_driver", "scapy") if firefox else ("selenium", "scapy"),
        programs=("janus", "chromium", "chromedriver", "gcc", *(("firefox-esr",) if firefox
                                                                 else ()))))


_CA, _FR = ("CA", "Rogers (residential)"), ("FR", "Orange (residential)")
_CHROMIUM_PAIR = (Place("participant", "24.114.20.15", *_CA),
                  Place("participant", "90.12.34.58", *_FR), "34.192.10.21")
_janus_scenario(
    "sfu-janus-browser",
    "Two headless Chromium participants (libwebrtc, fake camera and microphone) publish to "
    "and subscribe from each other through Janus's VideoRoom, which terminates each "
    "PeerConnection's DTLS-SRTP and forwards RTP re-encrypted per leg; Janus's DTLS secrets "
    "come from a key-log shim. Captured at alice and at the SFU.", _CHROMIUM_PAIR, e2ee=False)
_janus_scenario(
    "sfu-janus-browser-e2ee",
    "The same Janus call with every encoded frame SFrame-protected in the page (Chromium's "
    "encoded insertable streams, WebCrypto AES-GCM, RFC 9605) with a key only the "
    "participants hold; the room requires end-to-end encryption and Janus forwards what it "
    "cannot read. Captured at alice and at the SFU.", _CHROMIUM_PAIR, e2ee=True)
_janus_scenario(
    "sfu-janus-firefox",
    "The Janus call with alice in headless Firefox ESR (NSS DTLS, driven through "
    "Marionette) and bob in Chromium; Firefox's own key log and Janus's shim give the DTLS "
    "secrets of alice's legs from both ends. Captured at alice and at the SFU.",
    (Place("participant", "90.12.34.59", *_FR), Place("participant", "24.114.20.16", *_CA),
     "34.192.10.22"), e2ee=False, firefox=("alice",))
_janus_scenario(
    "sfu-janus-firefox-e2ee",
    "The Janus call end to end with alice in Firefox ESR, whose frames are SFrame-protected "
    "by RTCRtpScriptTransform in a worker, and bob in Chromium, by encoded insertable "
    "streams: one SFrame (RFC 9605) key both browsers hold and Janus does not. Captured at "
    "alice and at the SFU.",
    (Place("participant", "90.12.34.61", *_FR), Place("participant", "24.114.20.17", *_CA),
     "34.192.10.23"), e2ee=True, firefox=("alice",))


def _p2p_browsers(scenario: Scenario, net: LabNetwork, work: Path) -> dict[str, Any]:
    from flowscan.lab.p2p_browser import p2p_call  # imports this module: not at the top

    return p2p_call(scenario, net, work)


_register(Scenario(
    "p2p-browser-dtls13",
    "A direct call between Firefox ESR (alice) and Chromium (bob), which both offer DTLS "
    "1.3: ICE with host candidates, DTLS 1.3-SRTP keyed by the exporter, Opus and VP8; "
    "Firefox's NSS logs the DTLS 1.3 secrets. Captured at alice.",
    {"alice": Place("participant", "90.12.34.60", "FR", "Orange (residential)"),
     "bob": Place("participant", "91.64.10.21", "DE", "Vodafone Kabel (residential)")},
    "alice", _p2p_browsers,
    {"media": [{"between": ["alice", "bob"], "app": "webrtc", "protocols":
                ["stun", "dtls", "rtp", "rtcp", "srtp"], "codecs": ["opus", "vp8"],
                "encryption_terminates": "bob", "key_exchange": "dtls-srtp",
                "dtls_version": "1.3",
                "observed": {"verdict": "end-to-end", "termination": "peer"},
                "decrypted": {"verdict": "end-to-end", "termination": "peer",
                              "inner": "codec"}}]},
    modules=("selenium", "marionette_driver", "scapy"),
    programs=("chromium", "chromedriver", "firefox-esr"),
))


from flowscan.lab import relay as _relay  # noqa: E402, F401 - registers its scenarios


def run_scenario(name: str, out: Path) -> Path:
    """Run the scenario and write its capture, keys and manifest to out. A failure is a
    LabError of one line; the lab processes' logs are then kept in out/logs."""
    if name not in SCENARIOS:
        raise LabError(f"no scenario {name!r}; see 'flowscan lab list'")
    scenario = SCENARIOS[name]
    lacking = scenario.missing()
    if lacking:
        raise LabError(lacking)
    with tempfile.TemporaryDirectory(prefix="flowscan-lab-") as tmp:
        work = Path(tmp)
        try:
            with LabNetwork(list(scenario.hosts)) as net:
                result = scenario.run(scenario, net, work)
                if any(state != "connected" for state in result.get("states", ["connected"])):
                    raise LabError(f"the call did not connect ({result.get('states')})")
                _finish(scenario, net, work, out, result)
        except LabError as exc:
            logs = _keep_logs(work, out / "logs")
            raise LabError(f"{name}: {exc}" + (f"; logs in {logs}" if logs else "")) from None
    return out


def _keep_logs(work: Path, logs: Path) -> Path | None:
    """Copy the lab processes' logs out of the work folder, which is about to go."""
    found = sorted(work.rglob("*.log"))
    found = [f for f in found if f.name != "keys.log" and f.stat().st_size]
    if not found:
        return None
    try:
        logs.mkdir(parents=True, exist_ok=True)
        for log in found:
            shutil.copyfile(log, logs / "-".join(log.relative_to(work).parts))
    except OSError:
        return None
    return logs
