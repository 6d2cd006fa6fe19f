"""SDP (RFC 8866; RFC 4566 before it): the one typed model of a session description, read
by every stage that needs SDP (the SIP bodies in a capture, `--sdp` files).

A text is read line by line, `<type>=<value>`: a malformed line is skipped and noted (its
line number and a fixed reason, never its content, which may hold a key), so one bad line
never hides the rest. The attributes read are in two tables, one place to add one: those
allowed at session or media level, and those of a media section only. Numbers are ASCII
digits only (flowscan.digits).

SDES keys (`a=crypto`, RFC 4568 section 9.1) are key material: kept for the decryption
stage, never printed; reports name them by a short SHA-256 fingerprint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from flowscan.digits import ascii_int

# A malformed line: (line number, counted from the first line as 1; reason).
Malformed = tuple[int, str]
Endpoint = tuple[str, int]


@dataclass
class SdesKey:
    tag: str
    suite: str
    key_params: str = field(repr=False)  # inline:<key||salt>; never reported

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.key_params.encode()).hexdigest()[:16]


@dataclass
class SdpMedia:
    media: str  # audio, video, application
    port: int
    protocol: str  # RTP/AVP, RTP/SAVP, UDP/TLS/RTP/SAVPF, ...
    formats: list[str]
    address: str | None = None
    crypto: list[SdesKey] = field(default_factory=list)
    fingerprint: str | None = None  # a=fingerprint (DTLS-SRTP, RFC 8122)
    setup: str | None = None
    rtpmap: dict[int, str] = field(default_factory=dict)
    candidates: list[str] = field(default_factory=list)
    zrtp_hash: str | None = None  # a=zrtp-hash (RFC 6189 section 8.1): version and hash

    @property
    def endpoints(self) -> tuple[Endpoint, Endpoint] | None:
        """Where its RTP goes and its RTCP, on the next port unless multiplexed (RFC 3550
        section 11; RFC 8866 section 5.14); None without a connection address."""
        if self.address is None:
            return None
        return (self.address, self.port), (self.address, self.port + 1)


@dataclass
class Sdp:
    """One SDP text as read: its media sections and the lines skipped as malformed (line
    numbers counted from the text's first line as 1)."""

    media: list[SdpMedia] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)


@dataclass
class MediaOffer:
    """One m= section with a connection address, as the stages after identification read
    it: the SIP call that offered it (None when the message named none) and where its
    media goes."""

    call: str | None
    media: SdpMedia
    address: str
    endpoints: tuple[Endpoint, Endpoint]


class Signalling(Protocol):
    """The SIP facts of the flow that carried the SDP: the calls it named, in order."""

    call_ids: list[str]


def offers(media: Sequence[SdpMedia], signalling: Signalling | None) -> Iterator[MediaOffer]:
    """The media sections of one signalling flow that say where their media goes, each
    under the flow's first SIP call."""
    call = signalling.call_ids[0] if signalling is not None and signalling.call_ids else None
    for m in media:
        ends = m.endpoints
        if m.address is not None and ends is not None:
            yield MediaOffer(call, m, m.address, ends)


# --- reading ----------------------------------------------------------------------------

@dataclass
class _Session:
    """The session-level values a media section falls back on (RFC 8866 section 5)."""

    address: str | None = None
    fingerprint: str | None = None
    zrtp_hash: str | None = None


class _Skipped:
    """The media section of a malformed m= line: its lines are ignored, not attached to the
    section above it (RFC 8866 section 5: a media description runs to the next m=)."""


SKIPPED = _Skipped()


def _fingerprint(target: SdpMedia | _Session, value: str) -> str | None:
    target.fingerprint = value  # RFC 8122 section 5
    return None


def _zrtp_hash(target: SdpMedia | _Session, value: str) -> str | None:
    target.zrtp_hash = value  # RFC 6189 section 8.1
    return None


def _crypto(media: SdpMedia, value: str) -> str | None:
    """RFC 4568 section 9.1: a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
    with tag = 1*9DIGIT."""
    parts = value.split()
    if len(parts) < 3 or len(parts[0]) > 9 or ascii_int(parts[0]) is None:
        return "a=crypto is not <tag> <crypto-suite> <key-params>"
    media.crypto.append(SdesKey(parts[0], parts[1], parts[2]))
    return None


def _setup(media: SdpMedia, value: str) -> str | None:
    media.setup = value  # RFC 4145 section 4
    return None


def _rtpmap(media: SdpMedia, value: str) -> str | None:
    """RFC 8866 section 6.6: a=rtpmap:<payload type> <encoding name>/<clock rate>..., the
    payload type 0 to 127 (RFC 3550 section 5.1: 7 bits)."""
    pt_text, _, codec = value.partition(" ")
    pt = ascii_int(pt_text)
    if pt is None or pt > 127:
        return "a=rtpmap payload type is not ASCII digits from 0 to 127"
    media.rtpmap[pt] = codec.strip()
    return None


def _candidate(media: SdpMedia, value: str) -> str | None:
    media.candidates.append(value)  # RFC 8839 section 5.1
    return None


# Attributes read at session or media level, and those of a media section only: each
# reads its value (after "name:") and returns a reason when the line is malformed.
SESSION_OR_MEDIA: dict[str, Callable[[SdpMedia | _Session, str], str | None]] = {
    "fingerprint": _fingerprint, "zrtp-hash": _zrtp_hash}
MEDIA_ONLY: dict[str, Callable[[SdpMedia, str], str | None]] = {
    "crypto": _crypto, "setup": _setup, "rtpmap": _rtpmap, "candidate": _candidate}


def _lines(body: bytes | str) -> list[str | None]:
    """The text's lines; None for one that is not UTF-8 (RFC 8866 section 5: UTF-8 by
    default). CRLF ends a line, a bare LF is accepted too."""
    if isinstance(body, str):
        return list(body.split("\n"))
    out: list[str | None] = []
    for chunk in body.split(b"\n"):
        try:
            out.append(chunk.decode("utf-8"))
        except UnicodeDecodeError:
            out.append(None)
    return out


class _Reader:
    """One pass over the lines; each type of line has a method of its own."""

    def __init__(self) -> None:
        self.out = Sdp()
        self.session = _Session()
        self.session_start = 0  # the first media section of the current description
        self.current: SdpMedia | _Skipped | None = None

    def line(self, text: str) -> str | None:
        """Reads one line that has content; a reason when it is malformed."""
        if len(text) < 2 or text[1] != "=" or not text[0].isascii() or not text[0].isalpha():
            return "not <type>=<value>"
        kind, value = text[0], text[2:].strip()
        if kind == "v":
            self.version()
            return None
        if kind == "m":
            return self.media(value)
        if self.current is SKIPPED:
            return None
        if kind == "c":
            return self.connection(value)
        if kind == "a":
            return self.attribute(value)
        return None

    def version(self) -> None:
        """A `v=` line starts a new description (an offer and its answer may follow one
        another in one text): the last one's session values are settled."""
        self.finish()
        self.session, self.session_start, self.current = _Session(), len(self.out.media), None

    def media(self, value: str) -> str | None:
        section = _media_line(value, self.session.address)
        if isinstance(section, str):
            self.current = SKIPPED
            return section
        self.out.media.append(section)
        self.current = section
        return None

    def connection(self, value: str) -> str | None:
        """RFC 8866 section 5.7: c=<nettype> <addrtype> <connection-address>, a multicast
        address followed by /ttl[/number]."""
        parts = value.split()
        if len(parts) < 3:
            return "c= has fewer than three fields"
        self._target().address = parts[2].split("/")[0]
        return None

    def attribute(self, value: str) -> str | None:
        name, _, rest = value.partition(":")
        if name in SESSION_OR_MEDIA:
            return SESSION_OR_MEDIA[name](self._target(), rest)
        read = MEDIA_ONLY.get(name)
        if read is None or not isinstance(self.current, SdpMedia):
            return None
        return read(self.current, rest)

    def _target(self) -> SdpMedia | _Session:
        return self.current if isinstance(self.current, SdpMedia) else self.session

    def finish(self) -> None:
        """Media-level values default to the session's (RFC 8866 section 5)."""
        for m in self.out.media[self.session_start:]:
            m.fingerprint = m.fingerprint or self.session.fingerprint
            m.zrtp_hash = m.zrtp_hash or self.session.zrtp_hash


def read_sdp(body: bytes | str) -> Sdp:
    """RFC 8866 section 5: lines of `<type>=<value>`, type one letter. A blank line (the
    CRLF that ends the last line) carries nothing."""
    reader = _Reader()
    for number, text in enumerate(_lines(body), 1):
        line = text.rstrip("\r") if text is not None else None
        if line is not None and not line.strip():
            continue
        reason = "not UTF-8 text" if line is None else reader.line(line)
        if reason is not None:
            reader.out.malformed.append((number, reason))
    reader.finish()
    return reader.out


def _media_line(value: str, session_address: str | None) -> SdpMedia | str:
    """RFC 8866 section 5.14: `m=<media> <port>[/<number of ports>] <proto> <fmt> ...`;
    a reason (str) when the line is malformed."""
    parts = value.split()
    if len(parts) < 3:
        return "m= has fewer than three fields"
    port_text, _, count = parts[1].partition("/")
    port = ascii_int(port_text)
    if port is None or port > 65535 or (count and ascii_int(count) is None):
        return "m= port is not ASCII digits from 0 to 65535"
    return SdpMedia(parts[0], port, parts[2], parts[3:], session_address)


def parse_sdp(text: bytes | str) -> list[SdpMedia]:
    """The media sections of an SDP text; malformed lines skipped (read_sdp names them)."""
    return read_sdp(text).media
