"""SIP messages (RFC 3261 section 7); their SDP bodies (RFC 8866) are read by
flowscan.protocols.sdp, the one SDP model.

Both are read line by line: a malformed line is skipped and noted (its line number and a
fixed reason, never its content, which may hold a key), so one bad line never hides the
rest of the message, its SDP, or its keys. Numbers are ASCII digits only (flowscan.digits).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from flowscan.digits import ascii_int
from flowscan.protocols.sdp import Malformed, SdpMedia, read_sdp

# The SDP model, re-exported for callers that know it as SIP's.
from flowscan.protocols.sdp import SdesKey as SdesKey
from flowscan.protocols.sdp import Sdp as Sdp
from flowscan.protocols.sdp import parse_sdp as parse_sdp

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
    _read_headers(msg, lines)
    msg.call_id = msg.headers.get("call-id")
    msg.cseq = msg.headers.get("cseq")
    body_start = head_end + 4
    body = data[body_start:_body_end(msg, lines, data, body_start)]
    msg.length = body_start + len(body)
    if msg.skipped is None and msg.headers.get("content-type", "").lower().startswith(
            "application/sdp"):
        sdp = read_sdp(body)
        msg.media = sdp.media
        msg.malformed.extend((len(lines) + 1 + n, reason) for n, reason in sdp.malformed)
    return msg


def _read_headers(msg: SipMessage, lines: list[bytes]) -> None:
    """The header fields after the start line, by their full names (RFC 3261 section
    7.3.3: compact forms expanded); a malformed line is noted and skipped."""
    name = ""  # the field the last line read, which a folded line continues
    for number, raw in enumerate(lines[1:], 2):
        name, reason = _header_line(msg.headers, name, raw)
        if reason is not None:
            msg.malformed.append((number, reason))


def _header_line(headers: dict[str, str], name: str, raw: bytes) -> tuple[str, str | None]:
    """Reads one header line into headers: the field it belongs to ("" after a malformed
    line), and a reason when it is malformed."""
    try:
        line = raw.decode("utf-8")  # RFC 3261 section 25.1: TEXT-UTF8
    except UnicodeDecodeError:
        return "", "not UTF-8 text"
    if line[:1] in (" ", "\t"):
        # RFC 3261 section 7.3.1: a line starting with whitespace continues the header
        # field above it (line folding).
        if not name:
            return name, "continuation line with no header above it"
        headers[name] = f"{headers[name]} {line.strip()}".strip()
        return name, None
    field_name, sep, value = line.partition(":")
    field_name = field_name.strip()
    if not sep or not TOKEN.fullmatch(field_name):
        return "", "not a header field (token \":\" value)"
    key = field_name.lower()
    name = COMPACT.get(key, key)
    headers[name] = value.strip()
    return name, None


def _body_end(msg: SipMessage, lines: list[bytes], data: bytes, body_start: int) -> int:
    """Where the body ends: after Content-Length bytes (RFC 3261 section 20.14:
    1*DIGIT); without a usable one, over UDP with the datagram, in a stream (where the
    length is mandatory) where the next message starts, the best guess (section 18.3)."""
    length = None
    if "content-length" in msg.headers:
        length = ascii_int(msg.headers["content-length"])
        if length is None:
            msg.malformed.append((_line_of(lines, "content-length"),
                                  "Content-Length is not ASCII digits"))
    if length is not None:
        return body_start + length
    following = NEXT_START.search(data, body_start - 2)
    return following.end() if following else len(data)


def _line_of(lines: list[bytes], header: str) -> int:
    """The line number of a header (full or compact name), counted from the start line."""
    names = {header} | {k for k, v in COMPACT.items() if v == header}
    for number, raw in enumerate(lines[1:], 2):
        if raw.partition(b":")[0].strip().lower().decode("ascii", "replace") in names:
            return number
    return 0
