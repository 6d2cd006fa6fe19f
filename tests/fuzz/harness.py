"""Running one fuzz input and judging the outcome, shared by the runner and the test slice.

An input's outcome is one of: "ok" (the parser returned, or raised one of the errors it
documents), "known" (an exception of a class already reported to the owner of the file and
being fixed there: tolerated, but counted), "leak" (a documented error whose message holds
key material from the input), "hang" (over the per-input CPU limit) or "uncaught" (anything
else). Findings are keyed by a signature (exception type and the innermost flowscan frame),
so one bug hit a million times is one finding with one, minimised, reproducer.
"""

from __future__ import annotations

import hashlib
import random
import re
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
CRASH_DIR = HERE / "crashes"
REGRESSION_DIR = HERE / "regressions"


class FuzzTimeout(BaseException):
    """Raised by the CPU timer inside a target that runs over its limit: a BaseException,
    so that an `except Exception` in the code under test cannot swallow it."""


class SecretLeak(Exception):
    """A documented error's message, or a result's repr, holds key material of the input."""


@dataclass(frozen=True)
class KnownBug:
    """A class of exception already reported to the owner of a file, tolerated until fixed.

    Matched by the file of the innermost flowscan frame, the exception type and its message;
    the runner still counts every hit, so a fix shows up as the count falling to zero."""

    file: str
    exc_type: type[BaseException]
    message: str  # regular expression, searched in str(exc)
    note: str

    def matches(self, exc: BaseException, where: str) -> bool:
        return (isinstance(exc, self.exc_type) and where.startswith(self.file + ":")
                and re.search(self.message, str(exc)) is not None)


# Owned by the engineer fixing SIP/SDP, key log, --srtp-key and claims loading (issue 12):
# the first two were known when fuzzing began, the rest were found by it and reported.
# Delete an entry once its fix has landed; the slice and the campaign then hold it fixed.
# Bug classes tolerated while someone fixes them (each with its file, exception and why);
# empty: every class the fuzzer found is fixed, and the slice keeps it so.
KNOWN_BUGS: tuple[KnownBug, ...] = ()


@dataclass
class Target:
    """One fuzz target: its seed corpus, the one-input function and what it may raise."""

    name: str
    doc: str
    seeds: Callable[[], list[bytes]]
    one_input: Callable[[bytes], None]
    documented: tuple[type[BaseException], ...] = ()
    time_limit: float = 2.0  # CPU seconds per input
    dictionary: tuple[bytes, ...] = ()
    max_len: int = 4096


@dataclass
class Outcome:
    kind: str  # ok, known, leak, hang, uncaught
    signature: str = ""
    message: str = ""


def _innermost_flowscan_frame(exc: BaseException) -> str:
    """`flowscan/x/y.py:LINE` of the deepest frame in the package, else the deepest of all."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        path = frame.filename.replace("\\", "/")
        if "/flowscan/" in path and "/tests/" not in path:
            return "flowscan/" + path.rsplit("/flowscan/", 1)[1] + f":{frame.lineno}"
    if frames:
        last = frames[-1]
        return f"{Path(last.filename).name}:{last.lineno}"
    return "?"


@contextmanager
def cpu_limit(seconds: float) -> Iterator[None]:
    """Raise FuzzTimeout in the running code after `seconds` of its own CPU time.

    CPU rather than wall time: the machine is shared, and a busy neighbour must not turn
    a fast input into a 'hang'."""
    def expire(_signum: int, _frame: object) -> None:
        raise FuzzTimeout(f"over {seconds} s of CPU")

    previous = signal.signal(signal.SIGVTALRM, expire)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def run_one(target: Target, data: bytes) -> Outcome:
    """Run one input and classify what happened."""
    try:
        with cpu_limit(target.time_limit):
            target.one_input(data)
    except FuzzTimeout:
        return Outcome("hang", f"Timeout@{target.name}", f"over {target.time_limit} s CPU")
    except SecretLeak as exc:
        return Outcome("leak", f"SecretLeak@{_innermost_flowscan_frame(exc)}", str(exc))
    except target.documented:
        return Outcome("ok")
    except RecursionError as exc:  # traceback of thousands of frames: classify cheaply
        where = _innermost_flowscan_frame(exc)
        return _classify(exc, where)
    except Exception as exc:  # noqa: BLE001 - classifying anything is the point
        return _classify(exc, _innermost_flowscan_frame(exc))
    return Outcome("ok")


def _classify(exc: BaseException, where: str) -> Outcome:
    signature = f"{type(exc).__name__}@{where}"
    message = str(exc)[:300]
    for known in KNOWN_BUGS:
        if known.matches(exc, where):
            return Outcome("known", signature, message)
    return Outcome("uncaught", signature, message)


def minimise(target: Target, data: bytes, signature: str, budget: int = 400) -> bytes:
    """Shrink a reproducer while it keeps its signature: drop chunks, halving their size."""
    best = data
    tries = 0
    chunk = max(1, len(best) // 2)
    while chunk >= 1 and tries < budget:
        pos, shrunk = 0, False
        while pos < len(best) and tries < budget:
            candidate = best[:pos] + best[pos + chunk:]
            tries += 1
            if candidate and run_one(target, candidate).signature == signature:
                best, shrunk = candidate, True
            else:
                pos += chunk
        if not shrunk:
            chunk //= 2
    return best


@dataclass
class Stats:
    """Counts for one target's run, as printed and as written to the run's JSON."""

    target: str
    runs: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    findings: dict[str, dict[str, object]] = field(default_factory=dict)
    slowest: float = 0.0

    def record(self, target: Target, data: bytes, outcome: Outcome, elapsed: float,
               save: bool) -> None:
        self.runs += 1
        self.outcomes[outcome.kind] += 1
        self.slowest = max(self.slowest, elapsed)
        if outcome.kind == "ok":
            return
        finding = self.findings.get(outcome.signature)
        if finding is None:
            finding = {"kind": outcome.kind, "count": 0, "message": outcome.message,
                       "size": None, "file": None}
            self.findings[outcome.signature] = finding
        finding["count"] = int(finding["count"]) + 1  # type: ignore[call-overload]
        size = finding["size"]
        if size is None or len(data) < int(size):  # type: ignore[call-overload]
            small = minimise(target, data, outcome.signature) if outcome.kind != "hang" else data
            finding["size"] = len(small)
            finding["hex"] = small[:512].hex()
            if save:
                finding["file"] = str(save_crash(target.name, outcome.signature, small))

    def as_dict(self) -> dict[str, object]:
        return {"target": self.target, "runs": self.runs, "seconds": round(self.seconds, 1),
                "exec_per_s": round(self.runs / self.seconds) if self.seconds else None,
                "outcomes": dict(self.outcomes), "slowest_s": round(self.slowest, 3),
                "findings": self.findings}

    @property
    def uncaught(self) -> int:
        return sum(self.outcomes[k] for k in ("uncaught", "leak", "hang"))


def save_crash(target: str, signature: str, data: bytes) -> Path:
    """tests/fuzz/crashes/TARGET/SIGNATURE.bin: one file per finding, the smallest seen."""
    folder = CRASH_DIR / target
    folder.mkdir(parents=True, exist_ok=True)
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", signature).strip("_")
    path = folder / f"{name}.bin"
    path.write_bytes(data)
    return path


def regression_inputs(target: str) -> list[bytes]:
    """Reproducers of fixed bugs (tests/fuzz/regressions/TARGET/*.bin), run before seeds."""
    folder = REGRESSION_DIR / target
    return [p.read_bytes() for p in sorted(folder.glob("*.bin"))] if folder.is_dir() else []


INTERESTING_8 = (0, 1, 0x7F, 0x80, 0xFF, 0x20, 0x40, 0x16, 0x0A, 0x0D)
INTERESTING_16 = (0, 1, 0x7FFF, 0x8000, 0xFFFF, 0x0100, 0x00FF)
INTERESTING_32 = (0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0x00010000, 0x01000000)


class Mutator:
    """A seeded byte mutator for the in-suite slice and for machines without atheris:
    libFuzzer's simple mutations (flips, interesting integers, insert, erase, copy, splice,
    dictionary tokens), stacked 1-6 at a time on a seed."""

    def __init__(self, seeds: list[bytes], dictionary: tuple[bytes, ...], seed: int,
                 max_len: int) -> None:
        self.seeds = [s for s in seeds if s] or [b"\0"]
        self.dictionary = dictionary
        self.rng = random.Random(seed)
        self.max_len = max_len

    def __call__(self) -> bytes:
        rng = self.rng
        data = bytearray(rng.choice(self.seeds))
        for _ in range(rng.randint(1, 6)):
            self._mutate(data)
        return bytes(data[:self.max_len])

    def _mutate(self, data: bytearray) -> None:
        rng = self.rng
        n = len(data)
        op = rng.randrange(10)
        pos = rng.randrange(n) if n else 0
        if op == 0 and n:
            data[pos] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            data[pos] = rng.choice(INTERESTING_8)
        elif op == 2 and n >= 2:
            pos = rng.randrange(n - 1)
            data[pos:pos + 2] = rng.choice(INTERESTING_16).to_bytes(2, rng.choice(("big",
                                                                                   "little")))
        elif op == 3 and n >= 4:
            pos = rng.randrange(n - 3)
            data[pos:pos + 4] = rng.choice(INTERESTING_32).to_bytes(4, rng.choice(("big",
                                                                                   "little")))
        elif op == 4:
            data[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif op == 5 and n:
            del data[pos:pos + rng.randint(1, max(1, n // 4))]
        elif op == 6 and n:
            size = rng.randint(1, max(1, min(64, n - pos)))
            piece = data[pos:pos + size]
            at = rng.randrange(n + 1)
            data[at:at] = piece
        elif op == 7:
            other = rng.choice(self.seeds)
            cut = rng.randrange(len(other) + 1)
            data[pos:] = other[cut:]
        elif op == 8 and self.dictionary:
            token = rng.choice(self.dictionary)
            if rng.random() < 0.5 and n:
                data[pos:pos + len(token)] = token
            else:
                data[pos:pos] = token
        elif n:
            del data[pos:]  # truncate


def fuzz_random(target: Target, runs: int, seed: int, save: bool,
                max_seconds: float | None = None) -> Stats:
    """Regression inputs and seeds first, then `runs` mutated inputs (deterministic)."""
    stats = Stats(target.name)
    seeds = target.seeds()
    mutator = Mutator(seeds, target.dictionary, seed, target.max_len)
    start = time.perf_counter()
    fixed = regression_inputs(target.name) + seeds
    for i in range(len(fixed) + runs):
        data = fixed[i] if i < len(fixed) else mutator()
        t0 = time.process_time()
        outcome = run_one(target, data)
        stats.record(target, data, outcome, time.process_time() - t0, save)
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    stats.seconds = time.perf_counter() - start
    return stats


def digest(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()[:12]
