"""The capture's own names for addresses: DNS answers with the CNAMEs that led to them,
and pcapng name resolution blocks."""

from __future__ import annotations

from collections import defaultdict

from flowscan.digits import is_ascii_digits
from flowscan.identify import FlowFacts


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
