"""A capture on standard input is analysed exactly as the same file named by its path,
keys included: decryption's second pass reads a private copy of the input."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import flowscan
from flowscan.capture import CaptureSource, open_reader

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"


def run(args: list[str], stdin: Path | None, tmpdir: Path) -> subprocess.CompletedProcess[bytes]:
    """flowscan in a subprocess whose temporary files go to tmpdir, so leftovers show."""
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    with open(stdin, "rb") if stdin else open(os.devnull, "rb") as feed:
        return subprocess.run([sys.executable, "-m", "flowscan", *args], stdin=feed,
                              capture_output=True, env=env)


def decrypted_flows(report: dict[str, object]) -> int:
    flows = report["flows"]
    assert isinstance(flows, list)
    return sum(1 for f in flows if (f.get("encryption") or {}).get("basis") == "decrypted")


CASES = [
    pytest.param("sip-sdes-srtp/capture.pcapng", [], id="sdes-in-sip"),
    pytest.param("p2p-webrtc/capture-dsb.pcapng", [], id="decryption-secrets-blocks"),
    pytest.param("p2p-webrtc/capture.pcapng", ["--keylog", str(LAB / "p2p-webrtc/keys.log")],
                 id="dtls-keylog"),
]


@pytest.mark.parametrize(("capture", "extra"), CASES)
def test_stdin_report_equals_file_report(tmp_path: Path, capture: str,
                                         extra: list[str]) -> None:
    path = LAB / capture
    if not path.exists():
        pytest.skip(f"{capture} is not in this checkout")
    spool = tmp_path / "tmp"
    spool.mkdir()
    by_path = run(["scan", "--format", "json", *extra, str(path)], None, spool)
    by_stdin = run(["scan", "--format", "json", *extra, "-"], path, spool)
    assert by_path.returncode == 0, by_path.stderr
    assert by_stdin.returncode == 0, by_stdin.stderr
    assert by_stdin.stderr == b""
    a, b = json.loads(by_path.stdout), json.loads(by_stdin.stdout)
    assert decrypted_flows(a) > 0  # the keys are really used, so the comparison means something
    assert a["capture"].pop("path") == str(path)
    assert b["capture"].pop("path") == "<stdin>"
    assert a == b
    assert list(spool.iterdir()) == []  # the copy of standard input is gone


def packets(path: Path) -> list[tuple[float, int, bytes, int]]:
    with CaptureSource(str(path)) as source:
        return [(ts, link, bytes(data), wire)
                for ts, link, data, wire in open_reader(source).packets()]


def test_decrypt_reads_stdin(tmp_path: Path) -> None:
    capture = LAB / "sip-sdes-srtp/capture.pcapng"
    spool = tmp_path / "tmp"
    spool.mkdir()
    by_path = run(["decrypt", str(capture), "-o", str(tmp_path / "a.pcapng")], None, spool)
    by_stdin = run(["decrypt", "-", "-o", str(tmp_path / "b.pcapng")], capture, spool)
    assert by_path.returncode == 0 and by_stdin.returncode == 0, by_stdin.stderr
    assert b"packets in the clear" in by_stdin.stdout
    clear = packets(tmp_path / "a.pcapng")
    assert clear == packets(tmp_path / "b.pcapng")
    assert clear != packets(capture)  # something was decrypted
    assert list(spool.iterdir()) == []


def _fake_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))


def test_full_disk_for_the_copy_costs_decryption_not_the_report(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while copying standard input: the report is made, with a warning why nothing
    was decrypted, and nothing is left in the temporary directory."""
    capture = LAB / "sip-sdes-srtp/capture.pcapng"
    made: list[Path] = []

    def mkstemp_on_full_disk(prefix: str = "", suffix: str = "") -> tuple[int, str]:
        name = tmp_path / f"{prefix}x{suffix}"
        name.touch()
        made.append(name)
        return os.open("/dev/full", os.O_WRONLY), str(name)

    monkeypatch.setattr("tempfile.mkstemp", mkstemp_on_full_disk)
    _fake_stdin(monkeypatch, capture.read_bytes())
    report = flowscan.scan("-")
    assert made and not made[0].exists()
    assert report.capture.sha256 == flowscan.scan(str(capture)).capture.sha256
    assert not any(f.encryption and f.encryption.decryption for f in report.flows)
    assert any("nothing was decrypted" in w and "No space left" in w
               for w in report.capture.warnings)


def test_stdin_copy_is_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    capture = LAB / "sip-sdes-srtp/capture.pcapng"
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    _fake_stdin(monkeypatch, capture.read_bytes())
    with CaptureSource("-") as source:
        copy = source.replay_path()
        assert copy is not None and Path(copy).parent == tmp_path
        assert Path(copy).stat().st_mode & 0o077 == 0
        assert Path(copy).read_bytes() == capture.read_bytes()
    assert not Path(copy).exists()


def test_fifo_is_copied_for_the_second_pass(tmp_path: Path) -> None:
    """A FIFO, like standard input, cannot be opened again once read: without the copy the
    second pass would wait for a writer forever."""
    capture = LAB / "sip-sdes-srtp/capture.pcapng"
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    spool = tmp_path / "tmp"
    spool.mkdir()
    env = {**os.environ, "TMPDIR": str(spool)}
    proc = subprocess.Popen([sys.executable, "-m", "flowscan", "scan", "--format", "json",
                             str(fifo)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    with open(fifo, "wb") as writer:
        writer.write(capture.read_bytes())
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    report = json.loads(out)
    assert decrypted_flows(report) > 0
    assert report["capture"]["path"] == str(fifo)
    assert list(spool.iterdir()) == []
