"""SIP messages (RFC 3261 section 7) and their SDP bodies (RFC 8866).

SDES keys (`a=crypto`, RFC 4568 section 9.1) are key material: they are kept for the
decryption stage but never printed; reports name them by a short SHA-256 fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

COMPACT = {"i": "call-id", "f": "from", "t": "to", "l": "content-length", "c": "content-type",
           "v": "via", "m": "contact"}
METHODS = ("INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "PRACK", "SUBSCRIBE",
           "NOTIFY", "PUBLISH", "INFO", "REFER", "MESSAGE", "UPDATE")


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


@dataclass
class SipMessage:
    method: str | None  # request method, or None for a response
    status: int | None
    call_id: str | None
    cseq: str | None
    headers: dict[str, str] = field(default_factory=dict)
    media: list[SdpMedia] = field(default_factory=list)
    length: int = 0  # bytes consumed, body included


def parse(data: bytes) -> SipMessage | None:
    head_end = data.find(b"\r\n\r\n")
    if head_end < 0:
        return None
    try:
        head = data[:head_end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    lines = head.split("\r\n")
    first = lines[0].split(" ", 2)
    if len(first) < 3:
        return None
    if first[0] == "SIP/2.0" and first[1].isdigit():
        msg = SipMessage(None, int(first[1]), None, None)
    elif first[0] in METHODS and first[2].startswith("SIP/2.0"):
        msg = SipMessage(first[0], None, None, None)
    else:
        return None
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            msg.headers[COMPACT.get(key, key)] = value.strip()
    msg.call_id = msg.headers.get("call-id")
    msg.cseq = msg.headers.get("cseq")
    try:
        length = int(msg.headers.get("content-length", "0"))
    except ValueError:
        length = 0
    body = data[head_end + 4:head_end + 4 + max(length, 0)]
    msg.length = head_end + 4 + len(body)
    if msg.headers.get("content-type", "").lower().startswith("application/sdp"):
        msg.media = parse_sdp(body.decode("utf-8", "replace"))
    return msg


def parse_sdp(text: str) -> list[SdpMedia]:
    session_address: str | None = None
    media: list[SdpMedia] = []
    session_fingerprint: str | None = None
    session_start = 0  # a v= line starts a new session description (an offer and its answer)
    for raw in text.splitlines():
        if len(raw) < 2 or raw[1] != "=":
            continue
        kind, value = raw[0], raw[2:].strip()
        if kind == "v":
            session_address, session_start = None, len(media)
            continue
        current = media[-1] if len(media) > session_start else None
        if kind == "c":
            parts = value.split()
            address = parts[2].split("/")[0] if len(parts) >= 3 else None
            if current is None:
                session_address = address
            else:
                current.address = address
        elif kind == "m":
            parts = value.split()
            if len(parts) >= 3 and parts[1].split("/")[0].isdigit():
                media.append(SdpMedia(parts[0], int(parts[1].split("/")[0]), parts[2],
                                      parts[3:], session_address))
        elif kind == "a":
            name, _, rest = value.partition(":")
            if name == "fingerprint":
                if current is None:
                    session_fingerprint = rest
                else:
                    current.fingerprint = rest
            elif current is None:
                continue
            elif name == "crypto":
                parts = rest.split()
                if len(parts) >= 3:
                    current.crypto.append(SdesKey(parts[0], parts[1], parts[2]))
            elif name == "setup":
                current.setup = rest
            elif name == "rtpmap":
                pt, _, codec = rest.partition(" ")
                if pt.isdigit():
                    current.rtpmap[int(pt)] = codec
            elif name == "candidate":
                current.candidates.append(rest)
    for m in media:
        m.fingerprint = m.fingerprint or session_fingerprint
    return media
