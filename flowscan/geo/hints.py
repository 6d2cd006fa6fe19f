"""Location hints in host names (an airport or city code such as 'fra' or 'ams1' as a
label or label part). Recorded beside the database's answer as evidence, never in place of
it: operators name hosts after where they were first placed, not always where they are."""

from __future__ import annotations

import re

# IATA airport / common city codes used in operators' host names -> country.
CODES = {
    "ams": "NL", "fra": "DE", "muc": "DE", "ber": "DE", "lhr": "GB", "lon": "GB", "cdg": "FR",
    "par": "FR", "mad": "ES", "bcn": "ES", "mxp": "IT", "mil": "IT", "fco": "IT", "zrh": "CH",
    "vie": "AT", "waw": "PL", "prg": "CZ", "arn": "SE", "sto": "SE", "osl": "NO", "cph": "DK",
    "hel": "FI", "dub": "IE", "bru": "BE", "lis": "PT", "ath": "GR", "iad": "US", "jfk": "US",
    "nyc": "US", "ewr": "US", "sjc": "US", "sfo": "US", "lax": "US", "sea": "US", "ord": "US",
    "chi": "US", "dfw": "US", "atl": "US", "mia": "US", "den": "US", "phx": "US", "yyz": "CA",
    "tor": "CA", "yul": "CA", "yvr": "CA", "gru": "BR", "scl": "CL", "mex": "MX", "nrt": "JP",
    "tyo": "JP", "hnd": "JP", "kix": "JP", "icn": "KR", "sel": "KR", "hkg": "HK", "sin": "SG",
    "bom": "IN", "del": "IN", "maa": "IN", "syd": "AU", "mel": "AU", "akl": "NZ", "jnb": "ZA",
    "dxb": "AE", "tlv": "IL",
}
_TOKEN = re.compile(r"(?<![a-z])(" + "|".join(sorted(CODES)) + r")(?:\d{0,3})(?![a-z])")


def name_hints(names: list[str]) -> tuple[dict[str, str], ...]:
    out: list[dict[str, str]] = []
    for name in names:
        for match in _TOKEN.finditer(name.lower()):
            hint = {"name": name, "code": match.group(1), "country": CODES[match.group(1)]}
            if hint not in out:
                out.append(hint)
    return tuple(out[:8])
