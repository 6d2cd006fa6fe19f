"""The README's first two commands: install-and-scan on a fresh Debian machine, and the
test command that .ci/run runs, word for word."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def first_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None, "the README opens with no sh block"
    return block.group(1).strip().splitlines()


def test_first_command_uses_a_venv_then_scans() -> None:
    install, _ = first_commands()
    # Debian's Python refuses pip outside a virtual environment (PEP 668).
    assert install.startswith("python3 -m venv .venv && . .venv/bin/activate && pip install ")
    assert "-e '.[test]'" in install
    scanned = install.rsplit("flowscan scan ", 1)[1].strip()
    assert (ROOT / scanned).is_file()


def test_test_command_is_what_ci_runs() -> None:
    _, test = first_commands()
    assert test == "python3 -m pytest -q"
    ci = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert ci.count(test) == 1
