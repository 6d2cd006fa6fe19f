"""SRTP decryption speed: flowscan's SrtpContext against libsrtp (pylibsrtp) on the same packets.

Target (issue #6): at least 100,000 SRTP packets decrypted and verified per second. Packets are
protected by libsrtp with a random key (video-sized, 1,100-byte payloads, and audio-sized,
160 bytes), then unprotected by both implementations in the same run.

    python benchmarks/srtp.py [--packets 200000]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import time

import pylibsrtp

from flowscan.crypto.srtp import PROFILES, SrtpContext

LIBSRTP_IDS = {"SRTP_AES128_CM_HMAC_SHA1_80": "SRTP_PROFILE_AES128_CM_SHA1_80",
               "SRTP_AEAD_AES_128_GCM": "SRTP_PROFILE_AEAD_AES_128_GCM"}


def measure(name: str, count: int, size: int) -> dict[str, object]:
    profile = PROFILES[name]
    key = os.urandom(profile.key_len + profile.salt_len)

    def policy(direction: int) -> pylibsrtp.Policy:
        return pylibsrtp.Policy(key=key, ssrc_type=direction,
                                srtp_profile=getattr(pylibsrtp.Policy, LIBSRTP_IDS[name]))

    sender = pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_OUTBOUND))
    body = os.urandom(size)
    packets = [sender.protect(struct.pack(">BBHII", 0x80, 96, i & 0xFFFF, i * 3000, 0x1234)
                              + body) for i in range(count)]
    ours = SrtpContext(profile, key[:profile.key_len], key[profile.key_len:])
    start = time.perf_counter()
    for packet in packets:
        ours.unprotect_rtp(packet)
    flowscan_s = time.perf_counter() - start
    assert ours.decrypted == count and ours.failed == 0
    receiver = pylibsrtp.Session(policy(pylibsrtp.Policy.SSRC_ANY_INBOUND))
    start = time.perf_counter()
    for packet in packets:
        receiver.unprotect(packet)
    libsrtp_s = time.perf_counter() - start
    return {"profile": name, "payload_bytes": size, "packets": count,
            "flowscan_pps": round(count / flowscan_s), "libsrtp_pps": round(count / libsrtp_s),
            "target_pps": 100_000, "met": count / flowscan_s >= 100_000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=200_000)
    args = parser.parse_args()
    results = [measure(name, args.packets, size)
               for name in LIBSRTP_IDS for size in (160, 1100)]
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
