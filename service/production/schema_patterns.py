"""pg_dump's schema patterns (-n/-N) as the regular expressions pg_dump matches them with.

pg_dump turns each pattern into an anchored POSIX regex (fe_utils/string_utils.c,
patternToSQLRegex) and lets the server match it against pg_namespace.nspname with `~` under
the database's default collation. The same translation here, and the server doing the same
match in the catalog queries, make `schemas = ["app_*"]` select exactly the schemas whose
objects `pg_dump -n 'app_*'` dumps. The patterns themselves go to pg_dump unchanged.

Outside double quotes: `*` is any text, `?` any one character, ASCII letters are folded to
lower case, and the other regex characters keep their regex meaning (`a|b`, `[ab]c`,
`x+`), except `$` (always literal) and `[]` (literal, for array type names). Inside double
quotes everything is literal and case is kept; `""` is one quote. An unquoted `.` separates
a database name from the schema name in pg_dump, which refuses any database name
(cross-database references), and refuses two dots: so do we, with pg_dump's words.
"""

from __future__ import annotations

_QUOTED_SPECIALS = frozenset("|*+?()[]{}.^$\\")


class PatternError(ValueError):
    """A pattern pg_dump itself would refuse."""


def schema_regex(pattern: str) -> str:
    """The anchored regex pg_dump -n PATTERN matches schema names with."""
    out: list[str] = []
    dots = 0
    in_quotes = False
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == '"':
            if in_quotes and pattern[i + 1 : i + 2] == '"':
                out.append('"')
                i += 1
            else:
                in_quotes = not in_quotes
        elif not in_quotes and "A" <= ch <= "Z":
            out.append(ch.lower())
        elif not in_quotes and ch == "*":
            out.append(".*")
        elif not in_quotes and ch == "?":
            out.append(".")
        elif not in_quotes and ch == ".":
            dots += 1
            out.append(ch)
        elif ch == "$":
            out.append("\\$")
        elif in_quotes and ch in _QUOTED_SPECIALS:
            out.append("\\" + ch)
        elif ch == "[" and pattern[i + 1 : i + 2] == "]":
            out.append("\\[")
        else:
            out.append(ch)
        i += 1
    if dots > 1:
        raise PatternError(f"improper qualified name (too many dotted names): {pattern}")
    if dots == 1:
        raise PatternError(
            f"cross-database references are not implemented: {pattern} "
            '(quote a schema name that contains a dot: "a.b")'
        )
    return "^(" + "".join(out) + ")$"


def check_patterns(patterns: list[str] | tuple[str, ...]) -> None:
    """Raise PatternError for the first pattern pg_dump would refuse."""
    for pattern in patterns:
        schema_regex(pattern)
