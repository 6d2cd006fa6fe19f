"""The public Python API: flowscan.scan(path, ...) -> Report. The CLI is a thin layer on it."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from flowscan import __version__
from flowscan.accounting import FlowAccounting
from flowscan.analysis import FlowAnalysis
from flowscan.capture import CaptureSource, displayable, open_reader
from flowscan.capture.decode import LINK_NAMES, Decoder
from flowscan.crypto.keylog import KeyLog
from flowscan.crypto.keys import ExplicitKeys
from flowscan.decrypt import DecryptedCapture, KeySources
from flowscan.errors import UsageError
from flowscan.flows import FlowState, FlowTable, split_key
from flowscan.geo.locate import Locator
from flowscan.geo.plausibility import parse_vantage
from flowscan.policy.jurisdictions import parse_home
from flowscan.report.answers import build as build_answers
from flowscan.report.model import (
    CaptureInfo,
    DirectionStats,
    Endpoint,
    Flow,
    Report,
    SecretsInfo,
    TcpHandshake,
    ToolInfo,
)

ENGINES = ("native", "tshark")

# progress(bytes of the file consumed, file size or None)
ProgressCallback = Callable[[int, int | None], None]


@dataclass(frozen=True)
class ScanOptions:
    engine: str = "native"
    idle_timeout: float = 300.0
    sample_packets: int | None = None  # per direction and payload class (flows.py)
    sample_bytes: int | None = None
    # False feeds every packet through the per-packet reference path (for tests).
    columnar: bool = True
    geoip_db: tuple[str, ...] = ()  # MaxMind-format databases to use before the bundled ones
    home: str | None = None  # the user's jurisdiction: a country code, EU or EEA
    vantage: str | None = None  # where the capture was taken: a country code or LAT,LON
    keylog: tuple[str, ...] = ()  # NSS key log files (SSLKEYLOGFILE format)
    srtp_key: tuple[str, ...] = ()  # SSRC=SUITE:inline:BASE64 or IP:PORT=SUITE:inline:BASE64
    sdp: tuple[str, ...] = ()  # SDP files whose a=crypto lines hold SDES keys
    decrypted_output: str | None = None  # pcapng to write with SRTP/SRTCP in the clear

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r}; choose one of {', '.join(ENGINES)}")
        if self.idle_timeout <= 0:
            raise UsageError("idle timeout must be positive")


def _ms(a: float, b: float) -> float | None:
    return round((b - a) * 1000.0, 3) if a and b and b >= a else None


def _ts(value: float) -> float:
    return round(value, 6)


def flow_record(state: FlowState) -> Flow:
    """The report's view of a closed flow."""
    key = split_key(state.proto, state.key)
    handshake = None
    if state.proto == 6 and any(state.handshake):
        syn, synack, ack = state.handshake
        handshake = TcpHandshake(_ms(syn, synack), _ms(synack, ack))
    directions = [
        DirectionStats(
            state.pkts[d], state.octets[d],
            _ts(state.first[d]) if state.pkts[d] else None,
            _ts(state.last[d]) if state.pkts[d] else None,
        )
        for d in (0, 1)
    ]
    return Flow(
        id=state.flow_id,
        transport=key.transport,
        client=Endpoint(key.client_ip, key.client_port),
        server=Endpoint(key.server_ip, key.server_port),
        client_basis=state.client_basis,
        to_server=directions[0],
        to_client=directions[1],
        encapsulation=list(state.encap or ()),
        tcp_handshake=handshake,
    )


def scan(
    path: str,
    *,
    engine: str = "native",
    idle_timeout: float = 300.0,
    progress: ProgressCallback | None = None,
    columnar: bool = True,
    geoip_db: list[str] | tuple[str, ...] = (),
    home: str | None = None,
    vantage: str | None = None,
    keylog: list[str] | tuple[str, ...] = (),
    srtp_key: list[str] | tuple[str, ...] = (),
    sdp: list[str] | tuple[str, ...] = (),
    decrypted_output: str | None = None,
) -> Report:
    """Analyse one capture file (or "-" for stdin) and return its report.

    Raises flowscan.errors.CaptureError for input that cannot be read at all; a capture that
    is merely cut short yields a report whose capture.warnings say where it stopped.
    """
    options = ScanOptions(engine=engine, idle_timeout=idle_timeout, columnar=columnar,
                          geoip_db=tuple(geoip_db), home=home, vantage=vantage,
                          keylog=tuple(keylog), srtp_key=tuple(srtp_key), sdp=tuple(sdp),
                          decrypted_output=decrypted_output)
    if decrypted_output is not None:
        if options.engine != "native":
            raise UsageError("a decrypted capture needs the native engine")
        if path != "-" and Path(decrypted_output).resolve() == Path(path).resolve():
            raise UsageError(f"{decrypted_output}: the output would overwrite the capture")
    explicit = ExplicitKeys()  # bad key specs are an error before any reading
    for number, spec in enumerate(options.srtp_key, 1):
        explicit.add_spec(spec, number)
    for sdp_file in options.sdp:
        explicit.add_sdp_file(sdp_file)
    if home:
        parse_home(home)  # bad input is an error before any reading
    if vantage:
        parse_vantage(vantage)
    locator = Locator(list(options.geoip_db))
    # Jurisdiction and plausibility are about where remotes are: without a database that
    # locates them, every flow would pass as at home and every location as plausible.
    if home:
        locator.require("--home")
    if vantage:
        locator.require("--vantage")
    if options.engine == "tshark":
        from flowscan.capture.tshark import scan_with_tshark

        report: Report = scan_with_tshark(path, options)
        report.capture.path = displayable(report.capture.path)
    else:
        report = _scan_native(path, options, progress, explicit, locator)
    # The plain answers are drawn from the finished report, so every engine gets them.
    report.answers = build_answers(report, parse_home(home) if home else None)
    return report


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
            gc.enable()


@contextmanager
def _decrypted_output(target: str | None, display: str, sha256: str
                      ) -> Iterator[DecryptedCapture | None]:
    """The decrypted capture goes to a temporary name first: no half-written file is left
    under the name asked for. A device or FIFO (/dev/stdout, a pipe) is written in place:
    renaming over it would replace the device node itself."""
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


def _scan_native(path: str, options: ScanOptions, progress: ProgressCallback | None,
                 explicit: ExplicitKeys, locator: Locator) -> Report:
    analysis = FlowAnalysis(flow_record)
    with _cyclic_gc_paused(), CaptureSource(path) as source:
        reader = open_reader(source)
        decoder = Decoder()
        table = FlowTable(
            on_close=analysis.close,
            idle_timeout=options.idle_timeout,
            sample_packets=options.sample_packets,
            sample_bytes=options.sample_bytes,
        )
        accounting = FlowAccounting(table, decoder, columnar=options.columnar)
        for batch in reader.batches():
            accounting.add_batch(batch)
            if progress is not None:
                progress(source.consumed, source.size)
        table.close_all()
        facts = reader.facts
        keylog = KeyLog()
        for keyfile in options.keylog:
            keylog.add_file(keyfile)
        for number, block in enumerate(facts.secrets, 1):
            if block.kind == "tls-keylog":
                keylog.add_text(block.data.decode("ascii", "replace"),
                                f"the capture's decryption secrets block {block.number or number}")
        # Decryption reads the capture again: standard input from the copy made meanwhile.
        replay = source.replay_path()
        if replay is None and options.decrypted_output is not None:
            raise UsageError(f"{options.decrypted_output}: cannot decrypt {source.display}: "
                             f"{source.replay_error}")
        with _decrypted_output(options.decrypted_output, source.display,
                               source.sha256()) as output:
            flows, apps, names, sessions, findings = analysis.finish(
                facts.names, locator,
                parse_home(options.home) if options.home else None,
                parse_vantage(options.vantage) if options.vantage else None,
                KeySources(replay, keylog, explicit, output) if replay is not None else None)
        warnings = list(facts.warnings)
        malformed, unsupported = accounting.malformed, accounting.unsupported
        count = facts.packets
        if malformed:
            warnings.append(
                f"{malformed} packets were too short or inconsistent to decode; they are "
                "counted in the capture totals but belong to no flow"
            )
        for link, n in sorted(unsupported.items()):
            warnings.append(f"{n} packets of unsupported link type {link} were not decoded")
        decrypted = any(f.encryption and f.encryption.decryption for f in flows)
        if options.keylog and not decrypted:
            warnings.append("the key log(s) given hold no secret for the DTLS sessions in "
                            "this capture; nothing was decrypted")
        if explicit and not decrypted:
            warnings.append("the SRTP keys given (--srtp-key, --sdp) match no sender address "
                            "or SSRC of an encrypted flow in this capture; nothing was "
                            "decrypted with them")
        if output is not None and output.left_encrypted:
            warnings.append(f"{output.left_encrypted} decrypted packets travel in IP "
                            "fragments (or IPv6 jumbograms); the decrypted capture keeps them "
                            "as they were")
        if replay is None:
            warnings.append(f"{source.display}: {source.replay_error}; decryption needs a "
                            "second pass over the capture, so nothing was decrypted")
        warnings.extend(explicit.warnings)
        warnings.extend(_malformed_sip_warnings(flows))
        if keylog.malformed:
            warnings.append(f"{len(keylog.malformed)} key log line(s) were not understood and "
                            f"were skipped: {', '.join(keylog.malformed[:5])}")
        if decoder.fragments_unmatched:
            warnings.append(
                f"{decoder.fragments_unmatched} IP fragments arrived without their first "
                "fragment; they are accounted to address-only flows"
            )
        if (unlocated := locator.warning()) is not None:
            warnings.append(unlocated)
        sha = source.sha256()
        capture = CaptureInfo(
            path=source.display,
            sha256=sha,
            size_bytes=source.consumed,
            compressed=source.compressed,
            format=facts.format + ("+gzip" if source.compressed else ""),
            link_types=sorted({LINK_NAMES.get(lt, f"linktype-{lt}") for lt in facts.link_types}),
            sections=facts.sections,
            interfaces=facts.interfaces,
            packets=facts.packets,
            bytes=accounting.bytes,
            first_timestamp=_ts(accounting.first_ts) if count else None,
            last_timestamp=_ts(accounting.last_ts) if count else None,
            ip_packets=accounting.ip_packets,
            non_ip_packets=decoder.non_ip,
            undecoded_packets=malformed + sum(unsupported.values()),
            ip_fragments=decoder.fragments_seen,
            decryption_secrets=SecretsInfo(
                blocks=len(facts.secrets), kinds=sorted({s.kind for s in facts.secrets})
            ),
            warnings=warnings,
        )
    return Report(tool=ToolInfo("flowscan", __version__), capture=capture, flows=flows,
                  apps=apps, names=names, sessions=sessions, findings=findings,
                  geodata=locator.databases)


def _malformed_sip_warnings(flows: list[Flow]) -> list[str]:
    """One warning per flow whose SIP or SDP had lines skipped as malformed: where they
    were, never what they held (details.sip.malformed_lines says why each was skipped)."""
    out = []
    for flow in flows:
        bad = getattr(flow.details.get("sip"), "malformed_lines", None)
        if bad:
            where = ", ".join(f"message {m['message']} line {m['line']}" for m in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            out.append(f"flow {flow.id}: {len(bad)} malformed SIP/SDP line(s) were skipped "
                       f"({where}{more}); the rest of each message was read")
    return out


def decrypt(
    path: str,
    output: str,
    *,
    keylog: list[str] | tuple[str, ...] = (),
    srtp_key: list[str] | tuple[str, ...] = (),
    sdp: list[str] | tuple[str, ...] = (),
    geoip_db: list[str] | tuple[str, ...] = (),
) -> Report:
    """Write OUTPUT, a pcapng of the capture with SRTP and SRTCP of every flow with keys
    replaced by RTP and RTCP in the clear (each tag verified first), and return the report."""
    return scan(path, keylog=keylog, srtp_key=srtp_key, sdp=sdp, geoip_db=geoip_db,
                decrypted_output=output)
