"""One headless Chromium participant for the lab, run inside its network namespace.

libwebrtc as the services' web clients run it: fake camera and microphone, ICE restricted
to the relay candidates of the TURN server the scenario gives (over TCP or TLS), DTLS-SRTP.
The page is served by this process on the namespace's loopback; selenium drives it with
Debian's chromedriver. Signalling is the same JSON lines over stdin/stdout as the aiortc
peer's (webrtc_peer.py), so the orchestrator pairs either with either. Chromium does not
export its DTLS secrets: the keys of a call come from the aiortc peer at the other end.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGE = b"""<!doctype html><meta charset="utf-8"><title>lab</title><script>
window.lab = {states: []};
async function labOffer(iceServers) {
  const pc = new RTCPeerConnection({iceServers, iceTransportPolicy: 'relay',
                                    bundlePolicy: 'max-bundle'});
  lab.pc = pc;
  pc.onconnectionstatechange = () => lab.states.push(pc.connectionState);
  const stream = await navigator.mediaDevices.getUserMedia(
    {audio: true, video: {width: 320, height: 180, frameRate: 15}});
  for (const track of stream.getTracks()) pc.addTrack(track, stream);
  const gathered = new Promise(done => {
    pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && done();
  });
  await pc.setLocalDescription(await pc.createOffer());
  await gathered;
  return pc.localDescription.sdp;
}
</script>"""

FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--use-fake-device-for-media-stream",
         "--use-fake-ui-for-media-stream", "--ignore-certificate-errors",
         "--disable-features=WebRtcHideLocalIpsWithMdns")


class _Page(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args: Any) -> None:
        pass


def send(message: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace, profile: str) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    options = webdriver.ChromeOptions()
    options.binary_location = args.chromium
    flags = [*FLAGS, f"--user-data-dir={profile}"]
    if args.tls_keylog:  # the TLS to a turns: server is Chromium's own network stack's
        flags.append(f"--ssl-key-log-file={args.tls_keylog}")
    for flag in flags:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
    try:
        driver.set_script_timeout(30)
        driver.get(f"http://127.0.0.1:{server.server_port}/")
        servers = [{"urls": args.turn, "username": args.turn_user,
                    "credential": args.turn_password}]
        sdp = driver.execute_async_script(
            "labOffer(arguments[0]).then(arguments[1], e => arguments[1]('ERROR ' + e))",
            servers)
        if sdp.startswith("ERROR"):
            raise SystemExit(sdp)
        send({"sdp": sdp, "type": "offer", "peer": "chromium"})
        answer = json.loads(sys.stdin.readline())
        driver.execute_async_script(
            "lab.pc.setRemoteDescription({type: 'answer', sdp: arguments[0]})"
            ".then(() => arguments[1]())", answer["sdp"])
        _follow(driver, args.duration)
    finally:
        driver.quit()
        server.shutdown()
    send({"done": True})


def _follow(driver: Any, duration: float) -> None:
    """Report each connection state as it changes, for the call's duration once connected."""
    seen = 0
    end = time.monotonic() + 20
    while time.monotonic() < end:
        states = driver.execute_script("return lab.states")
        for state in states[seen:]:
            send({"state": state})
            if state == "connected":
                end = time.monotonic() + duration
            elif state in ("failed", "closed"):
                return
        seen = len(states)
        time.sleep(0.2)
    driver.execute_script("lab.pc.close()")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turn", required=True, help="turn: or turns: URL")
    parser.add_argument("--turn-user", required=True)
    parser.add_argument("--turn-password", required=True)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--tls-keylog", help="where Chromium writes its TLS secrets")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    args = parser.parse_args()
    # Stopped by the lab (a call that failed): still quit chromedriver and Chromium.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    with tempfile.TemporaryDirectory(prefix="flowscan-chromium-") as profile:
        run(args, profile)


if __name__ == "__main__":
    main()
