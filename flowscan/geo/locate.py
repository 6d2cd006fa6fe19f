"""Where a remote endpoint is: located country (and city where a City database is given),
its network's ASN and organisation, and the country where that network is registered, so
that a foreign operator's server located at home shows as such. Addresses that are not
routable on the internet are labelled for what they are and given no country.

Databases in MaxMind's own layouts (GeoIP2/GeoLite2 City, Country and ASN, and DB-IP's files
that copy them) are read with maxminddb, field by field as geoip2's models read those
layouts (a model object per address cost a third of a new address's lookup); the others
(the IPtoASN files, IPinfo's) have layouts of their own, also read field by field.
The bundled databases are the package flowscan._geodata (the project's geodata/ folder,
mapped by setup.py), found with importlib.resources wherever flowscan is installed.
"""

from __future__ import annotations

import datetime as dt
import functools
import importlib.resources
import ipaddress
import json
import os
import socket
from contextlib import ExitStack
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import maxminddb

from flowscan.errors import UsageError
from flowscan.report.model import GeoDatabase, RemoteInfo

GEODATA_PACKAGE = "flowscan._geodata"
ENV_DATABASES = "FLOWSCAN_GEOIP_DB"
ENV_BUNDLED = "FLOWSCAN_GEODATA"
# Kinds of database that answer where an address is located (not where it is registered).
LOCATING = ("city", "country")
# How a report's warning says no remote could be located (the CLI repeats it on stderr).
UNLOCATED = "remote endpoints have no country"

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


@dataclass(frozen=True)
class _Answer:
    """What one database says about one address, whatever its layout."""

    country: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    asn: int | None = None
    organisation: str | None = None

    # dataclasses.replace, written out: it ran for most new addresses and cost more than
    # the databases' own lookups.
    def with_country(self, country: str | None) -> _Answer:
        return _Answer(country, self.city, self.latitude, self.longitude, self.asn,
                       self.organisation)

    def with_network(self, asn: int | None, organisation: str | None) -> _Answer:
        return _Answer(self.country, self.city, self.latitude, self.longitude, asn,
                       organisation)


@dataclass(frozen=True, slots=True)
class _Located:
    """What the databases say of one address, as its flows' RemoteInfo take it: one object
    per distinct answer, shared by every address that has it."""

    scope: str
    place: _Answer = _Answer()  # located by city or country database; network by ASN's
    registered_country: str | None = None
    sources: tuple[str, ...] = ()


@functools.cache  # one entry per scope word (scope_of)
def _unlocated(scope: str) -> _Located:
    """An address of a non-public scope, as every one of its kind is."""
    return _Located(scope)


# The database types geoip2.database.Reader accepts for each of its models: it checks that
# the name is in the metadata's database_type (geoip2/database.py, Reader._get). DB-IP's files
# name the MaxMind layout they copy, e.g. "DBIP-ASN-Lite (compat=GeoLite2-ASN)".
_GEOIP2_TYPES = {"city": "City", "country": "Country", "asn": "GeoLite2-ASN"}


def _maxmind_layout(kind: str, database_type: str) -> bool:
    """True when geoip2 models this database: a MaxMind layout, not a custom one."""
    name = _GEOIP2_TYPES.get(kind)
    return name is not None and name in database_type


class _MaxmindSource:
    """A database in a MaxMind layout, its records read with maxminddb as geoip2's models
    (geoip2/models.py: City, Country, ASN; locales ["en"]) read them: the same values,
    without building a model object per address."""

    def __init__(self, reader: Any, kind: str) -> None:
        self._reader = reader
        self._kind = kind

    def get(self, ip: str) -> _Answer | None:
        record = self._reader.get(ip)
        if record is None:  # geoip2: AddressNotFoundError
            return None
        if not isinstance(record, dict):  # as geoip2.database.Reader._get refuses it
            raise maxminddb.InvalidDatabaseError(f"a record of {type(record)}, not a dict")
        if self._kind == "asn":
            return _Answer(asn=record.get("autonomous_system_number"),
                           organisation=record.get("autonomous_system_organization"))
        code = (record.get("country") or {}).get("iso_code")
        if self._kind != "city":
            return _Answer(code)
        location = record.get("location") or {}
        return _Answer(code, ((record.get("city") or {}).get("names") or {}).get("en"),
                       location.get("latitude"), location.get("longitude"))


class _RawSource:
    """A database with a layout of its own (IPtoASN: country_code; IPinfo), read field by
    field with maxminddb."""

    def __init__(self, reader: Any, kind: str) -> None:
        self._reader = reader
        self._kind = kind

    def get(self, ip: str) -> _Answer | None:
        record = self._reader.get(ip)
        if not record or not isinstance(record, dict):
            return None
        if self._kind == "asn":
            return _Answer(asn=record.get("autonomous_system_number"),
                           organisation=record.get("autonomous_system_organization"))
        country = record.get("country")
        code = (country.get("iso_code") if isinstance(country, dict) else None) or record.get(
            "country_code")
        if self._kind != "city":
            return _Answer(code)
        names = (record.get("city") or {}).get("names") or {}
        location = record.get("location") or {}
        return _Answer(code, names.get("en"), location.get("latitude"),
                       location.get("longitude"))


def bundled_geodata() -> tuple[Traversable | None, str]:
    """The folder of the bundled databases and, where there is none, why.

    It is the package flowscan._geodata, wherever pip put it: a wheel carries it, an editable
    install maps it onto the checkout's geodata/. Never a path relative to the source:
    what is not installed is said to be missing, so a broken install cannot pass unseen.
    """
    try:
        return importlib.resources.files(GEODATA_PACKAGE), ""
    except ModuleNotFoundError:
        return None, f"the bundled databases are not installed (no package {GEODATA_PACKAGE})"


# Addresses (and remotes) remembered at most, so that a capture of many addresses cannot
# grow the caches without end: past it they start again, the answers the same.
MAX_CACHED = 1 << 16


class Locator:
    """Answers lookups from the bundled databases and any the user adds (theirs first)."""

    def __init__(self, extra: list[str] | None = None, bundled: Path | None = None) -> None:
        self.databases: list[GeoDatabase] = []
        self._sources: dict[str, list[tuple[GeoDatabase, _MaxmindSource | _RawSource]]] = {}
        self._cache: dict[str, _Located] = {}  # ip -> what the databases say of it
        # Each distinct answer once: the addresses of one network, and all the private or
        # unlocated ones, share one object, so the cache costs little more than its keys.
        self._answers: dict[_Located, _Located] = {}
        # (address, side, basis) -> its RemoteInfo, frozen and shared by every flow so judged.
        self._remotes: dict[tuple[str, str, str | None], RemoteInfo] = {}
        self._files = ExitStack()  # bundled files extracted from a zip import, if ever
        paths = list(extra or [])
        paths += [p for p in os.environ.get(ENV_DATABASES, "").split(os.pathsep) if p]
        for path in paths:
            self._open(Path(path), None)
        folder: Traversable | None
        if bundled is not None:
            folder, self.missing_bundled = bundled, ""
        elif os.environ.get(ENV_BUNDLED):
            folder = Path(os.environ[ENV_BUNDLED])
            self.missing_bundled = f"{ENV_BUNDLED} is {folder}"
        else:
            folder, self.missing_bundled = bundled_geodata()
        if folder is None:
            return
        index = folder / "databases.json"
        if not index.is_file():
            self.missing_bundled = f"{self.missing_bundled or folder}, which holds no " \
                                   "databases.json"
            return
        self.missing_bundled = ""
        for entry in json.loads(index.read_text())["databases"]:
            resource = folder / entry["file"]
            if not isinstance(resource, Path):  # a zip import: maxminddb needs a real file
                resource = self._files.enter_context(importlib.resources.as_file(resource))
            self._open(resource, entry)

    def _open(self, path: Path, entry: dict[str, Any] | None) -> None:
        try:
            reader = maxminddb.open_database(str(path))
        except (OSError, ValueError, maxminddb.InvalidDatabaseError) as exc:
            raise UsageError(f"{path}: not a readable MaxMind database ({exc})") from None
        meta = reader.metadata()
        kind = _kind(meta.database_type)
        if entry and "registered" in entry.get("answers", ""):
            kind = "registration"
        source: _MaxmindSource | _RawSource
        if _maxmind_layout(kind, meta.database_type):
            source = _MaxmindSource(reader, kind)
        else:
            source = _RawSource(reader, kind)
        built = dt.datetime.fromtimestamp(meta.build_epoch, dt.UTC).date().isoformat()
        info = GeoDatabase(entry["name"] if entry else meta.database_type, kind, built,
                           str(path), entry.get("license") if entry else None,
                           entry.get("attribution") if entry else None)
        self.databases.append(info)
        self._sources.setdefault(kind, []).append((info, source))

    def answers(self, kinds: tuple[str, ...] = LOCATING) -> bool:
        """Whether any open database is of one of these kinds."""
        return any(self._sources.get(kind) for kind in kinds)

    def _gap(self, kinds: tuple[str, ...]) -> str:
        need = ("an ASN database" if kinds == ("asn",)
                else "a geolocation database that locates addresses")
        why = f" ({self.missing_bundled})" if self.missing_bundled else ""
        return f"{need}, and none could be opened{why}; give one with --geoip-db or " \
               f"{ENV_DATABASES}"

    def warning(self) -> str | None:
        """What a report says when no remote can be located, instead of '?' in silence."""
        if self.answers(LOCATING):
            return None
        return f"{UNLOCATED}: flowscan needs {self._gap(LOCATING)}"

    def require(self, what: str, kinds: tuple[str, ...] = LOCATING) -> None:
        """Refuse a question no open database can answer (--home, a location claim): an
        answer from no data would look like a real one."""
        if not self.answers(kinds):
            raise UsageError(f"{what} needs {self._gap(kinds)}")

    def _get(self, kind: str, ip: str) -> tuple[GeoDatabase, _Answer] | None:
        for info, source in self._sources.get(kind, []):
            answer = source.get(ip)
            if answer:
                return info, answer
        return None

    def lookup(self, ip: str, which: str = "server", basis: str | None = None) -> RemoteInfo:
        """What the databases say of an address, as a flow's remote on side `which`; they
        are asked once per address. The RemoteInfo is frozen and made once per (address,
        side, basis), so the flows to one server share it (a flow with more to say of its
        remote, such as name hints, gets a copy with them: dataclasses.replace)."""
        key = (ip, which, basis)
        info = self._remotes.get(key)
        if info is None:
            if len(self._remotes) >= MAX_CACHED:
                self._remotes.clear()
            known = self._located(ip)
            place = known.place
            info = self._remotes[key] = RemoteInfo(
                ip, which, known.scope, place.country, place.city, place.latitude,
                place.longitude, place.asn, place.organisation, known.registered_country,
                known.sources, basis=basis)
        return info

    def _located(self, ip: str) -> _Located:
        known = self._cache.get(ip)
        if known is None:
            if len(self._cache) >= MAX_CACHED:
                self._cache.clear()
            known = self._cache[ip] = self._lookup(ip)
        return known

    def _lookup(self, ip: str) -> _Located:
        """One object per distinct answer: the databases' for a public address, one per
        scope for the others (which no database is asked of)."""
        scope = scope_of(ip)
        if scope != "public":
            return _unlocated(scope)
        place = _Answer()
        sources: list[str] = []
        for kind in LOCATING:
            if place.country is not None:  # the city database placed it: no second look
                break
            found = self._get(kind, ip)
            if found:
                db, answer = found
                # A city answer brings its place; a country answer only the country.
                place = answer if kind == "city" else place.with_country(answer.country)
                sources.append(db.name)
        found = self._get("asn", ip)
        if found:
            place = place.with_network(found[1].asn, found[1].organisation)
            sources.append(found[0].name)
        registered = None
        found = self._get("registration", ip)
        if found:
            registered = found[1].country
            sources.append(found[0].name)
        located = _Located(scope, place, registered, tuple(sources))
        return self._answers.setdefault(located, located)
