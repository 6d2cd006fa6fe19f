"""Who is at the other end of a DTLS association: a participant's device or a server?

End-to-end from the wire alone needs positive evidence that the DTLS peer is a participant
(issue 17). Two kinds of evidence are read here:

- The network an address sits on, from the ASN database (flowscan.geo): data-centre,
  cloud and service networks host servers and relays; residential and mobile access
  networks host participants. The tables below are small and curated: well-known ASNs,
  then keywords of operators' registered names. An address on neither list is unknown,
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

# Data-centre, cloud and service networks: an address there is a server or relay.
HOSTING_ASNS = {14618: "Amazon", 16509: "Amazon", 15169: "Google", 396982: "Google",
                43515: "Google", 8075: "Microsoft", 31898: "Oracle", 24940: "Hetzner",
                16276: "OVH", 14061: "DigitalOcean", 63949: "Akamai/Linode",
                20473: "Vultr", 13335: "Cloudflare", 30103: "Zoom", 13445: "Cisco Webex",
                6577: "Cisco Webex", 49544: "i3D.net", 32934: "Meta", 62041: "Telegram",
                45102: "Alibaba", 132203: "Tencent", 16625: "Akamai", 20940: "Akamai",
                54113: "Fastly", 8560: "IONOS", 51167: "Contabo", 12876: "Scaleway",
                60781: "Leaseweb", 36351: "IBM SoftLayer", 19551: "Incapsula",
                396507: "Twilio", 714: "Apple", 6185: "Apple"}
HOSTING_WORDS = ("hosting", "host ", "cloud", "data center", "datacenter", "data centre",
                 "datacentre", "server", "colocation", "vps", "amazon", "google llc",
                 "google ireland", "google cloud", "microsoft corp", "oracle", "hetzner",
                 "ovh", "digitalocean", "linode", "akamai", "vultr", "choopa", "leaseweb",
                 "contabo", "scaleway", "cloudflare", "fastly", "alibaba", "tencent",
                 "rackspace", "softlayer", "equinix", "zoom video", "facebook",
                 "meta platforms", "i3d", "twilio", "cisco")
# Residential and mobile access networks: an address there is a subscriber's.
ACCESS_ASNS = {812: "Rogers", 577: "Bell Canada", 852: "Telus", 6327: "Shaw",
               7922: "Comcast", 7018: "AT&T", 701: "Verizon", 6167: "Verizon Wireless",
               22394: "Verizon Wireless", 21928: "T-Mobile US", 20115: "Charter",
               22773: "Cox", 3320: "Deutsche Telekom", 3209: "Vodafone Germany",
               6805: "Telefonica Germany", 3215: "Orange France", 12322: "Free",
               15557: "SFR", 5410: "Bouygues Telecom", 2856: "BT", 5089: "Virgin Media",
               5607: "Sky UK", 3352: "Telefonica Spain", 12479: "Orange Spain",
               3269: "Telecom Italia", 12874: "Fastweb", 30722: "Vodafone Italia",
               1136: "KPN", 33915: "Ziggo", 3303: "Swisscom", 8881: "1&1 Versatel",
               9158: "Telenor Denmark", 2119: "Telenor Norway", 3301: "Telia Sweden",
               5432: "Proximus", 6830: "Liberty Global", 55836: "Reliance Jio",
               45609: "Bharti Airtel mobile", 4713: "NTT OCN", 2516: "KDDI",
               17676: "SoftBank", 1221: "Telstra", 4804: "Optus", 4134: "China Telecom",
               4837: "China Unicom", 9808: "China Mobile"}
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
