"""Country codes checked against ISO 3166-1, with pycountry's copy of the standard.

Every place that takes or names a country (--home, --vantage, the answers) goes through
here, so "UK" gets the same "did you mean GB?" wherever it is typed.
"""

from __future__ import annotations

import pycountry

from flowscan.errors import UsageError

# Codes people use that ISO 3166-1 reserves for something else or does not assign: the
# United Kingdom is GB (UK is only exceptionally reserved), Greece is GR (EL is the EU's).
ALIASES = {"UK": "GB", "EL": "GR"}


def country_name(code: str) -> str | None:
    """The ISO 3166 short name of an alpha-2 code, or None when ISO assigns no such code."""
    found = pycountry.countries.get(alpha_2=code.upper()) if len(code) == 2 else None
    return str(found.name) if found is not None else None


def _suggestion(code: str) -> str | None:
    """The alpha-2 code a user most likely meant by an unassigned code or a name."""
    if code in ALIASES:
        return ALIASES[code]
    if len(code) == 3 and (found := pycountry.countries.get(alpha_3=code)) is not None:
        return str(found.alpha_2)
    if len(code) > 3:
        try:
            return str(pycountry.countries.lookup(code).alpha_2)
        except LookupError:
            return None
    return None


def country_code(value: str, option: str) -> str:
    """value as an ISO 3166-1 alpha-2 code, or a UsageError that names option and, where it
    can, the code meant ("--home UK is not an ISO 3166 country code; did you mean GB?")."""
    code = value.strip().upper()
    if len(code) == 2 and code.isascii() and country_name(code):
        return code
    hint = _suggestion(code)
    shown = value.strip() or repr(value)
    if hint:
        raise UsageError(f"{option} {shown} is not an ISO 3166 country code; "
                         f"did you mean {hint}?")
    raise UsageError(f"{option} {shown} is not an ISO 3166 country code (two letters, "
                     "such as DE, GB or US)")
