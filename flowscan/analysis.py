"""What happens to a flow after the flow table closes it, and to all flows at the end.

Per flow: identify its protocols from the payload samples, keep the facts, drop the
samples. At the end: the capture-wide name map (DNS answers, name resolution blocks) and
application labels, which need every flow's facts.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from flowscan.apps import FlowView, identify_apps
from flowscan.flows import FlowState
from flowscan.geo.locate import Locator, scope_of
from flowscan.identify import FlowFacts, identify
from flowscan.report.model import AppGroup, Finding, Flow, MediaSession, RemoteInfo
from flowscan.sessions import build_sessions, findings
from flowscan.verdict.rules import build_context, judge

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

    def finish(self, nrb_names: dict[str, list[str]], locator: Locator) -> tuple[
            list[Flow], list[AppGroup], dict[str, list[str]], list[MediaSession],
            list[Finding]]:
        self.flows.sort(key=lambda pair: pair[0].id)
        for flow, _facts in self.flows:
            flow.remote = _remote(flow, locator)
        names = name_map([facts for _, facts in self.flows], nrb_names)
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
        for flow, facts in self.flows:
            flow.encryption = judge(flow, facts, context)
        sessions = build_sessions(self.flows)
        records = [flow for flow, _ in self.flows]
        return records, apps, names, sessions, findings(records, sessions)


def _remote(flow: Flow, locator: Locator) -> RemoteInfo:
    """The server side, unless only the client side is on the public internet."""
    if scope_of(flow.server.ip) != "public" and scope_of(flow.client.ip) == "public":
        return locator.lookup(flow.client.ip, "client")
    return locator.lookup(flow.server.ip, "server")


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
    return value.replace(".", "").isdigit() or ":" in value
