"""A backup's sync-summary.md as HTML: CommonMark (markdown-it-py) with tables, raw HTML off.

The summary is ours (service/compare/report.py puts names in code spans and diffs in fences),
but it is a file on a volume, so it is rendered as if anyone had written it: raw HTML is
escaped, links and images are not rendered at all (no request leaves the page, no
`javascript:` URL), control characters are shown as `\\x1b`, and only the first
MAX_RENDERED characters are rendered (the whole file is a download).
"""

from __future__ import annotations

from functools import lru_cache

from markdown_it import MarkdownIt

from service.compare.escape import terminal_lines

MAX_RENDERED = 2_000_000


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    return (
        MarkdownIt("commonmark", {"html": False})
        .enable("table")
        .disable(["image", "link", "autolink"])
    )


def summary_html(text: str) -> tuple[str, bool]:
    """(HTML, clipped): every fence a <pre>, every name text."""
    clipped = len(text) > MAX_RENDERED
    body = terminal_lines(text[:MAX_RENDERED])
    return _parser().render(body), clipped
