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


def install_sframe(base_key: bytes, kid: int) -> None:
    """Participants protect each encoded frame with SFrame before packetisation and remove
    it after depacketisation (RFC 9605 section 4.1): the SFU forwards what it cannot read."""
    from aiortc.codecs import opus, vpx

    from flowscan.crypto import sframe

    counter = iter(range(1 << 40))

    def protect(frame: bytes) -> bytes:
        return sframe.protect(base_key, kid, next(counter), frame)

    def unprotect(data: bytes) -> bytes:
        return sframe.unprotect(base_key, data) or b""

    packetize = vpx.Vp8Encoder._packetize  # a classmethod: bound to the class already
    vpx.Vp8Encoder._packetize = staticmethod(  # type: ignore[method-assign]
        lambda buffer, picture_id: packetize(protect(buffer), picture_id))
    opus_encode = opus.OpusEncoder.encode

    def encode(self, frame, force_keyframe=False):  # type: ignore[no-untyped-def]
        payloads, timestamp = opus_encode(self, frame, force_keyframe)
        return [protect(p) for p in payloads], timestamp

    opus.OpusEncoder.encode = encode  # type: ignore[method-assign]
    for decoder in (vpx.Vp8Decoder, opus.OpusDecoder):
        original = decoder.decode

        def decode(self, encoded, _original=original):  # type: ignore[no-untyped-def]
            encoded.data = unprotect(encoded.data)
            return _original(self, encoded) if encoded.data else []

        decoder.decode = decode  # type: ignore[method-assign]


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
    if not args.audio_only:  # a SIP phone at the other end of a media relay takes audio
        pc.addTrack(VideoStreamTrack())
    if args.role == "offer":
        await pc.setLocalDescription(await pc.createOffer())
        send({"sdp": pc.localDescription.sdp, "type": "offer", "peer": args.name})
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
    parser.add_argument("--name", default="")
    parser.add_argument("--audio-only", action="store_true")
    parser.add_argument("--sframe-key", help="hex base key: protect frames with SFrame")
    parser.add_argument("--sframe-kid", type=int, default=0)
    args = parser.parse_args()
    install_keylog(args.keylog)
    if args.sframe_key:
        install_sframe(bytes.fromhex(args.sframe_key), args.sframe_kid)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
