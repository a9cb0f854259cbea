"""Where a psql script is outside every quote and comment: psql's own lexical rules, streamed.

Why the splitter needs it: a function body, a string literal or a quoted name can hold any
line, a TOC header look-alike (`-- Name: x; Type: TABLE; ...`) included, even the whole
blank + `--` + header + `--` + blank block. Lines that look like pg_dump's cannot be told
apart by their text; by their *position* they can. pg_dump writes object text only as
quoted literals (strings, identifiers, dollar quotes whose tag it picks so that it is not in
the body) or as deparsed SQL, which keeps no comments; its own comment lines stand between
statements. psql reads the file with exactly these rules (standard and E'' strings, ""
identifiers, $tag$ quotes, nested /* */ and -- comments), so a line that starts at top level
here starts at top level for psql: it is pg_dump's, not the body's.

Fed a block of complete lines at a time (a block always ends with a newline, so no token
that matters - '', "", $tag$, /*, */, -- - is ever cut between blocks); cost is a few
`bytes.find` calls per quote or comment, not per byte: each kind of opener's next position
in the block is found once and remembered until lexing passes it.
"""

from __future__ import annotations

import re
import sys

# A `$` that opens a dollar quote: not after a word character, and a tag follows. Any other
# `$` (`$1`, `a$b`) changes nothing, and `$` is frequent in bodies: the search skips them.
# Searched from the first `$` (bytes.find, memchr) on: the regex alone goes byte by byte.
_DOLLAR_OPENER = re.compile(
    rb"\$(?<![A-Za-z\x80-\xff_0-9$]\$)(?:[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*)?\$"
)
# Searched from the first `/` on, as `$` is: bytes.find(b"/*") is ~4 times slower.
_COMMENT_OPENER = re.compile(rb"/\*")
# Possessive: an unterminated literal must fail, not end early at half of a doubled quote.
_STANDARD_STRING_REST = re.compile(rb"(?:[^']|'')*+'")
_ESCAPE_STRING_REST = re.compile(rb"(?:[^'\\]|\\.|'')*+'", re.S)
_IDENTIFIER_REST = re.compile(rb'(?:[^"]|"")*+"')
_DOLLAR_TAG = re.compile(rb"\$(?:[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*)?\$")
_COMMENT_EDGE = re.compile(rb"/\*|\*/")
# A `$` or `'` right after one of these continues a word: `a$b$` is a name, `$1` a
# parameter, and only a lone e/E before a quote makes an escape string.
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$") | frozenset(
    range(0x80, 0x100)
)

TOP, STRING, ESCAPE_STRING, IDENTIFIER, DOLLAR, COMMENT = range(6)
_NONE = sys.maxsize  # a remembered next position: there is none in the block
_UNKNOWN = (-1, -1, -1, -1, -1)  # nothing remembered: every kind is found again
_REST = {
    STRING: _STANDARD_STRING_REST,
    ESCAPE_STRING: _ESCAPE_STRING_REST,
    IDENTIFIER: _IDENTIFIER_REST,
}


class Lexer:
    """Tracks quotes and comments across blocks; `top_level(data, at)` for a line start."""

    def __init__(self, standard_strings: bool = True) -> None:
        self.standard_strings = standard_strings
        self.state = TOP
        self.tag = b""  # the open dollar quote's delimiter
        self.depth = 0  # nesting of /* */ comments
        self.pos = 0  # data[:pos] of the current block is lexed
        # Of the block `_data`, for each of ', ", a dollar quote's $, /* and --: the first
        # position at or after some point <= pos (_NONE: there is none). Still the next one
        # while it is >= pos; found again only once lexing has passed it.
        self._data: bytes | None = None
        self._next = _UNKNOWN
        # No opener starts in `_data`[pos:_clear], and the state is TOP: a line start in there
        # is top level, with nothing to lex (0: not known).
        self._clear = 0

    def top_level(self, data: bytes, at: int) -> bool:
        """Whether the line starting at `at` starts outside every quote and comment."""
        if self.pos <= at < self._clear and data is self._data and data[at - 1 : at] == b"\n":
            self.pos = at  # most lines asked about: no quote or comment opens before them
            return True
        self._advance(data, at)
        return self.state == TOP and self.pos <= at

    def end_block(self, data: bytes) -> None:
        """Lex the rest of the block; the next block starts at its position 0."""
        self._advance(data, len(data))
        self.pos = 0
        self._data, self._next, self._clear = None, _UNKNOWN, 0

    def _advance(self, data: bytes, end: int) -> None:
        """Lex every token that starts before `end` (a line start, or the block's end)."""
        pos = self.pos
        if pos >= end:
            return
        if data is not self._data:
            self._data, self._next = data, _UNKNOWN
        self._clear = clear = 0
        quote, ident, dollar, comment, dash = self._next
        while pos < end:
            if self.state != TOP:
                pos = self._close(data, pos)
                continue
            if quote < pos:
                quote = data.find(b"'", pos)
                quote = _NONE if quote < 0 else quote
            if ident < pos:
                ident = data.find(b'"', pos)
                ident = _NONE if ident < 0 else ident
            if dollar < pos:
                dollar = data.find(b"$", pos)
                found = _DOLLAR_OPENER.search(data, dollar) if dollar >= 0 else None
                dollar = _NONE if found is None else found.start()
            if comment < pos:
                comment = data.find(b"/", pos)
                found = _COMMENT_OPENER.search(data, comment) if comment >= 0 else None
                comment = _NONE if found is None else found.start()
            at = min(quote, ident, dollar, comment)
            if at >= end or (at == comment and at + 2 > end):
                # No line comment runs past a line start: nothing is open.
                pos = end if data[end - 1 : end] == b"\n" else _past_cut_line(data, pos, end)
                clear = at
                break
            if dash < at:
                # A `--` before the opener on its line comments it out (nothing between pos
                # and the opener is quoted, so that `--` is a real comment start).
                line = data.rfind(b"\n", pos, at) + 1 or pos
                if dash < line:
                    dash = data.find(b"--", line)
                    dash = _NONE if dash < 0 else dash
                if dash < at:
                    pos = data.index(b"\n", dash) + 1
                    continue
            # The commonest tokens, when they end in the block, lexed to their end right here
            # (as _open, then _close, would).
            if at == quote and at + 1 < end:
                rest = _REST[self._string_state(data, at)].match(data, at + 1)
                if rest is not None:
                    pos = rest.end()
                    continue
            elif at == dollar:
                tag = _DOLLAR_TAG.match(data, at)
                if tag is not None and tag.end() < end:
                    self.tag = delimiter = tag.group()
                    close = data.find(delimiter, tag.end())
                    if close >= 0:
                        pos = close + len(delimiter)
                        continue
            pos = self._open(data, at)
        self.pos, self._clear = pos, clear
        self._next = quote, ident, dollar, comment, dash

    def _open(self, data: bytes, at: int) -> int:
        """A token starts at `at`; returns where lexing goes on (state set if it stays open)."""
        char = data[at]
        before = data[at - 1] if at else 0
        if char == 0x27:  # '
            self.state = self._string_state(data, at)
            return at + 1
        if char == 0x22:  # "
            self.state = IDENTIFIER
            return at + 1
        if char == 0x24:  # $
            tag = _DOLLAR_TAG.match(data, at) if before not in _WORD else None
            if tag is None:
                return at + 1  # part of a name, or a parameter such as $1
            self.state, self.tag = DOLLAR, tag.group()
            return tag.end()
        self.state, self.depth = COMMENT, 1  # /*
        return at + 2

    def _string_state(self, data: bytes, at: int) -> int:
        """The state inside the string literal whose opening quote is at `at`."""
        escape = not self.standard_strings or (
            at > 0 and data[at - 1] in b"eE" and (at < 2 or data[at - 2] not in _WORD)
        )
        return ESCAPE_STRING if escape else STRING

    def _close(self, data: bytes, pos: int) -> int:
        """Inside an open token at `pos`: where it ends, or the block's end if it does not."""
        if self.state == DOLLAR:
            end = data.find(self.tag, pos)
            if end < 0:
                return len(data)
            self.state = TOP
            return end + len(self.tag)
        if self.state == COMMENT:
            for edge in _COMMENT_EDGE.finditer(data, pos):
                self.depth += 1 if edge.group() == b"/*" else -1
                if not self.depth:
                    self.state = TOP
                    return edge.end()
            return len(data)
        rest = _REST[self.state].match(data, pos)
        if rest is None:
            return len(data)
        self.state = TOP
        return rest.end()


def _past_cut_line(data: bytes, pos: int, end: int) -> int:
    """Where lexing stops when no opener starts in data[pos:end] and `end` is no line start.

    Not the callers' case (`end` is a line start or the block's end, after a newline), but
    kept exact: the `$`s skipped as no dollar quote stop at a `--` before them on their
    line like any opener, and on the line cut by `end` that sends lexing past `end`.
    """
    line = max(pos, data.rfind(b"\n", pos, end) + 1)
    dash = data.find(b"--", line, end)
    if dash >= 0 and data.find(b"$", dash + 2, end) >= 0:
        return data.index(b"\n", dash) + 1
    return end
