"""Reports written in pieces into spool files (spill.py), never whole in memory: the same
bytes as the report serialised at once, in every format, through a spool file that goes to
disk; and the spool file closed when a renderer fails half-way."""

from __future__ import annotations

import dataclasses
import io
from pathlib import Path
from typing import IO

import orjson
import pytest

import flowscan
from flowscan import batch, spill
from flowscan.report import json as json_report
from flowscan.report.model import Report
from flowscan.report.sanitize import json_inert

ROOT = Path(__file__).resolve().parent.parent
LAB = sorted((ROOT / "captures" / "lab").glob("*/capture.pcapng"))
FORMATS = ("json", "jsonl", "csv", "text")


@pytest.fixture(scope="module")
def reports() -> list[Report]:
    return [flowscan.scan(str(path)) for path in LAB[:3]]


@pytest.fixture
def spools(monkeypatch: pytest.MonkeyPatch) -> list[IO[bytes]]:
    """Every spool file made, each rolled over to disk after its first 64 bytes."""
    made: list[IO[bytes]] = []
    real = spill.spool

    def small() -> IO[bytes]:
        out = real()
        out._max_size = 64  # type: ignore[attr-defined]
        made.append(out)
        return out

    monkeypatch.setattr(batch, "spool", small)
    return made


def whole(value: object) -> bytes:
    """The report serialised at once, as the JSON renderer did before it wrote in pieces."""
    return json_inert(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE,
                                   default=json_report.as_list))


def test_json_in_pieces_equals_json_at_once(reports: list[Report]) -> None:
    assert all(report.flows for report in reports)
    empty = dataclasses.replace(reports[0], flows=[])
    for chosen in ([reports[0]], reports, [empty], [empty, reports[1]], [reports[1], empty]):
        expected = whole(chosen[0] if len(chosen) == 1 else chosen)
        assert json_report.dumps_bytes(chosen) == expected


def test_json_in_pieces_repairs_strings_as_at_once(reports: list[Report]) -> None:
    """A capture path that is not UTF-8 (a lone surrogate) in the frame, and a flow's
    string that orjson refuses: each piece is repaired as the whole report was."""
    report = dataclasses.replace(reports[0], capture=dataclasses.replace(
        reports[0].capture, path="calls/\udcff.pcap"))
    flows = list(report.flows)
    flows[0] = dataclasses.replace(flows[0], protocols=(*flows[0].protocols, "x\udcfe"))
    report = dataclasses.replace(report, flows=flows)
    got = json_report.dumps_bytes([report])
    assert b"\\ufffd" not in got and "\ufffd".encode() in got
    from flowscan.report.sanitize import json_safe_tree

    assert got == whole(json_safe_tree(report))


@pytest.mark.parametrize("fmt", FORMATS)
def test_spooled_report_on_disk_equals_report_in_memory(
        reports: list[Report], spools: list[IO[bytes]], monkeypatch: pytest.MonkeyPatch,
        fmt: str) -> None:
    spec = batch.RenderSpec(fmt, spool=True)
    expected = [batch.render(report, batch.RenderSpec(fmt)) for report in reports]
    monkeypatch.setattr(batch, "scan", lambda path, options, progress=None: reports[
        [str(p) for p in LAB].index(path)])
    results = [batch.analyse(str(path), flowscan.ScanOptions(), spec) for path in LAB[:3]]
    assert len(spools) == 3 and all(s._rolled for s in spools)  # type: ignore[attr-defined]
    got: list[bytes] = []
    combined = batch.Combined(fmt, got.append)
    for result in results:
        assert result.rendered is not None and not isinstance(result.rendered, bytes)
        combined.add(result.rendered)
    combined.close()
    assert all(s.closed for s in spools)
    memory: list[bytes] = []
    combined = batch.Combined(fmt, memory.append)
    for data in expected:
        combined.add(data)
    combined.close()
    assert b"".join(got) == b"".join(memory)


def test_spooled_report_written_to_a_file(reports: list[Report], spools: list[IO[bytes]],
                                          tmp_path: Path) -> None:
    out = tmp_path / "report.json"
    spooled = spill.spool()
    json_report.write([reports[0]], spooled)
    spooled.seek(0)
    batch.write_file(str(out), spooled)
    assert spooled.closed
    assert out.read_bytes() == json_report.dumps_bytes([reports[0]])


def test_spool_closed_when_the_renderer_fails(reports: list[Report], spools: list[IO[bytes]],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(chosen: list[Report], out: IO[bytes]) -> None:
        out.write(b"x" * 1000)  # on disk by now
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(json_report, "write", failing)
    monkeypatch.setattr(batch, "scan", lambda path, options, progress=None: reports[0])
    with pytest.raises(RuntimeError, match="renderer failed"):
        batch.analyse(str(LAB[0]), flowscan.ScanOptions(), batch.RenderSpec("json", spool=True))
    assert len(spools) == 1 and spools[0]._rolled  # type: ignore[attr-defined]
    assert spools[0].closed


def test_csv_write_leaves_the_output_open(reports: list[Report]) -> None:
    from flowscan.report import csv as csv_report

    out = io.BytesIO()
    csv_report.write(reports, out)
    assert not out.closed and out.getvalue() == csv_report.dumps(reports).encode()
