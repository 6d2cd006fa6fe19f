"""The wheel carries the geolocation databases, and an installed flowscan finds them from any
working directory: a wheel without them answered '?' for every remote, in silence."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from capfiles import REAL_DIR

ROOT = Path(__file__).resolve().parent.parent
LAB = ROOT / "captures" / "lab"
# What the sdist holds that the wheel is built from (MANIFEST.in, setup.py, pyproject.toml).
SOURCES = ["pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "flowscan", "geodata"]
# pip's words when the build backend cannot be fetched (no index reachable).
OFFLINE = ("Could not find a version that satisfies", "No matching distribution found")


def _clean_env() -> dict[str, str]:
    """The environment less anything that would point flowscan at the checkout's data."""
    drop = {"PYTHONPATH", "FLOWSCAN_GEODATA", "FLOWSCAN_GEOIP_DB"}
    return {k: v for k, v in os.environ.items() if k not in drop}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources: pip builds in the source folder, and a
    stale build/ there could put files in the wheel that the checkout no longer has."""
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc", "build", "*.egg-info")
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(src),
                            "-w", str(tmp / "dist")], capture_output=True, text=True,
                           env=_clean_env(), timeout=300)
    if built.returncode and any(words in built.stderr for words in OFFLINE):
        pytest.skip(f"the build backend cannot be fetched here: {built.stderr[-300:]}")
    assert built.returncode == 0, built.stderr
    (path,) = (tmp / "dist").glob("flowscan-*.whl")
    return path


def test_the_wheel_carries_the_databases_and_their_index(wheel: Path) -> None:
    index = json.loads((ROOT / "geodata" / "databases.json").read_text())
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        assert json.loads(z.read("flowscan/_geodata/databases.json")) == index
        for entry in index["databases"]:
            data = z.read(f"flowscan/_geodata/{entry['file']}")
            assert hashlib.sha256(data).hexdigest() == entry["sha256"], entry["file"]
    assert "flowscan/_geodata/__init__.py" in names
    assert "flowscan/report/schema.json" in names
    # The HTML report's templates and map (issue 16): a page needs every one of them.
    for name in ("worldmap.json", "templates/report.html.j2", "templates/report.css",
                 "templates/report.js"):
        assert f"flowscan/report/{name}" in names, name
    assert not [n for n in names if n.startswith("geodata/")]  # inside the package only


def _venv(tmp: Path) -> Path:
    """A venv that sees this interpreter's packages (no index needed), or a skip."""
    made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages",
                           str(tmp / "venv")], capture_output=True, text=True, timeout=120)
    if made.returncode:
        pytest.skip(f"no venv can be made here: {made.stderr[-300:]}")
    python = tmp / "venv" / "bin" / "python"
    if sys.prefix != sys.base_prefix:  # run from a venv: --system-site-packages misses it
        inner = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()"
                                "[0])"], capture_output=True, text=True, check=True)
        Path(inner.stdout.strip(), "outer.pth").write_text("\n".join(site.getsitepackages()))
    return python


def _check(flowscan: list[str], capture: Path, claims: Path, cwd: Path) -> int:
    done = subprocess.run([*flowscan, "check", str(capture), "--claims", str(claims)],
                          capture_output=True, text=True, cwd=cwd, env=_clean_env())
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode


def test_the_installed_wheel_locates_remotes_from_any_folder(wheel: Path, tmp_path: Path
                                                             ) -> None:
    python = _venv(tmp_path)
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps",
                                "--no-index", "--ignore-installed", str(wheel)],
                               capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [str(python.parent / "flowscan")]
    done = subprocess.run([*command, "scan", str(LAB / "p2p-webrtc-turn" / "capture.pcapng"),
                           "--format", "json"], capture_output=True, text=True,
                          cwd=elsewhere, env=_clean_env())
    assert done.returncode == 0 and done.stderr == "", done.stderr
    report = json.loads(done.stdout)
    assert {f["remote"]["country"] for f in report["flows"] if f.get("remote")} >= {"DE"}
    # The databases read are the wheel's, in the venv, not the checkout's.
    venv = (tmp_path / "venv").resolve()
    assert [Path(d["path"]).resolve().is_relative_to(venv) for d in report["geodata"]] == [
        True] * 4
    # A location claim gets the editable install's answer: contradicted, exit 1.
    claims = tmp_path / "claims.toml"
    claims.write_text('[claims]\nmedia_stays_in = "EU"\n')
    editable = [sys.executable, "-m", "flowscan"]
    capture = LAB / "p2p-webrtc" / "capture.pcapng"  # its peer is located in Canada
    assert _check(command, capture, claims, elsewhere) == _check(editable, capture, claims,
                                                                  ROOT) == 1
    zoom = REAL_DIR / "zoom.pcap"
    if zoom.is_file():  # media to DE and NL: contradicted for the US
        claims.write_text('[claims]\nmedia_stays_in = "US"\n')
        assert _check(command, zoom, claims, elsewhere) == _check(editable, zoom, claims,
                                                                   ROOT) == 1
