"""Country codes checked against ISO 3166 (issue 16 part 6): --home and --vantage refuse
codes ISO does not assign, suggest the one meant, and --vantage knows every country."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pycountry
import pytest
from conftest import real_capture

import flowscan
from flowscan.errors import UsageError
from flowscan.geo.plausibility import centroid, distance_km, parse_vantage
from flowscan.policy.jurisdictions import parse_home

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
CAPTURE = str(LAB / "sip-rtp-plain" / "capture.pcapng")
# ISO countries with no land people live on, that countryinfo gives no coordinates for.
NO_COORDINATES = {"AQ", "BV", "UM"}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          text=True, timeout=300)


@pytest.mark.parametrize(("option", "value", "meant"), [
    ("--home", "UK", "GB"), ("--home", "EL", "GR"), ("--home", "DEU", "DE"),
    ("--home", "Germany", "DE"), ("--vantage", "UK", "GB"),
])
def test_a_code_iso_does_not_assign_names_the_one_meant(option: str, value: str,
                                                        meant: str) -> None:
    proc = run("scan", CAPTURE, option, value)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (f"flowscan: error: {option} {value} is not an ISO 3166 country "
                           f"code; did you mean {meant}?\n")


@pytest.mark.parametrize("value", ["ZZ", "XX", "E1", "Europe"])
def test_an_unknown_code_is_an_error(value: str) -> None:
    proc = run("scan", CAPTURE, "--home", value)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert f"--home {value} is not an ISO 3166 country code" in proc.stderr
    with pytest.raises(UsageError):
        parse_home(value)


def test_codes_and_groups_that_exist_are_taken() -> None:
    assert parse_home("gb").countries == {"GB"}
    assert parse_home(" de ").name == "DE"
    assert "DE" in parse_home("EU").countries and "NO" in parse_home("EEA").countries


def test_vantage_knows_every_iso_country_with_people() -> None:
    missing = {c.alpha_2 for c in pycountry.countries if centroid(c.alpha_2) is None}
    assert missing == NO_COORDINATES
    for code, point in (("PK", (30.0, 70.0)), ("DE", (51.0, 9.0))):
        got = centroid(code)
        assert got is not None and distance_km(got, point) < 300, (code, got)
    # A territory without a centroid falls back to its capital: Palestine, Curaçao.
    assert centroid("PS") is not None and centroid("CW") is not None
    with pytest.raises(UsageError, match="no coordinates known for Antarctica"):
        parse_vantage("AQ")


def test_vantage_pk_works_on_a_real_run() -> None:
    zoom = str(real_capture("zoom.pcap"))  # TCP handshakes give round-trip times
    proc = run("scan", zoom, "--vantage", "PK", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    report = flowscan.scan(zoom, vantage="PK")
    checked = [f.remote.plausibility for f in report.flows
               if f.remote is not None and f.remote.plausibility is not None]
    assert checked and all("from PK" in p.detail for p in checked)
