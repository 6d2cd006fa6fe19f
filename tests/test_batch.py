"""scan over many captures: folders and globs, one report per capture in -o DIR, the
combined summary, --format jsonl, --tables (Parquet read back by DuckDB), and -j on Dask."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from capfiles import REAL_DIR

import flowscan
from flowscan import batch
from flowscan.report import csv as csv_report
from flowscan.report import json as json_report
from flowscan.report import jsonl as jsonl_report

ROOT = Path(__file__).resolve().parent.parent
LAB = sorted((ROOT / "captures" / "lab").glob("*/capture*.pcapng"))


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, env=env, timeout=300)


def calls(tmp_path: Path) -> Path:
    """A folder of calls as a regulator gets them: nested, one corrupt, one not a capture."""
    root = tmp_path / "calls"
    for i, src in enumerate(LAB[:4]):
        dest = root / f"vendor{i % 2}" / src.parent.name / src.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dest)
    (root / "vendor1" / "notes.txt").write_text("not a capture")
    (root / "vendor1" / "broken.pcap").write_bytes(b"garbage, not a capture")
    return root


def test_folder_writes_one_report_per_capture_and_a_summary(tmp_path: Path) -> None:
    root = calls(tmp_path)
    out = tmp_path / "out"
    proc = run("scan", str(root), "-o", f"{out}/", "--format", "json", "--home", "EU")
    assert proc.returncode == 2, proc.stderr  # the corrupt one: exit 2 at the end
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("flowscan: error: ")
    assert "broken.pcap" in errors[0]
    captures = sorted(root.rglob("*.pcap*"), key=lambda p: p.parts)
    names = sorted(p.name for p in out.iterdir())
    assert "summary.json" in names and "summary.txt" in names
    reports = [n for n in names if n.endswith(".pcapng.json")]
    assert len(reports) == 4 and not any("broken" in n for n in names)
    # Each report is what `scan CAPTURE --format json` writes for that capture alone.
    good = [c for c in captures if c.name != "broken.pcap"]
    for capture in good:
        rel = capture.relative_to(root)
        name = "__".join(rel.parts) + ".json"
        alone = run("scan", str(capture), "--format", "json", "--home", "EU")
        assert (out / name).read_text() == alone.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["schema"] == "flowscan.summary/1"
    assert summary["captures"]["total"] == 5 and summary["captures"]["failed"] == 1
    assert summary["failed"][0]["capture"].endswith("broken.pcap")
    assert "not a pcap or pcapng" in summary["failed"][0]["error"]
    assert [p["capture"] for p in summary["per_capture"]] == [str(c) for c in captures]
    # The counters add up to the reports' own.
    bodies = [json.loads((out / n).read_text()) for n in reports]
    assert summary["captures"]["flows"] == sum(len(b["flows"]) for b in bodies)
    by_app: dict[str, int] = {}
    for b in bodies:
        for group in b["apps"]:
            by_app[group["name"]] = by_app.get(group["name"], 0) + group["bytes"]
    assert {a["key"]: a["bytes"] for a in summary["apps"]} == by_app
    text = (out / "summary.txt").read_text()
    assert text.startswith("flowscan summary: 5 captures, 4 read, 1 failed")
    assert "not read:" in text


def test_glob_patterns_are_expanded_sorted_and_refused_when_empty(tmp_path: Path) -> None:
    root = calls(tmp_path)
    found = batch.expand([f"{root}/**/*.pcapng"])
    assert found == sorted(found, key=lambda p: Path(p).parts) and len(found) == 4
    assert batch.expand([str(root)]) == [str(p) for p in sorted(root.rglob("*.pcap*"),
                                                              key=lambda p: p.parts)]
    proc = run("scan", f"{root}/**/*.nothing", "-o", f"{tmp_path}/o/")
    assert proc.returncode == 2
    assert proc.stderr.startswith("flowscan: error: ") and "no capture" in proc.stderr
    assert proc.stderr.count("\n") == 1
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())


def test_report_names_never_collide() -> None:
    names = batch.report_names(["/c/a/b__c.pcap", "/c/a__b/c.pcap", "/c/A/B__C.pcap",
                                "/c/x\x1b[2J.pcap"], "json")
    assert names[0] == "a__b__c.pcap.json"
    assert len({n.lower() for n in names}) == 4
    assert names[1] == "a__b__c.pcap-2.json"
    assert all(n.isprintable() and "/" not in n for n in names)
    assert batch.report_names(["/c/x.pcap"], "jsonl") == ["x.pcap.jsonl"]


def test_streamed_combined_output_equals_rendering_all_at_once() -> None:
    paths = [str(p) for p in LAB[:3]]
    reports = [flowscan.scan(p) for p in paths]
    for fmt, expected in (("json", json_report.dumps_bytes(reports)),
                          ("csv", csv_report.dumps_bytes(reports)),
                          ("jsonl", jsonl_report.dumps_bytes(reports))):
        got: list[bytes] = []
        combined = batch.Combined(fmt, got.append)
        for report in reports:
            combined.add(batch.render(report, batch.RenderSpec(fmt)))
        combined.close()
        assert b"".join(got) == expected, fmt


def test_jsonl_lines_are_typed_and_ordered(tmp_path: Path) -> None:
    capture = next(p for p in LAB if "sip-rtp-plain" in str(p))
    proc = run("scan", str(capture), "--format", "jsonl")
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    types = [line["type"] for line in lines]
    assert types[0] == "capture" and types[-1] == "summary"
    assert types.index("answers") == len(types) - 2
    order = ["capture", "flow", "app", "session", "finding", "answers", "summary"]
    assert [order.index(t) for t in types] == sorted(order.index(t) for t in types)
    report = flowscan.scan(str(capture))
    assert types.count("flow") == len(report.flows)
    assert {line["sha256"] for line in lines} == {report.capture.sha256}
    assert lines[0]["packets"] == report.capture.packets
    assert lines[-1]["flows"] == len(report.flows)
    # -o NAME.jsonl picks the format.
    proc = run("scan", str(capture), "-o", str(tmp_path / "r.jsonl"))
    assert proc.returncode == 0 and (tmp_path / "r.jsonl").read_text() == run(
        "scan", str(capture), "--format", "jsonl").stdout


def test_names_from_files_are_inert(tmp_path: Path) -> None:
    root = tmp_path / "in"
    root.mkdir()
    evil = root / "call\x1b]0;owned\x07\u202e.pcapng"
    shutil.copy(LAB[0], evil)
    (root / "bad\x1b[2J.pcap").write_bytes(b"nope")
    out = tmp_path / "out"
    proc = run("scan", str(root), "-o", f"{out}/", "--format", "jsonl",
               "--tables", str(tmp_path / "t"), "--tables-format", "csv")
    assert proc.returncode == 2
    assert "\x1b" not in proc.stderr
    for f in out.iterdir():
        assert f.name.isprintable(), f.name
        data = f.read_bytes()
        assert b"\x1b" not in data and b"\x07" not in data, f.name
        assert "\u202e".encode() not in data
    for f in (tmp_path / "t").iterdir():
        assert b"\x1b" not in f.read_bytes()


def scan_to_tables(tmp_path: Path, *extra: str) -> tuple[Path, list[Any], dict[str, int]]:
    """Four lab captures (and `extra` inputs) scanned with --tables: the tables' folder, the
    JSON reports, and the bytes of each verdict as the reports count them."""
    pytest.importorskip("pyarrow")
    paths = [str(p) for p in LAB[:4]]
    tables = tmp_path / "tables"
    proc = run("scan", *paths, *extra, "--format", "json", "-o", str(tmp_path / "r.json"),
               "--tables", str(tables), "--home", "EU")
    assert proc.returncode == (2 if extra else 0), proc.stderr
    reports = json.loads((tmp_path / "r.json").read_text())
    expected: dict[str, int] = {}
    for r in reports:
        for f in r["flows"]:
            if f["encryption"]:
                verdict = f["encryption"]["verdict"]
                expected[verdict] = expected.get(verdict, 0) + sum(
                    f[d]["bytes"] for d in ("to_server", "to_client"))
    return tables, reports, expected


def test_tables_parquet_read_back_with_duckdb(tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    tables, reports, expected = scan_to_tables(tmp_path)
    con = duckdb.connect()
    got = dict(con.execute(
        f"select verdict, sum(bytes) from '{tables}/flows.parquet' where verdict is not null "
        "group by verdict").fetchall())
    assert got == expected and got
    shas = {r["capture"]["sha256"] for r in reports}
    for table in ("flows", "sessions", "findings", "captures"):
        rows = con.execute(f"select distinct sha256 from '{tables}/{table}.parquet'").fetchall()
        assert {row[0] for row in rows} <= shas
    caps = con.execute(f"select capture, flows from '{tables}/captures.parquet' "
                       "order by capture").fetchall()
    assert caps == sorted((r["capture"]["path"], len(r["flows"])) for r in reports)
    # Sessions join their flows across tables on (sha256, flow id).
    joined = con.execute(
        f"select count(*) from (select sha256, unnest(flows) as id from "
        f"'{tables}/sessions.parquet') s join '{tables}/flows.parquet' f using (sha256, id)"
    ).fetchone()
    assert joined is not None
    assert joined[0] == sum(len(s["flows"]) for r in reports for s in r["sessions"])


def test_tables_parquet_read_by_pandas_and_polars(tmp_path: Path) -> None:
    """Both read every table with the documented schema (tables.SCHEMAS, README "Tables"):
    its columns in order and its types in each library's own terms, lists as lists, and
    the same bytes per verdict as the reports; a capture that could not be read is one
    captures row with its error and nulls."""
    pd = pytest.importorskip("pandas")
    pl = pytest.importorskip("polars")
    import pyarrow as pa

    from flowscan.report.tables import SCHEMAS

    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"not a capture")
    tables, reports, expected = scan_to_tables(tmp_path, str(bad))
    polars_types = {"str": pl.String, "int": pl.Int64, "float": pl.Float64,
                    "bool": pl.Boolean, "ints": pl.List(pl.Int64), "strs": pl.List(pl.String)}
    arrow_types = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(),
                   "bool": pa.bool_(), "ints": pa.list_(pa.int64()),
                   "strs": pa.list_(pa.string())}
    for name, schema in SCHEMAS.items():
        frame = pl.read_parquet(tables / f"{name}.parquet")
        assert frame.schema == pl.Schema({c: polars_types[t] for c, t in schema.items()})
        typed = pd.read_parquet(tables / f"{name}.parquet", dtype_backend="pyarrow")
        assert list(typed.columns) == list(schema)
        assert [d.pyarrow_dtype for d in typed.dtypes] == [arrow_types[t]
                                                           for t in schema.values()]
        plain = pd.read_parquet(tables / f"{name}.parquet")  # numpy-backed, the default
        assert list(plain.columns) == list(schema) and len(plain) == len(frame)
        assert {r["sha256"] for r in frame.iter_rows(named=True)} <= (
            {r["capture"]["sha256"] for r in reports} | {None})
    flows = pl.read_parquet(tables / "flows.parquet")
    by_polars = flows.filter(pl.col("verdict").is_not_null()).group_by("verdict").agg(
        pl.col("bytes").sum())
    assert dict(by_polars.iter_rows()) == expected and expected
    by_pandas = pd.read_parquet(tables / "flows.parquet").groupby("verdict")["bytes"].sum()
    assert {k: int(v) for k, v in by_pandas.items()} == expected
    sessions = pd.read_parquet(tables / "sessions.parquet")
    assert [list(f) for f in sessions["flows"]] == [
        s["flows"] for r in reports for s in r["sessions"]]
    # Captures' rows gathered into row groups, not one a capture: the footer, held in
    # memory until the file closes, grew by ~50 KB a capture.
    import pyarrow.parquet as pq

    assert {pq.ParquetFile(tables / f"{name}.parquet").metadata.num_row_groups
            for name in SCHEMAS} == {1}
    captures = pl.read_parquet(tables / "captures.parquet")
    assert captures["capture"].to_list() == [*(r["capture"]["path"] for r in reports),
                                             str(bad)]
    failed = captures.row(len(reports), named=True)
    assert "not a pcap or pcapng" in failed["error"]
    assert failed["sha256"] is None and failed["packets"] is None
    assert captures["error"].null_count() == len(reports)


def test_tables_csv_and_usage_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"=cmd|' /C calc'!A0")  # not a capture, and a formula to a spreadsheet
    proc = run("scan", str(LAB[0]), str(bad), "--tables", str(tmp_path / "t"),
               "--tables-format", "csv", "--format", "json")
    assert proc.returncode == 2, proc.stderr
    header = (tmp_path / "t" / "flows.csv").read_text().splitlines()[0]
    assert header.startswith("capture,sha256,id,proto")
    import csv

    with open(tmp_path / "t" / "captures.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["capture"] for r in rows] == [str(LAB[0]), str(bad)]
    assert rows[0]["error"] == "" and len(rows[0]["sha256"]) == 64
    assert "not a pcap or pcapng" in rows[1]["error"] and rows[1]["sha256"] == ""
    for args, words in ((["--tables-format", "csv"], "--tables-format needs --tables"),
                        (["-j", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
                        (["--scheduler", "127.0.0.1:1"], "tcp://HOST:PORT")):
        proc = run("scan", str(LAB[0]), *args)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.startswith("flowscan: error: ") and words in proc.stderr
        assert proc.stderr.count("\n") == 1


def test_unreachable_scheduler_is_one_line_error() -> None:
    pytest.importorskip("distributed")
    from flowscan.errors import FlowscanError
    from flowscan.options import ScanOptions

    with pytest.raises(FlowscanError, match="cannot reach the Dask scheduler"):
        list(batch.distributed([str(LAB[0])], ScanOptions(), batch.RenderSpec("json"),
                               scheduler="tcp://127.0.0.1:9", connect_timeout=1))


def test_parallel_run_is_byte_identical_to_serial(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    inputs = [str(ROOT / "captures" / "lab")]
    if REAL_DIR.is_dir():
        inputs.append(str(REAL_DIR))
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"garbage")
    common = [*inputs, str(bad), "--format", "jsonl", "--home", "EU"]
    serial = run("scan", *common, "-o", f"{tmp_path}/s/", "--tables", f"{tmp_path}/st")
    # Dask's default HTTP port taken (another cluster, a second run): still no word on
    # stderr; Dask warned that it hosted its server on another port instead.
    with socket.socket() as taken:
        with contextlib.suppress(OSError):  # taken already
            taken.bind(("", 8787))
            taken.listen()
        parallel = run("scan", *common, "-o", f"{tmp_path}/p/", "--tables",
                       f"{tmp_path}/pt", "-j", "2")
    assert serial.returncode == parallel.returncode == 2
    assert serial.stderr == parallel.stderr
    files = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "p").iterdir()) and len(files) > 10
    for name in files:
        assert (tmp_path / "s" / name).read_bytes() == (tmp_path / "p" / name).read_bytes()
    for name in ("flows", "sessions", "findings", "captures"):
        assert ((tmp_path / "st" / f"{name}.parquet").read_bytes()
                == (tmp_path / "pt" / f"{name}.parquet").read_bytes())
    # One combined report to standard output, too.
    one = run("scan", *inputs, "--format", "json")
    two = run("scan", *inputs, "--format", "json", "-j", "2")
    assert one.returncode == two.returncode == 0 and one.stdout == two.stdout


def test_an_existing_folder_given_to_o_gets_a_report_per_capture(tmp_path: Path) -> None:
    """-o naming an existing folder (no trailing /) was an error; it is now the folder."""
    proc = run("scan", str(LAB[0]), str(LAB[1]), "-o", str(tmp_path), "--format", "csv")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([*batch.report_names([str(LAB[0]), str(LAB[1])], "csv"),
                            "summary.json", "summary.txt"])
    assert all(n.endswith(".pcapng.csv") for n in names if not n.startswith("summary"))


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv", "text", "html"])
def test_one_capture_is_rendered_straight_into_its_output(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """`scan CAPTURE -o FILE` renders into FILE as it goes, never into a spool file copied
    there afterwards (which wrote a large report twice), and the bytes are the report's
    rendering; two captures still go through the spool, to be combined."""
    from flowscan import cli, spill

    capture = "captures/lab/sip-sdes-srtp/capture.pcapng"
    spooled: list[int] = []
    real_spool = spill.spool

    def counted_spool() -> Any:
        spooled.append(1)
        return real_spool()

    monkeypatch.setattr(batch, "spool", counted_spool)
    out = tmp_path / f"report.{fmt}"
    with pytest.raises(SystemExit) as exited:
        cli.cli.main(["scan", capture, "--format", fmt, "-o", str(out)], standalone_mode=False)
    assert exited.value.code == 0 and spooled == []
    spec = batch.RenderSpec(fmt=fmt)
    assert out.read_bytes() == batch.render(flowscan.scan(capture, workers=None), spec)
    with pytest.raises(SystemExit) as exited:
        cli.cli.main(["scan", capture, capture, "--format", "jsonl", "-o", str(out)],
                     standalone_mode=False)
    assert exited.value.code == 0 and len(spooled) == 2
