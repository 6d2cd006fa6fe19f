"""SRTP master keys given outright: SDES a=crypto key params, an SDP file, `--srtp-key`.

A key protects what one sender sends: named by the sender's address and port (the SDP media
address, as RFC 4568 section 6.1 has each side announce the key it sends with) or by SSRC.
Specs and key params are never echoed in errors: they hold the key.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from flowscan.crypto.keylog import fingerprint
from flowscan.crypto.srtp import PROFILES, SDES_SUITES, Profile, SrtpContext
from flowscan.digits import ascii_int, ascii_int_auto
from flowscan.errors import UsageError
from flowscan.protocols import sdp

Endpoint = tuple[str, int]


@dataclass(frozen=True)
class SrtpKey:
    profile: Profile = field(repr=False)
    master_key: bytes = field(repr=False)
    master_salt: bytes = field(repr=False)
    fingerprint: str = ""  # short SHA-256 of the key params: how reports name the key
    source: str = ""
    mki: bytes = b""  # the master key identifier its packets carry, if signalled
    # Further master keys of the same a=crypto line, (key, salt, MKI) each: packets pick
    # theirs by MKI (RFC 4568 section 6.1).
    more: tuple[tuple[bytes, bytes, bytes], ...] = field(default=(), repr=False)

    def context(self) -> SrtpContext:
        return SrtpContext(self.profile, self.master_key, self.master_salt, self.mki,
                           self.more)


def _mki(field_text: str) -> bytes | None:
    """`MKI:length` (RFC 4568 section 6.1): the value in `length` bytes, 1 to 128."""
    value, _, length = field_text.partition(":")
    number, size = ascii_int(value), ascii_int(length)
    if number is None or size is None or not 1 <= size <= 128:
        return None
    try:
        return number.to_bytes(size, "big")
    except OverflowError:
        return None


def _inline_key(profile: Profile, text: str) -> tuple[bytes, bytes, bytes] | None:
    """RFC 4568 section 6.1: `inline:<base64 key||salt>[|lifetime][|MKI:length]` as
    (master key, master salt, MKI)."""
    if not text.startswith("inline:"):
        return None
    encoded, *fields = text[7:].split("|")
    try:
        material = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error):
        return None
    if len(material) < profile.key_len + profile.salt_len or len(fields) > 2:
        return None
    mki = b""
    for field_text in fields:
        if ":" in field_text:  # the lifetime has no colon (a number or 2^n)
            found = _mki(field_text)
            if found is None:
                return None
            mki = found
    return (material[:profile.key_len],
            material[profile.key_len:profile.key_len + profile.salt_len], mki)


def sdes_key(suite: str, key_params: str, source: str) -> SrtpKey | None:
    """The master keys of one a=crypto line. Several may follow one another, separated by
    ";" (RFC 4568 section 9.1); packets then name theirs by MKI, so the keys after the
    first are kept only when every key carries an MKI of one length."""
    name = SDES_SUITES.get(suite, suite if suite in PROFILES else None)
    if name is None:
        return None
    profile = PROFILES[name]
    keys = [_inline_key(profile, text) for text in key_params.split(";")]
    first = keys[0]
    if first is None:
        return None
    more = tuple(k for k in keys[1:] if k is not None)
    if not first[2] or len(more) != len(keys) - 1 or any(
            len(k[2]) != len(first[2]) for k in more):
        more = ()
    # surrogateescape: a command line's undecodable bytes (argv) fingerprint as the bytes
    # they were, not as an error.
    return SrtpKey(profile, first[0], first[1],
                   fingerprint(key_params.encode("utf-8", "surrogateescape")), source,
                   first[2], more)


def media_keys(media: Sequence[sdp.SdpMedia], source: str) -> dict[Endpoint, SrtpKey]:
    """Each m= line's first usable a=crypto key, for its RTP port and RTCP port + 1."""
    keys: dict[Endpoint, SrtpKey] = {}
    for m in media:
        ends = m.endpoints
        if ends is None:
            continue
        for crypto in m.crypto:
            key = sdes_key(crypto.suite, crypto.key_params, source)
            if key is not None:
                for endpoint in ends:
                    keys.setdefault(endpoint, key)
                break
    return keys


@dataclass
class ExplicitKeys:
    """Keys from the command line or an SDP file, beside those in the capture."""

    by_endpoint: dict[Endpoint, SrtpKey] = field(default_factory=dict)
    by_ssrc: dict[int, SrtpKey] = field(default_factory=dict)
    # For the report's capture warnings: SDP lines skipped, by file and line number only.
    warnings: list[str] = field(default_factory=list)

    def add_sdp_file(self, path: str) -> None:
        """The a=crypto keys of an SDP file. SDP is UTF-8 text (RFC 8866 section 5): a file
        that is not is the wrong file, a usage error; a malformed line in it is skipped with
        a warning, as in SDP read off the wire, and the other lines are used."""
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise UsageError(f"{path}: cannot read SDP file: {exc.strerror}") from None
        data = data.removeprefix(b"\xef\xbb\xbf")  # a byte order mark, as editors may write
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data.count(b"\n", 0, exc.start) + 1
            raise UsageError(f"{path}: not an SDP file: line {line} is not UTF-8 text "
                             "(RFC 8866 section 5)") from None
        read = sdp.read_sdp(text)
        if read.malformed:
            lines = ", ".join(f"line {n} ({reason})" for n, reason in read.malformed[:5])
            more = f" and {len(read.malformed) - 5} more" if len(read.malformed) > 5 else ""
            self.warnings.append(f"{path}: {len(read.malformed)} malformed SDP line(s) were "
                                 f"skipped: {lines}{more}")
        found = media_keys(read.media, f"SDES (a=crypto in {path})")
        if not found:
            raise UsageError(f"{path}: no m= line with a connection address and a usable "
                             "a=crypto key (AES_CM_128_HMAC_SHA1_80/32, AEAD_AES_128/256_GCM)")
        for endpoint, key in found.items():
            self.by_endpoint.setdefault(endpoint, key)

    def add_spec(self, spec: str, number: int) -> None:
        """`TARGET=SUITE:inline:BASE64` with TARGET an SSRC (0x1234abcd or decimal) or the
        sender's IP:PORT ([v6]:PORT). No error quotes the spec or any part of it: parts in
        the wrong order would put the key where a target or suite was expected."""
        where = f"--srtp-key #{number}"
        form = ("expected TARGET=SUITE:inline:KEY, TARGET being the sender's SSRC (0x1234abcd "
                "or decimal) or its IP:PORT, in that order")
        target, sep, rest = spec.partition("=")
        suite, sep2, params = rest.partition(":")
        if not sep or not sep2 or "inline:" in target:
            raise UsageError(f"{where}: {form}")
        key = sdes_key(suite, params, f"--srtp-key #{number}")
        if key is None:
            raise UsageError(f"{where}: not a usable key: {form}; the suite one of "
                             f"{', '.join(SDES_SUITES)} and the inline key||salt base64 of "
                             "the suite's length")
        target = target.strip()
        ssrc = ascii_int_auto(target)
        if ssrc is not None:
            if not 0 <= ssrc < 2**32:
                raise UsageError(f"{where}: SSRC out of range (32 bits)")
            self.by_ssrc[ssrc] = key
            return
        host, _, port = target.rpartition(":")
        port_number = ascii_int(port)
        try:
            address = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            address = None
        if address is None or port_number is None:
            raise UsageError(f"{where}: the part before '=' is neither an SSRC nor IP:PORT; "
                             f"{form}")
        if not 0 < port_number < 65536:
            raise UsageError(f"{where}: port out of range")
        self.by_endpoint[(str(address), port_number)] = key

    def __bool__(self) -> bool:
        return bool(self.by_endpoint or self.by_ssrc)
