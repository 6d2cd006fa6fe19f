"""Every error a user can cause: one line on stderr, `flowscan: error: ...`, exit 2; never a
traceback, never "unexpected failure", never a secret."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from flowscan import cli

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
CAPTURE = str(LAB / "sip-sdes-srtp" / "capture.pcapng")
FULL = "/dev/full"
needs_dev_full = pytest.mark.skipif(not os.path.exists(FULL), reason="no /dev/full here")


def run(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    kw.setdefault("stdout", subprocess.PIPE)
    return subprocess.run([sys.executable, "-m", "flowscan", *args], stderr=subprocess.PIPE,
                          text=True, stdin=subprocess.DEVNULL, timeout=120,
                          **kw)  # type: ignore[call-overload]


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *expected: str) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("flowscan: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and "unexpected failure" not in proc.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["scan", "--bogus", CAPTURE], ["no such option '--bogus'"],
                 id="unknown-option"),
    pytest.param(["scan", "--to", CAPTURE], ["--top"], id="misspelt-option"),
    pytest.param(["scan"], ["missing argument"], id="missing-argument"),
    pytest.param(["decrypt", CAPTURE], ["missing option '-o'"], id="missing-option"),
    pytest.param([], ["missing command", "scan", "flowscan --help"], id="no-command"),
    pytest.param(["lab"], ["missing command", "list"], id="no-lab-command"),
    pytest.param(["bogus"], ["no such command 'bogus'"], id="unknown-command"),
    pytest.param(["decrypt", CAPTURE, "-o", "-"], ["needs a file name"], id="decrypt-to-dash"),
    pytest.param(["scan", "--format", "xml", CAPTURE], ["'xml' is not one of"],
                 id="bad-choice"),
    pytest.param(["scan", "{tmp}"], ["no capture in this folder"], id="folder-without-captures"),
    pytest.param(["scan", "{tmp}/missing.pcap"], ["no such file"], id="missing-capture"),
    pytest.param(["check", CAPTURE, "--claims", "{tmp}/binary.toml"], ["not UTF-8"],
                 id="binary-claims-file"),
])
def test_usage_and_input_errors(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    (tmp_path / "binary.toml").write_bytes(b"x\xff\xfe = 1\n")
    proc = run(*(a.replace("{tmp}", str(tmp_path)) for a in args))
    assert proc.stdout == ""
    assert_one_line_error(proc, *expected)


def test_report_never_overwrites_a_capture(tmp_path: Path) -> None:
    copy = tmp_path / "call.pcapng"
    copy.write_bytes(Path(CAPTURE).read_bytes())
    assert_one_line_error(run("scan", str(copy), "-o", str(copy)), "would overwrite a capture")
    assert copy.read_bytes() == Path(CAPTURE).read_bytes()


def test_output_dash_is_stdout() -> None:
    proc = run("scan", "--format", "json", CAPTURE, "-o", "-")
    assert proc.returncode == 0 and proc.stdout.startswith("{")


def test_control_characters_in_a_name_stay_escaped(tmp_path: Path) -> None:
    name = str(tmp_path / "a\nb\x1b[31mc.pcap")
    line = assert_one_line_error(run("scan", name), "no such file")
    assert "\x1b" not in line and "\\n" in line and "\\x1b" in line


@needs_dev_full
@pytest.mark.parametrize("args", [
    pytest.param(["scan", CAPTURE], id="text"),
    pytest.param(["scan", "--format", "json", CAPTURE], id="json"),
    pytest.param(["decrypt", CAPTURE, "-o", "{tmp}/clear.pcapng"], id="decrypt-summary"),
])
def test_full_disk_on_stdout(tmp_path: Path, args: list[str]) -> None:
    with open(FULL, "w") as full:
        proc = run(*(a.replace("{tmp}", str(tmp_path)) for a in args), stdout=full)
    assert_one_line_error(proc, "standard output", "No space left on device")


@needs_dev_full
@pytest.mark.parametrize("args", [
    pytest.param(["scan", CAPTURE, "-o", FULL], id="text"),
    pytest.param(["scan", "--format", "json", CAPTURE, "-o", FULL], id="json"),
    pytest.param(["decrypt", CAPTURE, "-o", FULL], id="decrypt"),
])
def test_full_disk_on_output_file(args: list[str]) -> None:
    assert_one_line_error(run(*args), FULL, "No space left on device")
    # Written in place: a temporary file renamed over it would replace the device node.
    assert stat.S_ISCHR(os.stat(FULL).st_mode)
    assert not os.path.exists(FULL + ".part")


def test_closed_stdout() -> None:
    proc = run("scan", CAPTURE, preexec_fn=lambda: os.close(1))
    assert_one_line_error(proc, "standard output is closed")


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_reader_going_away_is_not_an_error(fmt: str) -> None:
    """`flowscan scan ... | head`: the pipe closes early; no message, exit 0."""
    proc = subprocess.Popen([sys.executable, "-m", "flowscan", "scan", "--format", fmt,
                             "--top", "0", CAPTURE], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 0, err
    assert err == b""


def test_unexpected_failure_is_one_line_without_the_message(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bug's message may quote what it choked on (a key, a key log line): only the
    exception's type and flowscan's line are shown."""
    def broken(*args: object, **kw: object) -> None:
        raise ValueError("inline:c2VjcmV0IGtleSBtYXRlcmlhbA==")

    from flowscan import batch  # scan runs each capture through batch.analyse

    monkeypatch.setattr(batch, "scan", broken)
    monkeypatch.setattr(sys, "argv", ["flowscan", "scan", CAPTURE])
    monkeypatch.delenv("FLOWSCAN_DEBUG", raising=False)
    assert cli._run() == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("flowscan: error: unexpected failure")
    assert "ValueError in flowscan/" in err and "please report this" in err
    assert "c2VjcmV0" not in err


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_capture_name_that_is_not_utf8(tmp_path: Path, fmt: str) -> None:
    """Python keeps such a name's bytes as lone surrogates, which neither the JSON encoder
    nor stdout take: the report shows them as \\xNN."""
    name = os.fsdecode(bytes(tmp_path) + b"/call-\xff.pcapng")
    Path(name).write_bytes(Path(CAPTURE).read_bytes())
    proc = subprocess.run([sys.executable, "-m", "flowscan", "scan", "--format", fmt, name],
                          capture_output=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == b""
    assert b"call-\\\\xff.pcapng" in proc.stdout if fmt == "json" else (
        b"call-\\xff.pcapng" in proc.stdout)


def test_stdin_from_a_terminal_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """`flowscan scan -` typed at a terminal would wait for input that never comes."""
    import io

    import flowscan
    from flowscan.errors import CaptureError

    class Terminal(io.TextIOWrapper):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stdin", Terminal(io.BytesIO(b"")))
    with pytest.raises(CaptureError, match="standard input is a terminal"):
        flowscan.scan("-")
