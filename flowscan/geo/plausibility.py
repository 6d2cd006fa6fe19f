"""Is a located endpoint physically possible, given the round-trip time seen to it?

Light in fibre covers about 200 km per millisecond, so an answer that came back after RTT
milliseconds came from at most RTT/2 x 200 km away. A location farther than that from the
capture point (the vantage, given by country or coordinates) is impossible: the database
is wrong for that address, or the traffic was answered by a nearer box (anycast, a proxy).
Locations are approximate (country centroids unless a City database gives coordinates), so
each side gets generous slack by its country's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from flowscan.digits import ascii_float
from flowscan.errors import UsageError

KM_PER_MS_ONE_WAY = 200.0
# Approximate country centroids (degrees).
CENTROIDS = {
    "US": (39.8, -98.6), "CA": (56.1, -106.3), "MX": (23.6, -102.5), "BR": (-14.2, -51.9),
    "AR": (-38.4, -63.6), "CL": (-35.7, -71.5), "GB": (55.4, -3.4), "IE": (53.4, -8.2),
    "FR": (46.6, 2.2), "DE": (51.2, 10.5), "NL": (52.1, 5.3), "BE": (50.5, 4.5),
    "LU": (49.8, 6.1), "CH": (46.8, 8.2), "AT": (47.5, 14.6), "IT": (41.9, 12.6),
    "ES": (40.5, -3.7), "PT": (39.4, -8.2), "SE": (60.1, 18.6), "NO": (60.5, 8.5),
    "DK": (56.3, 9.5), "FI": (61.9, 25.7), "IS": (64.9, -19.0), "PL": (51.9, 19.1),
    "CZ": (49.8, 15.5), "SK": (48.7, 19.7), "HU": (47.2, 19.5), "RO": (45.9, 25.0),
    "BG": (42.7, 25.5), "GR": (39.1, 21.8), "HR": (45.1, 15.2), "SI": (46.2, 14.8),
    "EE": (58.6, 25.0), "LV": (56.9, 24.6), "LT": (55.2, 23.9), "CY": (35.1, 33.4),
    "MT": (35.9, 14.4), "TR": (39.0, 35.2), "RU": (61.5, 105.3), "UA": (48.4, 31.2),
    "IL": (31.0, 34.9), "AE": (23.4, 53.8), "SA": (23.9, 45.1), "IN": (20.6, 79.0),
    "SG": (1.35, 103.8), "JP": (36.2, 138.3), "KR": (35.9, 127.8), "CN": (35.9, 104.2),
    "HK": (22.3, 114.2), "TW": (23.7, 121.0), "AU": (-25.3, 133.8), "NZ": (-40.9, 174.9),
    "ZA": (-30.6, 22.9), "EG": (26.8, 30.8), "NG": (9.1, 8.7), "KE": (0.0, 37.9),
    "ID": (-0.8, 113.9), "TH": (15.9, 101.0), "VN": (14.1, 108.3), "MY": (4.2, 102.0),
    "PH": (12.9, 121.8),
}
LARGE = {"US", "CA", "RU", "CN", "BR", "AU", "IN", "AR", "KZ"}
MEDIUM = {"MX", "ID", "SA", "DZ", "CL", "ZA", "TR", "IR", "EG", "NG", "JP", "SE", "NO", "FI"}


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
    code = text.upper()
    if code not in CENTROIDS:
        raise UsageError(f"--vantage {value!r}: no coordinates known for that country; "
                         "give LAT,LON instead")
    return Vantage(code, CENTROIDS[code], code)


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
    point = coordinates or (CENTROIDS.get(country) if country else None)
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
