"""The real engine: a `dask scheduler` and two `dask worker` processes on loopback, the lab
captures sent to them with --scheduler, and the same reports as a serial run, byte for byte.

The processes are bounded in time and killed at the end, whatever the test's outcome."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAB = sorted((ROOT / "captures" / "lab").glob("*/capture*.pcapng"))
START_TIMEOUT = 60.0


def _stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@dataclass
class Cluster:
    address: str
    workers: list[subprocess.Popen[bytes]]  # each `dask worker`, leading its process group


@contextmanager
def dask_cluster(folder: Path, scheduler_env: dict[str, str] | None = None, workers: int = 2
                 ) -> Iterator[Cluster]:
    """A scheduler and (by default two) single-threaded workers on 127.0.0.1, stopped on
    leaving."""
    pytest.importorskip("distributed")
    from dask.distributed import Client

    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the workers import this checkout
    dask = [sys.executable, "-m", "dask"]
    info = folder / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str, extra: dict[str, str] | None = None) -> None:
        procs.append(subprocess.Popen([*dask, *args], cwd=ROOT, env={**env, **(extra or {})},
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(info), extra=scheduler_env)
        deadline = time.monotonic() + START_TIMEOUT
        while not info.exists() or not info.read_text().strip():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail("the dask scheduler did not start")
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(workers):
            start("worker", address, "--nworkers", "1", "--nthreads", "1", "--host",
                  "127.0.0.1", "--no-dashboard")
        with Client(address, timeout=START_TIMEOUT) as client:
            if workers:
                client.wait_for_workers(workers, timeout=START_TIMEOUT)
            assert len(client.scheduler_info()["workers"]) == workers
        yield Cluster(address, procs[1:])
    finally:
        _stop(procs)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """The cluster's scheduler address."""
    with dask_cluster(tmp_path) as running:
        yield running.address


def run(*args: str) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          cwd=ROOT, env=env, timeout=300)


def test_scheduler_gives_the_serial_run_byte_for_byte(cluster: str, tmp_path: Path) -> None:
    assert LAB, "the lab captures ship with the repository"
    paths = [str(p.relative_to(ROOT)) for p in LAB]  # as given: the workers share the cwd
    serial = run("scan", *paths, "-o", f"{tmp_path}/serial/", "--format", "json",
                 "--home", "EU", "--tables", f"{tmp_path}/st")
    remote = run("scan", *paths, "-o", f"{tmp_path}/remote/", "--format", "json",
                 "--home", "EU", "--tables", f"{tmp_path}/rt", "--scheduler", cluster)
    assert serial.returncode == 0, serial.stderr
    assert remote.returncode == 0, remote.stderr
    names = sorted(p.name for p in (tmp_path / "serial").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "remote").iterdir())
    assert len(names) == len(LAB) + 2  # the reports and summary.json, summary.txt
    for name in names:
        assert ((tmp_path / "serial" / name).read_bytes()
                == (tmp_path / "remote" / name).read_bytes()), name
    for table in ("flows", "sessions", "findings", "captures"):
        assert ((tmp_path / "st" / f"{table}.parquet").read_bytes()
                == (tmp_path / "rt" / f"{table}.parquet").read_bytes()), table
    # One combined JSON on standard output: the same bytes too.
    one = run("scan", *paths, "--format", "json")
    two = run("scan", *paths, "--format", "json", "--scheduler", cluster)
    assert one.returncode == two.returncode == 0 and one.stdout == two.stdout
    assert len(json.loads(one.stdout)) == len(LAB)


class Gate:
    """A capture behind a FIFO, served by a thread: each reader that opens it gets the
    capture's bytes once the gate is open. A worker reading it is provably inside a task,
    and stays there until the gate opens, so a worker killed then dies mid-task whatever
    the machine's speed."""

    def __init__(self, path: Path, data: bytes) -> None:
        self.path, self.data = path, data
        os.mkfifo(path)
        self.open = threading.Event()
        self.reader = threading.Event()  # a reader has the FIFO open
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            fd = os.open(self.path, os.O_WRONLY)  # blocks until a reader opens it
            try:
                if self._stopping:
                    return
                self.reader.set()
                self.open.wait()
                with suppress(BrokenPipeError):  # the reader died: serve the next
                    view = memoryview(self.data)
                    while view:
                        view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            # Opened again while the reader still has it open, the FIFO would append a
            # second copy to that reader's stream instead of waiting for the next one.
            while self.readers() and not self._stopping:
                time.sleep(0.02)

    def readers(self) -> list[int]:
        """The processes that have the FIFO open."""
        found = []
        for fd_dir in Path("/proc").glob("[0-9]*/fd"):
            with suppress(OSError):
                if any(os.readlink(fd) == str(self.path) for fd in fd_dir.iterdir()):
                    found.append(int(fd_dir.parent.name))
        return [pid for pid in found if pid != os.getpid()]

    def stop(self) -> None:
        self._stopping = True
        self.open.set()
        with suppress(OSError):  # wake the thread blocked in open()
            os.close(os.open(self.path, os.O_RDONLY | os.O_NONBLOCK))
        self._thread.join(timeout=10)


def gated_captures(folder: Path) -> tuple[list[str], Gate]:
    """The lab captures twice, and between the copies one more behind a gate."""
    paths = []
    for copy in ("1", "3"):
        for lab in LAB:
            target = folder / copy / lab.parent.name / lab.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(lab, target)
            paths.append(str(target))
    (folder / "2").mkdir()
    gate = Gate(folder / "2" / "gate.pcapng", LAB[0].read_bytes())
    return sorted([*paths, str(gate.path)], key=lambda p: Path(p).parts), gate


def kill_the_gated_worker(running: Cluster, gate: Gate, out: Path) -> None:
    """Waits until a worker has opened the gated capture, then SIGKILLs that worker (its
    nanny and its process alike: the whole `dask worker`), waits until it is gone, and
    opens the gate for the next reader."""
    assert gate.reader.wait(timeout=120), "no worker opened the gated capture"
    pids = gate.readers()
    groups = {os.getpgid(pid) for pid in pids}
    (victim,) = [w for w in running.workers if w.pid in groups]
    os.killpg(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    deadline = time.monotonic() + 10
    while gate.readers():  # the killed worker's file descriptors closed
        assert time.monotonic() < deadline, "the killed worker still holds the capture"
        time.sleep(0.05)
    gate.open.set()


def kill_every_worker(running: Cluster, gate: Gate, out: Path) -> None:
    """Waits until a worker has opened the gated capture and the run has written a
    report (a capture provably done before the kill), then SIGKILLs both workers, whose
    tasks then have nowhere to run. The gate stays shut: no worker is left to read it."""
    assert gate.reader.wait(timeout=120), "no worker opened the gated capture"
    deadline = time.monotonic() + 120
    while not any(p.suffix == ".json" for p in out.glob("*")):
        assert time.monotonic() < deadline, "the run wrote no report"
        time.sleep(0.05)
    for worker in running.workers:
        os.killpg(worker.pid, signal.SIGKILL)
    for worker in running.workers:
        worker.wait(timeout=10)


Kill = Callable[[Cluster, Gate, Path], None]


def scan_killing_a_worker(tmp_path: Path, scheduler_env: dict[str, str] | None = None,
                          kill: Kill = kill_the_gated_worker, *options: str
                          ) -> tuple[list[str], subprocess.CompletedProcess[bytes]]:
    """The gated captures scanned serially, then through a real cluster, one of whose two
    workers (or, with kill_every_worker, both) is killed while it is reading a capture."""
    paths, gate = gated_captures(tmp_path / "caps")
    try:
        gate.open.set()
        serial = run("scan", *paths, "-o", f"{tmp_path}/serial/", "--format", "json")
        assert serial.returncode == 0, serial.stderr
        gate.open.clear()
        gate.reader.clear()
        with dask_cluster(tmp_path, scheduler_env) as running:
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            remote = subprocess.Popen(
                [sys.executable, "-m", "flowscan", "scan", *paths, "-o", f"{tmp_path}/remote/",
                 "--format", "json", "--scheduler", running.address, *options], cwd=ROOT,
                env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            try:
                kill(running, gate, tmp_path / "remote")
                out, err = remote.communicate(timeout=120)
            finally:
                if remote.poll() is None:
                    remote.kill()
                    remote.wait()
    finally:
        gate.stop()
    return paths, subprocess.CompletedProcess(remote.args, remote.returncode, out, err)


def test_a_worker_killed_mid_run_loses_nothing(tmp_path: Path) -> None:
    """Dask runs the dead worker's tasks again on the other: every report as in the serial
    run, byte for byte, and every capture counted once."""
    paths, remote = scan_killing_a_worker(tmp_path)
    assert remote.returncode == 0, remote.stderr
    names = sorted(p.name for p in (tmp_path / "serial").iterdir())
    assert names == sorted(p.name for p in (tmp_path / "remote").iterdir())
    assert len(names) == len(paths) + 2
    for name in names:
        assert ((tmp_path / "serial" / name).read_bytes()
                == (tmp_path / "remote" / name).read_bytes()), name
    summary = json.loads((tmp_path / "remote" / "summary.json").read_bytes())
    assert summary["captures"]["total"] == summary["captures"]["read"] == len(paths)
    assert len(summary["per_capture"]) == len(paths)


def test_a_capture_dask_gives_up_on_fails_alone(tmp_path: Path) -> None:
    """A scheduler that allows no worker death gives up on the killed worker's tasks: those
    captures fail with one line each and exit 2; every other report is the serial one."""
    paths, remote = scan_killing_a_worker(
        tmp_path, {"DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"})
    assert remote.returncode == 2, remote.stderr
    summary = json.loads((tmp_path / "remote" / "summary.json").read_bytes())
    failed = {f["capture"] for f in summary["failed"]}
    gate = str(tmp_path / "caps" / "2" / "gate.pcapng")
    assert gate in failed and len(failed) < len(paths)
    errors = [line for line in remote.stderr.decode().splitlines() if "Dask gave up" in line]
    assert sorted(errors) == sorted(f"flowscan: error: {p}: Dask gave up on this capture: the "
                                    "workers that ran it died" for p in failed)
    assert "Traceback" not in remote.stderr.decode()
    assert summary["captures"]["total"] == len(paths)
    assert summary["captures"]["failed"] == len(failed)
    assert len(summary["per_capture"]) == len(paths)
    summaries = {"summary.json", "summary.txt"}
    written = {p.name for p in (tmp_path / "remote").iterdir()} - summaries
    assert len(written) == len(paths) - len(failed)
    for name in written:
        assert ((tmp_path / "serial" / name).read_bytes()
                == (tmp_path / "remote" / name).read_bytes()), name


def test_every_worker_killed_mid_run_fails_the_rest(tmp_path: Path) -> None:
    """Both workers killed and none restarted: Dask would wait for a worker forever. After
    --worker-wait, the captures not yet done fail with one line each and exit 2; the
    reports already received are the serial ones, and the summary counts every capture."""
    paths, remote = scan_killing_a_worker(tmp_path, None, kill_every_worker,
                                          "--worker-wait", "3")
    assert remote.returncode == 2, remote.stderr
    stderr = remote.stderr.decode()
    assert "Traceback" not in stderr
    summary = json.loads((tmp_path / "remote" / "summary.json").read_bytes())
    failed = {f["capture"] for f in summary["failed"]}
    assert str(tmp_path / "caps" / "2" / "gate.pcapng") in failed
    errors = [line for line in stderr.splitlines() if "no Dask worker" in line]
    assert sorted(errors) == sorted(f"flowscan: error: {p}: no Dask worker for 3 s: not "
                                    "scanned" for p in failed)
    assert summary["captures"]["total"] == len(paths)
    assert summary["captures"]["failed"] == len(failed)
    assert len(summary["per_capture"]) == len(paths)
    summaries = {"summary.json", "summary.txt"}
    written = {p.name for p in (tmp_path / "remote").iterdir()} - summaries
    assert written and len(written) == len(paths) - len(failed)
    for name in written:
        assert ((tmp_path / "serial" / name).read_bytes()
                == (tmp_path / "remote" / name).read_bytes()), name


def test_a_scheduler_without_workers_fails_every_capture(tmp_path: Path) -> None:
    """A cluster with no worker from the start: after --worker-wait, every capture fails
    with one line, the summary is written, exit 2."""
    paths = [str(p.relative_to(ROOT)) for p in LAB]
    with dask_cluster(tmp_path, workers=0) as running:
        started = time.monotonic()
        remote = run("scan", *paths, "-o", f"{tmp_path}/remote/", "--format", "json",
                     "--scheduler", running.address, "--worker-wait", "3")
        took = time.monotonic() - started
    assert remote.returncode == 2, remote.stderr
    assert 3 <= took < 30
    assert remote.stderr.decode().splitlines() == [
        f"flowscan: error: {p}: no Dask worker for 3 s: not scanned" for p in paths]
    summary = json.loads((tmp_path / "remote" / "summary.json").read_bytes())
    assert summary["captures"]["total"] == summary["captures"]["failed"] == len(paths)
    assert sorted(p.name for p in (tmp_path / "remote").iterdir()) == [
        "summary.json", "summary.txt"]


def test_no_scheduler_at_the_address_is_one_line(tmp_path: Path) -> None:
    """Nothing listens at --scheduler's port: one line, exit 2, within Dask's connect
    timeout (10 s), not a wait for ever."""
    pytest.importorskip("distributed")
    with socket.socket() as sock:  # a port that was free a moment ago
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    remote = run("scan", str(LAB[0].relative_to(ROOT)), "-o", f"{tmp_path}/out/",
                 "--scheduler", f"tcp://127.0.0.1:{port}")
    assert remote.returncode == 2
    assert time.monotonic() - started < 30
    (line,) = remote.stderr.decode().splitlines()
    assert line.startswith(f"flowscan: error: cannot reach the Dask scheduler at "
                           f"tcp://127.0.0.1:{port}: ")


def test_worker_wait_without_workers_is_a_usage_error(tmp_path: Path) -> None:
    """--worker-wait on a serial run would be silently ignored: refused instead."""
    for jobs in ([], ["-j", "1"]):
        refused = run("scan", str(LAB[0].relative_to(ROOT)), *jobs, "--worker-wait", "3")
        assert refused.returncode == 2
        assert refused.stderr.decode().splitlines() == [
            "flowscan: error: --worker-wait is for Dask workers: give it with -j N (N > 1) "
            "or --scheduler"]


def test_connect_timeout_without_scheduler_is_a_usage_error() -> None:
    """--connect-timeout with -j (a cluster of its own) or serially would be silently
    ignored: refused instead."""
    for jobs in ([], ["-j", "2"]):
        refused = run("scan", str(LAB[0].relative_to(ROOT)), *jobs, "--connect-timeout", "3")
        assert refused.returncode == 2
        assert refused.stderr.decode().splitlines() == [
            "flowscan: error: --connect-timeout is for an existing Dask cluster: give it "
            "with --scheduler (-j starts its own cluster, nothing to connect to)"]


def test_a_server_that_never_answers_is_one_line(tmp_path: Path) -> None:
    """Something listens at --scheduler's port but never speaks Dask (Dask bounds the
    connection, not its handshake): one line and exit 2 within the bound that
    --connect-timeout sets (twice it: the connection, then the first answers)."""
    pytest.importorskip("distributed")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        started = time.monotonic()
        remote = run("scan", str(LAB[0].relative_to(ROOT)), "-o", f"{tmp_path}/out/",
                     "--scheduler", f"tcp://127.0.0.1:{port}", "--connect-timeout", "2.5")
        took = time.monotonic() - started
    assert remote.returncode == 2
    assert 5 <= took < 20
    assert remote.stderr.decode().splitlines() == [
        f"flowscan: error: cannot reach the Dask scheduler at tcp://127.0.0.1:{port}: no "
        "Dask handshake within 5 s (is a Dask scheduler listening there?)"]
