"""Which flows leave the user's jurisdiction, and what that means for the media in them.

The transfer-safeguard principle (the joint open letter of 2020 and its observations): data
sent to outside parties, foreign jurisdictions included, must stay adequately protected.
Media a foreign operator can read (plaintext, keys in the clear, or only hop-by-hop
encryption) is a high finding; media whose protection cannot be verified is medium; media
encrypted end to end is informational, since the operator abroad cannot read it.

Which flows are media, which are signalling, and which leave home are decided here once, for
both `scan --home` (the findings and the report's answers) and `check` (media_stays_in,
signalling_stays_in): the two commands name the same flows.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

from flowscan.geo.locate import Locator
from flowscan.policy.jurisdictions import Home, adequacy
from flowscan.report.model import Finding, Flow, Jurisdiction
from flowscan.report.vocab import Verdict

PRINCIPLE = ("transfer safeguards: data sent to outside parties, including in foreign "
             "jurisdictions, must stay adequately protected")
# Every verdict has its severity and its words (tests/test_vocab.py checks none is missing).
SEVERITY = {Verdict.PLAINTEXT: "high", Verdict.KEYS_EXPOSED: "high", Verdict.HOP_BY_HOP: "high",
            Verdict.ENCRYPTED_UNVERIFIED: "medium", Verdict.UNKNOWN: "medium",
            Verdict.END_TO_END: "info"}
READABLE = {Verdict.PLAINTEXT: "unencrypted",
            Verdict.KEYS_EXPOSED: "encrypted with keys sent in clear",
            Verdict.HOP_BY_HOP: "readable by the operator's servers (hop-by-hop encryption)",
            Verdict.ENCRYPTED_UNVERIFIED: "encrypted, but who holds the keys cannot be verified",
            Verdict.UNKNOWN: "of unknown protection",
            Verdict.END_TO_END: "end-to-end encrypted"}
# The order findings are listed in: the most exposed media first.
FINDING_ORDER = (Verdict.PLAINTEXT, Verdict.KEYS_EXPOSED, Verdict.HOP_BY_HOP,
                 Verdict.ENCRYPTED_UNVERIFIED, Verdict.UNKNOWN, Verdict.END_TO_END)


SIGNALLING_PROTOCOLS = frozenset({"tls", "quic", "sip", "gquic"})


def is_media(flow: Flow) -> bool:
    """A flow the analysis judged as media (it has an encryption verdict)."""
    return flow.encryption is not None


def is_signalling(flow: Flow) -> bool:
    """A service's signalling: an identified app's TLS, QUIC or SIP that carries no media
    (a bare WebRTC flow is the media path's own, not the service's)."""
    return (flow.encryption is None and flow.app is not None and flow.app.name != "webrtc"
            and bool(set(flow.protocols) & SIGNALLING_PROTOCOLS))


def kind(flow: Flow) -> str | None:
    """media, signalling, or None for any other traffic."""
    return "media" if is_media(flow) else "signalling" if is_signalling(flow) else None


def located_countries(flow: Flow, locator: Locator) -> list[str]:
    """Where the flow's ends are located, both of them: which end is the user's need not be
    known."""
    return sorted({c for ip in (flow.client.ip, flow.server.ip)
                   if (c := locator.lookup(ip).country)})


def leaving(flows: list[Flow], home: Home, countries: Callable[[Flow], list[str]]
            ) -> list[Flow]:
    """The flows with an end located outside home (countries: a flow's located ends)."""
    return [f for f in flows if any(not home.contains(c) for c in countries(f))]


def jurisdiction_countries(flow: Flow) -> list[str]:
    """The located ends judge() recorded on the flow (none when it was not judged)."""
    return flow.jurisdiction.countries if flow.jurisdiction else []


def judge(flows: list[Flow], home: Home, locator: Locator) -> None:
    """A flow leaves home when any of its public ends is located outside it: which end is
    the user's need not be known."""
    for flow in flows:
        remote = flow.remote
        if remote is None:
            continue
        countries = located_countries(flow, locator)
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
    """One finding per verdict of the media that leaves home, most exposed first, then one
    for the service's signalling that does."""
    groups: dict[str, list[Flow]] = defaultdict(list)
    for flow in leaving([f for f in flows if is_media(f)], home, jurisdiction_countries):
        assert flow.encryption is not None
        groups[flow.encryption.verdict].append(flow)
    out = [_media_finding(verdict, groups[verdict], home)
           for verdict in FINDING_ORDER if groups.get(verdict)]
    signalling = leaving([f for f in flows if is_signalling(f)], home, jurisdiction_countries)
    if signalling:
        out.append(Finding(
            "medium", "foreign-signalling",
            f"{len(signalling)} signalling flow(s), {sum(f.bytes for f in signalling)} bytes, "
            f"leave {home.name} for {', '.join(_abroad(signalling, home))}: the service's "
            "servers there see who calls whom and when (the content of the calls is judged "
            f"by the media findings); {PRINCIPLE}",
            [f.id for f in signalling]))
    return out


def _abroad(flows: list[Flow], home: Home) -> list[str]:
    """The countries outside home that the flows' located ends are in."""
    return sorted({c for f in flows for c in jurisdiction_countries(f) if not home.contains(c)})


def _media_finding(verdict: Verdict, hit: list[Flow], home: Home) -> Finding:
    countries = _abroad(hit, home)
    detail = (f"{len(hit)} media flow(s), {sum(f.bytes for f in hit)} bytes, leave "
              f"{home.name} for {', '.join(countries)}: the media is {READABLE[verdict]}; "
              f"{PRINCIPLE}")
    adequate = sorted(c for c in countries if adequacy(c))
    if adequate and home.name in ("EU", "EEA"):
        detail += f" (EU adequacy decision covers {', '.join(adequate)})"
    return Finding(SEVERITY[verdict], f"foreign-media-{verdict}", detail, [f.id for f in hit])
