"""The policy stage on crafted located flows: policy.transfers.judge records each flow's
jurisdiction against the user's home, transfer_findings names what leaves it (media by its
verdict, signalling apart)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from stagekit import LOCAL, TableLocator, app_label, encryption, flow

from flowscan.policy.jurisdictions import parse_home
from flowscan.policy.transfers import judge, kind, transfer_findings
from flowscan.report.model import Finding, Flow

EU = parse_home("EU")
US_SERVER = "34.120.10.20"
DE_SERVER = "78.46.100.20"
DE_PEER = "84.128.10.20"
FR_PEER = "90.12.34.56"
JP_SERVER = "133.11.0.10"
UNLOCATED = "45.33.0.1"  # public, but the table does not know it
# DE_SERVER's network is registered in the US though the server is located in Germany.
LOCATOR = TableLocator({US_SERVER: ("US", 15169, "Google LLC"),
                        DE_SERVER: ("DE", 24940, "Hetzner Online GmbH"),
                        DE_PEER: ("DE", 3320, "Deutsche Telekom AG"),
                        FR_PEER: ("FR", 3215, "Orange"),
                        JP_SERVER: ("JP", 2516, "KDDI")})


def located(flow_id: int, remote_ip: str, *, client: str = LOCAL, transport: str = "udp",
            verdict: str | None = None, app: str | None = None,
            protocols: tuple[str, ...] = ()) -> Flow:
    """A flow from `client` to `remote_ip` whose remote the geolocate stage located."""
    return flow(flow_id, (client, 50000 + flow_id), (remote_ip, 3478), transport=transport,
                protocols=list(protocols), app=app_label(app) if app else None,
                encryption=encryption(verdict) if verdict else None,
                remote=LOCATOR.lookup(remote_ip))


def judged(flows: list[Flow], home: str = "EU") -> list[Finding]:
    """The stage as the pipeline runs it: judge, then the findings."""
    judge(flows, parse_home(home), LOCATOR)
    return transfer_findings(flows, parse_home(home))


def test_media_abroad_and_at_home() -> None:
    abroad = located(1, US_SERVER, verdict="hop-by-hop")
    at_home = located(2, DE_PEER, verdict="end-to-end")
    found = judged([abroad, at_home])
    assert abroad.jurisdiction is not None and at_home.jurisdiction is not None
    assert (abroad.jurisdiction.home, abroad.jurisdiction.foreign,
            abroad.jurisdiction.remote_country, abroad.jurisdiction.countries) == (
        "EU", True, "US", ["US"])  # the capture host's private address is located nowhere
    assert [a["country"] for a in abroad.jurisdiction.adequacy] == ["US"]
    assert (at_home.jurisdiction.foreign, at_home.jurisdiction.countries,
            at_home.jurisdiction.adequacy) == (False, ["DE"], [])
    assert [(f.kind, f.severity, f.flows) for f in found] == [
        ("foreign-media-hop-by-hop", "high", [1])]
    assert "US" in found[0].detail and "transfer safeguards" in found[0].detail


@pytest.mark.parametrize(("verdict", "severity"), [
    ("plaintext", "high"), ("keys-exposed", "high"), ("hop-by-hop", "high"),
    ("encrypted-unverified", "medium"), ("unknown", "medium"), ("end-to-end", "info")])
def test_media_leaving_home_is_as_severe_as_what_the_operator_can_read(
        verdict: str, severity: str) -> None:
    """Media a foreign operator can read is high; unverifiable medium; end to end info."""
    (found,) = judged([located(1, JP_SERVER, verdict=verdict)])
    assert (found.kind, found.severity, found.flows) == (f"foreign-media-{verdict}",
                                                         severity, [1])
    assert "EU adequacy decision covers JP" in found.detail


def test_findings_list_the_most_exposed_media_first() -> None:
    flows = [located(1, US_SERVER, verdict="end-to-end"),
             located(2, US_SERVER, verdict="hop-by-hop"),
             located(3, JP_SERVER, verdict="plaintext"),
             located(4, US_SERVER, verdict="plaintext")]
    found = judged(flows)
    assert [(f.kind, f.flows) for f in found] == [
        ("foreign-media-plaintext", [3, 4]), ("foreign-media-hop-by-hop", [2]),
        ("foreign-media-end-to-end", [1])]
    assert "JP, US" in found[0].detail


def test_either_public_end_abroad_leaves_home() -> None:
    """Which end is the user's need not be known: a flow between a German peer and a US
    server leaves the EU, whichever is the capture's."""
    both = located(1, US_SERVER, client=DE_PEER, verdict="end-to-end")
    found = judged([both])
    assert both.jurisdiction is not None
    assert (both.jurisdiction.countries, both.jurisdiction.foreign,
            both.jurisdiction.remote_country) == (["DE", "US"], True, "US")
    assert [f.kind for f in found] == ["foreign-media-end-to-end"]


def test_a_single_country_home() -> None:
    """--home DE: another EU country is abroad."""
    flows = [located(1, DE_SERVER, verdict="hop-by-hop"),
             located(2, DE_SERVER, client=FR_PEER, verdict="hop-by-hop")]
    assert judged(flows, "EU") == []
    found = judged(flows, "DE")
    assert [(f.kind, f.flows) for f in found] == [("foreign-media-hop-by-hop", [2])]
    assert "leave DE for FR" in found[0].detail
    assert "adequacy" not in found[0].detail  # a member state needs no adequacy decision
    assert [f.jurisdiction.foreign for f in flows if f.jurisdiction] == [False, True]


def test_nothing_located_is_neither_home_nor_abroad() -> None:
    unlocated = located(1, UNLOCATED, verdict="plaintext")
    no_remote = located(2, US_SERVER, verdict="plaintext")
    no_remote.remote = None  # not geolocated: not judged
    assert judged([unlocated, no_remote]) == []
    assert unlocated.jurisdiction is not None and unlocated.jurisdiction.foreign is None
    assert unlocated.jurisdiction.countries == [] and no_remote.jurisdiction is None


def test_the_registered_country_of_the_network_is_recorded() -> None:
    abroad_registered = located(1, DE_SERVER, verdict="hop-by-hop")
    assert abroad_registered.remote is not None
    abroad_registered.remote = replace(abroad_registered.remote, registered_country="US")
    judged([abroad_registered])
    assert abroad_registered.jurisdiction is not None
    assert (abroad_registered.jurisdiction.foreign,
            abroad_registered.jurisdiction.registered_country,
            abroad_registered.jurisdiction.registered_foreign) == (False, "US", True)


# -- signalling apart from media ----------------------------------------------------------

def test_a_services_signalling_abroad_is_its_own_finding() -> None:
    signalling = located(1, US_SERVER, transport="tcp", app="zoom", protocols=("tls",))
    media = located(2, US_SERVER, verdict="hop-by-hop", app="zoom", protocols=("rtp",))
    found = judged([signalling, media])
    assert (kind(signalling), kind(media)) == ("signalling", "media")
    assert [(f.kind, f.severity, f.flows) for f in found] == [
        ("foreign-media-hop-by-hop", "high", [2]), ("foreign-signalling", "medium", [1])]
    assert "who calls whom" in found[1].detail


@pytest.mark.parametrize(("app", "protocols"), [
    (None, ("tls",)),  # no service identified
    ("webrtc", ("tls",)),  # the media path's own, not a service's
    ("zoom", ("dns",)),  # not a signalling protocol
])
def test_other_traffic_abroad_is_no_signalling_finding(app: str | None,
                                                       protocols: tuple[str, ...]) -> None:
    other = located(1, US_SERVER, transport="tcp", app=app, protocols=protocols)
    assert judged([other]) == [] and kind(other) is None
    assert other.jurisdiction is not None and other.jurisdiction.foreign  # judged all the same
