"""The real engine: a `dask scheduler` and two `dask worker` processes on loopback, the lab
captures sent to them with --scheduler, and the same reports as a serial run, byte for byte.

The processes are bounded in time and killed at the end, whatever the test's outcome."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
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


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[str]:
    """A scheduler and two single-threaded workers on 127.0.0.1; yields its address."""
    pytest.importorskip("distributed")
    from dask.distributed import Client

    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the workers import this checkout
    dask = [sys.executable, "-m", "dask"]
    info = tmp_path / "scheduler.json"
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> None:
        procs.append(subprocess.Popen([*dask, *args], cwd=ROOT, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                      start_new_session=True))

    try:
        start("scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
              "--scheduler-file", str(info))
        deadline = time.monotonic() + START_TIMEOUT
        while not info.exists() or not info.read_text().strip():
            if time.monotonic() > deadline or procs[0].poll() is not None:
                pytest.fail("the dask scheduler did not start")
            time.sleep(0.2)
        address = json.loads(info.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            start("worker", address, "--nworkers", "1", "--nthreads", "1", "--host",
                  "127.0.0.1", "--no-dashboard")
        with Client(address, timeout=START_TIMEOUT) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
            assert len(client.scheduler_info()["workers"]) == 2
        yield address
    finally:
        _stop(procs)


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
