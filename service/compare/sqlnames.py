"""Pure: the names an object's definition holds, found once and replaced at will.

A rename is found by reading each removed definition with the names of other renames put in
and its own name set aside (renames.py), several times over as renames are found. So a
definition is read once into its text and the places names stand, and each reading only
looks those up: a 10,000-table schema renamed is read once, not once per round.

Names are looked up only where they are code: outside string literals and dollar-quoted
bodies (a rename leaves a function body as it was), except a literal that is a name
(`'fam.seq'::regclass`, as in a serial column's default); never inside a quoted identifier.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass

from service.compare.sqltext import Span, is_word, quoted_spans

# How a name is looked up: a schema-qualified name (`q`, the first two parts of a dotted name),
# the first part of a dotted name (`p`: a schema, or a relation naming its columns in a view),
# a schema after the word SCHEMA (`s`), and bare names after a few words (an index in CREATE
# INDEX, CLUSTER ON and USING INDEX; a trigger, a policy, a rule in their CREATE line and
# comment).
NameKey = tuple[str, str]
Lookup = Callable[[NameKey], str | None]
CONTEXTS = (
    ("CLUSTER ON ", "INDEX"),
    ("INDEX ", "INDEX"),
    ("TRIGGER ", "TRIGGER"),
    ("POLICY ", "POLICY"),
    ("RULE ", "RULE"),
    ("SCHEMA ", "s"),
)
_REG_CAST = re.compile(r"::reg\w+")
_WORD = re.compile(r"[^\W\d][\w$]*")


@dataclass(frozen=True, slots=True)
class _Place:
    start: int
    end: int
    keys: tuple[tuple[NameKey, str], ...]  # (key to look up, text kept after the new name)


@dataclass(frozen=True, slots=True)
class Names:
    """A text and where names stand in it."""

    text: str
    places: tuple[_Place, ...]

    def render(self, lookup: Lookup, seen: set[NameKey] | None = None) -> str:
        """The text with each name `lookup` maps replaced; `seen` collects the keys used."""
        out: list[str] = []
        pos = 0
        for place in self.places:
            for key, rest in place.keys:
                new = lookup(key)
                if new is not None:
                    if seen is not None:
                        seen.add(key)
                    out += (self.text[pos : place.start], new, rest)
                    pos = place.end
                    break
        if not out:
            return self.text
        out.append(self.text[pos:])
        return "".join(out)


def names_in(text: str) -> Names:
    spans = quoted_spans(text)
    places = _dotted(text, 0, len(text), spans)
    for span in spans:  # a literal that is a name: `nextval('fam.seq'::regclass)`
        if span.kind == "string" and text[span.start] == "'" and _REG_CAST.match(text, span.end):
            inner = [
                s for s in quoted_spans(text[span.start + 1 : span.end - 1]) if s.kind == "ident"
            ]
            shifted = [
                Span(s.start + span.start + 1, s.end + span.start + 1, s.kind) for s in inner
            ]
            places += _dotted(text, span.start + 1, span.end - 1, shifted)
    places += _bare(text, spans)
    return Names(text, tuple(sorted(places, key=lambda p: p.start)))


def replace_names(text: str, lookup: Lookup, seen: set[NameKey] | None = None) -> str:
    """names_in(text).render(lookup, seen), for a text read once."""
    return names_in(text).render(lookup, seen)


def _part_end(text: str, at: int, end: int, idents: dict[int, int]) -> int:
    """Where the identifier starting at `at` ends (quoted or not); `at` when none starts."""
    if at in idents:
        return idents[at]
    found = _WORD.match(text, at, end)
    return found.end() if found else at


def _dotted(text: str, lo: int, hi: int, spans: list[Span]) -> list[_Place]:
    """Dotted names (`fam.t`, `fam."T".col`) in text[lo:hi], outside `spans`: found from
    their dots, which are few, rather than by trying a pattern at every character."""
    starts = [s.start for s in spans]
    ident_start = {s.start: s.end for s in spans if s.kind == "ident"}
    ident_end = {s.end: s.start for s in spans if s.kind == "ident"}
    places: list[_Place] = []
    pos = lo
    while (dot := text.find(".", pos, hi)) >= 0:
        n = bisect_right(starts, dot) - 1
        if n >= 0 and spans[n].end > dot:  # inside a quote: text, not code
            pos = spans[n].end
            continue
        if dot in ident_end:
            start = ident_end[dot]
        else:
            start = dot
            while start > lo and is_word(text[start - 1]):
                start -= 1
            if start == dot or text[start].isdigit() or text[start] == "$":
                pos = dot + 1  # a number (1.5), or no name before the dot
                continue
        if start > lo and (is_word(text[start - 1]) or text[start - 1] in '."'):
            pos = dot + 1
            continue
        parts = [text[start:dot]]
        end = dot
        while end < hi and text[end] == ".":
            after = _part_end(text, end + 1, hi, ident_start)
            if after == end + 1:
                break
            parts.append(text[end + 1 : after])
            end = after
        if len(parts) < 2:
            pos = dot + 1
            continue
        keys = (
            (("q", f"{parts[0]}.{parts[1]}"), "".join("." + p for p in parts[2:])),
            (("p", parts[0]), "".join("." + p for p in parts[1:])),
        )
        places.append(_Place(start, end, keys))
        pos = end
    return places


def _bare(text: str, spans: list[Span]) -> list[_Place]:
    """Bare names after the CONTEXTS words, where those words are code."""
    starts = [s.start for s in spans]
    ident_start = {s.start: s.end for s in spans if s.kind == "ident"}
    places: list[_Place] = []
    taken: set[int] = set()
    for word, space in CONTEXTS:
        pos = 0
        while (at := text.find(word, pos)) >= 0:
            pos = at + 1
            n = bisect_right(starts, at) - 1
            if (n >= 0 and spans[n].end > at) or (at > 0 and is_word(text[at - 1])):
                continue
            name_at = at + len(word)
            end = _part_end(text, name_at, len(text), ident_start)
            if end == name_at or name_at in taken or text[end : end + 1] == ".":
                continue  # no name, already read (CLUSTER ON before ON), or a dotted one
            taken.add(name_at)
            places.append(_Place(name_at, end, (((space, text[name_at:end]), ""),)))
    return places
