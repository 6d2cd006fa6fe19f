"""`flowscan lab` on a machine without the lab's extras or programs: `lab list` works, `lab
run` says in one line what to install, and no traceback of the lab's own processes ever
reaches the user."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flowscan.lab.scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
WEBRTC = [name for name, s in SCENARIOS.items() if "aiortc" in s.modules]

# Imports of aiortc and scapy fail as if they were not installed (find_spec too).
BLOCK = textwrap.dedent("""
    import sys

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("aiortc", "scapy"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, Block())
""")
MAIN = "import sys; from flowscan.cli import main; sys.argv = ['flowscan', *sys.argv[1:]]; main()"


def flowscan(script: str, *args: str, env: dict[str, str] | None = None
             ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", script, *args], capture_output=True,
                          text=True, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, timeout=120)


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("flowscan: error: lab: ")
    assert "Traceback" not in proc.stderr and "unexpected failure" not in proc.stderr
    return proc.stderr


@pytest.fixture
def stub_modules(tmp_path: Path) -> dict[str, str]:
    """An environment whose aiortc and scapy raise ImportError, in every process the lab
    starts too (they inherit PYTHONPATH)."""
    for name in ("aiortc", "scapy"):
        (tmp_path / "stubs" / name).mkdir(parents=True)
        (tmp_path / "stubs" / name / "__init__.py").write_text(
            f"raise ImportError('{name} is blocked for this test')\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "stubs"), str(ROOT)])}


def test_lab_list_without_the_extras() -> None:
    proc = flowscan(BLOCK + MAIN, "lab", "list")
    assert proc.returncode == 0, proc.stderr
    assert [line.split()[0] for line in proc.stdout.splitlines()] == list(SCENARIOS)
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("flowscan: note:")
    assert "pip install 'flowscan[lab]'" in proc.stderr and "aiortc" in proc.stderr


@pytest.mark.parametrize("scenario", WEBRTC)
def test_lab_run_without_aiortc_names_the_extra(tmp_path: Path, scenario: str,
                                                stub_modules: dict[str, str]) -> None:
    proc = flowscan(MAIN, "lab", "run", scenario, "-o", str(tmp_path / "out"), env=stub_modules)
    line = one_line_error(proc)
    assert f"{scenario} needs" in line and "aiortc" in line
    assert "pip install 'flowscan[lab]'" in line
    assert not (tmp_path / "out").exists()


def test_lab_run_without_scapy_blocked_by_a_finder(tmp_path: Path) -> None:
    proc = flowscan(BLOCK + MAIN, "lab", "run", "sip-rtp-plain", "-o", str(tmp_path))
    line = one_line_error(proc)
    assert "scapy" in line and "aiortc" not in line and "pip install 'flowscan[lab]'" in line


@pytest.mark.parametrize(("scenario", "packages"), [
    ("p2p-webrtc-turn", ["coturn", "iproute2", "tcpdump", "tshark", "wireshark-common"]),
    ("sip-sdes-srtp", ["baresip", "iproute2", "tcpdump"]),
    ("sfu-webrtc", ["iproute2", "tcpdump"]),
])
def test_lab_run_without_the_programs_names_debian_packages(
        tmp_path: Path, scenario: str, packages: list[str]) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python3").symlink_to(sys.executable)
    proc = flowscan(MAIN, "lab", "run", scenario, "-o", str(tmp_path / "out"),
                    env={**os.environ, "PATH": str(bin_dir)})
    line = one_line_error(proc)
    apt = line.split("apt install ", 1)[1]
    for package in packages:
        assert package in apt
    if scenario != "p2p-webrtc-turn":
        assert "coturn" not in apt
    if not scenario.startswith("sip"):
        assert "baresip" not in apt


FAKE_NETWORK = textwrap.dedent("""
    import subprocess
    import sys

    from flowscan.lab import scenarios

    class Host:
        address = "127.0.0.1"
        interface = "lo"

    class FakeNetwork:
        '''Every host is this one: no root, no namespaces, no tcpdump needed.'''

        def __init__(self, hosts):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

        def host(self, name):
            return Host()

        def exec_args(self, name):
            return []

    scenarios.LabNetwork = FakeNetwork
    scenarios.Scenario.missing = lambda self: None
    scenarios._tcpdump = lambda net, host, out: subprocess.Popen(["sleep", "30"])
""")


@pytest.mark.parametrize("scenario", ["p2p-webrtc", "sfu-webrtc"])
def test_a_failing_lab_process_is_one_line_and_a_log(
        tmp_path: Path, scenario: str, stub_modules: dict[str, str]) -> None:
    """The WebRTC peers (and the SFU) die on `import aiortc` with a traceback: it goes to a
    log under OUT/logs, and the user sees one line naming the process and the log."""
    out = tmp_path / "out"
    proc = flowscan(FAKE_NETWORK + MAIN, "lab", "run", scenario, "-o", str(out),
                    env=stub_modules)
    line = one_line_error(proc)
    assert "exited early" in line and f"logs in {out / 'logs'}" in line
    logs = {p.name: p.read_text() for p in (out / "logs").iterdir()}
    assert logs and all("ImportError: aiortc is blocked" in text for text in logs.values())
    assert any("Traceback" in text for text in logs.values())
    assert "Traceback" not in proc.stdout
