"""flowscan watch: a live capture shown as it arrives, and at its end the report `scan`
gives for the same bytes.

Lab captures are piped in as a slow writer would (chunks with pauses), so that the viewer
takes snapshots while the capture is still arriving; stopped with SIGINT mid-stream; and
replayed through a veth pair in a network namespace the test creates, where flowscan
starts dumpcap or tcpdump itself.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from flowscan.options import ScanOptions
from flowscan.pipeline import LiveRead, check_options, run, snapshot
from flowscan.report import json as json_report

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
SIP_PLAIN = LAB / "sip-rtp-plain" / "capture.pcapng"
P2P = LAB / "p2p-webrtc" / "capture.pcapng"
P2P_KEYS = LAB / "p2p-webrtc" / "keys.log"
FLOWSCAN = [sys.executable, "-m", "flowscan"]


def flowscan(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*FLOWSCAN, *args], input=stdin, capture_output=True, timeout=120)


def snapshots(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def start_watch(tmp_path: Path, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*FLOWSCAN, "watch", "-", "--interval", "0.1", *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)


def interrupt(process: subprocess.Popen[bytes], signum: int = signal.SIGINT) -> bytes:
    """A signal (SIGINT: Ctrl-C), with standard input still open (the writer has not ended
    the stream); flowscan's standard error once it exited."""
    process.send_signal(signum)
    process.wait(timeout=30)
    assert process.stderr is not None and process.stdin is not None
    err = process.stderr.read()
    process.stdin.close()
    return err


def feed(process: subprocess.Popen[bytes], data: bytes, chunks: int, pause: float) -> None:
    """Write data in chunks with pauses, as a capture arrives; the pipe stays open."""
    assert process.stdin is not None
    step = -(-len(data) // chunks)
    for start in range(0, len(data), step):
        process.stdin.write(data[start:start + step])
        process.stdin.flush()
        time.sleep(pause)


def verdicts(report: dict[str, Any]) -> dict[int, str | None]:
    return {f["id"]: (f.get("encryption") or {}).get("verdict") for f in report["flows"]}


def endpoints(report: dict[str, Any]) -> dict[tuple[str, str, int, str, int], str | None]:
    return {(f["transport"], f["client"]["ip"], f["client"]["port"], f["server"]["ip"],
             f["server"]["port"]): (f.get("encryption") or {}).get("verdict")
            for f in report["flows"]}


def assert_growing(snaps: list[dict[str, Any]]) -> None:
    """Bytes read, packets and each flow's bytes never go down from one snapshot to the
    next (a flow stays in the table once seen)."""
    for before, after in pairwise(snaps):
        for key in ("bytes_read", "packets", "bytes"):
            assert before["capture"][key] <= after["capture"][key], key
        old = {f["id"]: f["bytes"] for f in before["flows"]}
        new = {f["id"]: f["bytes"] for f in after["flows"]}
        assert set(old) <= set(new)
        assert all(old[i] <= new[i] for i in old)


@pytest.mark.parametrize(("capture", "extra", "output"), [
    pytest.param(SIP_PLAIN, [], "report.json", id="sip-plain-json"),
    pytest.param(SIP_PLAIN, [], "report.txt", id="sip-plain-text"),
    pytest.param(SIP_PLAIN, ["--vantage", "US"], "report.html", id="sip-plain-vantage-html"),
    pytest.param(P2P, ["--keylog", str(P2P_KEYS), "--home", "DE"], "report.jsonl",
                 id="p2p-keylog-home-jsonl"),
])
def test_stdin_snapshots_grow_and_report_equals_scan(tmp_path: Path, capture: Path,
                                                     extra: list[str], output: str) -> None:
    """Snapshots taken while the capture arrives grow, the last one's verdicts are the
    report's, and the report is the bytes `scan -` writes for the same input and options."""
    data = capture.read_bytes()
    snap_file, report = tmp_path / "snapshots.jsonl", tmp_path / output
    process = start_watch(tmp_path, "-o", str(report), "--snapshots", str(snap_file), *extra)
    feed(process, data, chunks=8, pause=0.25)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and err == b""
    scanned = flowscan("scan", "-", "-o", str(tmp_path / f"scan-{output}"), *extra,
                       stdin=data)
    assert scanned.returncode == 0, scanned.stderr
    assert report.read_bytes() == (tmp_path / f"scan-{output}").read_bytes()

    snaps = snapshots(snap_file)
    live = [s for s in snaps if not s["ended"]]
    assert len(live) >= 2, "snapshots while the capture arrived"
    assert snaps[-1]["ended"] and not any(s["ended"] for s in snaps[:-1])
    assert live[0]["capture"]["bytes_read"] < len(data)
    assert snaps[-1]["capture"]["bytes_read"] == len(data)
    assert_growing(snaps)
    full = json.loads(flowscan("scan", str(capture), "--format", "json", *extra).stdout)
    last = {f["id"]: f for f in snaps[-1]["flows"]}
    assert set(last) == {f["id"] for f in full["flows"]}
    for flow in full["flows"]:
        assert last[flow["id"]]["bytes"] == flow["to_server"]["bytes"] + \
            flow["to_client"]["bytes"]
        encryption = flow.get("encryption") or {}
        if encryption.get("basis") != "decrypted":  # snapshots show the wire's verdicts
            assert last[flow["id"]]["verdict"] == encryption.get("verdict")
    assert snaps[-1]["end_to_end"] == full["answers"]["encryption"]["answer"] or extra


class _Trickle:
    """A capture file read a little at a time, a snapshot taken at every read: the most a
    viewer could interleave with the reading."""

    def __init__(self, path: Path, live: LiveRead, options: ScanOptions) -> None:
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._live, self._checked = live, check_options(options)
        self.taken = 0

    def fileno(self) -> int:
        return self._file.fileno()

    def _snapshot(self) -> None:
        if snapshot(self._live, self._checked) is not None:
            self.taken += 1

    def read(self, n: int) -> bytes:
        self._snapshot()
        return self._file.read(min(n, 3000))

    def readinto(self, view: memoryview) -> int:
        self._snapshot()
        return self._file.readinto(view[:3000]) or 0

    def close(self) -> None:
        self._file.close()


@pytest.mark.parametrize(("capture", "options"), [
    pytest.param(SIP_PLAIN, ScanOptions(home="US"), id="sip-plain"),
    pytest.param(LAB / "p2p-webrtc" / "capture-dsb.pcapng", ScanOptions(),
                 id="decryption-secrets-blocks"),
])
def test_snapshots_never_change_the_report(capture: Path, options: ScanOptions) -> None:
    """Snapshots run the later stages on copies: a snapshot at every read of the capture
    leaves the report as a plain scan of the file makes it, decryption included."""
    live = LiveRead()
    trickle = _Trickle(capture, live, options)
    live.stream = trickle  # type: ignore[assignment]
    watched = run(str(capture), options, live=live)
    assert trickle.taken > 10
    plain = run(str(capture), options)
    assert json_report.dumps_bytes([watched]) == json_report.dumps_bytes([plain])


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_sigint_mid_stream_writes_the_report_of_what_was_read(tmp_path: Path,
                                                              signum: int) -> None:
    """Ctrl-C (or SIGTERM) while the writer holds the stream open: exit 0, a warning on
    stderr and in the report, and otherwise the report `scan` gives for the bytes read
    (the last record cut in half, which the reader reports too)."""
    data = SIP_PLAIN.read_bytes()
    cut = 60001  # inside a record
    snap_file, report = tmp_path / "snapshots.jsonl", tmp_path / "report.json"
    process = start_watch(tmp_path, "-o", str(report), "--snapshots", str(snap_file))
    feed(process, data[:cut], chunks=3, pause=0.2)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        snaps = snapshots(snap_file)
        if snaps and snaps[-1]["capture"]["bytes_read"] == cut:
            break
        time.sleep(0.1)
    err = interrupt(process, signum)
    assert process.returncode == 0, err
    assert b"Traceback" not in err
    assert err.decode().startswith("flowscan: warning: watch was stopped (signal) after "
                                   "60001 bytes")
    watched = json.loads(report.read_bytes())
    scanned = json.loads(flowscan("scan", "-", "--format", "json", stdin=data[:cut]).stdout)
    stopped = watched["capture"]["warnings"].pop()
    assert stopped.startswith("watch was stopped (signal) after 60001 bytes")
    assert any("cut short" in w for w in watched["capture"]["warnings"])
    assert watched == scanned
    assert snapshots(snap_file)[-1]["ended"]


def handling_signals(pid: int) -> bool:
    """Whether the process catches SIGTERM: watch does once it is reading (Linux)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        pytest.skip("no /proc to see when flowscan is ready")
    caught = next(line for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught.split()[1], 16) & (1 << (signal.SIGTERM - 1)))


def test_sigint_before_any_capture(tmp_path: Path) -> None:
    """Stopped before a byte arrived: nothing to report, exit 130, no report file."""
    process = start_watch(tmp_path, "-o", str(tmp_path / "r.json"))
    deadline = time.monotonic() + 30
    while not handling_signals(process.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    err = interrupt(process)
    assert process.returncode == 130
    assert err == b"flowscan: error: stopped before any capture arrived\n"
    assert not (tmp_path / "r.json").exists()


def test_snapshots_default_to_stdout_when_the_report_has_a_file(tmp_path: Path) -> None:
    """stdout not a terminal and -o given: snapshots there, one JSON object a line."""
    done = flowscan("watch", "-", "-o", str(tmp_path / "r.csv"), stdin=SIP_PLAIN.read_bytes())
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines and lines[-1]["ended"] and lines[-1]["type"] == "snapshot"
    assert (tmp_path / "r.csv").read_bytes() == flowscan(
        "scan", "-", "--format", "csv", stdin=SIP_PLAIN.read_bytes()).stdout


@pytest.mark.parametrize(("args", "message"), [
    (["watch"], "give '-' (a capture on standard input) or -i INTERFACE"),
    (["watch", "-", "-i", "lo"], "give '-' (a capture on standard input) or -i INTERFACE"),
    (["watch", str(SIP_PLAIN)], "watch reads a live stream"),
    (["watch", "-", "--capture-tool", "tcpdump"], "--capture-tool is for -i INTERFACE"),
    (["watch", "-", "--snapshots", "-"], "--snapshots - and the report would share"),
    (["watch", "-", "-o", "r.pdf"], "no report format is known for the extension .pdf"),
    (["watch", "-", "--home", "UK"], "UK"),
])
def test_usage_errors_are_one_line(args: list[str], message: str) -> None:
    done = flowscan(*args, stdin=b"")
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("flowscan: error: ")
    assert message in lines[0]


def test_no_capture_tool_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([*FLOWSCAN, "watch", "-i", "lo"], capture_output=True, timeout=60,
                          env={**os.environ, "PATH": str(tmp_path)})
    assert done.returncode == 2
    assert done.stderr == (b"flowscan: error: watch -i needs dumpcap or tcpdump to capture, "
                           b"and neither is installed (Debian: apt install tshark, or "
                           b"tcpdump)\n")


def test_a_tool_refused_the_capture_is_one_line(tmp_path: Path) -> None:
    """A capture tool that fails (as tcpdump does without root) gives its reason, its
    last line of error, in one line; its chatter before it is left out."""
    fake = tmp_path / "tcpdump"
    fake.write_text("#!/bin/sh\necho 'tcpdump: verbose output suppressed' >&2\n"
                    "echo \"tcpdump: eth9: You don't have permission to capture on that "
                    "device\" >&2\nexit 1\n")
    fake.chmod(0o755)
    done = subprocess.run([*FLOWSCAN, "watch", "-i", "eth9", "--capture-tool", "tcpdump"],
                          capture_output=True, timeout=60,
                          env={**os.environ, "PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert done.returncode == 2
    hint = "" if os.geteuid() == 0 else "; capturing needs root"
    assert done.stderr.decode() == ("flowscan: error: tcpdump could not capture on eth9: "
                                    "eth9: You don't have permission to capture on that "
                                    f"device{hint}\n")


TOOLS = [tool for tool in ("dumpcap", "tcpdump") if shutil.which(tool)]


@pytest.mark.skipif(not TOOLS, reason="neither dumpcap nor tcpdump is installed")
def test_a_missing_interface_is_one_line() -> None:
    done = flowscan("watch", "-i", "flowscan-nosuch0", "--capture-tool", TOOLS[-1])
    assert done.returncode == 2
    lines = done.stderr.decode().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"flowscan: error: {TOOLS[-1]} could not capture on "
                               "flowscan-nosuch0: ")


# --- a real interface, in a network namespace --------------------------------------------

def _can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if not shutil.which("ip"):
        return "needs iproute2's ip"
    if subprocess.run(["ip", "netns", "list"], capture_output=True).returncode:
        return "ip netns is not available here"
    return None


@pytest.fixture
def veth_namespace() -> Iterator[str]:
    """A namespace holding a veth pair, fsw0 <-> fsw1, up, without IPv6 (no router
    solicitations of its own in the capture); removed afterwards."""
    ns = f"fswatch{os.getpid()}"

    def ip(*args: str) -> None:
        subprocess.run(["ip", "netns", "exec", ns, *args], check=True, capture_output=True)

    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        ip("ip", "link", "add", "fsw0", "type", "veth", "peer", "name", "fsw1")
        for name in ("fsw0", "fsw1"):
            ip("sysctl", "-qw", f"net.ipv6.conf.{name}.disable_ipv6=1")
            ip("ip", "link", "set", name, "up")
        yield ns
    finally:
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)


REPLAY = """
import sys
from scapy.all import Ether, get_if_hwaddr, rdpcap, sendp
packets = rdpcap(sys.argv[1])
src, dst = get_if_hwaddr("fsw0"), get_if_hwaddr("fsw1")
for p in packets:
    p[Ether].src, p[Ether].dst = src, dst
sendp(packets, iface="fsw0", verbose=False)
"""


@pytest.mark.skipif(_can_make_namespaces() is not None,
                    reason=_can_make_namespaces() or "")
@pytest.mark.skipif(not TOOLS, reason="neither dumpcap nor tcpdump is installed")
@pytest.mark.parametrize("tool", TOOLS)
def test_watch_an_interface(veth_namespace: str, tmp_path: Path, tool: str) -> None:
    """flowscan starts the capture tool on fsw1, a lab call is replayed into fsw0 with
    Scapy, and after SIGINT the snapshots and the report show the call's flows with the
    verdicts a scan of the file gives (packet counts may differ: the kernel may add or
    drop)."""
    pytest.importorskip("scapy")
    snap_file, report = tmp_path / "snapshots.jsonl", tmp_path / "report.json"
    process = subprocess.Popen(
        ["ip", "netns", "exec", veth_namespace, *FLOWSCAN, "watch", "-i", "fsw1",
         "--capture-tool", tool, "--interval", "0.2", "-o", str(report), "--snapshots",
         str(snap_file)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    expected = endpoints(json.loads(flowscan("scan", str(SIP_PLAIN), "--format",
                                             "json").stdout))
    try:
        time.sleep(2.0)  # the tool opens the interface
        subprocess.run(["ip", "netns", "exec", veth_namespace, sys.executable, "-c", REPLAY,
                        str(SIP_PLAIN)], check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            snaps = snapshots(snap_file)
            if snaps and snaps[-1]["capture"]["packets"] >= 512:
                break
            time.sleep(0.2)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert b"Traceback" not in err and err == b""
    watched = json.loads(report.read_bytes())
    assert watched["capture"]["path"] == f"<{tool} -i fsw1>"
    assert watched["capture"]["warnings"] == []
    seen = endpoints(watched)
    for flow, verdict in expected.items():
        assert seen.get(flow, "missing") == verdict, flow
    last = snapshots(snap_file)[-1]
    assert last["ended"]
    in_snapshot = {(f["proto"], f["client_ip"], f["client_port"], f["server_ip"],
                    f["server_port"]): f["verdict"] for f in last["flows"]}
    assert {flow: in_snapshot.get(flow, "missing") for flow in expected} == expected
    assert last["end_to_end"] == watched["answers"]["encryption"]["answer"] == "no"


# --- the screen, in a terminal ----------------------------------------------------------

@pytest.mark.skipif(not shutil.which("tmux"), reason="tmux is not installed")
def test_the_live_table_on_a_terminal(tmp_path: Path) -> None:
    """In a terminal (tmux, on a server of its own), the table shows the call's flows
    while the capture still arrives: the media flow, its remote and verdict, still open."""
    fifo, report = tmp_path / "feed", tmp_path / "report.json"
    os.mkfifo(fifo)
    tmux = ["tmux", "-L", f"flowscan-watch-{os.getpid()}"]
    command = (f"{shlex.quote(sys.executable)} -m flowscan watch - --interval 0.2 -o "
               f"{shlex.quote(str(report))} < {shlex.quote(str(fifo))}; sleep 60")
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "40", "-c",
                    str(Path(__file__).resolve().parent.parent), command], check=True)
    pane = ""
    try:
        with open(fifo, "wb", buffering=0) as writer:  # opens once flowscan reads it
            writer.write(SIP_PLAIN.read_bytes()[:60000])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and "open" not in pane:
                time.sleep(0.2)
                pane = subprocess.run([*tmux, "capture-pane", "-p"], capture_output=True,
                                      text=True).stdout
        deadline = time.monotonic() + 30
        while not report.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
    lines = pane.splitlines()
    assert lines[0].startswith("flowscan watch - (live, ")
    media = [line.split() for line in lines if line.split()[:1] == ["3"]]
    assert media and media[0][1:3] == ["sip", "73.15.20.30:40016"]
    assert "plaintext" in media[0] and media[0][-1] == "open"
    assert json.loads(report.read_bytes())["capture"]["packets"] == 235
