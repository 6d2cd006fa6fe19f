"""ScanOptions: everything a scan can be told, in one documented object.

aioquic's QuicConfiguration is the model: the API, the CLI and the pipeline pass this one
object, never loose keyword arguments, and it checks itself when made, so an option that
cannot be honoured is an error before any reading, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum

from flowscan.errors import UsageError


class Engine(StrEnum):
    NATIVE = "native"  # flowscan's own reader and the whole pipeline
    TSHARK = "tshark"  # Wireshark's dissectors: the flow table only, as a cross-check


ENGINES = tuple(Engine)

# The options only the native pipeline honours, as the CLI names them.
NATIVE_ONLY = {"geoip_db": "--geoip-db", "home": "--home", "vantage": "--vantage",
               "capture_host": "--capture-host",
               "keylog": "--keylog", "srtp_key": "--srtp-key", "sdp": "--sdp",
               "decrypted_output": "a decrypted output (flowscan decrypt)"}


@dataclass(frozen=True)
class ScanOptions:
    """The options of one scan; every field has the CLI's default.

    Paths and key specifications are tuples of strings (lists are taken and made tuples).
    """

    #: "native" (the default) or "tshark" (the flow table through Wireshark's dissectors).
    engine: str = Engine.NATIVE
    #: Seconds of silence after which a flow is closed; a later packet starts a new flow.
    idle_timeout: float = 300.0
    #: Payload samples kept per direction and payload class (flows.py); None: the default.
    sample_packets: int | None = None
    #: Bytes kept of each payload sample; None: the default.
    sample_bytes: int | None = None
    #: False feeds every packet through the per-packet reference path (for tests).
    columnar: bool = True
    #: Worker processes identifying closed flows beside the reader; 0 (the library's
    #: default: a script calling scan() starts no process, so needs no __main__ guard):
    #: none; None (the CLI's): one per core beyond the first, started once the capture
    #: has many flows.
    workers: int | None = 0
    #: MaxMind-format databases to consult before the bundled ones.
    geoip_db: tuple[str, ...] = ()
    #: The user's jurisdiction: an ISO 3166 country code, EU or EEA.
    home: str | None = None
    #: Where the capture was taken: a country code or LAT,LON.
    vantage: str | None = None
    #: The addresses of the host the capture was taken at, for captures whose traffic
    #: cannot tell (one flow between two public addresses): the other end of each flow
    #: holding one of them is its remote.
    capture_host: tuple[str, ...] = ()
    #: NSS key log files (SSLKEYLOGFILE) holding the DTLS secrets.
    keylog: tuple[str, ...] = ()
    #: SRTP keys: TARGET=SUITE:inline:BASE64, TARGET an SSRC (0x...) or IP:PORT.
    srtp_key: tuple[str, ...] = ()
    #: SDP files whose a=crypto lines hold SDES keys.
    sdp: tuple[str, ...] = ()
    #: A pcapng to write with SRTP/SRTCP replaced by RTP/RTCP in the clear.
    decrypted_output: str | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, list):
                object.__setattr__(self, f.name, tuple(value))
        if self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r}; choose one of "
                             f"{', '.join(ENGINES)}")
        object.__setattr__(self, "engine", Engine(self.engine))
        if self.idle_timeout <= 0:
            raise UsageError("idle timeout must be positive")
        self._refuse_what_the_engine_ignores()

    def _refuse_what_the_engine_ignores(self) -> None:
        """The tshark engine builds the flow table only: an option it cannot honour is an
        error, never silently dropped."""
        if self.engine == Engine.NATIVE:
            return
        given = [flag for name, flag in NATIVE_ONLY.items() if getattr(self, name)]
        if given:
            raise UsageError(f"the {self.engine} engine gives the flow table only and cannot "
                             f"honour {', '.join(given)}; use the native engine (the "
                             "default), or 'flowscan crosscheck' to compare the two "
                             "engines' flow tables")
