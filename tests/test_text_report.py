"""The text report (issue 16 part 2): answers first, 100 columns in a file or pipe with
every address and verdict whole, durations and counts as people say them, identical calls
said once; -o takes its format from the file's extension."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REAL_CAPTURES, real_capture

import flowscan
from flowscan.report import text
from flowscan.report.model import Report
from flowscan.report.text import duration

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
LAB_CAPTURES = sorted(LAB.glob("*/*.pcapng"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          text=True, timeout=300)


def endpoint(ip: str, port: int) -> str:
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def rendered(path: Path, **scan: str) -> tuple[Report, str]:
    report = flowscan.scan(str(path), **scan)  # type: ignore[arg-type]
    buf = io.StringIO()
    text.render([report], buf, top=0)
    return report, buf.getvalue()


@pytest.mark.parametrize("path", LAB_CAPTURES + REAL_CAPTURES, ids=lambda p: str(p)[-40:])
def test_fits_100_columns_with_every_address_and_verdict_whole(path: Path) -> None:
    report, out = rendered(path)
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert all(line == line.rstrip() for line in lines)  # no padding to the width
    table = re.split(r"\n *id ", out, maxsplit=1)[1]
    table_lines = table.splitlines()
    for flow in report.flows:
        for ip, port in ((flow.client.ip, flow.client.port), (flow.server.ip, flow.server.port)):
            # Whole on one line of the table, not folded or cut.
            assert any(endpoint(ip, port) in line for line in table_lines), (flow.id, ip)
        if flow.encryption:
            row = next(line for line in table_lines
                       if line.split() and line.split()[0] == str(flow.id))
            assert f" {flow.encryption.verdict} " in f"{row} ", (flow.id, row)


def test_ipv6_capture_stacks_addresses_rather_than_cutting_them() -> None:
    report, out = rendered(real_capture("stun_google_meet.pcapng"))
    assert any(":" in f.client.ip for f in report.flows)
    assert "client / server" in out
    assert "[2001:b07:a3d:c112:48a1:1094:1227:281e]:45572" in out
    assert max(map(len, out.splitlines())) <= 100


def test_answers_come_first_then_the_summary() -> None:
    _, out = rendered(real_capture("zoom.pcap"), home="EU")
    lines = out.splitlines()
    assert lines[0].startswith(str(real_capture("zoom.pcap")))
    assert re.match(r"  end-to-end\? +Cannot tell from this capture:", lines[1])
    head = "\n".join(lines[:25])
    assert "data went" in head and "left EU" in head
    assert "flow 21: signalling to US (www3.zoom.us)" in out
    assert "Flow 34: hop-by-hop media to a server located in Germany (DE) on AS31898" in out
    assert head.index("end-to-end?") < head.index("data went") < head.index("sha256")
    # The legend explains the verdict words the report uses.
    assert re.search(r"\n  hop-by-hop +means encrypted on each network hop", out)


def test_durations_counts_and_identical_calls_read_plainly() -> None:
    _, out = rendered(real_capture("zoom.pcap"))
    assert "103924590" not in out  # the capture span, as a span
    assert "(3.3 years)" in out
    assert "1 flows" not in out and "in 1 flow;" in out
    # Calls 1-3 have the same summary: said once.
    assert re.search(r"\n  calls 1-3 +3 calls like this: zoom: media to 109\.94\.160\.99:8801",
                     out)
    assert out.count("media to 109.94.160.99:8801") == 1
    # Names from the capture (SNI, DNS) beside the addresses.
    assert "zoomfrn99mmr.zoom.us" in re.split(r"\n *id ", out, maxsplit=1)[1]


@pytest.mark.parametrize(("seconds", "said"), [
    (None, "-"), (0.0, "0 ms"), (0.04, "40 ms"), (2.5, "2.5 s"), (42.4, "42 s"),
    (192, "3 min 12 s"), (180, "3 min"), (3840, "1 h 4 min"), (90000, "1 d 1 h"),
    (103924590.916, "3.3 years"),
])
def test_duration(seconds: float | None, said: str) -> None:
    assert duration(seconds) == said


def test_same_input_same_text_byte_for_byte() -> None:
    path = real_capture("zoom.pcap")
    first = run("scan", str(path), "--home", "EU")
    assert first.returncode == 0, first.stderr
    assert first.stdout == run("scan", str(path), "--home", "EU").stdout
    assert max(map(len, first.stdout.splitlines())) <= 100  # a pipe: 100 columns


def test_output_format_follows_the_extension(tmp_path: Path) -> None:
    path = str(LAB / "sip-rtp-plain" / "capture.pcapng")
    as_json = tmp_path / "r.json"
    assert run("scan", path, "-o", str(as_json)).returncode == 0
    assert json.loads(as_json.read_text())["answers"]["encryption"]["answer"] == "no"
    as_csv = tmp_path / "r.csv"
    assert run("scan", path, "-o", str(as_csv)).returncode == 0
    assert as_csv.read_text().startswith("capture,sha256,id,")
    for name in ("r.txt", "report"):
        assert run("scan", path, "-o", str(tmp_path / name)).returncode == 0
        assert (tmp_path / name).read_text().startswith(path)
    # An explicit --format wins over the extension.
    assert run("scan", path, "-o", str(as_json), "--format", "text").returncode == 0
    assert as_json.read_text().startswith(path)
    # An extension that names no format yet is an error, before any reading.
    pdf = run("scan", "missing.pcap", "-o", str(tmp_path / "r.pdf"))
    assert pdf.returncode == 2 and not (tmp_path / "r.pdf").exists()
    assert pdf.stderr.count("\n") == 1 and "--format (text, json, jsonl, csv, html)" in pdf.stderr
    as_html = tmp_path / "r.html"
    assert run("scan", path, "-o", str(as_html)).returncode == 0
    assert as_html.read_text().startswith("<!DOCTYPE html>")


SGR = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize("name", ["zoom.pcap", "stun_google_meet.pcapng"])
def test_a_terminal_of_80_or_120_columns_cuts_no_address(
        name: str, columns: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", str(columns))
    report = flowscan.scan(str(real_capture(name)))
    buf = io.StringIO()
    text.render([report], buf, top=0, color=True)
    out = SGR.sub("", buf.getvalue())
    assert max(map(len, out.splitlines())) <= columns
    for flow in report.flows:
        for ip, port in ((flow.client.ip, flow.client.port), (flow.server.ip, flow.server.port)):
            assert endpoint(ip, port) in out, (columns, flow.id, ip)
        if flow.encryption:
            assert flow.encryption.verdict in out


def test_a_long_list_of_flows_leaving_is_counted_past_a_dozen() -> None:
    report = flowscan.scan(str(real_capture("zoom.pcap")), home="EU")
    assert report.answers is not None
    leaving = report.answers.data.leaving
    report.answers.data.leaving = leaving * 3  # 27 flows
    buf = io.StringIO()
    text.render([report], buf)
    out = buf.getvalue()
    assert out.count("  left EU ") == text.LEAVING_MAX + 1
    assert f"and {27 - text.LEAVING_MAX} more flows" in out
