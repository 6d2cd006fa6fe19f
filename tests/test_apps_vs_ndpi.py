"""flowscan's application labels against nDPI's, flow by flow, on the shared captures."""

from __future__ import annotations

from pathlib import Path

import pytest
from ndpi import vtc_flows

import flowscan

NOT_VTC = "a Microsoft service that is not Teams (nDPI groups it under Skype_Teams)"

# (capture, client, server) -> why flowscan deliberately does not give nDPI's label.
DELIBERATE = {
    ("teams.pcap", "192.168.1.6:60562", "104.40.187.151:443"): NOT_VTC + ": Microsoft Stream",
    ("teams.pcap", "192.168.1.6:60563", "52.169.186.119:443"): NOT_VTC + ": Microsoft Stream",
    ("teams.pcap", "192.168.1.6:60564", "40.79.138.41:443"): NOT_VTC + ": HockeyApp",
    ("teams.pcap", "192.168.1.6:60568", "40.79.138.41:443"): NOT_VTC + ": HockeyApp",
    ("stun_dtls_rtp.pcapng", "192.168.12.182:50221", "142.250.82.249:3478"):
        "TURN over TCP to Google's network (AS15169) with nothing in the flow naming Meet; "
        "Google's network and TURN servers serve several services, and a network shared by "
        "several services names none alone (nDPI's FPC says 'Confidence: IP address')",
    ("webex.pcap", "10.8.0.1:49048", "23.44.253.243:443"):
        "TLS without SNI to Akamai's network (AS16625), a resumed session with no "
        "certificate; nDPI's Webex label rests on its own address list",
}


def test_vtc_apps_match_ndpi(real_path: Path) -> None:
    reference = real_path.with_name(real_path.name + ".ndpi.out")
    if not reference.exists():
        pytest.skip("no nDPI reference beside the capture")
    report = flowscan.scan(str(real_path))
    ours = {(f.transport, frozenset([(f.client.ip, f.client.port),
                                     (f.server.ip, f.server.port)])): f for f in report.flows}
    checked = 0
    for transport, a, b, app, label in vtc_flows(reference):
        flow = ours.get((transport, frozenset([a, b])))
        assert flow is not None, f"{a} {b}: nDPI has a flow flowscan does not"
        key = (real_path.name, f"{a[0]}:{a[1]}", f"{b[0]}:{b[1]}")
        got = flow.app.name if flow.app else None
        if key in DELIBERATE:
            assert got != app, f"{key} now agrees with nDPI; drop it from DELIBERATE"
            continue
        assert got == app, f"{key}: nDPI says {label}, flowscan {got} ({flow.protocols})"
        assert flow.app is not None and flow.app.evidence
        checked += 1
    names = {key for key in DELIBERATE if key[0] == real_path.name}
    assert checked or names or not vtc_flows(reference)
