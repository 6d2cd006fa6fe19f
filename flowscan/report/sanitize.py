"""Make strings from captures and files inert in every output (issue 12).

A capture is attacker-controlled: SNI, DNS names, SIP and SDP lines, STUN SOFTWARE, RTCP
CNAMEs and the capture's own file name can carry terminal escapes, bidi overrides, line
breaks that forge report lines, spreadsheet formulas or lone surrogates. Every renderer
passes such strings through one function here, chosen for its output:

- ``inert_text``: terminal and plain text. No character that is not printable is emitted
  raw (C0, DEL, C1, bidi and other format characters, zero-width characters, line and
  paragraph separators, surrogates): each is shown as a Python-style escape (``\\x1b``,
  ``\\u202e``). Long strings are shortened, saying how much was cut. The result is plain
  text: the text renderer wraps it in a rich ``Text`` so it is never parsed as markup.
- ``inert_line``: the same for one line of a message on stderr (longer limit).
- ``inert_markup``: ``inert_text`` escaped for rich markup, for the few places that must
  hand rich a markup string (a progress bar's label); elsewhere build a rich ``Text``.
- ``html_text``: ``inert_text`` then HTML-escaped, for an HTML renderer.
- ``csv_cell``: controls escaped, the string kept whole, and a cell that a spreadsheet
  would run as a formula prefixed with ``'``.
- ``json_safe``: JSON keeps strings whole; only lone surrogates (a file name that is not
  valid UTF-8 arrives with surrogateescape) become U+FFFD, as orjson refuses them.
- ``json_inert``: applied to the encoded JSON, writes DEL, C1, bidi, zero-width and line
  separator characters as \\u escapes, so the file is inert when shown on a terminal
  or in an editor while every string parses back exactly the same.

A backslash already in the data is left as it is: an escape in the output may have been
typed literally, which is harmless; what matters is that no raw control reaches a reader.
"""

from __future__ import annotations

import dataclasses
import html
import re

TEXT_MAX = 200  # a field in the text report: SNI, name, header value
LINE_MAX = 1000  # a composed sentence or a path: long but still bounded

_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
# In UTF-8 JSON from orjson (which escapes only U+0000-001F): DEL; C1 (C2 80-9F); U+061C
# (D8 9C); zero-width and direction marks U+200B-200F, line and paragraph separators
# U+2028-2029, bidi embeddings and overrides U+202A-202E (E2 80 ...); U+2060-2064 and
# bidi isolates U+2066-2069 (E2 81 ...); the BOM U+FEFF (EF BB BF). A lead byte cannot be
# a continuation byte, so these byte patterns match only whole characters.
_JSON_INVISIBLE = re.compile(
    rb"\x7f|\xc2[\x80-\x9f]|\xd8\x9c|\xe2\x80[\x8b-\x8f\xa8-\xae]|\xe2\x81[\xa0-\xa4\xa6-\xa9]"
    rb"|\xef\xbb\xbf")
_SURROGATES = re.compile("[\ud800-\udfff]")
# What a spreadsheet starts a formula with (OWASP CSV injection), tab and CR included.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _escape_char(c: str) -> str:
    """One non-printable character as the escape Python's repr would use."""
    named = _NAMED.get(c)
    if named:
        return named
    code = ord(c)
    if 0xDC80 <= code <= 0xDCFF:
        # surrogateescape's stand-in for an undecodable byte (a file name that is not
        # UTF-8): show the byte itself, as ls -b does.
        return f"\\x{code - 0xDC00:02x}"
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def escape_controls(s: str, max_len: int | None = None) -> str:
    """s with every non-printable character escaped; cut to about max_len characters of
    output (never inside an escape) with a note of how many input characters were cut.

    str.isprintable is the rule: it is False for categories Cc (C0, DEL, C1), Cf (bidi
    marks and overrides U+200E/F, U+202A-202E, U+2066-2069, zero-width U+200B-200D, BOM),
    Zl, Zp, Cs (surrogates), Co and Cn, and for every space but the ASCII one.
    """
    if s.isprintable() and (max_len is None or len(s) <= max_len):
        return s  # the common case: nothing to do
    out: list[str] = []
    used = 0
    for index, c in enumerate(s):
        piece = c if c.isprintable() else _escape_char(c)
        if max_len is not None and used + len(piece) > max_len:
            cut = len(s) - index
            out.append(f"… ({cut} more characters cut)")
            break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def inert_text(s: object, max_len: int = TEXT_MAX) -> str:
    """A string from a capture or a file, safe to print on a terminal or in a text file:
    one line, no raw control or format character, at most about max_len characters."""
    return escape_controls(s if isinstance(s, str) else str(s), max_len)


def inert_line(s: object, max_len: int = LINE_MAX) -> str:
    """A message for stderr (an error naming a path or quoting a line from a file): one
    line that cannot clear the screen, move the cursor or forge further lines."""
    return inert_text(s, max_len)


def inert_markup(s: object, max_len: int = TEXT_MAX) -> str:
    """inert_text escaped for rich markup: rich shows it as it is, with no style, link or
    '[/]' error taken from it."""
    from rich.markup import escape  # rich only when asked: JSON runs never import it

    return escape(inert_text(s, max_len))


def html_text(s: object, max_len: int = TEXT_MAX) -> str:
    """A string for HTML element content or a quoted attribute value."""
    return html.escape(inert_text(s, max_len), quote=True)


def csv_cell(s: object) -> str:
    """A CSV cell a spreadsheet shows as text: controls escaped, kept whole, and a leading
    formula character (= + - @ tab CR) defused with a quote, as OWASP advises."""
    raw = s if isinstance(s, str) else str(s)
    cell = escape_controls(raw)
    if raw.startswith(FORMULA_START) or cell.startswith(FORMULA_START):
        return "'" + cell
    return cell


def json_safe(s: str) -> str:
    """s encodable as UTF-8: each lone surrogate (from surrogateescape or a bad decoder)
    becomes U+FFFD; everything else, controls included, is kept for JSON to escape."""
    return _SURROGATES.sub("\ufffd", s)


def _json_escape(match: re.Match[bytes]) -> bytes:
    return b"\\u%04x" % ord(match.group().decode("utf-8"))


def json_inert(data: bytes) -> bytes:
    """Encoded JSON with its invisible and bidi characters written as \\u escapes: the
    same document to a parser, inert to a terminal or an editor (no reordered lines, no
    C1 control sequences). Most reports are ASCII without DEL: checked in C, they skip
    the regular expression's scan."""
    if data.isascii() and b"\x7f" not in data:
        return data
    return _JSON_INVISIBLE.sub(_json_escape, data)


def json_safe_tree(value: object) -> object:
    """value as plain containers with every string (dictionary keys too) through json_safe:
    for the rare report orjson refuses (a path that is not UTF-8). dataclasses.asdict keeps
    field order, so the output equals orjson's but for the repaired strings."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, str):
        return json_safe(value)
    if isinstance(value, dict):
        return {json_safe_tree(k): json_safe_tree(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe_tree(v) for v in value]
    return value
