"""Speed and memory of `flowscan scan` against tshark and NFStream on the same captures.

Builds five 1M-packet captures on the fly into --out (make_replay.py; never committed):
    call        the lab's SFU call replayed unchanged: a few flows with many packets each
    corpus      the shared real captures replayed over 64 address variants (~18,000 flows)
    flow-heavy  the shared real captures replayed with both hosts' addresses rewritten on
                every replay (~29,000 flows, growing with the packets)
    distinct    1M UDP flows of one packet each
    churn       1M packets of one UDP socket pair, 400 s apart: every packet a new flow
                after the last one timed out (idle-timeout churn)
then runs, each in a fresh process, the tools taking turns so that all meet the machine
in the same moods:
    flowscan scan FILE --format json -o /dev/null
    tshark -r FILE -q -z conv,udp -z conv,tcp
    NFStream (NFStreamer over FILE, its default 20 dissections and meters), in its own venv
Each tool keeps its best wall time (with that run's user+sys CPU) and its highest peak
memory. Peak memory counts every process of the tool: the proportional set size (PSS) of
the whole process tree, sampled every 20 ms, or the largest single process's peak RSS
where that is higher. NFStream is installed into benchmarks/.venv on first use
(`python3 -m venv` and `pip install nfstream`; it needs libpcap, as tshark does).

Targets (issue 13): flowscan at least 1.5x NFStream's speed and 2x tshark's on flow-heavy,
3x tshark's on corpus, 10x tshark's on call; at most 100 us of wall time per flow; peak
memory at most 300 MB on flow-heavy and 500 MB on distinct and churn. With --flatness,
flowscan alone also runs on distinct and churn of 100,000 packets (flows) and on corpus of
4M packets, and its peak memory there is compared with the 1M capture's: flat within 50 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CALL = HERE.parent / "captures" / "lab" / "sfu-webrtc" / "capture.pcapng"
VENV = HERE / ".venv"
PACKETS = 1_000_000
# shape: make_replay.py arguments
SHAPES: dict[str, list[str]] = {
    "call": ["--source", str(CALL)],
    "corpus": [],
    "flow-heavy": ["--variants", "0"],
    "distinct": ["--shape", "distinct"],
    "churn": ["--shape", "churn"],
}
# (shape, numerator tool, target ratio of its time to flowscan's)
TARGETS = (("flow-heavy", "nfstream", 1.5), ("flow-heavy", "tshark", 2.0),
           ("corpus", "tshark", 3.0), ("call", "tshark", 10.0))
# (shape, flowscan's peak memory at most, MB)
MEMORY_TARGETS = (("flow-heavy", 300.0), ("distinct", 500.0), ("churn", 500.0))
# (shape, packets of the capture compared with the 1M one): flows grow with the packets in
# the made-up shapes, not in corpus (its flow set stops growing after 64 replays).
FLATNESS = (("distinct", 100_000), ("churn", 100_000), ("corpus", 4_000_000))
FLAT_MB = 50.0
NFSTREAM = (
    "import sys\n"
    "from nfstream import NFStreamer\n"
    "n = sum(1 for _ in NFStreamer(source=sys.argv[1]))\n"
    "print(n, 'flows')\n"
)


def _tree(root: int) -> list[int]:
    """The process and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


TICKS = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    """User and system time of a process so far (/proc/PID/stat fields 14 and 15)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS
    except (OSError, IndexError, ValueError):
        return 0.0


def _pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


# Runs the command in a process of its own and reports the largest peak RSS of any one
# process in its tree (the sampled PSS below may miss a short peak).
WRAPPER = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "print(code, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(cmd: list[str]) -> dict[str, float]:
    """Wall time, user+sys CPU and peak memory of every process of `cmd`."""
    before = os.times()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", WRAPPER, *cmd], stdout=subprocess.PIPE,
                            env=_env())
    peak_kb = 0
    # CPU time per process as last sampled: processes the tool does not wait for (a fork
    # server's children) are missing from the wrapper's resource usage.
    cpu_seen: dict[int, float] = {}
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak_kb
        while not stop.wait(0.02):
            tree = [pid for pid in _tree(proc.pid) if pid != proc.pid]
            peak_kb = max(peak_kb, sum(_pss_kb(pid) for pid in tree))
            for pid in tree:
                cpu_seen[pid] = max(cpu_seen.get(pid, 0.0), _cpu_seconds(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    after = os.times()
    code, single_kb = (int(word) for word in out.split())
    if code != 0:
        raise SystemExit(f"{cmd[0]} exited {code}")
    cpu = max(sum(cpu_seen.values()), (after.children_user - before.children_user)
              + (after.children_system - before.children_system))
    return {"seconds": round(wall, 3), "cpu_seconds": round(cpu, 3),
            "peak_mb": round(max(peak_kb, single_kb) / 1024, 1)}


def _env() -> dict[str, str]:
    """This checkout's flowscan first on the path, whatever copy is installed."""
    return {**os.environ, "PYTHONPATH": str(HERE.parent)}


def ensure_capture(path: Path, shape: str, packets: int = PACKETS) -> None:
    if not path.exists():
        print(f"building {path.name} ({packets:,} packets) ...", flush=True)
        subprocess.run([sys.executable, str(HERE / "make_replay.py"), str(path), "--packets",
                        str(packets), *SHAPES[shape]], check=True)


def size_label(packets: int) -> str:
    return f"{packets // 1_000_000}M" if packets % 1_000_000 == 0 else f"{packets // 1000}k"


def _flowscan() -> list[str]:
    """This checkout's flowscan, run by this interpreter (a version manager's shim earlier
    on PATH, as pyenv's bash script, adds ~0.2 s of its own to every run)."""
    return [sys.executable, "-m", "flowscan"]


def _compile_bytecode() -> None:
    """Byte-compile flowscan as `pip install` does for a regular install. An editable
    install under PYTHONDONTWRITEBYTECODE (set on these machines) would otherwise compile
    every module again in every run, ~0.1 s that no installed copy spends."""
    import compileall

    sys.path.insert(0, str(HERE.parent))
    import flowscan

    compileall.compile_dir(str(Path(flowscan.__file__).parent), quiet=1)


def _nfstream_python() -> str:
    """NFStream's interpreter: benchmarks/.venv, made and filled on first use."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print("installing NFStream into benchmarks/.venv ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "nfstream"], check=True)
    return str(python)


def _flow_count(out: Path, shape: str, capture: Path) -> int:
    """Flows in the capture: one per packet in the made-up shapes; else counted once from
    a flowscan report (a run not timed) and kept beside the capture."""
    if shape in ("distinct", "churn"):
        return PACKETS
    counted = out / f"{shape}-1M.flows"
    if not counted.exists():
        csv = out / f"{shape}-1M.csv"
        subprocess.run([*_flowscan(), "scan", str(capture), "--format", "csv", "-o",
                        str(csv)], check=True, env=_env())
        with open(csv, "rb") as f:
            counted.write_text(str(sum(1 for _ in f) - 1))
        csv.unlink()
    return int(counted.read_text())


def commands(capture: Path, tools: list[str]) -> dict[str, list[str]]:
    every = {
        "flowscan": [*_flowscan(), "scan", str(capture), "--format", "json", "-o",
                     "/dev/null"],
        "tshark": [shutil.which("tshark") or sys.exit("tshark is not installed"), "-r",
                   str(capture), "-q", "-z", "conv,udp", "-z", "conv,tcp"],
        "nfstream": [_nfstream_python() if "nfstream" in tools else "", "-c", NFSTREAM,
                     str(capture)],
    }
    return {tool: every[tool] for tool in tools}


def run_shape(out: Path, shape: str, tools: list[str], runs: int) -> dict[str, dict[str, float]]:
    capture = out / f"{shape}-1M.pcap"
    ensure_capture(capture, shape)
    flows = _flow_count(out, shape, capture)
    measured: dict[str, list[dict[str, float]]] = {tool: [] for tool in tools}
    for _ in range(runs):
        for tool, command in commands(capture, tools).items():
            measured[tool].append(measure(command))
            print(f"  {shape:10} {tool:9} {measured[tool][-1]}", flush=True)
    row: dict[str, dict[str, float]] = {}
    for tool, results in measured.items():
        row[tool] = dict(min(results, key=lambda r: r["seconds"]))
        row[tool]["peak_mb"] = max(r["peak_mb"] for r in results)
    row["flows"] = {"count": flows}
    return row


def measure_flatness(out: Path, results: dict[str, dict[str, dict[str, float]]],
                     runs: int) -> None:
    """flowscan's peak memory on each FLATNESS capture, beside the 1M one's in results."""
    for shape, packets in FLATNESS:
        if "flowscan" not in results.get(shape, {}):
            continue
        capture = out / f"{shape}-{size_label(packets)}.pcap"
        ensure_capture(capture, shape, packets)
        peaks = []
        for _ in range(runs):
            peaks.append(measure(commands(capture, ["flowscan"])["flowscan"])["peak_mb"])
            print(f"  {shape:10} flowscan  {size_label(packets)} packets: peak {peaks[-1]} MB",
                  flush=True)
        results[shape]["flowscan"][f"peak_mb_{size_label(packets)}"] = max(peaks)


def print_memory_targets(results: dict[str, dict[str, dict[str, float]]]) -> None:
    for shape, limit in MEMORY_TARGETS:
        if "flowscan" in results.get(shape, {}):
            peak = results[shape]["flowscan"]["peak_mb"]
            print(f"{shape}: peak {peak:.0f} MB   target <= {limit:.0f} MB   "
                  f"{'met' if peak <= limit else 'NOT met'}")
    for shape, packets in FLATNESS:
        found = results.get(shape, {}).get("flowscan", {})
        other = found.get(f"peak_mb_{size_label(packets)}")
        if other is None:
            continue
        # From the smaller capture to the larger one.
        growth = found["peak_mb"] - other if packets < PACKETS else other - found["peak_mb"]
        print(f"{shape}: peak {other:.0f} MB at {size_label(packets)} packets, "
              f"{found['peak_mb']:.0f} MB at 1M: {growth:+.0f} MB   target within "
              f"{FLAT_MB:.0f} MB   {'met' if abs(growth) <= FLAT_MB else 'NOT met'}")


def print_table(results: dict[str, dict[str, dict[str, float]]], tools: list[str]) -> None:
    head = f"{'shape':11} {'flows':>9}" + "".join(
        f" {tool + ' s':>11} {'cpu s':>7} {'peak MB':>8}" for tool in tools)
    print(head)
    for shape, row in results.items():
        line = f"{shape:11} {int(row['flows']['count']):9,}"
        for tool in tools:
            m = row[tool]
            line += f" {m['seconds']:11.2f} {m['cpu_seconds']:7.2f} {m['peak_mb']:8.0f}"
        print(line)
    for shape, row in results.items():
        flows = row["flows"]["count"]
        if "flowscan" in row and flows >= 1000:  # per flow means little on a few flows
            wall, cpu = (row["flowscan"][key] / flows * 1e6 for key in ("seconds", "cpu_seconds"))
            print(f"flowscan on {shape}: {wall:.0f} us of wall time and {cpu:.0f} us of CPU "
                  f"per flow   target <= 100 us   {'met' if wall <= 100 else 'NOT met'}")
    for shape, tool, target in TARGETS:
        row = results.get(shape, {})
        if "flowscan" in row and tool in row:
            ratio = row[tool]["seconds"] / row["flowscan"]["seconds"]
            print(f"{shape}: {ratio:.2f}x {tool}   target >= {target}x   "
                  f"{'met' if ratio >= target else 'NOT met'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--runs", type=int, default=1,
                        help="runs of each tool, taking turns; each tool's best is kept")
    parser.add_argument("--shapes", nargs="+", choices=list(SHAPES), default=list(SHAPES))
    parser.add_argument("--tools", nargs="+", choices=("flowscan", "tshark", "nfstream"),
                        default=["flowscan", "tshark", "nfstream"])
    parser.add_argument("--flatness", action="store_true",
                        help="also flowscan's peak memory on distinct and churn of 100k "
                             "packets and corpus of 4M, against the 1M captures'")
    args = parser.parse_args()
    if args.flatness and "flowscan" not in args.tools:
        parser.error("--flatness measures flowscan: keep it in --tools")
    args.out.mkdir(parents=True, exist_ok=True)
    _compile_bytecode()
    results = {shape: run_shape(args.out, shape, args.tools, args.runs)
               for shape in args.shapes}
    if args.flatness:
        measure_flatness(args.out, results, args.runs)
    print(f"machine: {os.cpu_count()} cores; load average at the end "
          f"{os.getloadavg()[0]:.2f}")
    print_table(results, args.tools)
    print_memory_targets(results)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
