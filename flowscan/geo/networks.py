"""Well-known networks (autonomous systems): the one table of them.

Each row says what the network is (data-centre and service networks host servers and
relays; residential and mobile access networks host participants) and which service, if
any, it names: a network one service runs alone names it (strong app evidence, `apps`); a
network several services share (Google, Microsoft, Meta, Apple, 8x8) names none of them
and says only that the remote is some service's server. The ASNs are from the public
registries' IPtoASN data bundled in geodata/. A network without a kind here is classified
by the words of its registered name (verdict.endpoints), if at all.
"""

from __future__ import annotations

from dataclasses import dataclass

HOSTING, ACCESS = "hosting", "access"
SHARED = "shared"  # Network.service of a network several services share


@dataclass(frozen=True)
class Network:
    name: str  # used where the ASN database gives no organisation
    kind: str | None  # HOSTING, ACCESS, or None: not classified by its number
    service: str | None = None  # the app that alone runs it, SHARED, or None


NETWORKS: dict[int, Network] = {
    # Run by one service alone: they name it.
    30103: Network("Zoom", HOSTING, "zoom"),
    13445: Network("Cisco Webex", HOSTING, "webex"),
    6577: Network("Cisco Webex", HOSTING, "webex"),
    62041: Network("Telegram", HOSTING, "telegram"),
    62014: Network("Telegram", None, "telegram"),
    59930: Network("Telegram", None, "telegram"),
    44907: Network("Telegram", None, "telegram"),
    211157: Network("Telegram", None, "telegram"),
    38631: Network("LINE", None, "line"),
    10158: Network("Kakao", None, "kakaotalk"),
    38099: Network("Kakao", None, "kakaotalk"),
    18160: Network("Kakao", None, "kakaotalk"),
    152199: Network("Kakao", None, "kakaotalk"),
    # Shared by several services (Google: Meet, Duo, its public STUN; Meta: WhatsApp,
    # Messenger, Instagram; Apple's carry every Apple service, FaceTime included; 8x8's
    # carry all of 8x8's products, Jitsi included): they name none alone.
    15169: Network("Google", HOSTING, SHARED),
    396982: Network("Google", HOSTING, SHARED),
    8075: Network("Microsoft", HOSTING, SHARED),
    32934: Network("Meta", HOSTING, SHARED),
    63293: Network("Meta", None, SHARED),
    54115: Network("Meta", None, SHARED),
    714: Network("Apple", HOSTING, SHARED),
    6185: Network("Apple", HOSTING, SHARED),
    32308: Network("8x8", None, SHARED),
    13896: Network("8x8", None, SHARED),
    # Data-centre and cloud networks.
    14618: Network("Amazon", HOSTING),
    16509: Network("Amazon", HOSTING),
    43515: Network("Google", HOSTING),
    31898: Network("Oracle", HOSTING),
    24940: Network("Hetzner", HOSTING),
    16276: Network("OVH", HOSTING),
    14061: Network("DigitalOcean", HOSTING),
    63949: Network("Akamai/Linode", HOSTING),
    20473: Network("Vultr", HOSTING),
    13335: Network("Cloudflare", HOSTING),
    49544: Network("i3D.net", HOSTING),
    45102: Network("Alibaba", HOSTING),
    132203: Network("Tencent", HOSTING),
    16625: Network("Akamai", HOSTING),
    20940: Network("Akamai", HOSTING),
    54113: Network("Fastly", HOSTING),
    8560: Network("IONOS", HOSTING),
    51167: Network("Contabo", HOSTING),
    12876: Network("Scaleway", HOSTING),
    60781: Network("Leaseweb", HOSTING),
    36351: Network("IBM SoftLayer", HOSTING),
    19551: Network("Incapsula", HOSTING),
    396507: Network("Twilio", HOSTING),
    # Residential and mobile access networks.
    812: Network("Rogers", ACCESS),
    577: Network("Bell Canada", ACCESS),
    852: Network("Telus", ACCESS),
    6327: Network("Shaw", ACCESS),
    7922: Network("Comcast", ACCESS),
    7018: Network("AT&T", ACCESS),
    701: Network("Verizon", ACCESS),
    6167: Network("Verizon Wireless", ACCESS),
    22394: Network("Verizon Wireless", ACCESS),
    21928: Network("T-Mobile US", ACCESS),
    20115: Network("Charter", ACCESS),
    22773: Network("Cox", ACCESS),
    3320: Network("Deutsche Telekom", ACCESS),
    3209: Network("Vodafone Germany", ACCESS),
    6805: Network("Telefonica Germany", ACCESS),
    3215: Network("Orange France", ACCESS),
    12322: Network("Free", ACCESS),
    15557: Network("SFR", ACCESS),
    5410: Network("Bouygues Telecom", ACCESS),
    2856: Network("BT", ACCESS),
    5089: Network("Virgin Media", ACCESS),
    5607: Network("Sky UK", ACCESS),
    3352: Network("Telefonica Spain", ACCESS),
    12479: Network("Orange Spain", ACCESS),
    3269: Network("Telecom Italia", ACCESS),
    12874: Network("Fastweb", ACCESS),
    30722: Network("Vodafone Italia", ACCESS),
    1136: Network("KPN", ACCESS),
    33915: Network("Ziggo", ACCESS),
    3303: Network("Swisscom", ACCESS),
    8881: Network("1&1 Versatel", ACCESS),
    9158: Network("Telenor Denmark", ACCESS),
    2119: Network("Telenor Norway", ACCESS),
    3301: Network("Telia Sweden", ACCESS),
    5432: Network("Proximus", ACCESS),
    6830: Network("Liberty Global", ACCESS),
    55836: Network("Reliance Jio", ACCESS),
    45609: Network("Bharti Airtel mobile", ACCESS),
    4713: Network("NTT OCN", ACCESS),
    2516: Network("KDDI", ACCESS),
    17676: Network("SoftBank", ACCESS),
    1221: Network("Telstra", ACCESS),
    4804: Network("Optus", ACCESS),
    4134: Network("China Telecom", ACCESS),
    4837: Network("China Unicom", ACCESS),
    9808: Network("China Mobile", ACCESS),
}


def of_kind(kind: str) -> dict[int, str]:
    """ASN -> name of the networks of one kind (HOSTING or ACCESS)."""
    return {asn: n.name for asn, n in NETWORKS.items() if n.kind == kind}


# The service views of the table: ASN -> the app it names; ASN -> name of a shared one.
SERVICE_ASNS = {asn: n.service for asn, n in NETWORKS.items()
                if n.service is not None and n.service != SHARED}
SHARED_ASNS = {asn: n.name for asn, n in NETWORKS.items() if n.service == SHARED}
