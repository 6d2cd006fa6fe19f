"""Home jurisdictions and the EU's adequacy decisions (GDPR Article 45).

Groups are given by their members as of the tool's release; the adequacy list names the
European Commission's decisions in force, with the date each was adopted. A single country
is an ISO 3166-1 alpha-2 code, checked by geo.countries: a regulator's "UK" must not
silently match nothing (ISO has GB), and a typo must not pass as a jurisdiction every flow
leaves.
"""

from __future__ import annotations

from dataclasses import dataclass

from flowscan.errors import UsageError
from flowscan.geo.countries import country_code

EU = frozenset((
    "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "HU", "IE",
    "IT", "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
))
EEA = EU | {"IS", "LI", "NO"}
GROUPS = {"EU": EU, "EEA": EEA}

# Country -> (decision, adopted). Canada covers commercial organisations under PIPEDA; the
# United States covers organisations certified under the EU-US Data Privacy Framework.
ADEQUACY = {
    "AD": ("Andorra", "2010-10-19"), "AR": ("Argentina", "2003-06-30"),
    "CA": ("Canada (commercial organisations, PIPEDA)", "2001-12-20"),
    "CH": ("Switzerland", "2000-07-26"), "FO": ("Faroe Islands", "2010-03-05"),
    "GG": ("Guernsey", "2003-11-21"), "IL": ("Israel", "2011-01-31"),
    "IM": ("Isle of Man", "2004-04-28"), "JP": ("Japan", "2019-01-23"),
    "JE": ("Jersey", "2008-05-08"), "NZ": ("New Zealand", "2012-12-19"),
    "KR": ("Republic of Korea", "2021-12-17"), "GB": ("United Kingdom", "2021-06-28"),
    "US": ("United States (EU-US Data Privacy Framework, certified organisations only)",
           "2023-07-10"),
    "UY": ("Uruguay", "2012-08-21"),
}


@dataclass(frozen=True)
class Home:
    name: str  # what the user gave: a country code or a group
    countries: frozenset[str]

    def contains(self, country: str | None) -> bool:
        return country is not None and country in self.countries


def parse_home(value: str, option: str = "--home") -> Home:
    code = value.strip().upper()
    if code in GROUPS:
        return Home(code, frozenset(GROUPS[code]))
    try:
        country = country_code(value, option)
    except UsageError as exc:
        if "did you mean" in str(exc):
            raise
        raise UsageError(f"{exc}; or give one of {', '.join(sorted(GROUPS))}") from None
    return Home(country, frozenset({country}))


def adequacy(country: str | None) -> dict[str, str] | None:
    """The EU adequacy decision for a country, if any (relevant when home is EU or EEA)."""
    if country in ADEQUACY:
        decision, adopted = ADEQUACY[country]
        return {"decision": decision, "adopted": adopted}
    return None
