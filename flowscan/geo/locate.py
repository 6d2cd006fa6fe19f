"""Where a remote endpoint is: located country (and city where a City database is given),
its network's ASN and organisation, and the country where that network is registered, so
that a foreign operator's server located at home shows as such. Addresses that are not
routable on the internet are labelled for what they are and given no country.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import ipaddress
import json
import os
import socket
from pathlib import Path
from typing import Any

import maxminddb

from flowscan.errors import UsageError
from flowscan.report.model import GeoDatabase, RemoteInfo

BUNDLED = Path(__file__).resolve().parent.parent.parent / "geodata"
ENV_DATABASES = "FLOWSCAN_GEOIP_DB"
ENV_BUNDLED = "FLOWSCAN_GEODATA"

# Ranges that are not on the public internet (RFC 6890 and the registries it points to).
SCOPES = [
    ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),  # RFC 1918
    ("cgnat", ("100.64.0.0/10",)),  # RFC 6598
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("multicast", ("224.0.0.0/4", "ff00::/8")),
    ("documentation", ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")),
    ("unique-local", ("fc00::/7",)),  # RFC 4193
    ("reserved", ("0.0.0.0/8", "240.0.0.0/4", "255.255.255.255/32", "::/128")),
]
# (version, first, last, scope) as integers: a lookup is a few comparisons.
_SCOPE_RANGES = [(net.version, int(net.network_address), int(net.broadcast_address), name)
                 for name, nets in SCOPES for net in map(ipaddress.ip_network, nets)]


@functools.lru_cache(maxsize=1 << 16)
def scope_of(ip: str) -> str:
    version = 6 if ":" in ip else 4
    try:
        value = int.from_bytes(socket.inet_pton(
            socket.AF_INET6 if version == 6 else socket.AF_INET, ip), "big")
    except OSError:
        raise ValueError(f"{ip!r} is not an IP address") from None
    for v, first, last, name in _SCOPE_RANGES:
        if v == version and first <= value <= last:
            return name
    return "public"


def _kind(database_type: str) -> str:
    t = database_type.lower()
    if "asn" in t:
        return "asn"
    if "city" in t:
        return "city"
    if t == "country" or "country" in t:
        return "country"
    return "other"


class Locator:
    """Answers lookups from the bundled databases and any the user adds (theirs first)."""

    def __init__(self, extra: list[str] | None = None, bundled: Path | None = None) -> None:
        self.databases: list[GeoDatabase] = []
        self._readers: dict[str, list[tuple[GeoDatabase, Any]]] = {}
        self._cache: dict[str, RemoteInfo] = {}  # ip -> its answer, as a template
        paths = list(extra or [])
        paths += [p for p in os.environ.get(ENV_DATABASES, "").split(os.pathsep) if p]
        for path in paths:
            self._open(Path(path), None)
        folder = bundled or Path(os.environ.get(ENV_BUNDLED, BUNDLED))
        index = folder / "databases.json"
        if index.exists():
            for entry in json.loads(index.read_text())["databases"]:
                self._open(folder / entry["file"], entry)

    def _open(self, path: Path, entry: dict[str, Any] | None) -> None:
        try:
            reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise UsageError(f"{path}: not a readable MaxMind database ({exc})") from None
        meta = reader.metadata()
        kind = _kind(meta.database_type)
        if entry and "registered" in entry.get("answers", ""):
            kind = "registration"
        built = dt.datetime.fromtimestamp(meta.build_epoch, dt.UTC).date().isoformat()
        info = GeoDatabase(entry["name"] if entry else meta.database_type, kind, built,
                           str(path), entry.get("license") if entry else None,
                           entry.get("attribution") if entry else None)
        self.databases.append(info)
        self._readers.setdefault(kind, []).append((info, reader))

    def _get(self, kind: str, ip: str) -> tuple[GeoDatabase, dict[str, Any]] | None:
        for info, reader in self._readers.get(kind, []):
            record = reader.get(ip)
            if record:
                return info, record
        return None

    def lookup(self, ip: str, which: str = "server") -> RemoteInfo:
        """A fresh RemoteInfo each call (callers add to it); the databases are asked once
        per address."""
        known = self._cache.get(ip)
        if known is None:
            known = self._cache[ip] = self._lookup(ip)
        return dataclasses.replace(known, which=which, sources=list(known.sources),
                                   name_hints=[])

    def _lookup(self, ip: str) -> RemoteInfo:
        info = RemoteInfo(ip, "server", scope_of(ip))
        if info.scope != "public":
            return info
        for kind in ("city", "country"):
            found = self._get(kind, ip)
            if found and info.country is None:
                db, record = found
                info.country = (record.get("country") or {}).get("iso_code") or record.get(
                    "country_code")
                if kind == "city":
                    info.city = ((record.get("city") or {}).get("names") or {}).get("en")
                    location = record.get("location") or {}
                    info.latitude = location.get("latitude")
                    info.longitude = location.get("longitude")
                info.sources.append(db.name)
        found = self._get("asn", ip)
        if found:
            db, record = found
            info.asn = record.get("autonomous_system_number")
            info.organisation = record.get("autonomous_system_organization")
            info.sources.append(db.name)
        found = self._get("registration", ip)
        if found:
            db, record = found
            info.registered_country = record.get("country_code")
            info.sources.append(db.name)
        return info
