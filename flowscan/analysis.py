"""What happens to a flow after the flow table closes it, and to all flows at the end.

Per flow: identify its protocols from the payload samples, keep the facts, drop the
samples. At the end: the capture-wide name map (DNS answers, name resolution blocks) and
application labels, which need every flow's facts.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Any

from flowscan.apps import FlowView, identify_apps
from flowscan.decrypt import KeySources, decrypt_flows
from flowscan.digits import is_ascii_digits
from flowscan.flows import FlowState
from flowscan.geo.hints import name_hints
from flowscan.geo.locate import Locator, scope_of
from flowscan.geo.plausibility import Plausibility, Vantage, check
from flowscan.identify import FlowFacts, identify
from flowscan.policy import transfers
from flowscan.policy.jurisdictions import Home
from flowscan.report.model import AppGroup, Finding, Flow, MediaSession, RemoteInfo
from flowscan.sessions import build_sessions, findings
from flowscan.verdict.rules import apply_decryption, build_context, judge

DETAIL_FIELDS = ("stun", "turn", "dtls", "tls", "quic", "rtp", "zoom", "sip")


def facts_to_details(facts: FlowFacts) -> dict[str, Any]:
    """The report's per-protocol facts; the dataclasses themselves (serialised as they are,
    no copies), and never the SDES keys FlowFacts also holds."""
    out: dict[str, Any] = {name: getattr(facts, name) for name in DETAIL_FIELDS
                           if getattr(facts, name) is not None}
    if facts.dns or facts.dns_queries:
        out["dns"] = {"queries": facts.dns_queries, "answers": facts.dns or {}}
    if facts.discord_ip_discovery or facts.discord_ping:
        out["discord"] = {"ip_discovery": facts.discord_ip_discovery,
                          "voice_ping": facts.discord_ping}
    if facts.public_addresses:
        out["public_addresses"] = facts.public_addresses
    return out


class FlowAnalysis:
    """Collects closed flows with their facts; finishes the report's flow-level fields."""

    def __init__(self, to_record: Any) -> None:
        self._to_record = to_record
        self.flows: list[tuple[Flow, FlowFacts]] = []

    def close(self, state: FlowState) -> None:
        record = self._to_record(state)
        facts = identify(state)
        state.samples = []  # the facts are kept; the payloads are not
        record.protocols = list(facts.protocols)
        record.details = facts_to_details(facts)
        self.flows.append((record, facts))

    def finish(self, nrb_names: dict[str, list[str]], locator: Locator,
               home: Home | None = None, vantage: Vantage | None = None,
               keys: KeySources | None = None) -> tuple[
            list[Flow], list[AppGroup], dict[str, list[str]], list[MediaSession],
            list[Finding]]:
        self.flows.sort(key=lambda pair: pair[0].id)
        host = capture_host([flow for flow, _ in self.flows])
        for flow, facts in self.flows:
            flow.remote = _remote(flow, locator, host)
            if vantage is not None and flow.remote.scope == "public":
                flow.remote.plausibility = _plausibility(flow, facts, vantage)
        names = name_map([facts for _, facts in self.flows], nrb_names)
        for flow, facts in self.flows:
            if flow.remote is not None:
                own = list(names.get(flow.remote.ip, []))
                if facts.tls and facts.tls.sni and flow.remote.which == "server":
                    own.append(facts.tls.sni)
                flow.remote.name_hints = name_hints(own)
        views = [FlowView(f.id, f.transport, (f.client.ip, f.client.port),
                          (f.server.ip, f.server.port), facts, remote=f.remote)
                 for f, facts in self.flows]
        labels = identify_apps(views, names)
        groups: dict[str, list[Flow]] = defaultdict(list)
        for flow, _facts in self.flows:
            label = labels.get(flow.id)
            if label is None:
                continue
            flow.app = label
            groups[label.name].append(flow)
        apps = [
            AppGroup(name, _group_confidence(flows), [f.id for f in flows],
                     sum(f.packets for f in flows), sum(f.bytes for f in flows))
            for name, flows in sorted(groups.items(), key=lambda kv: -sum(
                f.bytes for f in kv[1]))
        ]
        context = build_context(self.flows)
        # What the verdicts need to tell a participant from a server: the names that led to
        # each address, where the capture was taken, and the network of either end.
        context.names, context.capture_host, context.locate = names, host, locator.lookup
        for flow, facts in self.flows:
            flow.encryption = judge(flow, facts, context)
        if keys is not None:
            for flow_id, result in decrypt_flows(keys, self.flows).items():
                flow = next(f for f, _ in self.flows if f.id == flow_id)
                if flow.encryption is not None:
                    apply_decryption(flow.encryption, result)
        sessions = build_sessions(self.flows)
        records = [flow for flow, _ in self.flows]
        found = findings(records, sessions)
        if home is not None:
            transfers.judge(records, home, locator)
            found += transfers.transfer_findings(records, home)
        impossible = [(f.id, f.remote.plausibility) for f in records
                      if f.remote and f.remote.plausibility
                      and f.remote.plausibility.plausible is False]
        if impossible:
            found.append(Finding("medium", "implausible-location",
                                 f"{len(impossible)} remote location(s) cannot be right for the "
                                 "round-trip times seen: " + impossible[0][1].detail,
                                 [flow_id for flow_id, _ in impossible]))
        return records, apps, names, sessions, found


def capture_host(flows: list[Flow]) -> str | None:
    """The address the capture was most likely taken at: the one in the most flows, when
    one stands out."""
    counts = Counter(ip for f in flows for ip in {f.client.ip, f.server.ip})
    ranked = counts.most_common(2)
    if ranked and (len(ranked) == 1 or ranked[0][1] > ranked[1][1]):
        return ranked[0][0]
    return None


def _remote(flow: Flow, locator: Locator, host: str | None) -> RemoteInfo:
    """The end that is not the capture host; without one, the server side, unless only the
    client side is on the public internet."""
    if host == flow.server.ip and host != flow.client.ip:
        return locator.lookup(flow.client.ip, "client")
    if host == flow.client.ip:
        return locator.lookup(flow.server.ip, "server")
    if scope_of(flow.server.ip) != "public" and scope_of(flow.client.ip) == "public":
        return locator.lookup(flow.client.ip, "client")
    return locator.lookup(flow.server.ip, "server")


def _plausibility(flow: Flow, facts: FlowFacts, vantage: Vantage) -> Plausibility | None:
    """From the TCP handshake (SYN to SYN-ACK) or a STUN exchange, when the capture point
    sent the request (round trips measured at the client side)."""
    remote = flow.remote
    assert remote is not None
    if remote.which != "server":  # round trips are measured from the client side
        return None
    rtt, source = None, ""
    if flow.tcp_handshake and flow.tcp_handshake.syn_to_synack_ms:
        rtt, source = flow.tcp_handshake.syn_to_synack_ms, "tcp-handshake"
    elif facts.stun is not None and facts.stun.rtt_ms:
        rtt, source = facts.stun.rtt_ms, "stun"
    if rtt is None:
        return None
    coordinates = (remote.latitude, remote.longitude) if remote.latitude is not None else None
    return check(vantage, rtt, source, remote.country, coordinates)  # type: ignore[arg-type]


def _group_confidence(flows: list[Flow]) -> str:
    order = {"high": 3, "medium": 2, "low": 1}
    return max((f.app.confidence for f in flows if f.app), key=lambda c: order[c])


def name_map(all_facts: list[FlowFacts], nrb_names: dict[str, list[str]]
             ) -> dict[str, list[str]]:
    """Address -> every name that led to it: A/AAAA owners and the CNAMEs pointing there."""
    aliases: dict[str, set[str]] = defaultdict(set)  # target name -> names pointing to it
    addresses: dict[str, set[str]] = defaultdict(set)  # address -> owner names
    for facts in all_facts:
        for name, values in (facts.dns or {}).items():
            for value in values:
                if _is_address(value):
                    addresses[value].add(name)
                else:
                    aliases[value].add(name)
    out: dict[str, list[str]] = {}
    for address, owners in addresses.items():
        seen: set[str] = set()
        todo = list(owners)
        while todo and len(seen) < 64:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            todo.extend(aliases.get(name, ()))
        out[address] = sorted(seen)
    for address, names in nrb_names.items():
        out[address] = sorted(set(out.get(address, [])) | set(names))
    return dict(sorted(out.items()))


def _is_address(value: str) -> bool:
    return is_ascii_digits(value.replace(".", "")) or ":" in value
