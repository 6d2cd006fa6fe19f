"""A selective forwarding unit for the lab, run inside its network namespace.

It answers every participant's offer with its own aiortc peer connection, so each leg has
its own ICE, DTLS handshake and SRTP keys, as in a production SFU. RTP that arrives on one
leg, already decrypted with that leg's keys, is sent on every other leg re-encrypted with
that leg's keys, without being decoded: the SFU can read codec frames, but not what
participants protected end to end with SFrame.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from flowscan.lab.webrtc_peer import install_keylog, send


class SilentTrack(MediaStreamTrack):
    """A track the SFU offers back but never feeds: what it sends is forwarded RTP."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    async def recv(self) -> Any:
        await asyncio.Event().wait()


async def run(args: argparse.Namespace) -> None:
    legs: dict[str, Any] = {}  # participant -> its DTLS transport
    connections: list[RTCPeerConnection] = []
    loop = asyncio.get_running_loop()
    for _ in range(args.participants):
        line = await loop.run_in_executor(None, sys.stdin.readline)
        offer = json.loads(line)
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[],
                                                bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
        connections.append(pc)
        pc.addTrack(SilentTrack("audio"))
        pc.addTrack(SilentTrack("video"))
        await pc.setRemoteDescription(RTCSessionDescription(offer["sdp"], "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        name = str(offer["peer"])
        transport = pc.getTransceivers()[0].sender.transport
        legs[name] = transport
        _forward_from(name, transport, legs)
        send({"peer": name, "sdp": pc.localDescription.sdp})
    await asyncio.sleep(args.duration)
    for pc in connections:
        await pc.close()
    send({"done": True})


def _forward_from(name: str, transport: Any, legs: dict[str, Any]) -> None:
    original = transport._handle_rtp_data

    async def forward(data: bytes, arrival_time_ms: int) -> None:
        for other, leg in legs.items():
            if other != name and leg.state == "connected":
                with contextlib.suppress(ConnectionError):
                    await leg._send_rtp(data)  # protected with that leg's SRTP keys
        await original(data, arrival_time_ms)

    transport._handle_rtp_data = forward


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--participants", type=int, required=True)
    parser.add_argument("--keylog", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=4.0)
    args = parser.parse_args()
    install_keylog(args.keylog)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
