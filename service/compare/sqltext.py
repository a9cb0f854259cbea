"""Pure: reading the definition texts the catalog writes, quote by quote.

A definition (service/production/catalog_queries*.py) is SQL-like text, one fact per line.
Names, defaults, comments and bodies come from production, so a literal or a quoted name may
hold a newline, `GRANT ...` or ` NOT NULL`: these helpers only ever cut or match where psql
would see code, never inside a string, a dollar-quoted body or a quoted identifier.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from typing import NamedTuple

# Quoted identifiers, E'' strings (backslash escapes), standard strings ('' only) and
# dollar-quoted bodies, in the forms quote_ident, quote_literal and the deparsers write. Found
# from the characters that open them: one regex trying four forms at every position of 30 MB
# of definitions (a 10,000-table schema) was most of the time of a big compare.
_OPENERS = re.compile(r"[\"'$]")
_QUOTED_IDENT = re.compile(r'"(?:[^"]|"")*"')
_STRING = re.compile(r"'(?:[^']|'')*'")
_E_STRING = re.compile(r"[Ee]'(?:[^'\\]|''|\\.)*'")
_DOLLAR_TAG = re.compile(r"\$(?:[^\W\d]\w*)?\$")
_IDENT = r'(?:"(?:[^"]|"")*"|[^\W\d][\w$]*)'
_IDENT_RE = re.compile(_IDENT)
# A dotted name where it starts: not in the middle of a word, a number or another dotted name.
_DOTTED = re.compile(rf'(?<![\w$."]){_IDENT}(?:\.{_IDENT})*')
_DOTTED_START = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")


class Span(NamedTuple):
    start: int
    end: int
    kind: str  # ident | string | dollar

    def text(self, of: str) -> str:
        return of[self.start : self.end]


def is_word(char: str) -> bool:
    """Can `char` be part of an unquoted identifier (after its first character)?"""
    return char.isalnum() or char == "_" or char == "$"


def quoted_spans(text: str) -> list[Span]:
    """Every quoted identifier, string literal and dollar-quoted body, in order."""
    if '"' not in text and "'" not in text and "$" not in text:
        return []
    out: list[Span] = []
    pos = 0
    tags: dict[str, list[int]] | None = None  # where each $tag$ stands, read once if needed
    while (opener := _OPENERS.search(text, pos)) is not None:
        at = opener.start()
        char = text[at]
        found: re.Match[str] | None
        if char == '"':
            found, kind = _QUOTED_IDENT.match(text, at), "ident"
        elif char == "'":
            e_string = at > 0 and text[at - 1] in "Ee" and (at < 2 or not is_word(text[at - 2]))
            found = _E_STRING.match(text, at - 1) if e_string else _STRING.match(text, at)
            kind = "string"
        elif at > 0 and is_word(text[at - 1]):
            pos = at + 1  # a `$` inside an identifier (a$b) or a parameter ($1)
            continue
        else:
            # The closing tag from an index of all tags: a regex searching ahead from every
            # unclosed `$x$` would take quadratic time on a text full of them.
            tag = _DOLLAR_TAG.match(text, at)
            if tag is None:
                pos = at + 1
                continue
            if tags is None:
                tags = {}
                for m in _DOLLAR_TAG.finditer(text):
                    tags.setdefault(m.group(), []).append(m.start())
            places = tags.get(tag.group(), [])
            n = bisect_right(places, tag.end() - 1)
            if n < len(places):
                end = places[n] + len(tag.group())
                out.append(Span(at, end, "dollar"))
                pos = end
            else:
                pos = at + 1
            continue
        if found is None:  # unterminated: not a quote psql would see either
            pos = at + 1
            continue
        out.append(Span(found.start(), found.end(), kind))
        pos = found.end()
    return out


def logical_lines(text: str) -> list[str]:
    """The text cut at line breaks outside quotes: a comment or default holding a newline
    stays on the line it belongs to."""
    spans = quoted_spans(text)
    if not spans:
        return text.split("\n")
    out: list[str] = []
    carry = ""
    pos = 0
    for span in spans:
        parts = text[pos : span.start].split("\n")
        parts[0] = carry + parts[0]
        out.extend(parts[:-1])
        carry = parts[-1] + span.text(text)
        pos = span.end
    parts = text[pos:].split("\n")
    parts[0] = carry + parts[0]
    out.extend(parts)
    return out


def mask(text: str) -> str:
    """The text with every quoted span blanked out (same length): searching the mask finds
    only code, and its indexes cut the original."""
    spans = quoted_spans(text)
    if not spans:
        return text
    out = []
    pos = 0
    for span in spans:
        out.append(text[pos : span.start])
        out.append("_" * (span.end - span.start))
        pos = span.end
    out.append(text[pos:])
    return "".join(out)


def depth_zero(masked: str) -> list[bool]:
    """For each index of a masked text: is it outside every parenthesis and bracket?"""
    depth = 0
    out = []
    for ch in masked:
        if ch in "([":
            out.append(depth == 0)
            depth += 1
        elif ch in ")]":
            depth = max(0, depth - 1)
            out.append(depth == 0)
        else:
            out.append(depth == 0)
    return out


def find_top(text: str, word: str, start: int = 0, masked: str | None = None) -> int:
    """Index of `word` in code outside parentheses at or after `start`, else -1."""
    masked = mask(text) if masked is None else masked
    top = depth_zero(masked)
    i = masked.find(word, start)
    while i >= 0:
        if top[i]:
            return i
        i = masked.find(word, i + 1)
    return -1


def split_top(text: str, separator: str = ", ") -> list[str]:
    """`text` cut at each `separator` outside quotes and parentheses (an argument list)."""
    if not text:
        return []
    masked = mask(text)
    top = depth_zero(masked)
    parts = []
    pos = 0
    i = masked.find(separator)
    while i >= 0:
        if top[i]:
            parts.append(text[pos:i])
            pos = i + len(separator)
        i = masked.find(separator, i + 1)
    parts.append(text[pos:])
    return parts


def enclosed(text: str, open_at: int) -> int:
    """Index just past the parenthesis that closes the one at `open_at`, else len(text)."""
    masked = mask(text)
    depth = 0
    for i in range(open_at, len(masked)):
        if masked[i] == "(":
            depth += 1
        elif masked[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


def first_name(text: str) -> tuple[str, str]:
    """(the identifier, quoted or not, that `text` starts with; the rest after one space)."""
    m = _IDENT_RE.match(text)
    if m is None:
        word, _, rest = text.partition(" ")
        return word, rest
    return m.group(), text[m.end() :].removeprefix(" ")


def first_dotted(text: str) -> tuple[str, str]:
    """(the possibly dotted name `text` starts with, the rest after one space)."""
    m = _DOTTED_START.match(text)
    if m is None:
        return first_name(text)
    return m.group(), text[m.end() :].removeprefix(" ")


def name_parts(name: str) -> list[str]:
    """`fam."a.b"` -> ['fam', '"a.b"']: the identifiers of a dotted name, quotes kept."""
    return _IDENT_RE.findall(name)


def split_qualified(name: str) -> tuple[str, str]:
    """(`schema`, `rest`) of `schema.rest`; ('', name) when there is no schema."""
    m = _IDENT_RE.match(name)
    if m is None or not name[m.end() :].startswith("."):
        return "", name
    return m.group(), name[m.end() + 1 :]


def routine_name(name: str) -> str:
    """`fam.f(integer, text)` -> `fam.f`: a routine's name without its argument types."""
    masked = mask(name)
    i = masked.find("(")
    return name[:i] if i >= 0 else name


def rename_words(text: str, renamed: dict[str, str]) -> str:
    """`text` with each column name in `renamed` replaced where it is code: a bare name, or
    the last part of a dotted one (`t.a`, `fam.t.a`). Used when columns were renamed."""
    if not renamed:
        return text

    def one(m: re.Match[str]) -> str:
        parts: list[str] = _IDENT_RE.findall(m.group())
        if len(parts) == 1:
            return renamed.get(parts[0], parts[0])
        if parts[-1] in renamed:
            return ".".join([*parts[:-1], renamed[parts[-1]]])
        return m.group()

    out: list[str] = []
    pos = 0
    for span in quoted_spans(text):
        if span.kind == "ident":
            continue  # code: _DOTTED reads a quoted identifier whole
        out.append(_DOTTED.sub(one, text[pos : span.start]))
        out.append(span.text(text))
        pos = span.end
    out.append(_DOTTED.sub(one, text[pos:]))
    return "".join(out)
