from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capfiles import REAL_DIR

REAL_CAPTURES = sorted(
    p for p in REAL_DIR.glob("*") if p.suffix in (".pcap", ".pcapng")
) if REAL_DIR.is_dir() else []


def real_capture(name: str) -> Path:
    path = REAL_DIR / name
    if not path.is_file():
        pytest.skip(f"shared real captures not present ({REAL_DIR}); see its README")
    return path


# The captures, or one None whose test skips.
_REAL_PARAMS: Sequence[Path | None] = REAL_CAPTURES or [None]


@pytest.fixture(params=_REAL_PARAMS, ids=lambda p: p.name if p else "absent")
def real_path(request: pytest.FixtureRequest) -> Path:
    if request.param is None:
        pytest.skip(f"shared real captures not present ({REAL_DIR}); see its README")
    return request.param
