"""Command line: a thin layer over flowscan.api.

click gives subcommands, option parsing and help text; rich draws the tables and the
progress bar. Exit codes: 0 analysed, 1 a policy was violated (claims check), 2 bad input
or usage.
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Callable
from contextlib import nullcontext
from types import ModuleType

import click

from flowscan import __version__
from flowscan.api import ENGINES, decrypt, scan
from flowscan.errors import FlowscanError
from flowscan.geo.locate import UNLOCATED
from flowscan.report import json as json_report
from flowscan.report.model import Report

EXIT_OK = 0
EXIT_POLICY = 1
EXIT_BAD_INPUT = 2
PROGRESS_MIN_BYTES = 8 << 20


def _text() -> ModuleType:
    """The text renderer, imported when asked for: rich takes ~30 ms to import, and JSON
    runs (CI, benchmarks) need none of it."""
    from flowscan.report import text

    return text


def _error(message: str) -> None:
    click.echo(f"flowscan: error: {message}", err=True)


class _Progress:
    """A progress bar on stderr, only when stderr is a terminal and the file is large."""

    def __init__(self, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TimeRemainingColumn

        self._progress = Progress(
            "[progress.description]{task.description}", BarColumn(), DownloadColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), transient=True,
        )
        self._label = label
        self._task: int | None = None

    def __enter__(self) -> _Progress:
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.__exit__(None, None, None)

    def __call__(self, done: int, total: int | None) -> None:
        if self._task is None:
            self._task = self._progress.add_task(self._label, total=total)
        self._progress.update(self._task, completed=done)


def _wants_progress(path: str) -> bool:
    if not sys.stderr.isatty() or path == "-":
        return False
    try:
        import os

        return os.path.getsize(path) >= PROGRESS_MIN_BYTES
    except OSError:
        return False


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="flowscan")
def cli() -> None:
    """Read VTC packet captures; report media encryption and where data goes."""


def _key_options(command: Callable[..., None]) -> Callable[..., None]:
    """--keylog, --srtp-key and --sdp: shared by scan and decrypt."""
    for option in reversed([
        click.option("--keylog", multiple=True, type=click.Path(dir_okay=False),
                     help="NSS key log file (SSLKEYLOGFILE) with the DTLS secrets; "
                          "repeatable. Secrets blocks in a pcapng are used without it."),
        click.option("--srtp-key", "srtp_key", multiple=True,
                     metavar="TARGET=SUITE:inline:KEY",
                     help="An SRTP master key||salt (base64) for a sender, TARGET being its "
                          "SSRC (0x1234abcd) or IP:PORT; SUITE as in SDES, e.g. "
                          "AES_CM_128_HMAC_SHA1_80. Repeatable."),
        click.option("--sdp", multiple=True, type=click.Path(dir_okay=False),
                     help="An SDP file whose a=crypto lines hold SDES keys; repeatable. SDP "
                          "seen in the capture is used without it."),
    ]):
        command = option(command)
    return command


@cli.command("scan")
@click.argument("captures", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Report format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True),
              help="Write the report to this file instead of standard output.")
@click.option("--engine", type=click.Choice(ENGINES), default="native", show_default=True,
              help="native: flowscan's own reader; tshark: Wireshark's dissectors via pyshark.")
@click.option("--idle-timeout", type=click.FloatRange(min=0.001), default=300.0,
              show_default=True, help="Seconds of silence after which a flow is closed.")
@click.option("--top", type=click.IntRange(min=0), default=40, show_default=True,
              help="Flows shown in the text report (0: all).")
@click.option("--geoip-db", "geoip_db", multiple=True, type=click.Path(dir_okay=False),
              help="A MaxMind-format database (GeoIP2/GeoLite2, DB-IP, IPinfo) to use before "
                   "the bundled ones; repeatable. Also FLOWSCAN_GEOIP_DB.")
@_key_options
@click.option("--home", help="Your jurisdiction: a country code (DE), or EU or EEA. Flows "
              "whose remote is located outside it are foreign; findings follow.")
@click.option("--vantage", help="Where the capture was taken: a country code or LAT,LON. "
              "Locations the round-trip times make impossible are flagged.")
def scan_command(captures: tuple[str, ...], fmt: str, output: str | None, engine: str,
                 idle_timeout: float, top: int, geoip_db: tuple[str, ...],
                 keylog: tuple[str, ...], srtp_key: tuple[str, ...], sdp: tuple[str, ...],
                 home: str | None, vantage: str | None) -> None:
    """Analyse CAPTURE files (pcap, pcapng, optionally gzip-compressed; '-' for stdin)."""
    reports: list[Report] = []
    failed = False
    for path in captures:
        use_bar = engine == "native" and _wants_progress(path)
        bar = _Progress(path) if use_bar else None
        try:
            with bar or nullcontext():
                reports.append(scan(path, engine=engine, idle_timeout=idle_timeout,
                                    progress=bar, geoip_db=geoip_db, home=home,
                                    vantage=vantage, keylog=keylog, srtp_key=srtp_key,
                                    sdp=sdp))
        except FlowscanError as exc:
            _error(str(exc))
            failed = True
        # The finished reports hold no reference cycles: out of the cyclic collector's
        # sight, they no longer make it rescan them (about a second per million packets
        # while the JSON is written).
        gc.freeze()
    for warning in dict.fromkeys(w for r in reports for w in r.capture.warnings
                                 if w.startswith(UNLOCATED)):  # once, not once a capture
        click.echo(f"flowscan: warning: {warning}", err=True)
    if reports:
        _write(reports, fmt, output, top)
    sys.exit(EXIT_BAD_INPUT if failed else EXIT_OK)


@cli.command("decrypt")
@click.argument("capture")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False),
              help="The pcapng to write, SRTP and SRTCP replaced by RTP and RTCP in the clear.")
@_key_options
def decrypt_command(capture: str, output: str, keylog: tuple[str, ...],
                    srtp_key: tuple[str, ...], sdp: tuple[str, ...]) -> None:
    """Decrypt the media of CAPTURE with its keys; every authentication tag is verified and
    only packets whose tag verifies are replaced. Exit 1 when nothing could be decrypted."""
    try:
        report = decrypt(capture, output, keylog=keylog, srtp_key=srtp_key, sdp=sdp)
    except FlowscanError as exc:
        _error(str(exc))
        sys.exit(EXIT_BAD_INPUT)
    done = [f for f in report.flows if f.encryption and f.encryption.decryption]
    for flow in done:
        d = flow.encryption.decryption  # type: ignore[union-attr]
        click.echo(f"flow {flow.id} {flow.client.ip}:{flow.client.port} <-> "
                   f"{flow.server.ip}:{flow.server.port}: {d.packets_decrypted} packets "
                   f"decrypted, {d.tag_failures} failed authentication; inside: {d.inner} "
                   f"(key {d.key_sha256} from {d.key_source})")
    for warning in report.capture.warnings:
        click.echo(f"warning: {warning}", err=True)
    decrypted = sum(f.encryption.decryption.packets_decrypted for f in done)  # type: ignore[union-attr]
    click.echo(f"{output}: {decrypted} packets in the clear")
    if not decrypted:
        _error("nothing was decrypted: no key matches this capture's media (give --keylog, "
               "--srtp-key or --sdp; a pcapng's decryption secrets blocks count too)")
    sys.exit(EXIT_OK if decrypted else EXIT_POLICY)


@cli.command("check")
@click.argument("capture")
@click.option("--claims", "claims_path", required=True, type=click.Path(dir_okay=False),
              help="TOML file with a [claims] table (see README).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--geoip-db", "geoip_db", multiple=True, type=click.Path(dir_okay=False))
def check_command(capture: str, claims_path: str, fmt: str, geoip_db: tuple[str, ...]) -> None:
    """Check a vendor's CLAIMS against CAPTURE. Exit 1 if any claim is contradicted."""
    import dataclasses
    import json

    from flowscan.policy.claims import CONTRADICTED, check_claims, geodata_for, load_claims

    claims = load_claims(claims_path)
    geodata_for(claims, geoip_db)  # a location claim without databases: exit 2, before reading
    report = scan(capture, geoip_db=geoip_db)
    results = check_claims(report, claims)
    if fmt == "json":
        click.echo(json.dumps({"capture": report.capture.path, "sha256": report.capture.sha256,
                               "tool": dataclasses.asdict(report.tool),
                               "claims": [dataclasses.asdict(r) for r in results]}, indent=2))
    else:
        click.echo(f"{report.capture.path}  sha256 {report.capture.sha256}")
        for r in results:
            flows = f" (flows {', '.join(map(str, r.flows[:12]))})" if r.flows else ""
            click.echo(f"  {r.status:13} {r.claim} = {r.stated!r}: {r.why}{flows}")
    sys.exit(EXIT_POLICY if any(r.status == CONTRADICTED for r in results) else EXIT_OK)


@cli.group("lab")
def lab_group() -> None:
    """Reference scenarios with ground truth, made by real stacks in network namespaces."""


@lab_group.command("list")
def lab_list() -> None:
    """Name every scenario and what it shows."""
    from flowscan.lab.scenarios import SCENARIOS

    for name, scenario in SCENARIOS.items():
        click.echo(f"{name:18} {scenario.summary}")


@lab_group.command("run")
@click.argument("scenario")
@click.option("-o", "--output", "output", type=click.Path(file_okay=False), required=True,
              help="Folder for capture.pcapng, capture-dsb.pcapng, keys.log, manifest.json.")
def lab_run(scenario: str, output: str) -> None:
    """Run SCENARIO (needs root) and write its capture and manifest to OUTPUT."""
    from pathlib import Path

    from flowscan.lab.netns import LabError
    from flowscan.lab.scenarios import run_scenario

    try:
        out = run_scenario(scenario, Path(output))
    except LabError as exc:
        raise FlowscanError(f"lab: {exc}") from None
    click.echo(f"{scenario}: wrote {out}")


def _write(reports: list[Report], fmt: str, output: str | None, top: int) -> None:
    if fmt == "json":
        data = json_report.dumps_bytes(reports)
        if output:
            try:
                with open(output, "wb") as out:
                    out.write(data)
            except OSError as exc:
                raise FlowscanError(f"{output}: cannot write report: {exc.strerror}") from None
        else:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        return
    if output:
        try:
            with open(output, "w", encoding="utf-8") as out:
                _text().render(reports, out, top=top, color=False)
        except OSError as exc:
            raise FlowscanError(f"{output}: cannot write report: {exc.strerror}") from None
    else:
        _text().render(reports, sys.stdout, top=top, color=sys.stdout.isatty())


def main() -> None:
    """Entry point: every failure is one line on stderr, never a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.Abort:
        sys.exit(130)
    except FlowscanError as exc:
        _error(str(exc))
        sys.exit(EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(EXIT_OK)
    except Exception as exc:  # noqa: BLE001 - one line for the user, never a traceback
        _error(f"unexpected failure ({type(exc).__name__}: {exc}); please report this")
        sys.exit(EXIT_BAD_INPUT)


if __name__ == "__main__":
    main()
