"""A direct call between two browsers: Firefox ESR (NSS) and Chromium (BoringSSL), which
both offer DTLS 1.3, so the call is keyed by DTLS 1.3 (RFC 9147) with its exporter.

The page (page/p2p.html) is served from alice's namespace; the lab carries the offer and
the answer between the two browsers (no signalling server on the wire). Firefox writes its
DTLS 1.3 secrets (handshake and traffic secrets and EXPORTER_SECRET) to SSLKEYLOGFILE; bob's
Chromium logs his RTP before protection and after unprotection (its RtpDump field trial).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from flowscan.lab import scenarios as lab
from flowscan.lab.janus import (
    HTTP_PORT,
    browser,
    end,
    serve_page,
    stack_versions,
    write_rtp_dump,
)
from flowscan.lab.netns import LabError, LabNetwork
from flowscan.lab.rewrite import short_term_key

RTP_DUMP = "rtp-dump-bob.txt"


def _pass(source: lab._Helper, target: lab._Helper) -> str:
    sdp = str(lab._read(source, "sdp", timeout=60)["sdp"])
    assert target.stdin is not None
    target.stdin.write(json.dumps({"sdp": sdp}) + "\n")
    target.stdin.flush()
    return sdp


def p2p_call(scenario: lab.Scenario, net: LabNetwork, work: Path) -> dict[str, Any]:
    """alice (Firefox) offers, bob (Chromium) answers; captured at alice."""
    site = serve_page(net, work, "alice")
    url = f"http://{net.host('alice').address}:{HTTP_PORT}/p2p.html?role="
    capture = lab._tcpdump(net, "alice", work / "raw.pcap", "ip and udp")
    peers: list[lab._Helper] = []
    try:
        peers.append(browser(net, "alice", url + "offer", work, "firefox",
                             "--exchange", "offer"))
        peers.append(browser(net, "bob", url + "answer", work, "chromium",
                             "--exchange", "answer"))
        sdps = [_pass(peers[0], peers[1]), _pass(peers[1], peers[0])]
        states = [lab._final_state(p) for p in peers]
        for peer in peers:
            lab._read(peer, "done", timeout=60)
    finally:
        end(peers, terminate=False)
        time.sleep(0.5)
        lab._stop(capture)
        end([site], terminate=True)
    nss = work / "keys-alice.log"
    if not nss.exists():
        raise LabError("Firefox wrote no DTLS secrets (SSLKEYLOGFILE)")
    keylog = work / "keys.log"
    keylog.write_text("".join(line for line in nss.read_text().splitlines(keepends=True)
                              if not line.startswith("#")))
    dump = write_rtp_dump(work / "bob-driver.log", work / RTP_DUMP)
    versions = stack_versions(firefox=True)
    del versions["sfu"], versions["client"]
    passwords = [p for sdp in sdps for p in lab._ice_credentials(sdp)]
    return {"keys": [short_term_key(p) for p in passwords], "ice_passwords": passwords,
            "states": states, "keylog": keylog, "files": [dump],
            "manifest": {"stacks": versions, "rtp_dump": RTP_DUMP}}
