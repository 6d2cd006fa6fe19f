"""A short, seeded slice of the fuzz campaign (tests/fuzz), run with every test run.

Each target gets its regression inputs (reproducers of fixed bugs), its seeds and a few
hundred mutated inputs from a fixed seed, so a failure here reproduces exactly. Seeds come
from the lab captures only, which ship with the repository: the slice is the same whether
or not the shared real-world captures are present. The long runs are
`python3 -m tests.fuzz.run all --runs 1000000` (tests/fuzz/README.md).
"""

from __future__ import annotations

import pytest
from fuzz import targets
from fuzz.harness import SecretLeak, Target, fuzz_random, run_one

# Inputs per target: a couple of thousand, the slow whole-capture targets fewer.
RUNS = {"pcap": 600, "pcapng": 600, "gzip": 200, "scan": 300, "claims": 1000}
DEFAULT_RUNS = 2000
SEED = 20261202


@pytest.fixture(autouse=True)
def _lab_seeds_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(targets, "INCLUDE_REAL", False)


@pytest.mark.parametrize("name", list(targets.TARGETS))
def test_no_uncaught_exception(name: str) -> None:
    target = targets.TARGETS[name]
    stats = fuzz_random(target, RUNS.get(name, DEFAULT_RUNS), SEED, save=False)
    assert stats.runs > RUNS.get(name, DEFAULT_RUNS)  # the seeds ran too
    problems = {sig: {"count": f["count"], "message": f["message"], "hex": f.get("hex")}
                for sig, f in stats.findings.items() if f["kind"] != "known"}
    assert stats.uncaught == 0, problems


def test_every_target_has_seeds() -> None:
    """A target without seeds would fuzz from nothing: the lab captures must feed each."""
    empty = [name for name, t in targets.TARGETS.items() if not t.seeds()]
    assert not empty


def _target(one_input: object, **kw: object) -> Target:
    return Target("probe", "", lambda: [b"x"], one_input, **kw)  # type: ignore[arg-type]


def test_the_harness_reports_what_it_should() -> None:
    """The judge itself: an undocumented exception, a documented one, a hang and a leak."""
    def boom(_data: bytes) -> None:
        raise KeyError("boom")

    def spin(_data: bytes) -> None:
        while True:
            pass

    def leak(_data: bytes) -> None:
        raise SecretLeak("key material in output")

    assert run_one(_target(boom), b"").kind == "uncaught"
    assert run_one(_target(boom, documented=(KeyError,)), b"").kind == "ok"
    assert run_one(_target(spin, time_limit=0.2), b"").kind == "hang"
    assert run_one(_target(leak), b"").kind == "leak"


def test_known_bug_classes_are_counted_not_hidden() -> None:
    """A known class (reported to the owner of the file) is tolerated but counted; the same
    exception raised from another file is not."""
    odd_hex = b"CLIENT_RANDOM " + b"ab" * 32 + b" abc\n"
    outcome = run_one(targets.TARGETS["keylog"], odd_hex)
    assert outcome.kind in ("ok", "known")  # "ok" once keylog.py is fixed

    def elsewhere(_data: bytes) -> None:
        bytes.fromhex("abc")

    assert run_one(_target(elsewhere), b"").kind == "uncaught"


def test_key_text_in_an_error_message_is_a_leak() -> None:
    """The --srtp-key check would catch an error message that echoed the key."""
    key = "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz"

    def echo(data: bytes) -> None:
        spec = data.decode()
        try:
            raise targets.UsageError(f"bad spec {spec}")
        except targets.UsageError as exc:
            for secret in targets._sdes_params(spec.partition("=")[2].replace(
                    ":inline:", " inline:")):
                targets._hidden(secret, str(exc))
            raise

    spec = f"1=AES_CM_128_HMAC_SHA1_80:inline:{key}".encode()
    assert run_one(_target(echo, documented=(targets.UsageError,)), spec).kind == "leak"
    assert run_one(targets.TARGETS["srtp-key"], spec).kind == "ok"
