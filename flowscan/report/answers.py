"""The plain answers a regulator asks first (issue 16), built from a finished report.

Is the media end-to-end encrypted? yes, no, or cannot tell from this capture, with the reason
in one sentence and what would settle it. Where did the data go? Countries and operators by
bytes, media and signalling apart, every flow that leaves the home jurisdiction (the same
flows `check` names: policy.transfers decides for both), and media that an operator
registered abroad can read even where its server is located at home.

The answers are data (report.model.Answers), not text: the text and JSON renderers, and a
later HTML one, draw the same object. Strings here are our own words around capture and
database strings; every renderer makes them inert.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable

from flowscan.geo.countries import country_name
from flowscan.policy import transfers
from flowscan.policy.jurisdictions import Home
from flowscan.report.model import (
    Answers,
    DataAnswer,
    Destination,
    EncryptionAnswer,
    Flow,
    ForeignOperator,
    LeavingFlow,
    LegendEntry,
    Report,
    VerdictShare,
)
from flowscan.report.vocab import Verdict

YES, NO, CANNOT_TELL = "yes", "no", "cannot-tell"
# The media verdicts, most to least exposed: the order the answers name them in.
VERDICTS = tuple(Verdict)
# Verdicts under which the operator of the server the media reaches can read it.
READABLE_BY_OPERATOR = (Verdict.PLAINTEXT, Verdict.KEYS_EXPOSED, Verdict.HOP_BY_HOP)

# One plain-language line per verdict (tests/test_vocab.py checks none is missing).
LEGEND = (
    ("end-to-end", "encrypted so that only the people in the call hold the keys; the "
                   "service's servers pass the media on but cannot read it"),
    ("hop-by-hop", "encrypted on each network hop, but the service's servers decrypt it: the "
                   "service can read the media"),
    ("plaintext", "not encrypted: anyone on the network path can read it"),
    ("keys-exposed", "encrypted, but the keys crossed the network in the clear: anyone who "
                     "captured them can read it"),
    ("encrypted-unverified", "encrypted, but who holds the keys cannot be seen on the wire"),
    ("unknown", "the capture does not show how this media is protected"),
)

KEYS = ("the media keys: --keylog FILE for the DTLS secrets (an SSLKEYLOGFILE), or "
        "--srtp-key / --sdp for SRTP keys")
OTHER_END = ("a capture taken at the other participant, to see whether the media arrives "
             "there under the same encryption or re-encrypted by a server")


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 flow', '3 flows': the count with its noun."""
    return f"{n} {word if n == 1 else many or word + 's'}"


def place(code: str | None) -> str:
    """A country code with its ISO name: 'Germany (DE)'; the code alone if ISO lacks it."""
    if not code:
        return "an unknown country"
    name = country_name(code)
    return f"{name} ({code})" if name else code


def flow_name(flow: Flow, names: dict[str, list[str]]) -> str | None:
    """The remote's name as the capture gives it: TLS or QUIC SNI, else a DNS answer."""
    for proto in ("tls", "quic"):
        detail = flow.details.get(proto)
        sni = detail.get("sni") if isinstance(detail, dict) else getattr(detail, "sni", None)
        if isinstance(sni, str) and sni:
            return sni
    remote = flow.remote.ip if flow.remote else flow.server.ip
    found = names.get(remote)
    return found[0] if found else None


def build(report: Report, home: Home | None) -> Answers:
    return Answers(encryption=encryption_answer(report.flows),
                   data=data_answer(report, home),
                   legend=[LegendEntry(w, m) for w, m in LEGEND])


# -- Is the media end-to-end encrypted? ---------------------------------------------------


def _shares(media: list[Flow]) -> list[VerdictShare]:
    flows: Counter[str] = Counter()
    size: Counter[str] = Counter()
    for f in media:
        assert f.encryption is not None
        flows[f.encryption.verdict] += 1
        size[f.encryption.verdict] += f.bytes
    order = {str(v): i for i, v in enumerate(VERDICTS)}
    return [VerdictShare(v, flows[v], size[v]) for v in sorted(flows, key=order.__getitem__)]


def encryption_answer(flows: list[Flow]) -> EncryptionAnswer:
    media = [f for f in flows if transfers.is_media(f)]
    shares = _shares(media)
    ids = [f.id for f in media]
    if not media:
        return EncryptionAnswer(
            CANNOT_TELL, "Cannot tell from this capture: no call media was recognised in it.",
            ["a capture taken while a call is running"], shares, ids)

    by_verdict: dict[str, list[Flow]] = {}  # each verdict's media flows, in order
    for f in media:
        if f.encryption:
            by_verdict.setdefault(f.encryption.verdict, []).append(f)

    def having(verdict: str) -> list[Flow]:
        return by_verdict.get(verdict, [])

    def some(hit: list[Flow], plural_verb: str, singular_verb: str) -> str:
        """'the media flow travels', 'all 3 media flows travel', '1 of 2 media flows is'."""
        if len(media) == 1:
            return f"the media flow {singular_verb}"
        whom = ("both media flows" if len(hit) == len(media) == 2
                else f"all {len(media)} media flows" if len(hit) == len(media)
                else f"{len(hit)} of {len(media)} media flows")
        return f"{whom} {singular_verb if len(hit) == 1 else plural_verb}"

    if plain := having("plaintext"):
        return EncryptionAnswer(
            NO, f"No: {some(plain, 'travel', 'travels')} unencrypted, so anyone on the "
                "network path can listen to the call.", [], shares, ids)
    if exposed := having("keys-exposed"):
        return EncryptionAnswer(
            NO, f"No: the keys of {some(exposed, 'crossed', 'crossed').replace(' crossed', '')}"
                " crossed the network in the clear, so anyone who captured them can decrypt "
                "the call.", [], shares, ids)
    opened = [f for f in having("hop-by-hop")
              if f.encryption and f.encryption.basis == "decrypted"]
    if opened:
        return EncryptionAnswer(
            NO, f"No: decrypted with the keys given, {some(opened, 'carry', 'carries')} the "
                "call itself under the transport encryption alone, so the service's servers "
                "that hold those keys can read it.", [], shares, ids)
    if len(e2e := having("end-to-end")) == len(media):
        return EncryptionAnswer(
            YES, f"Yes: {some(e2e, 'are', 'is')} encrypted end to end, with keys only the "
                 "participants hold; the servers on the way cannot read the call.",
            [], shares, ids)
    if hop := having("hop-by-hop"):
        unsettled = hop
        sentence = (f"Cannot tell from this capture: {some(hop, 'are', 'is')} encrypted only "
                    "up to the service's servers (hop-by-hop), which can read the call unless "
                    "an inner end-to-end layer protects it, and that layer cannot be seen "
                    "without the keys.")
    elif unverified := having("encrypted-unverified"):
        unsettled = unverified
        sentence = (f"Cannot tell from this capture: {some(unverified, 'are', 'is')} "
                    "encrypted, but whether only the participants or also a server hold the "
                    "keys cannot be seen on the wire.")
    else:
        unsettled = having("unknown")
        sentence = (f"Cannot tell from this capture: how {some(unsettled, 'are', 'is')}"
                    " protected could not be determined.")
    if all(f.encryption and f.encryption.basis == "decrypted" for f in unsettled):
        # The keys were given and opened the media: asking for them again would mislead.
        return EncryptionAnswer(
            CANNOT_TELL, sentence[:-1] + "; the keys given decrypted it, but they do not show "
            "who else holds them.", [OTHER_END], shares, ids)
    return EncryptionAnswer(CANNOT_TELL, sentence, [KEYS, OTHER_END], shares, ids)


# -- Where did the data go? ---------------------------------------------------------------


def _add(dest: Destination, flow: Flow) -> None:
    n_bytes = flow.bytes
    dest.flows += 1
    dest.bytes += n_bytes
    kind = transfers.kind(flow)
    if kind == "media":
        dest.media_flows += 1
        dest.media_bytes += n_bytes
    elif kind == "signalling":
        dest.signalling_flows += 1
        dest.signalling_bytes += n_bytes


def _ranked(dests: Iterable[Destination]) -> list[Destination]:
    return sorted(dests, key=lambda d: (d.key == "unlocated", -d.bytes, d.key))


def undecided(flow: Flow) -> bool:
    """Nothing in the capture says which end it was taken at (geo.remotes) and the end kept
    is public: either end may be the user's own, so neither is a located destination."""
    return (flow.remote is not None and flow.remote.basis == "unknown"
            and flow.remote.scope == "public")


def _located(flow: Flow) -> bool:
    return flow.remote is not None and flow.remote.scope == "public" and bool(
        flow.remote.country)


def size(n: int) -> str:
    """Bytes as people read them: '812 B', '43.8 kB' (powers of 1000, as Wireshark)."""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"


def when(ts: float | None) -> str:
    """A capture timestamp in UTC, to the millisecond: '2019-09-26 17:54:26.080Z'."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


def duration(seconds: float | None) -> str:
    """A span as people say it: '40 ms', '2.5 s', '3 min 12 s', '1 h 4 min', '3.3 years'."""
    if seconds is None or seconds < 0:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs} s" if secs else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    if days < 365:
        return f"{days} d {hours} h" if hours else f"{days} d"
    return f"{seconds / (365.25 * 86400):.1f} years"


KINDS = ("media", "signalling", "other")  # the order flows and counts are listed in


def data_answer(report: Report, home: Home | None) -> DataAnswer:
    countries, operators = _destinations(report.flows)
    ranked = _ranked(countries.values())
    leaving = _leaving(report, home) if home is not None else []
    foreign = _foreign_operators(report.flows, home)
    sentence = (_where_sentence(report.flows, ranked) + _leaving_sentence(leaving, home)
                + _foreign_sentence(foreign))
    return DataAnswer(sentence, home.name if home else None, ranked,
                      _ranked(operators.values()), leaving, foreign)


def _destinations(flows: list[Flow]) -> tuple[dict[str, Destination], dict[str, Destination]]:
    """Traffic per located country (or "unlocated") and per operator's network."""
    countries: dict[str, Destination] = {}
    operators: dict[str, Destination] = {}
    for flow in flows:
        r = flow.remote
        if undecided(flow):
            continue
        key = r.country if r is not None and _located(flow) and r.country else "unlocated"
        # A destination is made (and its country named) by the first flow to reach it.
        country = countries.get(key)
        if country is None:
            country = countries[key] = Destination(
                key, country_name(key) if key != "unlocated" else None, 0, 0)
        _add(country, flow)
        if r is not None and r.scope == "public" and r.asn is not None:
            asn = f"AS{r.asn}"
            operator = operators.get(asn)
            if operator is None:
                operator = operators[asn] = Destination(
                    asn, r.organisation, 0, 0, registered_country=r.registered_country)
            _add(operator, flow)
    return countries, operators


def _where_sentence(flows: list[Flow], ranked: list[Destination]) -> str:
    located = [d for d in ranked if d.key != "unlocated"]
    unknown_end = [f for f in flows if undecided(f)]
    parts = [f"{size(sum([f.bytes for f in flows]))} in {plural(len(flows), 'flow')}"]
    if located:
        parts.append(f"went to {plural(len(located), 'country', 'countries')}: "
                     + ", ".join(f"{d.key} {size(d.bytes)}" for d in located[:6])
                     + (", ..." if len(located) > 6 else ""))
    elif len(unknown_end) < len(flows):  # some flow's end is known
        parts.append("went to no located public address")
    else:
        parts.append("went to no destination the capture can tell")
    sentence = " ".join(parts) + "."
    media_to = [d.key for d in located if d.media_flows]
    return (sentence + (f" Media went to {', '.join(media_to)}." if media_to else "")
            + _undecided_sentence(unknown_end))


def _undecided_sentence(flows: list[Flow]) -> str:
    """Flows whose capture point is not known, said rather than counted for either end."""
    if not flows:
        return ""
    pairs = sorted({tuple(sorted((f.client.ip, f.server.ip))) for f in flows})
    between = "; ".join(f"{a} and {b}" for a, b in pairs[:3]) + ("; ..." if len(
        pairs) > 3 else "")
    verb = "is" if len(flows) == 1 else "are"
    return (f" {plural(len(flows), 'flow')} ({size(sum(f.bytes for f in flows))}) {verb} "
            f"not counted as a destination: the capture does not show which end it was "
            f"taken at (between {between}).")


def _leaving_sentence(leaving: list[LeavingFlow], home: Home | None) -> str:
    if home is None:
        return ""
    if not leaving:
        return f" No located flow left {home.name}."
    kinds = Counter(f.kind for f in leaving)
    abroad = sorted({c for f in leaving for c in f.countries})
    total = size(sum(f.bytes for f in leaving))
    return (f" {plural(len(leaving), 'flow')} ({total}) left {home.name} for "
            f"{', '.join(abroad)}: "
            + ", ".join(f"{kinds[k]} {k}" for k in KINDS if kinds[k]) + ".")


def _foreign_sentence(foreign: list[ForeignOperator]) -> str:
    if not foreign:
        return ""
    registered = ", ".join(sorted({f.registered for f in foreign}))
    where = ", ".join(sorted({f.located or "?" for f in foreign}))
    verb = "goes" if len(foreign) == 1 else "go"
    return (f" {plural(len(foreign), 'media flow')} that the service can read {verb} to a "
            f"server located in {where} on a network registered in {registered}.")


def _leaving(report: Report, home: Home) -> list[LeavingFlow]:
    """Every flow with an end outside home: media and signalling as `check` counts them
    (policy.transfers.leaving), and the rest as other."""
    out = []
    for flow in transfers.leaving(report.flows, home, transfers.jurisdiction_countries):
        countries = [c for c in transfers.jurisdiction_countries(flow)
                     if not home.contains(c)]
        out.append(LeavingFlow(
            flow.id, transfers.kind(flow) or "other", countries, flow.bytes,
            flow.encryption.verdict if flow.encryption else None,
            flow_name(flow, report.names)))
    return sorted(out, key=lambda f: (KINDS.index(f.kind), -f.bytes, f.flow))


def _foreign_operators(flows: list[Flow], home: Home | None) -> list[ForeignOperator]:
    """Media the operator can read (plaintext, keys exposed, hop-by-hop) on a network
    registered elsewhere than where its server is located (with --home: located at home,
    registered outside it). The location says where the server stands; the registration,
    under whose law the company that runs the network answers."""
    out = []
    for flow in flows:
        r, enc = flow.remote, flow.encryption
        if r is None or enc is None or enc.verdict not in READABLE_BY_OPERATOR or undecided(
                flow):
            continue
        if r.scope != "public" or not r.registered_country:
            continue
        # With --home, media located abroad is already listed as leaving: what is left to
        # say is media located at home on a network registered outside it.
        abroad = (home.contains(r.country) and not home.contains(r.registered_country)
                  if home is not None else r.registered_country != r.country)
        if not abroad:
            continue
        network = (f"AS{r.asn}" + (f" ({r.organisation})" if r.organisation else "")
                   if r.asn is not None else "a network")
        sentence = (f"Flow {flow.id}: {enc.verdict} media to a server located in "
                    f"{place(r.country)} on {network}, registered in "
                    f"{place(r.registered_country)}.")
        out.append(ForeignOperator(flow.id, enc.verdict, r.country, r.registered_country,
                                   r.asn, r.organisation, sentence))
    return out
