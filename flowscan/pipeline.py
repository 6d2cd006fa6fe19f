"""The scan pipeline: its stages, in the order they run, and the one place that runs them.

    read -> account -> identify -> geolocate -> apps -> verdicts -> keys and decryption
         -> sessions -> policy -> report

Read, account and identify stream: the reader hands batches of packets to the flow table,
and each flow the table closes (idle, or at the end) is identified at once and its payload
samples dropped, so what stays in memory is the open flows and the compact facts of closed
ones. The later stages each need every flow: an address's names come from other flows' DNS,
apps are inherited across the flows of one socket, a verdict weighs TURN allocations and
SIP calls seen on other flows. Decryption follows the observed verdicts: it tries the flows
the wire shows encrypted, and what it finds inside turns an observed verdict into a
decrypted one. Sessions group the judged flows; policy compares them with the user's
jurisdiction; the report is built once, at the end, and renderers only render it.

Each stage is a function here with a typed input and output; its work lives in the module
named beside it. The pipeline, not the stages, attaches each output to the flow records,
so what every stage adds to a flow is visible in one place.

A capture read as it arrives (flowscan watch) runs the same stages: a viewer thread may
take a snapshot of the flows read so far, which runs the later stages up to the observed
verdicts on copies of the flow records, so the final report is the one `scan` gives.
"""

from __future__ import annotations

import copy
import gc
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

from flowscan.accounting import FlowAccounting
from flowscan.apps import FlowView, app_groups, identify_apps
from flowscan.capture import CaptureSource, open_reader
from flowscan.capture.decode import Decoder
from flowscan.capture.records import CaptureFacts as ReaderFacts
from flowscan.crypto.keylog import KeyLog
from flowscan.crypto.keys import ExplicitKeys
from flowscan.decrypt import DecryptedCapture, KeySources, decrypt_flows
from flowscan.errors import UsageError
from flowscan.flows import FlowState, FlowTable
from flowscan.geo.hints import name_hints
from flowscan.geo.locate import Locator
from flowscan.geo.names import name_map
from flowscan.geo.plausibility import Vantage, parse_vantage
from flowscan.geo.remotes import capture_host, parse_capture_hosts, plausibility_of, remote_of
from flowscan.identify import FlowFacts, facts_to_details, identify, job_of, reported_protocols
from flowscan.identify_workers import SHARED_FACTS, Identifier, LookAhead
from flowscan.options import ScanOptions
from flowscan.policy import transfers
from flowscan.policy.jurisdictions import Home, parse_home
from flowscan.report.build import (
    CaptureTotals,
    build_report,
    malformed_sip_warnings,
    reading_warnings,
)
from flowscan.report.model import (
    ALIKE_KEPT,
    AppGroup,
    Encryption,
    Finding,
    Flow,
    RemoteInfo,
    Report,
)
from flowscan.report.records import flow_record
from flowscan.sessions import Sessions, build_sessions, findings
from flowscan.tlsopen import open_tls_flows
from flowscan.verdict.rules import apply_decryption, build_context, judge, tls_opened
from flowscan.version import __version__

# progress(bytes of the file consumed, file size or None)
ProgressCallback = Callable[[int, int | None], None]


class Stage(StrEnum):
    """The stages, in the order they run."""

    READ = "read"  # capture/: the file's records, in batches of columns
    ACCOUNT = "account"  # accounting.py, flows.py: packets and bytes per flow
    IDENTIFY = "identify"  # identify.py, protocols/: each closed flow's protocols and facts;
    # with a key log, tlsopen.py then opens TURN over TLS and identifies what it carries
    GEOLOCATE = "geolocate"  # geo/: each flow's remote, its names and location
    APPS = "apps"  # apps.py: the application of each flow, with evidence
    VERDICTS = "verdicts"  # verdict/: encryption as the wire shows it (basis observed)
    DECRYPTION = "keys and decryption"  # crypto/, decrypt.py: with keys (basis decrypted)
    SESSIONS = "sessions"  # sessions.py: calls and media sockets, findings over them
    POLICY = "policy"  # policy/: jurisdiction, transfers, implausible locations
    REPORT = "report"  # report/build.py: the report, assembled once


STAGES = tuple(Stage)


@dataclass(frozen=True)
class Checked:
    """The options made into what the stages use, checked before a byte is read."""

    locator: Locator
    home: Home | None
    vantage: Vantage | None
    explicit: ExplicitKeys
    keylog: KeyLog  # the key log files' secrets; the capture's own are added after reading
    capture_hosts: frozenset[str]  # --capture-host


def check_options(options: ScanOptions, path: str | None = None) -> Checked:
    """Every input the user gave, checked first: a bad key spec or key file, home or
    vantage is an error before any reading, and so is a location option without a
    database (and a decrypted output that would overwrite the capture at PATH)."""
    if (options.decrypted_output is not None and path not in (None, "-")
            and Path(options.decrypted_output).resolve() == Path(path).resolve()):
        raise UsageError(f"{options.decrypted_output}: the output would overwrite the capture")
    keylog = KeyLog()
    for keyfile in options.keylog:
        keylog.add_file(keyfile)
    explicit = ExplicitKeys()
    for number, spec in enumerate(options.srtp_key, 1):
        explicit.add_spec(spec, number)
    for sdp_file in options.sdp:
        explicit.add_sdp_file(sdp_file)
    home = parse_home(options.home) if options.home else None
    vantage = parse_vantage(options.vantage) if options.vantage else None
    locator = Locator(list(options.geoip_db))
    # Jurisdiction and plausibility are about where remotes are: without a database that
    # locates them, every flow would pass as at home and every location as plausible.
    if home:
        locator.require("--home")
    if vantage:
        locator.require("--vantage")
    return Checked(locator, home, vantage, explicit, keylog,
                   parse_capture_hosts(options.capture_host))


@dataclass
class LiveRead:
    """A capture read as it arrives (flowscan watch), and what a viewer thread may look at
    meanwhile. Each batch is folded into the flow table holding `lock`, so a viewer holding
    it sees whole batches; `batches` counts them, so it knows when something changed.
    Setting `stop` ends the capture where the reading is, as if the stream ended there."""

    stream: BinaryIO | None = None  # a capture tool's output; None: the path (or stdin)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    batches: int = 0
    # Called in the reading thread once the stream has ended, before the flows are closed:
    # the last look at the flows as read.
    on_read_end: Callable[[], None] | None = None
    source: CaptureSource | None = None
    read: ReadFlows | None = None
    table: FlowTable | None = None


def run(path: str, options: ScanOptions, progress: ProgressCallback | None = None,
        live: LiveRead | None = None) -> Report:
    """Scan one capture with the native engine: every stage, in order."""
    checked = check_options(options, path)
    stream, stop = (live.stream, live.stop) if live is not None else (None, None)
    with _cyclic_gc_paused(), CaptureSource(path, stream=stream, live=stop) as source:
        read = read_account_identify(source, options, progress, live)
        flows = read.flows
        keylog = with_secrets_blocks(checked.keylog, read.reader)
        replay = source.replay_path()  # decryption reads the capture again
        if replay is not None and keylog:
            open_tls_flows(replay, keylog, flows)
        names, apps = observed_verdicts(flows, checked, read.reader)
        if replay is None and options.decrypted_output is not None:
            raise UsageError(f"{options.decrypted_output}: cannot decrypt {source.display}: "
                             f"{source.replay_error}")
        with _decrypted_output(options.decrypted_output, source.display,
                               source.sha256()) as output:
            if replay is not None:
                decrypt(flows, KeySources(replay, keylog, checked.explicit, output))
        records, sessions, found = sessions_and_policy(flows, checked)
        totals = capture_totals(source, read, source.sha256())
        warnings = reading_warnings(totals) + decryption_warnings(
            options, records, checked.explicit, keylog, output)
        if replay is None:
            warnings.append(f"{source.display}: {source.replay_error}; decryption needs a "
                            "second pass over the capture, so nothing was decrypted")
        warnings += checked.explicit.warnings + malformed_sip_warnings(records)
        warnings += late_warnings(keylog, totals, checked.locator)
        warnings += unseen_capture_hosts(checked.capture_hosts, flows)
    return build_report(totals, warnings, records, apps, names, sessions, found,
                        checked.locator.databases, checked.home, checked.vantage)


@dataclass(frozen=True)
class Snapshot:
    """The flows read so far as a report, and which of them are still open."""

    report: Report
    open_flows: frozenset[int]


def snapshot(live: LiveRead, checked: Checked) -> Snapshot | None:
    """The report of the flows read so far, as the wire shows them (decryption needs the
    whole capture, so it waits for the end), or None before reading has begun. The lock
    is held only while the flows are copied: the closed flows' records (the stages write
    to them) and the open flows identified from their samples so far. `checked` should be
    the viewer's own, its databases not shared with the reading thread."""
    with live.lock:
        if live.read is None or live.table is None or live.source is None:
            return None
        # The stages only assign a record's fields (remote, app, encryption...), never
        # change what they hold: a shallow copy keeps the reading thread's records as
        # they are. Facts are read, never written, after identification.
        flows = [(copy.copy(flow), facts) for flow, facts in live.read.flows]
        states = [state.copy() for state in live.table.open_flows()]
        totals = capture_totals(live.source, live.read, "")
    still_open = [identified(state) for state in states]
    flows = sorted(flows + still_open, key=lambda pair: pair[0].id)
    names, apps = observed_verdicts(flows, checked, live.read.reader)
    records, sessions, found = sessions_and_policy(flows, checked)
    report = build_report(totals, reading_warnings(totals), records, apps, names, sessions,
                          found, checked.locator.databases, checked.home, checked.vantage)
    return Snapshot(report, frozenset(flow.id for flow, _ in still_open))


def observed_verdicts(flows: list[tuple[Flow, FlowFacts]], checked: Checked,
                      reader: ReaderFacts) -> tuple[dict[str, list[str]], list[AppGroup]]:
    """Geolocate, apps and verdicts: the stages from identified flows to what the wire
    shows of their encryption; the names and the app groups for the report."""
    given = checked.capture_hosts
    host = capture_host([flow for flow, _ in flows], [facts for _, facts in flows], given)
    names = geolocate(flows, checked.locator, checked.vantage, reader.names, host, given)
    apps = label_apps(flows, names)
    judge_flows(flows, names, checked.locator, host)
    return names, apps


def sessions_and_policy(flows: list[tuple[Flow, FlowFacts]], checked: Checked
                        ) -> tuple[list[Flow], Sessions, list[Finding]]:
    """The judged flows' records, grouped into sessions, with the findings over them."""
    records = [flow for flow, _ in flows]
    sessions, found = group_sessions(flows)
    found += policy(records, checked.home, checked.locator)
    return records, sessions, found


# --- read, account, identify (streaming) ---------------------------------------------

@dataclass
class ReadFlows:
    """What the streaming stages leave: every flow's record and facts, in order."""

    flows: list[tuple[Flow, FlowFacts]]
    reader: ReaderFacts
    accounting: FlowAccounting
    decoder: Decoder


def identified(state: FlowState) -> tuple[Flow, FlowFacts]:
    """A flow's record and the facts its payload samples give; the flow is unchanged."""
    return with_facts(flow_record(state), identify(state))


def with_facts(record: Flow, facts: FlowFacts) -> tuple[Flow, FlowFacts]:
    """The record with what identification found in it: its protocols and details."""
    record.protocols = reported_protocols(facts)
    record.details = facts_to_details(facts)
    return record, facts


class _Identify:
    """The identify stage, run on each flow as the table closes it (on worker processes
    beside the reader where that pays: identify_workers.py): its record and facts are
    kept, its payload samples are not."""

    def __init__(self, workers: int | None) -> None:
        self.flows: list[tuple[Flow, FlowFacts]] = []
        # Delivered into the list, not through a method of this object: the identifier
        # holding it would make a reference cycle over every flow's facts, left to the
        # cyclic collector if the reading fails before finish() breaks it.
        self.identifier = Identifier(_Deliver(self.flows), workers)
        self.ahead: LookAhead | None = None  # identifies open flows on idle workers

    def __call__(self, state: FlowState) -> None:
        job = job_of(state)
        ahead = self.ahead.closed(state, job) if self.ahead is not None else None
        self.identifier.add(flow_record(state), job, ahead)
        state.samples = state.late = bytearray()  # empty; nothing is added to a closed flow


class _Deliver:
    """Each identified flow into the list, with its protocols and details. Flows with the
    same facts share one facts object (identify_workers.SharedFacts), and so one
    protocols tuple and one details map: those are made once per facts object."""

    __slots__ = ("_made", "flows")

    def __init__(self, flows: list[tuple[Flow, FlowFacts]]) -> None:
        self.flows = flows
        # id(facts) -> the facts (held, so the id is not reused), protocols, details
        self._made: dict[int, tuple[FlowFacts, tuple[str, ...], Mapping[str, Any]]] = {}

    def __call__(self, record: Flow, facts: FlowFacts) -> None:
        made = self._made.get(id(facts))
        if made is None:
            if len(self._made) >= SHARED_FACTS:
                self._made.clear()
            made = self._made[id(facts)] = (facts, reported_protocols(facts),
                                            facts_to_details(facts))
        record.protocols, record.details = made[1], made[2]
        self.flows.append((record, facts))


def read_account_identify(source: CaptureSource, options: ScanOptions,
                          progress: ProgressCallback | None,
                          live: LiveRead | None = None) -> ReadFlows:
    reader = open_reader(source)
    decoder = Decoder()
    closed = _Identify(options.workers)
    table = FlowTable(on_close=closed, idle_timeout=options.idle_timeout,
                      sample_packets=options.sample_packets,
                      sample_bytes=options.sample_bytes)
    accounting = FlowAccounting(table, decoder, columnar=options.columnar)
    read = ReadFlows(closed.flows, reader.facts, accounting, decoder)
    if closed.identifier.workers:
        closed.ahead = LookAhead(closed.identifier, table)
    ahead = closed.ahead
    folding: AbstractContextManager[object] = nullcontext()
    if live is not None:
        with live.lock:
            live.source, live.read, live.table = source, read, table
        folding = live.lock
    for batch in reader.batches():
        with folding:
            accounting.add_batch(batch)
            if live is not None:
                live.batches += 1
        closed.identifier.expect(table.active)
        if ahead is not None:
            ahead.look(table)
        if progress is not None:
            progress(source.consumed, source.size)
    if live is not None and live.on_read_end is not None:
        live.on_read_end()
    if ahead is not None:
        ahead.settle(table)
    with folding:
        closed.identifier.last_flows()
        table.close_all()
        closed.identifier.finish()
        closed.flows.sort(key=lambda pair: pair[0].id)
    return read


# --- the stages over all flows ----------------------------------------------------------

def geolocate(flows: list[tuple[Flow, FlowFacts]], locator: Locator, vantage: Vantage | None,
              nrb_names: dict[str, list[str]], host: str | None,
              given: frozenset[str] = frozenset()) -> dict[str, list[str]]:
    """Each flow's remote (located, with its plausibility from the vantage point) and the
    capture's names for addresses, which later stages read. `host`: the capture host
    (geo.remotes.capture_host); `given`: its addresses as the user stated them
    (--capture-host)."""
    for flow, facts in flows:
        flow.remote = remote = remote_of(flow, locator, host, facts, vantage, given)
        if vantage is not None and remote.scope == "public":
            plausibility = plausibility_of(flow, facts, vantage)
            if plausibility is not None:
                flow.remote = replace(remote, plausibility=plausibility)
    names = name_map([facts for _, facts in flows], nrb_names)
    # The remotes with their name hints, once per remote and server name (the remotes are
    # shared; each entry holds its own, so no id is reused while the loop runs).
    hinted: dict[tuple[int, str | None], tuple[RemoteInfo, RemoteInfo]] = {}
    for flow, facts in flows:
        located = flow.remote
        assert located is not None
        sni = facts.tls.sni if facts.tls and located.which == "server" else None
        if not sni and located.ip not in names:
            continue  # no name: no hint
        known = hinted.get((id(located), sni))
        if known is None:
            own = list(names.get(located.ip, []))
            if sni:
                own.append(sni)
            hints = name_hints(own)
            known = hinted[id(located), sni] = (
                located, replace(located, name_hints=hints) if hints else located)
        flow.remote = known[1]
    return names


def label_apps(flows: list[tuple[Flow, FlowFacts]], names: dict[str, list[str]]
               ) -> list[AppGroup]:
    labels = identify_apps(_Views(flows), names)
    for flow, _ in flows:
        flow.app = labels.get(flow.id)
    return app_groups([flow for flow, _ in flows], labels)


class _Views:
    """The flows as the apps stage reads them, each view made as it is read: a view held
    per flow for the stage's passes was about 100 bytes a flow at its peak."""

    __slots__ = ("_flows",)

    def __init__(self, flows: list[tuple[Flow, FlowFacts]]) -> None:
        self._flows = flows

    def __iter__(self) -> Iterator[FlowView]:
        for flow, facts in self._flows:
            yield FlowView(flow.id, flow.transport, flow.client, flow.server, facts,
                           flow.remote)


def judge_flows(flows: list[tuple[Flow, FlowFacts]], names: dict[str, list[str]],
                locator: Locator, host: str | None) -> None:
    """The observed verdicts. What tells a participant from a server: the names that led
    to each address, where the capture was taken, and the network of either end."""
    context = build_context(flows)
    context.names, context.locate = names, locator.lookup
    context.capture_host = host
    # Verdicts alike in every field are one object (Encryption.likeness): most flows are
    # judged with the same words and the same evidence, and each verdict object is 96
    # bytes a flow until the sessions stage numbers them.
    alike: dict[tuple[object, ...], Encryption] = {}
    for flow, facts in flows:
        encryption = judge(flow, facts, context)
        if encryption is None:
            flow.encryption = None
            continue
        opened = tls_opened(flow, facts)
        if opened is not None:
            encryption.evidence = (opened, *encryption.evidence)
        if len(alike) >= ALIKE_KEPT:
            alike.clear()
        flow.encryption = alike.setdefault(encryption.likeness(), encryption)


def with_secrets_blocks(keylog: KeyLog, reader: ReaderFacts) -> KeyLog:
    """The DTLS secrets: the key log files given, then the capture's secrets blocks."""
    for number, block in enumerate(reader.secrets, 1):
        if block.kind == "tls-keylog":
            keylog.add_text(block.data.decode("ascii", "replace"),
                            f"the capture's decryption secrets block {block.number or number}")
    return keylog


def decrypt(flows: list[tuple[Flow, FlowFacts]], keys: KeySources) -> None:
    """With keys: each flow's media decrypted and its verdict made from what is inside."""
    results = decrypt_flows(keys, flows)
    by_id = {flow.id: flow for flow, _ in flows} if results else {}
    for flow_id, result in results.items():
        flow = by_id[flow_id]
        if flow.encryption is not None:
            # Its own copy: flows judged alike share one verdict object (judge_flows).
            flow.encryption = replace(flow.encryption)
            apply_decryption(flow.encryption, result)


def group_sessions(flows: list[tuple[Flow, FlowFacts]]) -> tuple[Sessions, list[Finding]]:
    sessions = build_sessions(flows)
    return sessions, findings([flow for flow, _ in flows], sessions)


def policy(flows: list[Flow], home: Home | None, locator: Locator) -> list[Finding]:
    """Transfers out of the user's jurisdiction, and locations the round trips refute."""
    found: list[Finding] = []
    if home is not None:
        transfers.judge(flows, home, locator)
        found += transfers.transfer_findings(flows, home)
    impossible = [(f.id, f.remote.plausibility) for f in flows
                  if f.remote and f.remote.plausibility
                  and f.remote.plausibility.plausible is False]
    if impossible:
        found.append(Finding("medium", "implausible-location",
                             f"{len(impossible)} remote location(s) cannot be right for the "
                             "round-trip times seen: " + impossible[0][1].detail,
                             [flow_id for flow_id, _ in impossible]))
    return found


# --- the report's inputs ----------------------------------------------------------------

def capture_totals(source: CaptureSource, read: ReadFlows, sha256: str) -> CaptureTotals:
    """The capture's totals; sha256 is taken first (it reads the file to its end)."""
    facts, accounting, decoder = read.reader, read.accounting, read.decoder
    return CaptureTotals(
        path=source.display, sha256=sha256, size_bytes=source.consumed,
        compressed=source.compressed, format=facts.format, link_types=set(facts.link_types),
        sections=facts.sections, interfaces=facts.interfaces, packets=facts.packets,
        bytes=accounting.bytes, first_ts=accounting.first_ts, last_ts=accounting.last_ts,
        ip_packets=accounting.ip_packets, non_ip_packets=decoder.non_ip,
        malformed=accounting.malformed, unsupported=dict(accounting.unsupported),
        ip_fragments=decoder.fragments_seen, fragments_unmatched=decoder.fragments_unmatched,
        secrets_kinds=[s.kind for s in facts.secrets], reader_warnings=list(facts.warnings),
    )


def decryption_warnings(options: ScanOptions, flows: list[Flow], explicit: ExplicitKeys,
                        keylog: KeyLog, output: DecryptedCapture | None) -> list[str]:
    """Keys that were given and opened nothing: said, so a wrong key file is noticed."""
    out = []
    decrypted = any(f.encryption and f.encryption.decryption for f in flows)
    if options.keylog and not decrypted:
        out.append("the key log(s) given hold no secret for the DTLS sessions in this "
                   "capture; nothing was decrypted")
    if explicit and not decrypted:
        out.append("the SRTP keys given (--srtp-key, --sdp) match no sender address or SSRC "
                   "of an encrypted flow in this capture; nothing was decrypted with them")
    if output is not None and output.left_encrypted:
        out.append(f"{output.left_encrypted} decrypted packets travel in IP fragments (or "
                   "IPv6 jumbograms); the decrypted capture keeps them as they were")
    if output is not None and output.left_in_tcp:
        out.append(f"{output.left_in_tcp} packets decrypted over TCP are written as captured: "
                   "split over TCP segments, or in segments captured before a gap in the "
                   "stream was filled (the decrypted capture edits each segment alone, at "
                   "its length)")
    if output is not None and output.left_in_tls:
        out.append(f"{output.left_in_tls} packets decrypted inside TLS (TURN over TLS, opened "
                   "with the key log) are written as captured: their clear cannot be put back "
                   "inside the TLS records without encrypting them again")
    return out


def late_warnings(keylog: KeyLog, totals: CaptureTotals, locator: Locator) -> list[str]:
    out = []
    if keylog.malformed:
        out.append(f"{len(keylog.malformed)} key log line(s) were not understood and were "
                   f"skipped: {', '.join(keylog.malformed[:5])}")
    if totals.fragments_unmatched:
        out.append(f"{totals.fragments_unmatched} IP fragments arrived without their first "
                   "fragment; they are accounted to address-only flows")
    if (unlocated := locator.warning()) is not None:
        out.append(unlocated)
    return out


def unseen_capture_hosts(given: frozenset[str], flows: list[tuple[Flow, FlowFacts]]
                         ) -> list[str]:
    """An address given as the capture host's that no flow holds decides nothing: said,
    not silently ignored."""
    seen = {ip for flow, _ in flows for ip in (flow.client.ip, flow.server.ip)}
    return [f"--capture-host {ip}: no flow of the capture has this address; it decides "
            "no flow's remote" for ip in sorted(given - seen)]


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """The flow structures hold no reference cycles, so reference counting frees them; the
    cyclic collector would only rescan the growing set of live flows, again and again."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            # What the scan made is left out of the collector's scans from here on (gc.freeze)
            # and freed by reference counting: else the first collections after this go
            # over every flow record again, seconds on 200k flows, while the report is made.
            gc.freeze()
            gc.enable()


@contextmanager
def _decrypted_output(target: str | None, display: str, sha256: str
                      ) -> Iterator[DecryptedCapture | None]:
    """The decrypted pcapng, written beside the target and renamed only once complete, so
    a failed run never leaves half a capture under the name asked for. A device or FIFO
    (/dev/stdout, a pipe) is written in place: renaming over it would replace the device
    node itself."""
    if target is None:
        yield None
        return
    direct = Path(target).exists() and not Path(target).is_file()
    partial = Path(target) if direct else Path(f"{target}.part")
    comment = (f"Written by flowscan {__version__} from {display} (SHA-256 {sha256}): SRTP "
               "and SRTCP of the flows with keys replaced by RTP and RTCP in the clear.")
    try:
        stream = partial.open("wb")
    except OSError as exc:
        raise UsageError(f"{target}: cannot write: {exc.strerror}") from None
    try:
        try:
            with stream:
                yield DecryptedCapture(stream, comment)
        except OSError as exc:  # a full disk, a closed pipe: the user's to fix
            raise UsageError(f"{target}: cannot write: {exc.strerror or exc}") from None
        if not direct:
            partial.replace(target)
    finally:
        if not direct:
            partial.unlink(missing_ok=True)
