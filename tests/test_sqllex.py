"""sqllex.Lexer against the plain lexer it replaced (one regex search per opener): the same
answer for every line and the same state after every call, on random quote-rich SQL cut into
random blocks of lines (hypothesis), and what a user sees on a few bodies."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.production.sqllex import TOP, Lexer

# ---- the reference: the lexer as it was before it remembered positions, kept as it was ----

_OPENER = re.compile(rb"['\"$]|/\*")
_STANDARD_STRING_REST = re.compile(rb"(?:[^']|'')*+'")
_ESCAPE_STRING_REST = re.compile(rb"(?:[^'\\]|\\.|'')*+'", re.S)
_IDENTIFIER_REST = re.compile(rb'(?:[^"]|"")*+"')
_DOLLAR_TAG = re.compile(rb"\$(?:[A-Za-z\x80-\xff_][A-Za-z\x80-\xff_0-9]*)?\$")
_COMMENT_EDGE = re.compile(rb"/\*|\*/")
_WORD = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$") | frozenset(
    range(0x80, 0x100)
)
_STRING, _ESCAPE_STRING, _IDENTIFIER, _DOLLAR, _COMMENT = range(1, 6)
_REST = {
    _STRING: _STANDARD_STRING_REST,
    _ESCAPE_STRING: _ESCAPE_STRING_REST,
    _IDENTIFIER: _IDENTIFIER_REST,
}


class ReferenceLexer:
    def __init__(self, standard_strings: bool = True) -> None:
        self.standard_strings = standard_strings
        self.state = TOP
        self.tag = b""
        self.depth = 0
        self.pos = 0

    def top_level(self, data: bytes, at: int) -> bool:
        self._advance(data, at)
        return self.state == TOP and self.pos <= at

    def end_block(self, data: bytes) -> None:
        self._advance(data, len(data))
        self.pos = 0

    def _advance(self, data: bytes, end: int) -> None:
        pos = self.pos
        while pos < end:
            if self.state != TOP:
                pos = self._close(data, pos)
                continue
            found = _OPENER.search(data, pos, end)
            if found is None:
                pos = end
                break
            at = found.start()
            line = max(pos, data.rfind(b"\n", pos, at) + 1)
            dash = data.find(b"--", line, at)
            if dash >= 0:
                pos = data.index(b"\n", dash) + 1
                continue
            pos = self._open(data, at)
        self.pos = pos

    def _open(self, data: bytes, at: int) -> int:
        char = data[at]
        before = data[at - 1] if at else 0
        if char == 0x27:
            escape = not self.standard_strings or (
                before in b"eE" and (at < 2 or data[at - 2] not in _WORD)
            )
            self.state = _ESCAPE_STRING if escape else _STRING
            return at + 1
        if char == 0x22:
            self.state = _IDENTIFIER
            return at + 1
        if char == 0x24:
            tag = _DOLLAR_TAG.match(data, at) if before not in _WORD else None
            if tag is None:
                return at + 1
            self.state, self.tag = _DOLLAR, tag.group()
            return tag.end()
        self.state, self.depth = _COMMENT, 1
        return at + 2

    def _close(self, data: bytes, pos: int) -> int:
        if self.state == _DOLLAR:
            end = data.find(self.tag, pos)
            if end < 0:
                return len(data)
            self.state = TOP
            return end + len(self.tag)
        if self.state == _COMMENT:
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


# ---- random SQL-ish text, cut into blocks ----

TOKENS = (
    *(b"'", b"''", b'"', b'""', b"$", b"$$", b"$a$", b"$b$", b"$a", b"$1", b"a$b", b"a$$"),
    *(b"E'", b"e'", b"xe'", b"\\", b"\\'", b"/*", b"*/", b"/", b"*", b"-", b"--", b"\n"),
    *(b"\n", b"a", b"b", b"E", b"_", b"1", b" ", b";", b"(", b"\x80", b"\xc3\xa9", b"\xff"),
    *(b"-- $", b"--'", b"/*/", b"*/*", b"E''", b"$$a", b"$x1$", b"'\n'"),
    b"-- Name: t; Type: TABLE; Schema: public; Owner: postgres\n",
)

texts = st.lists(st.sampled_from(TOKENS), max_size=80).map(b"".join)


def _state(lexer: Lexer | ReferenceLexer) -> tuple[int, bytes, int, int]:
    return lexer.state, lexer.tag, lexer.depth, lexer.pos


def _outcome(call: Callable[..., object], *args: object) -> object:
    """What a call returns, or the kind of exception it raises (input a caller never gives)."""
    try:
        return call(*args)
    except (ValueError, IndexError) as error:
        return type(error)


@st.composite
def blocks(draw: st.DrawFn) -> list[bytes]:
    """A text of complete lines, cut into blocks at random line ends."""
    text = draw(texts)
    if not text.endswith(b"\n"):
        text += b"\n"
    lines = re.findall(rb"[^\n]*\n", text)
    cuts = draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    found: list[bytes] = []
    block = b""
    for line, cut in zip(lines, cuts, strict=True):
        block += line
        if cut:
            found.append(block)
            block = b""
    return [*found, block] if block else found


@settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(blocks=blocks(), standard_strings=st.booleans())
def test_same_answers_as_the_reference_lexer(blocks: list[bytes], standard_strings: bool) -> None:
    new, old = Lexer(standard_strings), ReferenceLexer(standard_strings)
    for data in blocks:
        for at in [0, *[m.end() for m in re.finditer(rb"\n", data)][:-1]]:
            assert new.top_level(data, at) == old.top_level(data, at), (data, at)
            assert _state(new) == _state(old), (data, at)
        new.end_block(data)
        old.end_block(data)
        assert _state(new) == _state(old), data


WHERE = ("edge", "anywhere", "half")  # a position in data: after an edge, any; in data's half


@settings(
    max_examples=400, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    data=texts,
    points=st.lists(st.tuples(st.sampled_from(WHERE), st.floats(0, 1)), max_size=16),
    standard_strings=st.booleans(),
)
def test_same_answers_anywhere(
    data: bytes, points: list[tuple[str, float]], standard_strings: bool
) -> None:
    """Beyond the callers' use: positions that are no line start, in any order, a block
    without its last newline, another block with no end_block between, the same block object
    again after end_block (the same answer, or the same exception). Not past a block's end:
    there both lexers loop for ever once a token is left open."""
    new, old = Lexer(standard_strings), ReferenceLexer(standard_strings)
    half = data[: len(data) // 2]
    edges = [at + 1 for at, byte in enumerate(data) if byte in b"'\"$/*-\\\n"]
    for _ in range(2):
        for where, point in points:
            block = half if where == "half" else data
            if where == "edge" and edges:  # right after a byte that may open or close something
                at = edges[min(int(point * len(edges)), len(edges) - 1)]
            else:
                at = round(point * len(block))
            answer = _outcome(new.top_level, block, at)
            assert answer == _outcome(old.top_level, block, at), (block, at)
            assert _state(new) == _state(old), (block, at)
        assert _outcome(new.end_block, data) == _outcome(old.end_block, data)
        assert _state(new) == _state(old), data


@pytest.mark.parametrize(
    ("data", "points"),
    [
        (b"a /* b */ c\nd\n", [3, 6, 12]),  # `/*` cut between its two bytes
        (b"x -- $1 y\nz\n", [6, 8, 10]),  # a `$` after `--`, on the line cut
        (b"x -- a$b 'q\nz\n", [7, 12]),
        (b"a 'bc' d\n", [3, 5]),  # a quote right before the cut
        (b"a $t$ b $t$\n", [4, 9]),  # a dollar tag cut
        (b"x -- $1", []),  # no last newline: the same exception
    ],
)
def test_same_answers_where_a_token_is_cut(data: bytes, points: list[int]) -> None:
    new, old = Lexer(), ReferenceLexer()
    for at in points:
        assert new.top_level(data, at) == old.top_level(data, at), at
        assert _state(new) == _state(old), at
    assert _outcome(new.end_block, data) == _outcome(old.end_block, data)
    assert _state(new) == _state(old)


# ---- what a user sees ----

HEADER = b"-- Name: t; Type: TABLE; Schema: public; Owner: postgres\n"


def _top_lines(text: bytes, standard_strings: bool = True) -> list[bytes]:
    """The lines of `text` that start at top level, lexed in blocks of two lines."""
    lines = re.findall(rb"[^\n]*\n", text)
    lexer, top = Lexer(standard_strings), []
    for first in range(0, len(lines), 2):
        data = b"".join(lines[first : first + 2])
        for at, line in ((0, lines[first]), (len(lines[first]), data[len(lines[first]) :])):
            if line and lexer.top_level(data, at):
                top.append(line)
        lexer.end_block(data)
    return top


@pytest.mark.parametrize(
    ("opening", "closing"),
    [
        (b"CREATE FUNCTION f() RETURNS int AS $$\nSELECT $1 + a$b;\n", b"$$;\n"),
        (b"CREATE FUNCTION f() RETURNS int AS $body$\nSELECT '$$';\n", b"$body$;\n"),
        (b"COMMENT ON TABLE t IS 'it''s\n", b"';\n"),
        (b"COMMENT ON TABLE t IS E'\\'\n", b"';\n"),
        (b'CREATE TABLE "odd\n', b'" (a int);\n'),
        (b"/* outer /* inner */\n", b"*/\n"),
    ],
)
def test_a_header_inside_a_body_is_not_top_level(opening: bytes, closing: bytes) -> None:
    text = opening + HEADER + closing + HEADER
    first = opening[: opening.index(b"\n") + 1]
    assert _top_lines(text) == [first, HEADER]  # the second header only
    old = ReferenceLexer()
    headers = (len(opening), len(text) - len(HEADER))
    assert [old.top_level(text, at) for at in headers] == [False, True]


def test_line_comments_and_dollars_after_words() -> None:
    text = (
        b"SELECT 1; -- it's not a quote\n"
        + HEADER
        + b"CREATE TABLE a$$b (x int); SELECT $1;\n"
        + HEADER
        + b"SELECT E'\\'' AS q, 'a\\';\n"
        + HEADER
    )
    assert _top_lines(text) == [*re.findall(rb"[^\n]*\n", text)[:5], HEADER]
    # With standard_conforming_strings off, 'a\' does not end there: the string goes on.
    assert _top_lines(text, standard_strings=False) == re.findall(rb"[^\n]*\n", text)[:5]
