"""The native reader and Wireshark's dissectors must agree on every real capture."""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import flowscan
from flowscan.crosscheck import compare, crosscheck, flow_key
from flowscan.options import ScanOptions
from flowscan.tshark import FLOW_TABLE_ONLY, scan_with_tshark

needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None,
                                  reason="tshark is not installed")


@needs_tshark
def test_native_and_tshark_engines_agree(real_path: Path) -> None:
    result = crosscheck(str(real_path))
    assert result.tshark_warnings == []
    assert result.differences == []
    assert result.agree, result


def test_crosscheck_names_the_flow_that_differs() -> None:
    """One packet fewer on one flow in the second table: that flow, and only it, differs,
    by one packet and its bytes."""
    path = "captures/lab/sip-sdes-srtp/capture.pcapng"
    native = flowscan.scan(path)
    other = copy.deepcopy(native)
    flow = max(other.flows, key=lambda f: f.packets)
    flow.to_server = dataclasses.replace(flow.to_server, packets=flow.to_server.packets - 1,
                                         bytes=flow.to_server.bytes - 100)
    result = compare(native, other)
    assert not result.agree
    assert [(d.flow, d.measure, d.native - d.tshark) for d in result.differences] == [
        (flow_key(flow), "bytes", 100), (flow_key(flow), "packets", 1)]
    assert compare(native, copy.deepcopy(native)).agree


@needs_tshark
def test_crosscheck_command_exits_0_when_the_tables_agree() -> None:
    proc = subprocess.run([sys.executable, "-m", "flowscan", "crosscheck", "--format", "json",
                           "captures/lab/sip-sdes-srtp/capture.pcapng"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["agree"] is True


def test_the_tshark_engine_refuses_what_it_cannot_honour() -> None:
    """No option is silently ignored: the flow-table-only engine names each it cannot use."""
    capture = "captures/lab/sip-sdes-srtp/capture.pcapng"
    for args, named in ((["--home", "EU"], "--home"), (["--vantage", "DE"], "--vantage"),
                        (["--keylog", "x.log"], "--keylog"), (["--sdp", "x.sdp"], "--sdp")):
        proc = subprocess.run([sys.executable, "-m", "flowscan", "scan", capture,
                               "--engine", "tshark", *args], capture_output=True, text=True)
        assert proc.returncode == 2
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("flowscan: error:"), proc.stderr
        assert named in lines[0] and "flow table only" in lines[0]


@needs_tshark
def test_the_tshark_report_says_it_is_a_flow_table_only() -> None:
    report = flowscan.scan("captures/lab/sip-sdes-srtp/capture.pcapng", engine="tshark")
    assert report.capture.warnings == [FLOW_TABLE_ONLY]
    assert all(f.encryption is None and f.app is None for f in report.flows)


@needs_tshark
def test_a_child_reaped_elsewhere_is_not_a_tshark_crash() -> None:
    """Another thread collecting any exited child (a reaper with a stale, reused pid does
    this in a suite that has started more processes than the pid space holds) must not
    turn a clean tshark run into "tshark crashed (exit 255)": the report is complete
    and carries no warning of its own."""
    stop = threading.Event()

    def reap_any_child() -> None:
        while not stop.is_set():
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, os.WNOHANG)
            time.sleep(0.0005)

    reaper = threading.Thread(target=reap_any_child)
    reaper.start()
    try:
        reports = [scan_with_tshark("captures/lab/sip-sdes-srtp/capture.pcapng", ScanOptions())
                   for _ in range(3)]
    finally:
        stop.set()
        reaper.join()
    native = flowscan.scan("captures/lab/sip-sdes-srtp/capture.pcapng")
    for report in reports:
        assert report.capture.warnings == [FLOW_TABLE_ONLY]
        assert compare(native, report).agree


@needs_tshark
def test_a_tshark_failure_is_a_warning_after_the_packets_it_gave(tmp_path: Path) -> None:
    """A capture cut short in a packet: tshark dissects the whole packets, then exits with
    status 2. The report keeps those packets (as many as the native reader finds) and says
    in one warning that tshark failed and why."""
    whole = Path("captures/lab/sip-sdes-srtp/capture.pcapng").read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(whole[:3000])
    report = scan_with_tshark(str(cut), ScanOptions())
    assert report.capture.packets == flowscan.scan(str(cut)).capture.packets > 0
    assert report.capture.warnings[0] == FLOW_TABLE_ONLY
    (failure,) = report.capture.warnings[1:]
    assert "tshark exited with status 2" in failure and "cut short" in failure
    assert "could be dangerous" not in failure


@needs_tshark
def test_ipv6_extension_headers_name_the_upper_layer(tmp_path: Path) -> None:
    """RFC 8200 section 4: MLD reports travel behind a Hop-by-Hop header (Next Header 0),
    and a fragment or destination-options header may stand before UDP. Both engines
    account the flow to the protocol at the end of the chain (turn_tcp_call.pcap's MLD
    reports were `ip-proto-0` through Wireshark's fixed `nxt` field)."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    from capfiles import MAC_A, MAC_B, pcap
    from scapy.layers.inet import UDP
    from scapy.layers.inet6 import (
        ICMPv6MLReport2,
        IPv6,
        IPv6ExtHdrDestOpt,
        IPv6ExtHdrHopByHop,
        RouterAlert,
    )
    from scapy.layers.l2 import Ether

    eth = Ether(src=MAC_A, dst=MAC_B)
    mld = eth / IPv6(src="fe80::1", dst="ff02::16", hlim=1) / IPv6ExtHdrHopByHop(
        options=[RouterAlert()]) / ICMPv6MLReport2()
    udp = eth / IPv6(src="2001:db8::1", dst="2001:db8::2") / IPv6ExtHdrDestOpt() / UDP(
        sport=5000, dport=6000) / (b"x" * 20)
    path = tmp_path / "ext.pcap"
    path.write_bytes(pcap([(1.0, bytes(mld)), (1.1, bytes(mld)), (2.0, bytes(udp))]))
    for engine in ("native", "tshark"):
        report = flowscan.scan(str(path), engine=engine)
        assert sorted((f.transport, f.packets) for f in report.flows) == [
            ("icmpv6", 2), ("udp", 1)], engine


@needs_tshark
def test_the_tshark_engine_leaves_the_process_signals_as_it_found_them() -> None:
    """pyshark points SIGCHLD and the signal wakeup fd at an event loop nobody runs after
    the capture is read: a library user's later child processes then each raise "Exception
    ignored when trying to write to the signal wakeup fd". After a scan both are as before,
    and many children exiting afterwards raise nothing."""
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    sigchld = signal.getsignal(signal.SIGCHLD)
    report = scan_with_tshark("captures/lab/sip-sdes-srtp/capture.pcapng", ScanOptions())
    assert report.flows
    assert signal.getsignal(signal.SIGCHLD) == sigchld
    assert signal.set_wakeup_fd(wakeup) == wakeup
    unraisable: list[object] = []
    hook, sys.unraisablehook = sys.unraisablehook, unraisable.append
    try:
        for _ in range(300):  # more than a wakeup socket's buffer holds at one byte each
            subprocess.run(["true"], check=True)
    finally:
        sys.unraisablehook = hook
    assert unraisable == []
