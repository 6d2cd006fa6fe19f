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


def run(args: argparse.Namespace) -> None:
    origin = "/".join(args.url.split("/")[:3])
    driver = chromium(args.profile, args.log, args.rtp_dump, origin)
    try:
        driver.get(args.url)
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--profile", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--timeout", type=float, default=30.0)
    parser.add_argument("--subscriptions", type=int, default=1)
    parser.add_argument("--rtp-dump", action="store_true")
    args = parser.parse_args()
    try:
        run(args)
    except Exception as exc:  # noqa: BLE001 - the orchestrator gets one line, the log the rest
        print(f"browser failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        send({"state": "failed"})
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
