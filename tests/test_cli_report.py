"""CLI behaviour and the JSON report: schema, reproducibility, text rendering."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import resources
from pathlib import Path

import jsonschema
from capfiles import ether, pcap
from scapy.layers.inet import IP, UDP

import flowscan


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          text=True, **kw)  # type: ignore[call-overload]


def sample(tmp_path: Path) -> str:
    pkts = [(1.0 + i, bytes(ether() / IP(src="192.0.2.1", dst="203.0.113.5")
                            / UDP(sport=40000, dport=8801) / (b"m" * 50))) for i in range(3)]
    path = tmp_path / "s.pcap"
    path.write_bytes(pcap(pkts))
    return str(path)


def schema() -> dict[str, object]:
    return json.loads(resources.files("flowscan.report").joinpath("schema.json").read_text())


def test_json_report_matches_schema_and_is_reproducible(tmp_path: Path) -> None:
    path = sample(tmp_path)
    first = run("scan", path, "--format", "json")
    second = run("scan", path, "--format", "json")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    report = json.loads(first.stdout)
    jsonschema.validate(report, schema())
    assert report["schema"] == "flowscan.report/1"
    assert report["tool"] == {"name": "flowscan", "version": flowscan.__version__}
    assert report["flows"][0]["server"] == {"ip": "203.0.113.5", "port": 8801}


def test_real_capture_reports_match_schema(real_path: Path) -> None:
    from flowscan.report.json import report_to_dict

    jsonschema.validate(report_to_dict(flowscan.scan(str(real_path))), schema())


def test_several_captures_give_an_array_and_output_file(tmp_path: Path) -> None:
    path = sample(tmp_path)
    out = tmp_path / "r.json"
    proc = run("scan", path, path, "--format", "json", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == ""
    reports = json.loads(out.read_text())
    assert [r["capture"]["packets"] for r in reports] == [3, 3]


def test_text_report_names_capture_and_flows(tmp_path: Path) -> None:
    proc = run("scan", sample(tmp_path))
    assert proc.returncode == 0
    assert "sha256" in proc.stdout
    assert "192.0.2.1:40000" in proc.stdout and "203.0.113.5:8801" in proc.stdout
    assert "\x1b[" not in proc.stdout  # no colour codes when not a terminal


def test_version_and_usage_errors() -> None:
    assert run("--version").stdout.strip() == f"flowscan, version {flowscan.__version__}"
    bad = run("scan", "--format", "xml", "x.pcap")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert run("scan").returncode == 2
