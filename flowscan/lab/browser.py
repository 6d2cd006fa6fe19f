"""One browser participant for the lab, run inside its network namespace.

Debian's headless Chromium, driven by selenium through Debian's chromedriver, with a fake
camera and microphone, loads the lab's call page by IP address and reports its progress on
stdout as JSON lines ({"state": ...}, then {"done": ..., "page": ...}), as the aiortc peer
does. Every Chromium background service that could reach out is switched off, and the
namespace has no route out anyway. With --rtp-dump, libwebrtc logs every RTP header before
protection (the WebRTC-Debugging-RtpDump field trial) to the Chromium log: the independent
truth of what the SRTP on the wire carries.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FIREFOX = "/usr/bin/firefox-esr"
CHROMIUM_FLAGS = (
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
    "--disable-client-side-phishing-detection", "--no-default-browser-check",
    "--metrics-recording-only", "--disable-features=MediaRouter,OptimizationHints,"
    "Translate,WebRtcHideLocalIpsWithMdns", "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream", "--autoplay-policy=no-user-gesture-required",
)


def send(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


def chromium(profile: Path, log: Path, rtp_dump: bool, origin: str) -> Any:
    """Chromium by selenium; the page's origin (http, by IP) counts as secure, as a
    production page on https would, so getUserMedia and WebCrypto exist."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--unsafely-treat-insecure-origin-as-secure={origin}")
    if rtp_dump:
        options.add_argument("--enable-logging=stderr")
        options.add_argument("--v=1")
        options.add_argument("--force-fieldtrials=WebRTC-Debugging-RtpDump/Enabled/")
    service = Service(CHROMEDRIVER, log_output=str(log))
    return webdriver.Chrome(service=service, options=options)


# Firefox ESR: a profile the lab writes. A fake camera and microphone granted without asking,
# getUserMedia on the lab's http origin, host candidates by address (no mDNS), and every
# service that would reach out (updates, telemetry, safe browsing, remote settings, captive
# portal, DNS over HTTPS, the OpenH264 download) off.
FIREFOX_PREFS = {
    "media.navigator.streams.fake": True, "media.navigator.permission.disabled": True,
    "media.devices.insecure.enabled": True, "media.getusermedia.insecure.enabled": True,
    "media.peerconnection.ice.obfuscate_host_addresses": False,
    "media.autoplay.default": 0, "marionette.port": 2828,
    "app.update.enabled": False, "app.update.auto": False,
    "toolkit.telemetry.enabled": False, "toolkit.telemetry.unified": False,
    "datareporting.healthreport.uploadEnabled": False,
    "datareporting.policy.dataSubmissionEnabled": False,
    "browser.safebrowsing.malware.enabled": False,
    "browser.safebrowsing.phishing.enabled": False,
    "browser.safebrowsing.downloads.enabled": False,
    "browser.shell.checkDefaultBrowser": False, "browser.startup.homepage_override.mstone":
    "ignore", "browser.newtabpage.enabled": False, "browser.startup.page": 0,
    "network.captive-portal-service.enabled": False, "network.connectivity-service.enabled":
    False, "network.trr.mode": 5, "network.dns.disablePrefetch": True,
    "network.prefetch-next": False, "services.settings.server": "http://127.0.0.1:9/",
    "extensions.update.enabled": False, "media.gmp-manager.updateEnabled": False,
    "media.gmp-gmpopenh264.enabled": False, "browser.region.network.url": "",
    "browser.search.update": False,
}


def firefox(profile: Path, log: Path, origin: str) -> Any:
    """Firefox ESR with Marionette, connected to by marionette_driver (Debian has no
    geckodriver); its NSS writes DTLS secrets to $SSLKEYLOGFILE, inherited from the lab."""
    import socket
    import subprocess

    from marionette_driver.marionette import Marionette

    profile.mkdir(parents=True, exist_ok=True)
    # The page's http origin counts as secure (WebCrypto in the SFrame worker), as Chromium's
    # --unsafely-treat-insecure-origin-as-secure makes it there.
    prefs = {**FIREFOX_PREFS, "dom.securecontext.allowlist": origin.split("//")[1].split(":")[0]}
    (profile / "user.js").write_text("".join(
        f"user_pref({json.dumps(k)}, {json.dumps(v)});\n" for k, v in prefs.items()))
    with log.open("w") as out:
        proc = subprocess.Popen([FIREFOX, "--headless", "--marionette", "--no-remote",
                                 "--profile", str(profile), "about:blank"],
                                stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", 2828), timeout=1).close()
            break
        except OSError:
            time.sleep(0.3)
    client = Marionette(host="127.0.0.1", port=2828)
    client.start_session()
    return _Firefox(client, proc)


class _Firefox:
    """The two calls the lab makes, as selenium's driver names them."""

    def __init__(self, client: Any, proc: Any) -> None:
        self.client, self.proc = client, proc

    def get(self, url: str) -> None:
        self.client.navigate(url)

    def execute_script(self, script: str, *args: Any) -> Any:
        return self.client.execute_script(script.replace("window.", "window.wrappedJSObject."),
                                          script_args=list(args), new_sandbox=False)

    def quit(self) -> None:
        try:
            self.client.delete_session()
        finally:
            self.proc.terminate()
            self.proc.wait(timeout=20)


def run(args: argparse.Namespace) -> None:
    origin = "/".join(args.url.split("/")[:3])
    driver = (firefox(args.profile, args.log, origin) if args.browser == "firefox"
              else chromium(args.profile, args.log, args.rtp_dump, origin))
    try:
        driver.get(args.url)
        if args.exchange:
            _exchange(driver, args.exchange, args.timeout)
        deadline = time.monotonic() + args.timeout
        page: dict[str, Any] = {}
        while time.monotonic() < deadline:
            page = driver.execute_script("return window.lab || {}")
            if page.get("errors"):
                break
            if page.get("published") and page.get("subscribed", 0) >= args.subscriptions:
                break
            time.sleep(0.2)
        connected = bool(page.get("published")) and page.get("subscribed", 0) >= (
            args.subscriptions) and not page.get("errors")
        send({"state": "connected" if connected else "failed"})
        if connected:
            time.sleep(args.seconds)
            page = driver.execute_script("return window.lab || {}")
        print(f"page state: {json.dumps(page)}", file=sys.stderr)
        send({"done": True, "page": page})
    finally:
        driver.quit()


def _exchange(driver: Any, role: str, timeout: float) -> None:
    """A direct call's offer and answer, carried by the lab over stdin/stdout: the answerer
    takes the offer first, the offerer sends first."""
    if role == "answer":
        driver.execute_script("window.labRemote(arguments[0])", json.loads(input())["sdp"])
    deadline = time.monotonic() + timeout
    local = None
    while local is None and time.monotonic() < deadline:
        page = driver.execute_script("return window.lab || {}")
        if page.get("errors"):
            raise RuntimeError(f"the page failed: {page['errors']}")
        local = page.get("local")
        time.sleep(0.2)
    send({"sdp": local})
    if role == "offer":
        driver.execute_script("window.labRemote(arguments[0])", json.loads(input())["sdp"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--subscriptions", type=int, default=1)
    parser.add_argument("--rtp-dump", action="store_true")
    parser.add_argument("--browser", choices=("chromium", "firefox"), default="chromium")
    parser.add_argument("--exchange", choices=("offer", "answer"),
                        help="a direct call: carry the SDP over stdin/stdout")
    args = parser.parse_args()
    try:
        run(args)
    except Exception as exc:  # noqa: BLE001 - the orchestrator gets one line, the log the rest
        print(f"browser failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        send({"state": "failed"})
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
