"""Pure: object names and definitions made safe for the two places people read them.

Names come from production, where anyone with CREATE can write newlines, markdown, HTML or
terminal escape sequences into them. JSON needs nothing (json.dumps escapes control
characters itself, and stays exact); a terminal and a markdown viewer do.
"""

from __future__ import annotations

import re

# C0 and C1 controls, DEL, the Unicode line separators (str.splitlines cuts there) and the
# bidirectional overrides that make text read differently from what it is ("Trojan Source").
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _shown(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def visible(text: str, keep: str = "") -> str:
    """Control characters written out as `\\x1b`, `\\n`...; those in `keep` left as they are."""
    return _UNSAFE.sub(lambda m: m.group() if m.group() in keep else _shown(m.group()), text)


def terminal_lines(text: str) -> str:
    """Multi-line text (a diff) for a terminal: lines and tabs kept, every other control shown."""
    return visible(text, keep="\n\t")


def md_code(text: str, in_table: bool = False) -> str:
    """Inline code: markdown, HTML and images inside it are shown, not rendered; on one line."""
    body = visible(text)
    if in_table:
        body = body.replace("|", "\\|")  # GFM splits cells on pipes even inside code spans
    longest = max((len(run) for run in re.findall(r"`+", body)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if body.startswith("`") or body.endswith("`") or not body.strip() else ""
    return f"{fence}{pad}{body}{pad}{fence}"


def md_fenced(text: str, info: str = "") -> list[str]:
    """A fenced block no line of `text` can close: the fence outgrows any backtick run."""
    body = terminal_lines(text.rstrip("\n"))
    longest = max((len(run) for run in re.findall(r"`{3,}|~{3,}", body)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + info, body, fence]
