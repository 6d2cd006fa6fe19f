"""One WebRTC participant for the lab, run inside its network namespace.

A real aiortc stack: ICE with host candidates only (no external STUN or TURN server unless
the scenario gives its own relay), DTLS-SRTP, Opus audio and VP8 video from synthetic
sources. Signalling goes through the orchestrator over stdin/stdout as JSON lines, never
over the network. DTLS secrets are written in NSS key log format through OpenSSL's keylog
callback, so the capture can be decrypted later.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from pathlib import Path

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceServer,
    RTCIceTransportPolicy,
    RTCPeerConnection,
    RTCSessionDescription,
)
from aiortc.mediastreams import AudioStreamTrack, VideoStreamTrack
from aiortc.rtcdtlstransport import RTCCertificate


def install_keylog(path: Path) -> None:
    """Every DTLS context aiortc makes logs its secrets to path (SSLKEYLOGFILE format)."""
    original = RTCCertificate._create_ssl_context

    def with_keylog(self, srtp_profiles):  # type: ignore[no-untyped-def]
        ctx = original(self, srtp_profiles)

        def log(_conn, line: bytes) -> None:  # type: ignore[no-untyped-def]
            with path.open("ab") as f:
                f.write(line + b"\n")

        ctx.set_keylog_callback(log)
        return ctx

    RTCCertificate._create_ssl_context = with_keylog  # type: ignore[method-assign]


def send(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def receive() -> dict[str, object]:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    if not line:
        raise SystemExit("signalling closed")
    return json.loads(line)


async def run(args: argparse.Namespace) -> None:
    servers = []
    if args.turn:
        servers = [RTCIceServer(urls=f"turn:{args.turn}?transport=udp",
                                username=args.turn_user, credential=args.turn_password)]
    policy = RTCIceTransportPolicy.RELAY if args.relay_only else RTCIceTransportPolicy.ALL
    # BUNDLE: audio and video on one 5-tuple, as browsers do.
    config = RTCConfiguration(iceServers=servers, iceTransportPolicy=policy,
                              bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
    pc = RTCPeerConnection(config)
    done = asyncio.Event()

    @pc.on("connectionstatechange")
    async def on_state() -> None:
        send({"state": pc.connectionState})
        if pc.connectionState in ("failed", "closed"):
            done.set()

    pc.addTrack(AudioStreamTrack())
    pc.addTrack(VideoStreamTrack())
    if args.role == "offer":
        await pc.setLocalDescription(await pc.createOffer())
        send({"sdp": pc.localDescription.sdp, "type": "offer"})
        answer = await receive()
        await pc.setRemoteDescription(RTCSessionDescription(str(answer["sdp"]), "answer"))
    else:
        offer = await receive()
        await pc.setRemoteDescription(RTCSessionDescription(str(offer["sdp"]), "offer"))
        await pc.setLocalDescription(await pc.createAnswer())
        send({"sdp": pc.localDescription.sdp, "type": "answer"})
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), timeout=args.duration)
    await pc.close()
    send({"done": True})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--role", choices=("offer", "answer"), required=True)
    parser.add_argument("--keylog", type=Path, required=True)
    parser.add_argument("--duration", type=float, default=3.0)
    parser.add_argument("--turn")
    parser.add_argument("--turn-user", default="lab")
    parser.add_argument("--turn-password", default="lab")
    parser.add_argument("--relay-only", action="store_true")
    args = parser.parse_args()
    install_keylog(args.keylog)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
