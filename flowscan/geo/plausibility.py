"""Is a located endpoint physically possible, given the round-trip time seen to it?

Light in fibre covers about 200 km per millisecond, so an answer that came back after RTT
milliseconds came from at most RTT/2 x 200 km away. A location farther than that from the
capture point (the vantage, given by country or coordinates) is impossible: the database
is wrong for that address, or the traffic was answered by a nearer box (anycast, a proxy).
Locations are approximate (country centroids unless a City database gives coordinates), so
each side gets generous slack by its country's size. The centroids come from countryinfo
(MIT licence), which carries one for every ISO 3166 country with land people live on; a
territory it gives none for falls back to its capital's coordinates.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from flowscan.digits import ascii_float
from flowscan.errors import UsageError
from flowscan.geo.countries import country_code, country_name

KM_PER_MS_ONE_WAY = 200.0
LARGE = {"US", "CA", "RU", "CN", "BR", "AU", "IN", "AR", "KZ"}
MEDIUM = {"MX", "ID", "SA", "DZ", "CL", "ZA", "TR", "IR", "EG", "NG", "JP", "SE", "NO", "FI"}


@functools.cache
def centroid(country: str | None) -> tuple[float, float] | None:
    """A country's approximate centre (degrees), or None when neither it nor its capital
    has coordinates (Antarctica, Bouvet Island, the US Minor Outlying Islands)."""
    if not country or len(country) != 2 or not country_name(country):
        return None
    from countryinfo import CountryInfo  # imported when asked for: it reads 250 files

    try:
        info = CountryInfo(country.upper()).info()
    except Exception:  # noqa: BLE001 - a code countryinfo lacks: no coordinates
        return None
    for key in ("latlng", "capital_latlng"):
        point: Any = info.get(key)
        if point and isinstance(point[0], list):  # several capitals: the first
            point = point[0]
        if point and len(point) == 2:
            return (float(point[0]), float(point[1]))
    return None


def slack_km(country: str | None) -> float:
    return 2500.0 if country in LARGE else 1200.0 if country in MEDIUM else 700.0


def distance_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine), Earth radius 6371 km."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (math.sin((lat2 - lat1) / 2) ** 2
         + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2)
    return 2 * 6371.0 * math.asin(math.sqrt(min(1.0, h)))


@dataclass(frozen=True)
class Vantage:
    """Where the capture was taken."""

    label: str
    point: tuple[float, float]
    country: str | None


def parse_vantage(value: str) -> Vantage:
    text = value.strip()
    if "," in text:
        numbers = [ascii_float(x.strip()) for x in text.split(",")]
        if len(numbers) != 2 or numbers[0] is None or numbers[1] is None or not (
                -90 <= numbers[0] <= 90 and -180 <= numbers[1] <= 180):
            raise UsageError(f"--vantage {value!r}: give LAT,LON (degrees, -90 to 90 and -180 "
                             "to 180) or a country code")
        return Vantage(text, (numbers[0], numbers[1]), None)
    code = country_code(text, "--vantage")
    point = centroid(code)
    if point is None:
        raise UsageError(f"--vantage {code}: no coordinates known for {country_name(code)}; "
                         "give LAT,LON instead")
    return Vantage(code, point, code)


@dataclass
class Plausibility:
    rtt_ms: float
    rtt_source: str  # tcp-handshake or stun
    max_distance_km: float
    distance_km: float | None
    plausible: bool | None  # None: the remote's location has no coordinates
    detail: str


def check(vantage: Vantage, rtt_ms: float, source: str, country: str | None,
          coordinates: tuple[float, float] | None) -> Plausibility:
    reach = rtt_ms / 2 * KM_PER_MS_ONE_WAY
    point = coordinates or centroid(country)
    if point is None:
        return Plausibility(rtt_ms, source, round(reach), None, None,
                            f"{country or 'the remote'} has no known coordinates")
    distance = distance_km(vantage.point, point)
    slack = (slack_km(country) if coordinates is None else 100.0) + (
        slack_km(vantage.country) if vantage.country else 100.0)
    plausible = distance - slack <= reach
    detail = (f"a {rtt_ms:.1f} ms round trip ({source}) allows at most {reach:.0f} km from "
              f"{vantage.label}; {country or 'the location'} is about {distance:.0f} km away"
              + ("" if plausible else ": physically impossible, so the database is wrong "
                 "for this address or a nearer box answered (anycast, proxy)"))
    return Plausibility(rtt_ms, source, round(reach), round(distance), plausible, detail)
