"""Fuzz flowscan's parsers: `python3 -m tests.fuzz.run TARGET|all --runs N --seed S`.

Engines: `atheris` (coverage-guided libFuzzer; the default where atheris is installed) and
`random` (the seeded mutator of harness.py, no coverage: what the test slice uses). With
atheris each target runs in a child process, because libFuzzer ends its process when done;
the child writes its counts to a JSON file that the parent reads back and prints.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .harness import CRASH_DIR, Stats, fuzz_random, regression_inputs, run_one

LOG = CRASH_DIR / "runs.jsonl"
CORPUS_DIR = Path(tempfile.gettempdir()) / "flowscan-fuzz-corpus"


def _targets() -> dict[str, Any]:
    from .targets import TARGETS

    return TARGETS


def _dict_file(tokens: tuple[bytes, ...], folder: Path) -> Path:
    """A libFuzzer dictionary: one quoted token a line, bytes escaped as \\xNN."""
    path = folder / "tokens.dict"
    lines = ['"' + "".join(f"\\x{b:02x}" for b in token) + '"' for token in tokens]
    path.write_text("\n".join(lines) + "\n")
    return path


def child_atheris(name: str, runs: int, seed: int, stats_path: Path, save: bool,
                  max_seconds: int | None) -> None:
    """Runs in the child: instrument flowscan, load the target, hand over to libFuzzer."""
    import atheris

    with atheris.instrument_imports(include=["flowscan"]):
        from .targets import TARGETS
    target = TARGETS[name]
    stats = Stats(name)
    start = time.perf_counter()
    last_write = [start]

    def write() -> None:
        stats.seconds = time.perf_counter() - start
        stats_path.write_text(json.dumps(stats.as_dict()))

    def one(data: bytes) -> None:
        t0 = time.process_time()
        outcome = run_one(target, data)
        stats.record(target, data, outcome, time.process_time() - t0, save)
        now = time.perf_counter()
        if stats.runs >= runs or now - last_write[0] > 2.0:
            last_write[0] = now
            write()

    corpus = CORPUS_DIR / name
    corpus.mkdir(parents=True, exist_ok=True)
    for i, data in enumerate(regression_inputs(name) + target.seeds()):
        (corpus / f"seed-{i:04d}").write_bytes(data)
    argv = [sys.argv[0], str(corpus), f"-runs={runs}", f"-seed={seed}",
            f"-max_len={target.max_len}", "-print_final_stats=1", "-reload=0",
            # libFuzzer's own artifacts (an out-of-memory stop) go beside ours, not in cwd.
            f"-artifact_prefix={CRASH_DIR / name}-"]
    if max_seconds:
        argv.append(f"-max_total_time={max_seconds}")
    if target.dictionary:
        argv.append(f"-dict={_dict_file(target.dictionary, corpus.parent)}")
    write()
    atheris.Setup(argv, one)
    atheris.Fuzz()


def run_target(name: str, args: argparse.Namespace) -> dict[str, Any]:
    if args.engine == "random":
        stats = fuzz_random(_targets()[name], args.runs, args.seed, save=not args.no_save,
                            max_seconds=args.max_seconds)
        return stats.as_dict()
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        stats_path = Path(handle.name)
    cmd = [sys.executable, "-m", "tests.fuzz.run", name, "--child", str(stats_path),
           "--runs", str(args.runs), "--seed", str(args.seed)]
    if args.no_save:
        cmd.append("--no-save")
    if args.max_seconds:
        cmd += ["--max-seconds", str(args.max_seconds)]
    log = CRASH_DIR / f"{name}.libfuzzer.log"
    CRASH_DIR.mkdir(exist_ok=True)
    with log.open("w") as out:
        code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT,
                               cwd=Path(__file__).resolve().parents[2])
    result = json.loads(stats_path.read_text()) if stats_path.stat().st_size else {}
    stats_path.unlink()
    result["exit_code"] = code
    return result


def show(result: dict[str, Any]) -> None:
    outcomes = result.get("outcomes", {})
    print(f"{result.get('target', '?'):<9} runs {result.get('runs', 0):>9}  "
          f"{result.get('seconds', 0):>7.1f} s  {result.get('exec_per_s') or 0:>6}/s  "
          f"uncaught {outcomes.get('uncaught', 0)}  leak {outcomes.get('leak', 0)}  "
          f"hang {outcomes.get('hang', 0)}  known {outcomes.get('known', 0)}  "
          f"slowest {result.get('slowest_s', 0)} s", flush=True)
    for signature, finding in result.get("findings", {}).items():
        print(f"    {finding['kind']:<8} {signature}  x{finding['count']}  "
              f"{finding['message'][:100]!r}  reproducer {finding.get('file') or '-'}"
              f" ({finding['size']} bytes)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.fuzz.run", description=__doc__)
    parser.add_argument("target", help="a target name, 'all' or 'list'")
    parser.add_argument("--runs", type=int, default=10_000, help="inputs per target")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--engine", choices=("atheris", "random"), default=None)
    parser.add_argument("--max-seconds", type=int, default=None,
                        help="stop a target after this long, whatever --runs says")
    parser.add_argument("--no-save", action="store_true",
                        help="do not write reproducers to tests/fuzz/crashes/")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_atheris(args.target, args.runs, args.seed, args.child, not args.no_save,
                      args.max_seconds)
        return 0
    if args.engine is None:
        try:
            import atheris  # noqa: F401
            args.engine = "atheris"
        except ImportError:
            args.engine = "random"
    targets = _targets()
    if args.target == "list":
        for name, target in targets.items():
            print(f"{name:<9} {target.doc}")
        return 0
    names = list(targets) if args.target == "all" else args.target.split(",")
    unknown = [n for n in names if n not in targets]
    if unknown:
        parser.error(f"unknown target(s) {', '.join(unknown)}; see `list`")
    failed = 0
    for name in names:
        result = run_target(name, args)
        result.update(engine=args.engine, seed=args.seed, when=time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime()), pid=os.getpid())
        show(result)
        CRASH_DIR.mkdir(exist_ok=True)
        with LOG.open("a") as log:
            log.write(json.dumps(result) + "\n")
        outcomes = result.get("outcomes", {})
        failed += sum(outcomes.get(k, 0) for k in ("uncaught", "leak", "hang"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
