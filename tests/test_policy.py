"""Jurisdiction, transfer findings, location plausibility and the claims check."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from capfiles import ether, pcap
from conftest import real_capture
from scapy.layers.inet import IP, TCP

import flowscan
from flowscan.errors import UsageError
from flowscan.policy.claims import check_claims, load_claims

LAB = Path(__file__).resolve().parent.parent / "captures" / "lab"


def lab(name: str) -> str:
    return str(LAB / name / "capture.pcapng")


def no_media_capture(tmp_path: Path) -> str:
    """A TCP connection whose server answers the SYN after 5 ms."""
    c, s = "192.168.1.10", "78.46.100.20"  # the server is in Germany (Hetzner)
    pkts = [(1.0, bytes(ether() / IP(src=c, dst=s) / TCP(sport=50000, dport=443, flags="S"))),
            (1.005, bytes(ether() / IP(src=s, dst=c) / TCP(sport=443, dport=50000,
                                                           flags="SA"))),
            (1.006, bytes(ether() / IP(src=c, dst=s) / TCP(sport=50000, dport=443, flags="A")))]
    path = tmp_path / "tcp.pcap"
    path.write_bytes(pcap(pkts))
    return str(path)


def test_foreign_media_findings_follow_the_transfer_safeguard_principle() -> None:
    plain = flowscan.scan(lab("sip-rtp-plain"), home="EU")
    high = [f for f in plain.findings if f.kind == "foreign-media-plaintext"]
    assert high and high[0].severity == "high" and "US" in high[0].detail
    assert "transfer safeguards" in high[0].detail
    sfu = flowscan.scan(lab("sfu-webrtc"), home="CA")
    assert [f.severity for f in sfu.findings if f.kind == "foreign-media-hop-by-hop"] == ["high"]
    p2p = flowscan.scan(lab("p2p-webrtc"), home="CA")
    (flow,) = p2p.flows
    assert flow.jurisdiction is not None and flow.jurisdiction.foreign
    assert flow.jurisdiction.countries == ["CA", "DE"]
    assert [f.severity for f in p2p.findings if f.kind.startswith("foreign")] == ["info"]
    at_home = flowscan.scan(lab("p2p-webrtc-turn"), home="EU")
    assert not [f for f in at_home.findings if f.kind.startswith("foreign")]


def test_adequacy_decision_is_named_for_eu_homes() -> None:
    report = flowscan.scan(lab("sip-rtp-plain"), home="EEA")
    media = [f for f in report.flows if f.encryption]
    assert media[0].jurisdiction is not None
    decisions = {a["country"]: a for a in media[0].jurisdiction.adequacy}
    assert set(decisions) == {"CA", "US"}
    assert "Data Privacy Framework" in decisions["US"]["decision"]
    assert decisions["CA"]["adopted"] == "2001-12-20"


def test_bad_home_and_vantage_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="--home"):
        flowscan.scan(lab("p2p-webrtc"), home="Europe")
    with pytest.raises(UsageError, match="--vantage"):
        flowscan.scan(lab("p2p-webrtc"), vantage="Atlantis")


def test_rtt_plausibility_flags_an_impossible_location(tmp_path: Path) -> None:
    path = no_media_capture(tmp_path)
    far = flowscan.scan(path, vantage="AU")
    (flow,) = far.flows
    assert flow.remote is not None and flow.remote.country == "DE"
    check = flow.remote.plausibility
    assert check is not None and check.plausible is False and check.max_distance_km == 500
    assert [f.kind for f in far.findings] == ["implausible-location"]
    near = flowscan.scan(path, vantage="DE")
    assert near.flows[0].remote.plausibility.plausible is True  # type: ignore[union-attr]
    assert not near.findings
    coords = flowscan.scan(path, vantage="-33.87,151.21")  # Sydney
    assert coords.flows[0].remote.plausibility.plausible is False  # type: ignore[union-attr]


def claim(tmp_path: Path, capture: str, text: str) -> tuple[str, str]:
    path = tmp_path / "claims.toml"
    path.write_text("[claims]\n" + text + "\n")
    (result,) = check_claims(flowscan.scan(capture), load_claims(str(path)))
    return result.status, result.why


@pytest.mark.parametrize(("text", "capture", "status"), [
    ("media_end_to_end = true", "p2p-webrtc", "holds"),
    ("media_end_to_end = true", "sip-rtp-plain", "contradicted"),
    ("media_end_to_end = true", "sfu-webrtc", "unverifiable"),
    ("no_plaintext_media = true", "p2p-webrtc", "holds"),
    ("no_plaintext_media = true", "sip-rtp-plain", "contradicted"),
    ("no_plaintext_media = true", None, "unverifiable"),
    ('media_stays_in = "EU"', "p2p-webrtc-turn", "holds"),
    ('media_stays_in = "EU"', "p2p-webrtc", "contradicted"),
    ('media_stays_in = "EU"', None, "unverifiable"),
    ('signalling_stays_in = "US"', "sip-rtp-plain", "contradicted"),
    ('signalling_stays_in = "US"', "p2p-webrtc", "unverifiable"),
    ("allowed_operators = [14618, 812]", "sfu-webrtc", "holds"),
    ("allowed_operators = [30103]", "sfu-webrtc", "contradicted"),
    ("allowed_operators = [30103]", None, "unverifiable"),
])
def test_each_claim_holds_is_contradicted_or_unverifiable(
        tmp_path: Path, text: str, capture: str | None, status: str) -> None:
    path = lab(capture) if capture else no_media_capture(tmp_path)
    got, why = claim(tmp_path, path, text)
    assert got == status, why
    if status == "unverifiable" and "end_to_end" in text:
        assert "keys" in why  # says which keys would settle it


def test_signalling_claim_holds_on_a_real_capture(tmp_path: Path) -> None:
    status, why = claim(tmp_path, str(real_capture("google_meet.pcapng")),
                        'signalling_stays_in = "US"')
    assert status == "holds", why


def run_check(capture: str, claims: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flowscan", "check", capture, "--claims",
                           str(claims)], capture_output=True, text=True)


def test_check_exit_codes_and_errors_naming_the_line(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text("[claims]\nmedia_end_to_end = true\n")
    assert run_check(lab("p2p-webrtc"), good).returncode == 0
    contradicted = run_check(lab("sip-sdes-srtp"), good)
    assert contradicted.returncode == 1 and "contradicted" in contradicted.stdout
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("[claims]\nmedia_end_to_end = true\nmedia_is_nice = true\n")
    bad = run_check(lab("p2p-webrtc"), unknown)
    assert bad.returncode == 2 and "line 3: unknown claim 'media_is_nice'" in bad.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[claims\n")
    bad = run_check(lab("p2p-webrtc"), broken)
    assert bad.returncode == 2 and "not valid TOML" in bad.stderr and "line 1" in bad.stderr
    assert "Traceback" not in bad.stderr
