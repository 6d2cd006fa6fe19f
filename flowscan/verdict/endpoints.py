"""Who is at the other end of a DTLS association: a participant's device or a server?

End-to-end from the wire alone needs positive evidence that the DTLS peer is a participant
(issue 17). Two kinds of evidence are read here:

- The network an address sits on, from the ASN database (flowscan.geo): data-centre,
  cloud and service networks host servers and relays; residential and mobile access
  networks host participants. Small curated tables: well-known ASNs (flowscan.geo.networks),
  then keywords of operators' registered names (below). An address on neither list is unknown,
  which is never evidence either way.
- The DTLS certificate. WebRTC endpoints make a fresh self-signed certificate and
  authenticate it by the fingerprint in their signalling (RFC 5763 section 5; RFC 8827
  section 6.5); browsers and libraries name it with a fixed or random token ("WebRTC", a
  hex string). A certificate naming a host (a DNS name in CN or SAN), an organisation
  (O=), a server role (media router, SFU, bridge...) or issued by another party is a
  server's.
"""

from __future__ import annotations

import re

from flowscan.apps import domain_app
from flowscan.geo.networks import ACCESS, HOSTING, of_kind

# An address on a data-centre, cloud or service network is a server's or relay's; one on
# a residential or mobile access network is a subscriber's.
HOSTING_ASNS = of_kind(HOSTING)
ACCESS_ASNS = of_kind(ACCESS)
HOSTING_WORDS = ("hosting", "host ", "cloud", "data center", "datacenter", "data centre",
                 "datacentre", "server", "colocation", "vps", "amazon", "google llc",
                 "google ireland", "google cloud", "microsoft corp", "oracle", "hetzner",
                 "ovh", "digitalocean", "linode", "akamai", "vultr", "choopa", "leaseweb",
                 "contabo", "scaleway", "cloudflare", "fastly", "alibaba", "tencent",
                 "rackspace", "softlayer", "equinix", "zoom video", "facebook",
                 "meta platforms", "i3d", "twilio", "cisco")
ACCESS_WORDS = ("broadband", "cable", "kabel", "telecom", "telekom", "telecommunication",
                "mobile", "wireless", "cellular", "dsl", "fiber", "fibre", "vodafone",
                "orange", "comcast", "verizon", "t-mobile", "telefonica", "telenor", "telia",
                "residential", "internet service")


def network_kind(asn: int | None, organisation: str | None) -> tuple[str, str] | None:
    """("hosting" or "access", why) for a network, or None when it is not known.
    Hosting is checked first: service operators' names may contain access words
    ("... Communications")."""
    org = (organisation or "").lower()
    if asn in HOSTING_ASNS:
        return "hosting", f"AS{asn} ({organisation or HOSTING_ASNS[asn]}) is a data-centre, " \
                          "cloud or service network"
    word = next((w for w in HOSTING_WORDS if w in org + " "), None)
    if word:
        return "hosting", f"AS{asn} ({organisation}) names a hosting or service operator " \
                          f"('{word.strip()}')"
    if asn in ACCESS_ASNS:
        return "access", f"AS{asn} ({organisation or ACCESS_ASNS[asn]}) is a residential " \
                         "or mobile access network"
    word = next((w for w in ACCESS_WORDS if w in org), None)
    if word:
        return "access", f"AS{asn} ({organisation}) names an access provider ('{word}')"
    return None


SERVER_ROLES = ("media", "router", "sfu", "mcu", "relay", "turn", "bridge", "server",
                "gateway", "edge", "conference", "jvb", "janus", "mediasoup", "livekit")
_DNS_NAME = re.compile(r"^(\*\.)?([a-z0-9-]+\.)+[a-z]{2,}$")
_TOKEN = re.compile(r"^[A-Za-z0-9+/=_-]{8,}$")


def _attributes(name: str) -> dict[str, str]:
    """RFC 4514 string to attributes (escaped commas are rare in these names)."""
    out: dict[str, str] = {}
    for part in re.split(r"(?<!\\),", name):
        key, _, value = part.partition("=")
        if value:
            out.setdefault(key.strip().upper(), value.strip())
    return out


def server_certificate(cert: dict[str, object]) -> str | None:
    """Why a certificate is a server's, or None if it could be a participant's."""
    subject = str(cert.get("subject") or "")
    issuer = str(cert.get("issuer") or "")
    attrs = _attributes(subject)
    cn = attrs.get("CN", "")
    names = [str(n) for n in (cert.get("dns_names") or [])]  # type: ignore[attr-defined]
    for name in [cn, *names]:
        app = domain_app(name) if name else None
        if app:
            return f"it names {name}, a {app} host"
    hosts = [n for n in [cn, *names] if _DNS_NAME.match(n.lower())]
    if hosts:
        return f"it names the host {hosts[0]}"
    if "O" in attrs:
        return f"it names an organisation (O={attrs['O']})"
    low = cn.lower()
    role = next((r for r in SERVER_ROLES if r in low), None)
    if role and not _random(cn):
        return f"its name (CN={cn}) describes a server role ('{role}')"
    if issuer and subject and issuer != subject:
        return f"it was issued by {issuer}, not self-signed"
    return None


def throwaway_certificate(cert: dict[str, object]) -> bool:
    """Self-signed with only a CN of "WebRTC" or a random-looking token: what WebRTC
    stacks generate per call (RFC 5763 section 5)."""
    subject = str(cert.get("subject") or "")
    attrs = _attributes(subject)
    cn = attrs.get("CN", "")
    if set(attrs) != {"CN"} or cert.get("dns_names") or cert.get("issuer") != subject:
        return False
    return cn.lower() == "webrtc" or _random(cn)


def _random(name: str) -> bool:
    """A random token such as aiortc's 32 hex digits: no separators, digits and letters."""
    return bool(_TOKEN.match(name)) and sum(c.isdigit() for c in name) >= 3 and any(
        c.isalpha() for c in name) and not re.search(r"[-_.]", name)
