"""A vendor's stated claims, checked against a capture: holds, contradicted, unverifiable.

The claims file is TOML with one table, [claims]:

    media_end_to_end = true          # all media end-to-end encrypted
    no_plaintext_media = true        # no media travels unencrypted
    media_stays_in = "EU"            # media goes only to endpoints located there
    signalling_stays_in = "CA"       # so does the service's signalling
    allowed_operators = [30103]      # media and signalling only to these networks (ASNs)

An end-to-end claim is contradicted by plaintext or keys-exposed media, or by hop-by-hop
media seen with the keys (basis decrypted); hop-by-hop seen without keys leaves it
unverifiable, because an inner end-to-end layer cannot be excluded, and the result says
which keys would settle it.
"""

from __future__ import annotations

import functools
import tomllib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowscan.errors import UsageError
from flowscan.geo.locate import LOCATING, Locator
from flowscan.policy import transfers
from flowscan.policy.jurisdictions import Home, parse_home
from flowscan.report.model import Flow, Report

# Each claim a vendor can state, with what it says: CI reports (SARIF rules) show these.
DESCRIPTIONS = {
    "media_end_to_end": "All media is end-to-end encrypted.",
    "no_plaintext_media": "No media travels unencrypted or with its keys in the clear.",
    "media_stays_in": "Media goes only to endpoints located in the stated jurisdiction.",
    "signalling_stays_in": "The service's signalling goes only to endpoints located in the "
                           "stated jurisdiction.",
    "allowed_operators": "Media and signalling go only to the stated networks (AS numbers).",
}
KNOWN = set(DESCRIPTIONS)
HOLDS, CONTRADICTED, UNVERIFIABLE = "holds", "contradicted", "unverifiable"
# The claims that only databases can settle, and the kinds of database each needs.
NEEDS_GEODATA = {"media_stays_in": LOCATING, "signalling_stays_in": LOCATING,
                 "allowed_operators": ("asn",)}


@dataclass
class ClaimResult:
    claim: str
    stated: Any
    status: str
    why: str
    flows: list[int] = field(default_factory=list)


def _line_of(text: str, key: str) -> int:
    for number, line in enumerate(text.splitlines(), 1):
        if line.split("=", 1)[0].strip() == key:
            return number
    return 0


def load_claims(path: str) -> dict[str, Any]:
    """The [claims] table of a TOML file; every problem with the file is a UsageError that
    names it (TOML is UTF-8 text: bytes that are not are one of those problems)."""
    try:
        data_bytes = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"{path}: cannot read claims: {exc.strerror}") from None
    try:
        text = data_bytes.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data_bytes.count(b"\n", 0, exc.start) + 1
        raise UsageError(f"{path}, line {line}: not UTF-8 text, so not valid TOML") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except (ValueError, RecursionError):  # an integer of thousands of digits, deep nesting
        raise UsageError(f"{path}: not valid TOML for flowscan: a number too long or arrays "
                         "nested too deep") from None
    claims = data.get("claims")
    if not isinstance(claims, dict) or set(data) - {"claims"}:
        raise UsageError(f"{path}: expected a single [claims] table")
    if not claims:  # a gate that checks nothing would pass every capture
        raise UsageError(f"{path}: the [claims] table states no claim (known: "
                         f"{', '.join(sorted(KNOWN))})")
    for key, value in claims.items():
        if key not in KNOWN:
            raise UsageError(f"{path}, line {_line_of(text, key)}: unknown claim {key!r} "
                             f"(known: {', '.join(sorted(KNOWN))})")
        if key in ("media_end_to_end", "no_plaintext_media") and value is not True:
            raise UsageError(f"{path}, line {_line_of(text, key)}: {key} takes true")
        if key in ("media_stays_in", "signalling_stays_in"):
            try:
                parse_home(str(value))
            except UsageError as exc:
                raise UsageError(f"{path}, line {_line_of(text, key)}: {exc}") from None
        if key == "allowed_operators" and not (  # AS numbers are 32 bits (RFC 6793)
                isinstance(value, list) and all(isinstance(v, int) and not isinstance(v, bool)
                                                and 0 <= v < 2**32 for v in value)):
            raise UsageError(f"{path}, line {_line_of(text, key)}: allowed_operators takes a "
                             "list of AS numbers")
    return claims


def _media(report: Report) -> list[Flow]:
    return [f for f in report.flows if transfers.is_media(f)]


def _signalling(report: Report) -> list[Flow]:
    """The same flows `scan --home` counts as signalling (policy.transfers)."""
    return [f for f in report.flows if transfers.is_signalling(f)]


def geodata_for(claims: dict[str, Any], extra: Sequence[str] = ()) -> Locator | None:
    """The databases the location claims need, opened (None when no claim needs any).

    Raises UsageError (exit 2) when none that answers such a claim can be opened: an
    'unverifiable' or a 'holds' drawn from no data would read as a finding about the capture.
    """
    needs = [key for key in claims if key in NEEDS_GEODATA]
    if not needs:
        return None
    locator = Locator(list(extra))
    for key in needs:
        locator.require(f"the claim {key}", NEEDS_GEODATA[key])
    return locator


def check_claims(report: Report, claims: dict[str, Any]) -> list[ClaimResult]:
    locator = geodata_for(claims, [d.path for d in report.geodata if d.license is None])
    checks: dict[str, Callable[[Report, Any], ClaimResult]] = {
        "media_end_to_end": _end_to_end, "no_plaintext_media": _no_plaintext,
        "media_stays_in": functools.partial(_media_stays, locator=locator),
        "signalling_stays_in": functools.partial(_signalling_stays, locator=locator),
        "allowed_operators": _operators}
    return [checks[key](report, stated) for key, stated in claims.items()]


def _end_to_end(report: Report, stated: Any) -> ClaimResult:
    media = _media(report)
    name = "media_end_to_end"
    if not media:
        return ClaimResult(name, stated, UNVERIFIABLE, "the capture holds no media")
    bad = [f for f in media if f.encryption and (
        f.encryption.verdict in ("plaintext", "keys-exposed")
        or (f.encryption.verdict == "hop-by-hop" and f.encryption.basis == "decrypted"))]
    if bad:
        verdicts = sorted({f.encryption.verdict for f in bad if f.encryption})
        return ClaimResult(name, stated, CONTRADICTED, f"media is {', '.join(verdicts)}",
                           [f.id for f in bad])
    open_ = [f for f in media if f.encryption and f.encryption.verdict != "end-to-end"]
    if open_:
        return ClaimResult(name, stated, UNVERIFIABLE, _unsettled(open_), [f.id for f in open_])
    return ClaimResult(name, stated, HOLDS, f"all {len(media)} media flows are end-to-end",
                       [f.id for f in media])


def _unsettled(flows: list[Flow]) -> str:
    """Why media that is not end-to-end still leaves the claim open. Keys settle flows seen
    from the wire alone; flows already decrypted are said apart, so the message never asks
    for keys that were given."""
    wire = [f for f in flows if f.encryption and f.encryption.basis != "decrypted"]
    keyed = [f for f in flows if f not in wire]
    parts = []
    if wire:
        parts.append(f"media is {_verdicts(wire)} from the wire alone: an inner "
                     "end-to-end layer cannot be excluded without keys; the DTLS-SRTP "
                     "secrets (--keylog with an SSLKEYLOGFILE, or a pcapng with a "
                     "Decryption Secrets Block) or the SRTP keys of these flows "
                     "(--srtp-key, --sdp) would settle it")
    if keyed:
        parts.append(f"media is {_verdicts(keyed)} even with its keys (decrypted, flows "
                     f"{', '.join(str(f.id) for f in keyed)}): the capture does not show "
                     "who else holds them")
    return "; ".join(parts)


def _verdicts(flows: list[Flow]) -> str:
    return ", ".join(sorted({f.encryption.verdict for f in flows if f.encryption}))


def _no_plaintext(report: Report, stated: Any) -> ClaimResult:
    media = _media(report)
    name = "no_plaintext_media"
    if not media:
        return ClaimResult(name, stated, UNVERIFIABLE, "the capture holds no media")
    bad = [f for f in media if f.encryption and f.encryption.verdict in (
        "plaintext", "keys-exposed")]
    if bad:
        return ClaimResult(name, stated, CONTRADICTED, "media travels unencrypted or with its "
                           "keys in the clear", [f.id for f in bad])
    unknown = [f for f in media if f.encryption and f.encryption.verdict == "unknown"]
    if unknown:
        return ClaimResult(name, stated, UNVERIFIABLE, "some media could not be judged",
                           [f.id for f in unknown])
    return ClaimResult(name, stated, HOLDS, f"all {len(media)} media flows are encrypted",
                       [f.id for f in media])


def _stays(stated: Any, flows: list[Flow], name: str, what: str, locator: Locator | None
           ) -> ClaimResult:
    home: Home = parse_home(str(stated))
    if not flows:
        return ClaimResult(name, stated, UNVERIFIABLE, f"the capture holds no {what}")
    if locator is None:  # check_claims opens one for every location claim
        raise ValueError(f"{name} needs a Locator")
    located = {f.id: transfers.located_countries(f, locator) for f in flows}
    outside = transfers.leaving(flows, home, lambda f: located[f.id])
    if outside:
        countries = sorted({c for f in outside for c in located[f.id]
                            if not home.contains(c)})
        return ClaimResult(name, stated, CONTRADICTED, f"{what} goes to endpoints located in "
                           f"{', '.join(countries)}, outside {home.name}",
                           [f.id for f in outside])
    unlocated = [f for f in flows if not located[f.id]]
    if unlocated:
        return ClaimResult(name, stated, UNVERIFIABLE, f"{len(unlocated)} {what} flow(s) go to "
                           "addresses that cannot be located (private or unknown)",
                           [f.id for f in unlocated])
    return ClaimResult(name, stated, HOLDS, f"all {len(flows)} {what} flows stay in "
                       f"{home.name}", [f.id for f in flows])


def _media_stays(report: Report, stated: Any, locator: Locator | None) -> ClaimResult:
    return _stays(stated, _media(report), "media_stays_in", "media", locator)


def _signalling_stays(report: Report, stated: Any, locator: Locator | None) -> ClaimResult:
    return _stays(stated, _signalling(report), "signalling_stays_in", "signalling", locator)


def _operators(report: Report, stated: Any) -> ClaimResult:
    name = "allowed_operators"
    flows = [f for f in _media(report) + _signalling(report)
             if f.remote and f.remote.scope == "public"]
    if not flows:
        return ClaimResult(name, stated, UNVERIFIABLE, "no media or signalling to public "
                           "addresses in the capture")
    allowed = set(stated)
    bad = [f for f in flows if f.remote and f.remote.asn is not None and
           f.remote.asn not in allowed]
    if bad:
        networks = sorted({f"AS{f.remote.asn} ({f.remote.organisation})" for f in bad
                           if f.remote})
        return ClaimResult(name, stated, CONTRADICTED, "traffic goes to "
                           + ", ".join(networks), [f.id for f in bad])
    unknown = [f for f in flows if f.remote and f.remote.asn is None]
    if unknown:
        return ClaimResult(name, stated, UNVERIFIABLE, "some remote networks are unknown to "
                           "the databases", [f.id for f in unknown])
    return ClaimResult(name, stated, HOLDS, "every remote network is an allowed operator",
                       [f.id for f in flows])
