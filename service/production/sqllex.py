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
that matters - '', "", $tag$, /*, */, -- - is ever cut between blocks); cost is one regex
search per quote or comment, not per byte.
"""

from __future__ import annotations

import re

_OPENER = re.compile(rb"['\"$]|/\*")
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

    def top_level(self, data: bytes, at: int) -> bool:
        """Whether the line starting at `at` starts outside every quote and comment."""
        self._advance(data, at)
        return self.state == TOP and self.pos <= at

    def end_block(self, data: bytes) -> None:
        """Lex the rest of the block; the next block starts at its position 0."""
        self._advance(data, len(data))
        self.pos = 0

    def _advance(self, data: bytes, end: int) -> None:
        """Lex every token that starts before `end` (a line start, or the block's end)."""
        pos = self.pos
        while pos < end:
            if self.state != TOP:
                pos = self._close(data, pos)
                continue
            found = _OPENER.search(data, pos, end)
            if found is None:
                pos = end  # no line comment runs past a line start: nothing is open
                break
            at = found.start()
            # A `--` before the opener on its line comments it out (nothing between pos and
            # the opener is quoted, so that `--` is a real comment start).
            line = max(pos, data.rfind(b"\n", pos, at) + 1)
            dash = data.find(b"--", line, at)
            if dash >= 0:
                pos = data.index(b"\n", dash) + 1
                continue
            pos = self._open(data, at)
        self.pos = pos

    def _open(self, data: bytes, at: int) -> int:
        """A token starts at `at`; returns where lexing goes on (state set if it stays open)."""
        char = data[at]
        before = data[at - 1] if at else 0
        if char == 0x27:  # '
            escape = not self.standard_strings or (
                before in b"eE" and (at < 2 or data[at - 2] not in _WORD)
            )
            self.state = ESCAPE_STRING if escape else STRING
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
