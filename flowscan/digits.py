"""Numbers written as text, read from ASCII digits only.

`str.isdigit` accepts '²' and `int` then refuses it; `int` itself accepts '٣', '+7', ' 7 '
and '1_000', and raises on more than 4300 digits. None of these is a number in SIP
(RFC 3261 section 25.1: DIGIT is %x30-39), SDP (RFC 8866 section 9, the same core rule),
an NSS key log or a command line. Every number flowscan reads from text goes through here,
so a stray character is a malformed field where it was read, never an exception elsewhere.
"""

from __future__ import annotations

import re

_DECIMAL = re.compile(r"[0-9]{1,18}")  # 18 digits always fit in 64 bits
_HEX = re.compile(r"[0-9a-fA-F]{1,16}")


def is_ascii_digits(text: str) -> bool:
    """True for one or more ASCII digits and nothing else."""
    return text.isascii() and text.isdigit()


def ascii_int(text: str) -> int | None:
    """The decimal number text spells in ASCII digits (at most 18), else None."""
    return int(text) if _DECIMAL.fullmatch(text) else None


def ascii_int_auto(text: str) -> int | None:
    """Decimal, or hexadecimal after 0x/0X (as an SSRC is written), else None."""
    if text[:2] in ("0x", "0X"):
        return int(text[2:], 16) if _HEX.fullmatch(text[2:]) else None
    return ascii_int(text)


_DECIMAL_FRACTION = re.compile(r"[-+]?[0-9]{1,18}(?:\.[0-9]{1,18})?")


def ascii_float(text: str) -> float | None:
    """A plain decimal number (sign, ASCII digits, an optional fraction), else None: float
    alone would take '١٢', 'nan', 'inf' and '1_0'."""
    return float(text) if _DECIMAL_FRACTION.fullmatch(text) else None
