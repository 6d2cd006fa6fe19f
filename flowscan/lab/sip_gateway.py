"""The lab's WebRTC-to-SIP gateway: signalling for rtpengine, run in the relay's namespace.

It takes a WebRTC offer (JSON lines on stdin, as the SFU does), has rtpengine rewrite it
over the ng control protocol (bencode over UDP) into plain RTP/AVP without ICE or DTLS,
calls the SIP phone with it (INVITE, 200, ACK: RFC 3261 sections 13 and 17), has rtpengine
rewrite the phone's answer back into DTLS-SRTP with ICE, and answers the WebRTC peer with
it. rtpengine then bridges the media: it terminates DTLS-SRTP on the WebRTC leg and
forwards plain RTP on the SIP leg. At the end: BYE, and rtpengine's delete.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from typing import Any

Bencoded = int | bytes | str | list[Any] | dict[str, Any]


def bencode(value: Bencoded) -> bytes:
    """The ng protocol's encoding (BitTorrent's bencode): integers, strings, lists and
    dictionaries with sorted keys."""
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(v) for k, v in sorted(value.items())) + b"e"


def bdecode(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """One bencoded value at data[pos:] and where it ends; strings decode as UTF-8."""
    head = data[pos:pos + 1]
    if head == b"i":
        end = data.index(b"e", pos)
        return int(data[pos + 1:end]), end + 1
    if head in (b"l", b"d"):
        items = []
        pos += 1
        while data[pos:pos + 1] != b"e":
            item, pos = bdecode(data, pos)
            items.append(item)
        if head == b"l":
            return items, pos + 1
        return dict(zip(items[::2], items[1::2], strict=True)), pos + 1
    colon = data.index(b":", pos)
    size = int(data[pos:colon])
    return data[colon + 1:colon + 1 + size].decode(errors="replace"), colon + 1 + size


class Rtpengine:
    """A client of rtpengine's ng protocol: "cookie bencoded-dict" requests over UDP."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)

    def command(self, name: str, params: dict[str, Bencoded]) -> dict[str, Any]:
        cookie = os.urandom(6).hex().encode()
        self.sock.sendto(cookie + b" " + bencode({"command": name, **params}), self.address)
        while True:
            data = self.sock.recv(65535)
            if data.startswith(cookie + b" "):
                reply, _ = bdecode(data, len(cookie) + 1)
                if reply.get("result") != "ok":
                    raise SystemExit(f"rtpengine {name}: {reply.get('error-reason', reply)}")
                return dict(reply)


class SipCall:
    """A SIP user agent client with one call: just enough of RFC 3261 for a gateway."""

    def __init__(self, local: str, remote: str) -> None:
        self.local, self.remote = local, remote
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((local, 5060))
        self.sock.settimeout(10)
        self.call_id = f"{os.urandom(8).hex()}@{local}"
        self.from_tag = os.urandom(4).hex()
        self.to_tag = ""
        self.target = f"sip:bob@{remote}"

    def _request(self, method: str, cseq: int, body: str = "") -> None:
        to_tag = f";tag={self.to_tag}" if self.to_tag else ""
        lines = [f"{method} {self.target} SIP/2.0",
                 f"Via: SIP/2.0/UDP {self.local}:5060;branch=z9hG4bK{os.urandom(6).hex()}",
                 "Max-Forwards: 70", f"From: <sip:gateway@{self.local}>;tag={self.from_tag}",
                 f"To: <sip:bob@{self.remote}>{to_tag}", f"Call-ID: {self.call_id}",
                 f"CSeq: {cseq} {method}", f"Contact: <sip:gateway@{self.local}:5060>"]
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(),
                         (self.remote, 5060))

    def _final(self, method: str) -> tuple[str, str]:
        """The final response to method: its head and body (provisional ones skipped)."""
        while True:
            data = self.sock.recv(65535).decode(errors="replace")
            head, _, body = data.partition("\r\n\r\n")
            status = head.split("\r\n", 1)[0].split(" ")
            if status[0] != "SIP/2.0" or f" {method}\r\n" not in head + "\r\n":
                continue
            if int(status[1]) >= 200:
                return head, body

    def invite(self, sdp: str) -> str:
        self._request("INVITE", 1, sdp)
        head, body = self._final("INVITE")
        if not head.startswith("SIP/2.0 200"):
            raise SystemExit(f"the phone refused the call: {head.splitlines()[0]}")
        for line in head.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() in ("to", "t") and ";tag=" in value:
                self.to_tag = value.split(";tag=", 1)[1].split(";")[0].strip()
            if name.strip().lower() in ("contact", "m"):
                self.target = value.strip().strip("<>").split(">")[0]
        self._request("ACK", 1)
        return body

    def bye(self) -> None:
        self._request("BYE", 2)
        self._final("BYE")


def send(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--local", required=True, help="this host's address (SIP)")
    parser.add_argument("--phone", required=True, help="the SIP phone's address")
    parser.add_argument("--ng", default="127.0.0.1:2223")
    parser.add_argument("--duration", type=float, default=5.0)
    args = parser.parse_args()
    host, port = args.ng.rsplit(":", 1)
    engine = Rtpengine((host, int(port)))
    offer = json.loads(sys.stdin.readline())
    call = SipCall(args.local, args.phone)
    ids: dict[str, Bencoded] = {"call-id": call.call_id, "from-tag": call.from_tag}
    # WebRTC -> SIP: plain RTP, no ICE, RTCP on its own port as a phone expects.
    to_phone = engine.command("offer", {
        **ids, "sdp": offer["sdp"], "transport-protocol": "RTP/AVP", "ICE": "remove",
        "rtcp-mux": ["demux"], "replace": ["origin", "session-connection"]})
    phone_sdp = call.invite(str(to_phone["sdp"]))
    # SIP -> WebRTC: rtpengine answers the WebRTC offer in its own terms (DTLS-SRTP, ICE).
    to_peer = engine.command("answer", {
        **ids, "sdp": phone_sdp, "to-tag": call.to_tag,
        "replace": ["origin", "session-connection"]})
    send({"sdp": to_peer["sdp"], "type": "answer"})
    time.sleep(args.duration)
    call.bye()
    engine.command("delete", ids)
    send({"done": True})


if __name__ == "__main__":
    main()
