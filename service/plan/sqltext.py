"""Reading the SQL fragments inventory definitions are made of: identifiers as quote_ident
writes them, literals as quote_literal writes them, and the statements a definition's comment
lines hold. Everything here is pure and exact for what the catalog queries print."""

from __future__ import annotations

import re

_SIMPLE = re.compile(r"[a-z_][a-z0-9_$]*\Z")
# Words quote_ident quotes although they match _SIMPLE (reserved and type-function names):
# quoting more than needed is always valid, so only these few need be known for output.
_RESERVED = frozenset(
    [
        "all",
        "analyse",
        "analyze",
        "and",
        "any",
        "array",
        "as",
        "asc",
        "asymmetric",
        "authorization",
        "binary",
        "both",
        "case",
        "cast",
        "check",
        "collate",
        "collation",
        "column",
        "concurrently",
        "constraint",
        "create",
        "cross",
        "current_catalog",
        "current_date",
        "current_role",
        "current_schema",
        "current_time",
        "current_timestamp",
        "current_user",
        "default",
        "deferrable",
        "desc",
        "distinct",
        "do",
        "else",
        "end",
        "except",
        "false",
        "fetch",
        "for",
        "foreign",
        "freeze",
        "from",
        "full",
        "grant",
        "group",
        "having",
        "ilike",
        "in",
        "initially",
        "inner",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "lateral",
        "leading",
        "left",
        "like",
        "limit",
        "localtime",
        "localtimestamp",
        "natural",
        "not",
        "notnull",
        "null",
        "offset",
        "on",
        "only",
        "or",
        "order",
        "outer",
        "overlaps",
        "placing",
        "primary",
        "references",
        "returning",
        "right",
        "select",
        "session_user",
        "similar",
        "some",
        "symmetric",
        "system_user",
        "table",
        "tablesample",
        "then",
        "to",
        "trailing",
        "true",
        "union",
        "unique",
        "user",
        "using",
        "variadic",
        "verbose",
        "when",
        "where",
        "window",
        "with",
    ]
)


def quote_ident(name: str) -> str:
    """As PostgreSQL's quote_ident (quoting a little more often is harmless)."""
    if _SIMPLE.match(name) and name not in _RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """A standard-conforming string literal (E'' where a backslash needs it)."""
    if "\\" in text:
        return "E'" + text.replace("\\", "\\\\").replace("'", "''") + "'"
    return "'" + text.replace("'", "''") + "'"


def ident_at(text: str, at: int) -> tuple[str, int]:
    """The identifier (as written, quotes kept) starting at `at`, and where it ends."""
    if at < len(text) and text[at] == '"':
        end = at + 1
        while True:
            end = text.index('"', end)
            if text.startswith('""', end):
                end += 2
                continue
            return text[at : end + 1], end + 1
    match = re.compile(r"[^\s.(),;]+").match(text, at)
    if match is None:
        raise ValueError(f"no identifier at {text[at : at + 20]!r}")
    return match.group(), match.end()


def unquote(ident: str) -> str:
    """The name an identifier as written stands for."""
    if ident.startswith('"'):
        return ident[1:-1].replace('""', '"')
    return ident


def qualified_at(text: str, at: int) -> tuple[str, int]:
    """A possibly schema-qualified name (quotes kept) starting at `at`, and where it ends."""
    first, end = ident_at(text, at)
    if end < len(text) and text[end] == ".":
        second, end = ident_at(text, end + 1)
        return f"{first}.{second}", end
    return first, end


def on_table(name: str) -> tuple[str, str]:
    """`trail_touch ON fam.trails` (a trigger's, rule's or policy's name) -> its parts."""
    ident, end = ident_at(name, 0)
    if not name.startswith(" ON ", end):
        raise ValueError(f"not `name ON table`: {name!r}")
    return ident, name[end + 4 :]


def top_level(text: str) -> list[int]:
    """Whether each character of `text` is outside every quote: a bitmap as a list of 0/1.

    Knows '' literals (E'' with backslash escapes) and "" identifiers: what the catalog
    queries' format('%L') / quote_ident / pg_get_*def write."""
    flags = [1] * len(text)
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch not in "\"'":
            i += 1
            continue
        escape = ch == "'" and i > 0 and text[i - 1] in "eE"
        escape = escape and (i < 2 or not text[i - 2].isalnum())
        j = _closing(text, i + 1, ch, escape)
        for k in range(i, min(j + 1, n)):
            flags[k] = 0
        i = j + 1
    return flags


def _closing(text: str, j: int, quote: str, escape: bool) -> int:
    """Where the quote opened before `j` closes (a doubled quote is part of it), or the end."""
    while j < len(text):
        if escape and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if j + 1 < len(text) and text[j + 1] == quote:
                j += 2
                continue
            return j
        j += 1
    return j


def split_statements(text: str, opener: str) -> list[str]:
    """Lines of `text` that start with `opener` outside quotes begin a statement; each
    statement runs to the next one (a comment's literal may span lines)."""
    if not text:
        return []
    flags = top_level(text)
    starts = [0] if text.startswith(opener) else []
    at = text.find("\n" + opener)
    while at >= 0:
        if flags[at + 1]:
            starts.append(at + 1)
        at = text.find("\n" + opener, at + 1)
    if not starts or starts[0] != 0:
        raise ValueError(f"text does not start with {opener!r}: {text[:60]!r}")
    bounds = [*starts, len(text) + 1]
    return [text[bounds[i] : bounds[i + 1] - 1] for i in range(len(starts))]


def comment_targets(comments: str | None) -> dict[str, str]:
    """`COMMENT ON <target> IS <literal>` lines -> {target: the whole statement}."""
    out: dict[str, str] = {}
    for statement in split_statements(comments or "", "COMMENT ON "):
        flags = top_level(statement)
        at = statement.rfind(" IS ")
        while at >= 0 and not flags[at + 1]:
            at = statement.rfind(" IS ", 0, at)
        if at < 0:
            raise ValueError(f"not a COMMENT statement: {statement[:60]!r}")
        out[statement[len("COMMENT ON ") : at]] = statement
    return out


def fact_lines(body: str) -> list[str]:
    """A definition's lines, a line break inside a quote not counting as one."""
    flags = top_level(body)
    out, start = [], 0
    for i, ch in enumerate(body):
        if ch == "\n" and flags[i]:
            out.append(body[start:i])
            start = i + 1
    out.append(body[start:])
    return out


def option_pairs(options: tuple[str, ...] | list[str]) -> dict[str, str]:
    """`key=value` items (as the catalog keeps generic and storage options) -> {key: value};
    the first `=` splits, as PostgreSQL's own reader does."""
    pairs: dict[str, str] = {}
    for option in options:
        key, _, value = option.partition("=")
        pairs[key] = value
    return pairs


def options_clause(old: dict[str, str], new: dict[str, str]) -> str:
    """`OPTIONS (ADD k 'v', SET k 'v', DROP k)` taking generic options old -> new, or ''."""
    items = [f"DROP {quote_ident(k)}" for k in old if k not in new]
    items += [
        f"{'SET' if k in old else 'ADD'} {quote_ident(k)} {quote_literal(v)}"
        for k, v in new.items()
        if old.get(k) != v
    ]
    return f"OPTIONS ({', '.join(items)})" if items else ""
