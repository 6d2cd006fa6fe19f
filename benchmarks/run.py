"""Speed and memory of `flowscan scan` against tshark on the same replayed captures.

Builds captures of 1M and 4M packets from the shared real corpus (make_replay.py), then runs
in one session, each in a fresh process:
    flowscan scan FILE --format json -o /dev/null
    tshark -r FILE -q -z conv,udp -z conv,tcp
taking turns, three times each, and keeps each tool's best wall time and highest peak
resident memory. Targets (issue #2): flowscan at least 10x
faster than tshark on the 1M file, peak RSS at most 300 MB, and peak RSS at 1M and 4M
packets within 50 MB of each other.

The corpus replay is the hard case: ~18,000 short flows, each identified from its payload
samples. A third capture, "1M-call", replays the lab's SFU call unchanged (a few flows with
many packets, as a long video call is) and is timed against tshark too, for information.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

from flowscan.capture import walk

HERE = Path(__file__).resolve().parent
MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter()\n"
    "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode\n"
    "wall = time.perf_counter() - t\n"
    "print(code, wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(cmd: list[str]) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True,
                         text=True, check=True).stdout.split()
    code, wall, rss_kb = int(out[0]), float(out[1]), int(out[2])
    if code != 0:
        raise SystemExit(f"{cmd[0]} exited {code}")
    return {"seconds": round(wall, 3), "peak_rss_mb": round(rss_kb / 1024, 1)}


CALL = HERE.parent / "captures" / "lab" / "sfu-webrtc" / "capture.pcapng"


def ensure_capture(path: Path, packets: int, source: Path | None = None) -> None:
    if not path.exists():
        print(f"building {path.name} ({packets:,} packets) ...", flush=True)
        extra = ["--source", str(source)] if source else []
        subprocess.run([sys.executable, str(HERE / "make_replay.py"), str(path), "--packets",
                        str(packets), *extra], check=True)


def _flowscan_script() -> str:
    """The console script beside this interpreter: a version manager's shim earlier on PATH
    (pyenv's is a bash script that runs pyenv) adds ~0.2 s of its own to every run."""
    beside = Path(sys.executable).parent / "flowscan"
    found = str(beside) if beside.is_file() else shutil.which("flowscan")
    return found or sys.exit("flowscan is not installed (pip install -e .)")


def _compile_bytecode() -> None:
    """Byte-compile flowscan as `pip install` does for a regular install. An editable
    install under PYTHONDONTWRITEBYTECODE (set on these machines) would otherwise compile
    every module again in every run, ~0.1 s that no installed copy spends."""
    import compileall

    import flowscan

    compileall.compile_dir(str(Path(flowscan.__file__).parent), quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=HERE / "out")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs of each tool, taking turns; each tool's best is kept")
    parser.add_argument("--tshark-4m", action="store_true", help="also time tshark on 4M")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    flowscan = _flowscan_script()
    _compile_bytecode()
    tshark = shutil.which("tshark") or sys.exit("tshark is not installed")
    results: dict[str, dict[str, dict[str, float]]] = {}
    for label, packets, source in (("1M", 1_000_000, None), ("4M", 4_000_000, None),
                                   ("1M-call", 1_000_000, CALL)):
        capture = args.out / f"replay-{label}.pcap"
        ensure_capture(capture, packets, source)
        commands = {"flowscan": [flowscan, "scan", str(capture), "--format", "json", "-o",
                                 "/dev/null"]}
        if label != "4M" or args.tshark_4m:
            commands["tshark"] = [tshark, "-r", str(capture), "-q", "-z", "conv,udp", "-z",
                                  "conv,tcp"]
        # The tools take turns, so both meet the machine in the same moods; each keeps its
        # best time (and its highest peak memory).
        runs: dict[str, list[dict[str, float]]] = {tool: [] for tool in commands}
        for _ in range(args.runs):
            for tool, command in commands.items():
                runs[tool].append(measure(command))
        row = {}
        for tool, measured in runs.items():
            row[tool] = min(measured, key=lambda r: r["seconds"])
            row[tool]["peak_rss_mb"] = max(r["peak_rss_mb"] for r in measured)
        results[label] = row
    one, four = results["1M"], results["4M"]
    ratio = one["tshark"]["seconds"] / one["flowscan"]["seconds"]
    rss = max(one["flowscan"]["peak_rss_mb"], four["flowscan"]["peak_rss_mb"])
    drift = abs(four["flowscan"]["peak_rss_mb"] - one["flowscan"]["peak_rss_mb"])
    print(f"{'capture':8} {'tool':9} {'seconds':>8} {'peak RSS MB':>12}")
    for label, row in results.items():
        for tool, m in row.items():
            print(f"{label:8} {tool:9} {m['seconds']:8.2f} {m['peak_rss_mb']:12.1f}")
    print(f"ratio (tshark / flowscan, 1M): {ratio:.1f}x   target >= 10x   "
          f"{'met' if ratio >= 10 else 'NOT met'}")
    call = results["1M-call"]
    call_ratio = call["tshark"]["seconds"] / call["flowscan"]["seconds"]
    print(f"ratio on the call-shaped 1M capture: {call_ratio:.1f}x (for information)")
    print(f"record walker: {'compiled' if walk.native() else 'Python (extension not built)'}")
    print(f"peak RSS: {rss:.0f} MB   target <= 300 MB   {'met' if rss <= 300 else 'NOT met'}")
    print(f"RSS 4M - 1M: {drift:.0f} MB   target <= 50 MB   "
          f"{'met' if drift <= 50 else 'NOT met'}")
    (args.out / "results.json").write_text(json.dumps(
        {"results": results, "ratio": round(ratio, 2), "call_ratio": round(call_ratio, 2),
         "peak_rss_mb": rss, "compiled_walker": walk.native(),
         "rss_drift_mb": drift}, indent=2) + "\n")


if __name__ == "__main__":
    main()
