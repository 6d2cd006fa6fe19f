"""Which flows leave the user's jurisdiction, and what that means for the media in them.

The transfer-safeguard principle (the joint open letter of 2020 and its observations): data
sent to outside parties, foreign jurisdictions included, must stay adequately protected.
Media a foreign operator can read (plaintext, keys in the clear, or only hop-by-hop
encryption) is a high finding; media whose protection cannot be verified is medium; media
encrypted end to end is informational, since the operator abroad cannot read it.
"""

from __future__ import annotations

from collections import defaultdict

from flowscan.geo.locate import Locator
from flowscan.policy.jurisdictions import Home, adequacy
from flowscan.report.model import Finding, Flow, Jurisdiction

PRINCIPLE = ("transfer safeguards: data sent to outside parties, including in foreign "
             "jurisdictions, must stay adequately protected")
SEVERITY = {"plaintext": "high", "keys-exposed": "high", "hop-by-hop": "high",
            "encrypted-unverified": "medium", "unknown": "medium", "end-to-end": "info"}
READABLE = {"plaintext": "unencrypted", "keys-exposed": "encrypted with keys sent in clear",
            "hop-by-hop": "readable by the operator's servers (hop-by-hop encryption)",
            "encrypted-unverified": "encrypted, but who holds the keys cannot be verified",
            "unknown": "of unknown protection", "end-to-end": "end-to-end encrypted"}


def judge(flows: list[Flow], home: Home, locator: Locator) -> None:
    """A flow leaves home when any of its public ends is located outside it: which end is
    the user's need not be known."""
    for flow in flows:
        remote = flow.remote
        if remote is None:
            continue
        ends = [locator.lookup(ip) for ip in (flow.client.ip, flow.server.ip)]
        countries = sorted({e.country for e in ends if e.country})
        abroad = [c for c in countries if not home.contains(c)]
        located = abroad[0] if abroad else remote.country
        flow.jurisdiction = Jurisdiction(
            home=home.name, remote_country=located, countries=countries,
            foreign=bool(abroad) if countries else None,
            registered_country=remote.registered_country,
            registered_foreign=None if remote.registered_country is None
            else not home.contains(remote.registered_country),
            adequacy=[{"country": c, **a} for c in abroad if (a := adequacy(c))])


def transfer_findings(flows: list[Flow], home: Home) -> list[Finding]:
    groups: dict[str, list[Flow]] = defaultdict(list)
    for flow in flows:
        if flow.encryption is None or flow.jurisdiction is None or not flow.jurisdiction.foreign:
            continue
        groups[flow.encryption.verdict].append(flow)
    out = []
    for verdict in ("plaintext", "keys-exposed", "hop-by-hop", "encrypted-unverified",
                    "unknown", "end-to-end"):
        hit = groups.get(verdict)
        if not hit:
            continue
        countries = sorted({c for f in hit if f.jurisdiction
                            for c in f.jurisdiction.countries if not home.contains(c)})
        total = sum(f.bytes for f in hit)
        detail = (f"{len(hit)} media flow(s), {total} bytes, leave {home.name} for "
                  f"{', '.join(countries)}: the media is {READABLE[verdict]}; {PRINCIPLE}")
        adequate = sorted(c for c in countries if adequacy(c))
        if adequate and home.name in ("EU", "EEA"):
            detail += f" (EU adequacy decision covers {', '.join(adequate)})"
        out.append(Finding(SEVERITY[verdict], f"foreign-media-{verdict}", detail,
                           [f.id for f in hit]))
    return out
