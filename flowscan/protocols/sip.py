"""SIP messages (RFC 3261 section 7) and their SDP bodies (RFC 8866).

SDES keys (`a=crypto`, RFC 4568 section 9.1) are key material: they are kept for the
decryption stage but never printed; reports name them by a short SHA-256 fingerprint.

Both are read line by line: a malformed line is skipped and noted (its line number and a
fixed reason, never its content, which may hold a key), so one bad line never hides the
rest of the message, its SDP, or its keys. Numbers are ASCII digits only (flowscan.digits).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

from flowscan.digits import ascii_int

COMPACT = {"i": "call-id", "f": "from", "t": "to", "l": "content-length", "c": "content-type",
           "v": "via", "m": "contact"}
METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
           "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE")
# RFC 3261 section 25.1: token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" /
# "`" / "'" / "~"); a header's field-name is a token (section 7.3.1).
TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")
# Where a message without a usable Content-Length ends in a stream: the next start line
# (RFC 3261 section 7.1 Request-Line, 7.2 Status-Line). An SDP line (x=...) never looks so.
NEXT_START = re.compile(rb"\r\n(?=SIP/2\.0 |(?:" + b"|".join(m.encode() for m in METHODS)
                        + rb") [^\r\n]* SIP/2\.0\r\n)")

# A malformed line: (line number counted from the message's start line as 1, reason).
Malformed = tuple[int, str]


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


@dataclass
class Sdp:
    """One SDP text as read: its media sections and the lines skipped as malformed (line
    numbers counted from the text's first line as 1)."""

    media: list[SdpMedia] = field(default_factory=list)
    malformed: list[Malformed] = field(default_factory=list)


@dataclass
class SipMessage:
    method: str | None  # request method, or None for a response
    status: int | None
    call_id: str | None
    cseq: str | None
    headers: dict[str, str] = field(default_factory=dict)
    media: list[SdpMedia] = field(default_factory=list)
    length: int = 0  # bytes consumed, body included
    # Lines skipped as malformed, head and SDP body alike: never their content.
    malformed: list[Malformed] = field(default_factory=list)
    # Why the whole message was skipped: its start line is malformed, so nothing in it can
    # be trusted to mean what it says; None for a message that was read.
    skipped: str | None = None


def _start_line(raw: bytes) -> tuple[str | None, int | None] | str | None:
    """(method, status) of a well-formed start line; a reason (str) for a SIP start line
    that is malformed; None for a line that is not SIP at all."""
    raw = raw.rstrip(b" \t")  # trailing whitespace is harmless, though not in the grammar
    if raw.startswith(b"SIP/2.0 "):
        # RFC 3261 section 7.2: Status-Line = SIP-Version SP Status-Code SP Reason-Phrase,
        # Status-Code = 3DIGIT (section 25.1), 100 to 699 (section 21).
        code = raw[8:].split(b" ", 1)[0]
        status = ascii_int(code.decode("ascii")) if code.isascii() else None
        if status is None or len(code) != 3 or not 100 <= status <= 699:
            return "status code is not three ASCII digits from 100 to 699"
        return None, status
    parts = raw.split(b" ")
    # RFC 3261 section 7.1: Request-Line = Method SP Request-URI SP SIP-Version CRLF.
    if len(parts) >= 3 and parts[-1] == b"SIP/2.0":
        method = parts[0].decode("ascii", "replace")
        if method in METHODS:
            return (method, None) if len(parts) == 3 else "request line is not three fields"
    return None


def parse(data: bytes) -> SipMessage | None:
    """The SIP message at the start of data; None if data does not start with one."""
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    lines = data[:head_end].split(b"\r\n")
    start = _start_line(lines[0])
    if start is None:
        return None
    msg = SipMessage(None, None, None, None)
    if isinstance(start, str):
        msg.skipped = start
    else:
        msg.method, msg.status = start
    name = ""
    for number, raw in enumerate(lines[1:], 2):
        try:
            line = raw.decode("utf-8")  # RFC 3261 section 25.1: TEXT-UTF8
        except UnicodeDecodeError:
            msg.malformed.append((number, "not UTF-8 text"))
            name = ""
            continue
        if line[:1] in (" ", "\t"):
            # RFC 3261 section 7.3.1: a line starting with whitespace continues the header
            # field above it (line folding).
            if name:
                msg.headers[name] = f"{msg.headers[name]} {line.strip()}".strip()
            else:
                msg.malformed.append((number, "continuation line with no header above it"))
            continue
        field_name, sep, value = line.partition(":")
        field_name = field_name.strip()
        if not sep or not TOKEN.fullmatch(field_name):
            msg.malformed.append((number, "not a header field (token \":\" value)"))
            name = ""
            continue
        key = field_name.lower()
        name = COMPACT.get(key, key)
        msg.headers[name] = value.strip()
    msg.call_id = msg.headers.get("call-id")
    msg.cseq = msg.headers.get("cseq")
    body_start = head_end + 4
    length = None
    if "content-length" in msg.headers:
        # RFC 3261 section 20.14: Content-Length = 1*DIGIT.
        length = ascii_int(msg.headers["content-length"])
        if length is None:
            msg.malformed.append((_line_of(lines, "content-length"),
                                  "Content-Length is not ASCII digits"))
    if length is None:
        # RFC 3261 section 18.3: over UDP the body ends with the datagram; in a stream the
        # length is mandatory, and the best guess ends it where the next message starts.
        following = NEXT_START.search(data, body_start - 2)
        body = data[body_start:following.end() if following else len(data)]
    else:
        body = data[body_start:body_start + length]
    msg.length = body_start + len(body)
    if msg.skipped is None and msg.headers.get("content-type", "").lower().startswith(
            "application/sdp"):
        sdp = read_sdp(body)
        msg.media = sdp.media
        msg.malformed.extend((len(lines) + 1 + n, reason) for n, reason in sdp.malformed)
    return msg


def _line_of(lines: list[bytes], header: str) -> int:
    """The line number of a header (full or compact name), counted from the start line."""
    names = {header} | {k for k, v in COMPACT.items() if v == header}
    for number, raw in enumerate(lines[1:], 2):
        if raw.partition(b":")[0].strip().lower().decode("ascii", "replace") in names:
            return number
    return 0


class _Skipped:
    """The media section of a malformed m= line: its lines are ignored, not attached to the
    section above it (RFC 8866 section 5: a media description runs to the next m=)."""


SKIPPED = _Skipped()


def read_sdp(body: bytes | str) -> Sdp:
    """RFC 8866 section 5: lines of `<type>=<value>`, type one letter; CRLF ends a line, a
    bare LF is accepted too. A `v=` line starts a new description (an offer and its answer
    may follow one another in one text)."""
    out = Sdp()
    lines: list[str | None]
    if isinstance(body, str):
        lines = list(body.split("\n"))
    else:
        lines = []
        for chunk in body.split(b"\n"):
            try:
                lines.append(chunk.decode("utf-8"))  # RFC 8866 section 5: UTF-8 by default
            except UnicodeDecodeError:
                lines.append(None)
    session_address: str | None = None
    session_fingerprint: str | None = None
    session_zrtp: str | None = None
    session_start = 0
    current: SdpMedia | _Skipped | None = None
    for number, text in enumerate(lines, 1):
        if text is None:
            out.malformed.append((number, "not UTF-8 text"))
            continue
        line = text.rstrip("\r")
        if not line.strip():
            continue  # a blank line (the CRLF that ends the last line) carries nothing
        if len(line) < 2 or line[1] != "=" or not line[0].isascii() or not line[0].isalpha():
            out.malformed.append((number, "not <type>=<value>"))
            continue
        kind, value = line[0], line[2:].strip()
        if kind == "v":
            for m in out.media[session_start:]:
                m.fingerprint = m.fingerprint or session_fingerprint
                m.zrtp_hash = m.zrtp_hash or session_zrtp
            session_address, session_fingerprint, session_zrtp = None, None, None
            session_start, current = len(out.media), None
            continue
        if kind == "m":
            section = _media_line(value, session_address)
            if isinstance(section, str):
                out.malformed.append((number, section))
                current = SKIPPED
            else:
                out.media.append(section)
                current = section
            continue
        if current is SKIPPED:
            continue
        reason = _attribute(kind, value, current if isinstance(current, SdpMedia) else None)
        if isinstance(reason, str):
            out.malformed.append((number, reason))
        elif reason is not None:
            kind_, found = reason
            if kind_ == "c":
                session_address = found
            elif kind_ == "zrtp-hash":
                session_zrtp = found
            else:
                session_fingerprint = found
    for m in out.media[session_start:]:
        m.fingerprint = m.fingerprint or session_fingerprint
        m.zrtp_hash = m.zrtp_hash or session_zrtp
    return out


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


def _attribute(kind: str, value: str, current: SdpMedia | None
               ) -> str | tuple[str, str | None] | None:
    """Reads one c= or a= line into the media section (or the session, current None).
    A reason (str) when malformed; ("c", address), ("fingerprint", value) or ("zrtp-hash",
    value) for the session level; None otherwise."""
    if kind == "c":
        # RFC 8866 section 5.7: c=<nettype> <addrtype> <connection-address>, a multicast
        # address followed by /ttl[/number].
        parts = value.split()
        if len(parts) < 3:
            return "c= has fewer than three fields"
        address = parts[2].split("/")[0]
        if current is None:
            return "c", address
        current.address = address
        return None
    if kind != "a":
        return None
    name, _, rest = value.partition(":")
    if name == "fingerprint":  # RFC 8122 section 5: session or media level
        if current is None:
            return "fingerprint", rest
        current.fingerprint = rest
        return None
    if name == "zrtp-hash":  # RFC 6189 section 8.1: session or media level
        if current is None:
            return "zrtp-hash", rest
        current.zrtp_hash = rest
        return None
    if current is None:
        return None
    if name == "crypto":
        # RFC 4568 section 9.1: a=crypto:<tag> <crypto-suite> <key-params> [<session-params>]
        # with tag = 1*9DIGIT.
        parts = rest.split()
        if len(parts) < 3 or len(parts[0]) > 9 or ascii_int(parts[0]) is None:
            return "a=crypto is not <tag> <crypto-suite> <key-params>"
        current.crypto.append(SdesKey(parts[0], parts[1], parts[2]))
    elif name == "setup":
        current.setup = rest
    elif name == "rtpmap":
        # RFC 8866 section 6.6: a=rtpmap:<payload type> <encoding name>/<clock rate>...,
        # the payload type 0 to 127 (RFC 3550 section 5.1: 7 bits).
        pt_text, _, codec = rest.partition(" ")
        pt = ascii_int(pt_text)
        if pt is None or pt > 127:
            return "a=rtpmap payload type is not ASCII digits from 0 to 127"
        current.rtpmap[pt] = codec.strip()
    elif name == "candidate":
        current.candidates.append(rest)
    return None


def parse_sdp(text: bytes | str) -> list[SdpMedia]:
    """The media sections of an SDP text; malformed lines skipped (read_sdp names them)."""
    return read_sdp(text).media
