"""Pure: reading the definition texts the catalog writes, quote by quote.

A definition (service/production/catalog_queries*.py) is SQL-like text, one fact per line.
Names, defaults, comments and bodies come from production, so a literal or a quoted name may
hold a newline, `GRANT ...` or ` NOT NULL`: these helpers only ever cut or match where psql
would see code, never inside a string, a dollar-quoted body or a quoted identifier.
"""

from __future__ import annotations

import re
from collections.abc import Callable

# Quoted identifiers, E'' strings (backslash escapes), standard strings ('' only) and
# dollar-quoted bodies, in the forms quote_ident, quote_literal and the deparsers write.
_QUOTED = re.compile(
    r'"(?:[^"]|"")*"'
    r"|(?<![\w$])[Ee]'(?:[^'\\]|''|\\.)*'"
    r"|'(?:[^']|'')*'"
    r"|(?<![\w$])\$((?:[^\W\d][\w]*)?)\$.*?\$\1\$",
    re.S,
)
_IDENT = r'(?:"(?:[^"]|"")*"|[^\W\d][\w$]*)'
_IDENT_RE = re.compile(_IDENT)
# A dotted name where it starts: not in the middle of a word, a number or another dotted name.
_DOTTED = re.compile(rf'(?<![\w$."]){_IDENT}(?:\.{_IDENT})*')
_DOTTED_START = re.compile(rf"{_IDENT}(?:\.{_IDENT})*")
_REG_CAST = re.compile(r"::reg\w+")


def _quoted_spans(text: str) -> list[re.Match[str]]:
    if '"' not in text and "'" not in text and "$" not in text:
        return []
    return list(_QUOTED.finditer(text))


def logical_lines(text: str) -> list[str]:
    """The text cut at line breaks outside quotes: a comment or default holding a newline
    stays on the line it belongs to."""
    spans = _quoted_spans(text)
    if not spans:
        return text.split("\n")
    out: list[str] = []
    carry = ""
    pos = 0
    for m in spans:
        parts = text[pos : m.start()].split("\n")
        parts[0] = carry + parts[0]
        out.extend(parts[:-1])
        carry = parts[-1] + m.group()
        pos = m.end()
    parts = text[pos:].split("\n")
    parts[0] = carry + parts[0]
    out.extend(parts)
    return out


def mask(text: str) -> str:
    """The text with every quoted span blanked out (same length): searching the mask finds
    only code, and its indexes cut the original."""
    spans = _quoted_spans(text)
    if not spans:
        return text
    out = []
    pos = 0
    for m in spans:
        out.append(text[pos : m.start()])
        out.append("_" * (m.end() - m.start()))
        pos = m.end()
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


# -- names, replaced where they are code ------------------------------------------------------

# What a name is looked up as: a schema-qualified name (`q`, first two parts), the first part
# of a dotted name (`p`: a schema, or a relation naming its columns in a view), a schema after
# the word SCHEMA (`s`), and bare names after a few words (an index in CREATE INDEX, CLUSTER
# ON, USING INDEX; a trigger, a policy, a rule in their CREATE line and comment).
NameKey = tuple[str, str]
Lookup = Callable[[NameKey], str | None]
_CONTEXTS = (
    ("CLUSTER ON ", "INDEX"),
    ("INDEX ", "INDEX"),
    ("TRIGGER ", "TRIGGER"),
    ("POLICY ", "POLICY"),
    ("RULE ", "RULE"),
    ("SCHEMA ", "s"),
)


def replace_names(text: str, lookup: Lookup, seen: set[NameKey] | None = None) -> str:
    """`text` with each name that `lookup` maps replaced; inside literals only where a
    literal is a name (`'fam.seq'::regclass`), never inside a body or a comment's text.
    `seen` collects the keys that were replaced."""

    def one(m: re.Match[str]) -> str:
        found = m.group()
        parts = _IDENT_RE.findall(found)
        if len(parts) >= 2:
            key: NameKey = ("q", f"{parts[0]}.{parts[1]}")
            new = lookup(key)
            if new is not None:
                if seen is not None:
                    seen.add(key)
                return ".".join([new, *parts[2:]])
            key = ("p", parts[0])
            new = lookup(key)
            if new is not None:
                if seen is not None:
                    seen.add(key)
                return ".".join([new, *parts[1:]])
            return found
        before = m.string[max(0, m.start() - 11) : m.start()]
        for word, space in _CONTEXTS:
            if before.endswith(word):
                key = (space, found)
                new = lookup(key)
                if new is not None:
                    if seen is not None:
                        seen.add(key)
                    return new
                break
        return found

    spans = _quoted_spans(text)
    if not spans:
        return _DOTTED.sub(one, text)
    out: list[str] = []
    pos = 0
    for m in spans:
        if m.group().startswith('"'):
            continue  # a quoted identifier is code: _DOTTED reads it whole
        out.append(_DOTTED.sub(one, text[pos : m.start()]))
        literal = m.group()
        if literal.startswith("'") and _REG_CAST.match(text, m.end()):
            literal = "'" + _DOTTED.sub(one, literal[1:-1]) + "'"
        out.append(literal)
        pos = m.end()
    out.append(_DOTTED.sub(one, text[pos:]))
    return "".join(out)


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

    spans = [m for m in _quoted_spans(text) if not m.group().startswith('"')]
    out: list[str] = []
    pos = 0
    for m in spans:
        out.append(_DOTTED.sub(one, text[pos : m.start()]))
        out.append(m.group())
        pos = m.end()
    out.append(_DOTTED.sub(one, text[pos:]))
    return "".join(out)
