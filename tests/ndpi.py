"""Reading nDPI's expected output (`<capture>.ndpi.out`) as an independent app reference."""

from __future__ import annotations

import re
from pathlib import Path

LINE = re.compile(r"^\s+\d+\s+(UDP|TCP)\s+(\S+)\s+(?:<->|->)\s+(\S+)\s+(?:\[VLAN: \d+\])?"
                  r"\[proto: ([^\]]+)\]")
# nDPI application names -> flowscan's.
APP_NAMES = {"Zoom": "zoom", "Teams": "teams", "Skype_Teams": "teams",
             "Skype_TeamsCall": "teams", "GoogleMeet": "meet", "GoogleCall": "meet",
             "Webex": "webex", "WhatsApp": "whatsapp", "WhatsAppCall": "whatsapp",
             "Signal": "signal", "Telegram": "telegram", "Discord": "discord",
             "FaceTime": "facetime", "Jitsi": "jitsi", "SIP": "sip"}

Endpoint = tuple[str, int]


def endpoint(text: str) -> Endpoint:
    host, port = text.rsplit(":", 1)
    return host.strip("[]"), int(port)


def vtc_flows(path: Path) -> list[tuple[str, Endpoint, Endpoint, str, str]]:
    """(transport, endpoint a, endpoint b, flowscan app name, nDPI's proto label)."""
    out = []
    for line in path.read_text().splitlines():
        m = LINE.match(line)
        if not m:
            continue
        label = m.group(4)
        app = APP_NAMES.get(label.split("/")[-1].split(".")[-1])
        if app:
            out.append((m.group(1).lower(), endpoint(m.group(2)), endpoint(m.group(3)), app,
                        label))
    return out
