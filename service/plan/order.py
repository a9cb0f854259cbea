"""Dependency order for a plan's statements: pure, from pg_dump's dependencies on both sides.

Each statement is tied to the entries of FROM's dump whose state it removes and to those of
TO's whose state it makes. Going by TO's dependencies, a statement runs after the statements
making what its TO entries depend on; going by FROM's, before the statements removing what
its FROM entries depend on. An entry no statement is tied to stays as it is, and passes the
dependency on (a view on a table on a type: the view's statement orders with the type's).
Each builder's statements keep the order it wrote them in, and a drop runs before a create
of the same name. Between statements nothing orders, drops come first (in the reverse of
FROM's dump order), then the rest in TO's dump order, and last what must see everything
else (rank LATE).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, Mapping, Sequence

from service.plan.entries import Entry
from service.plan.model import Change, Part, Statement


class OrderError(ValueError):
    """The statements depend on each other in a circle: no order runs them all."""

    def __init__(self, objects: list[str]) -> None:
        super().__init__(", ".join(objects))
        self.objects = objects
        self.statements: list[str] = []  # the circle's statements' first lines, for debugging


def order(
    groups: Sequence[Sequence[Statement]],
    old: Mapping[int, Entry],
    new: Mapping[int, Entry],
    drops_before: Mapping[str, set[str]] | None = None,
) -> list[Statement]:
    """The statements of all groups in an order that runs. `drops_before`: object -> the
    objects it depends on in FROM (pg_depend): its drop runs before theirs (for objects
    pg_dump writes no dependencies for, such as user mappings)."""
    statements = [s for g in groups for s in g]
    edges: dict[int, set[int]] = {n: set() for n in range(len(statements))}
    _side(statements, new, edges, forward=True)
    _side(statements, old, edges, forward=False)
    i = 0
    for group in groups:
        chained = [i + n for n, s in enumerate(group) if s.part is Part.TRANSACTION]
        for a, b in itertools.pairwise(chained):
            edges[a].add(b)
        i += len(group)
    _names(statements, edges)
    _drops(statements, edges, drops_before or {})
    return _kahn(statements, edges)


def _drops(
    statements: list[Statement], edges: dict[int, set[int]], before: Mapping[str, set[str]]
) -> None:
    drops: dict[str, list[int]] = {}
    for n, s in enumerate(statements):
        if s.change is Change.DROP:
            drops.setdefault(s.object, []).append(n)
    for x, refs in before.items():
        for y in refs:
            for a in drops.get(x, ()):
                for b in drops.get(y, ()):
                    if a != b:
                        edges[a].add(b)


class _Below:
    """The tied entries an entry is or depends on: directly, or through entries no statement
    is tied to (those stay as they are; what they depend on still counts)."""

    def __init__(self, tied: Mapping[int, list[int]], entries: Mapping[int, Entry]) -> None:
        self.tied, self.entries = tied, entries
        self.memo: dict[int, frozenset[int]] = {}

    def __call__(self, d: int) -> frozenset[int]:
        if d in self.tied:
            return frozenset({d})
        return self.deps(d)

    def deps(self, e: int) -> frozenset[int]:
        """The tied entries below `e` itself."""
        if e in self.memo:
            return self.memo[e]
        self.memo[e] = frozenset()  # a circle among untied entries ends here
        found: set[int] = set()
        for x in self.entries[e].deps if e in self.entries else ():
            if x in self.entries:
                found |= self(x)
        self.memo[e] = frozenset(found)
        return self.memo[e]


def _side(
    statements: list[Statement],
    entries: Mapping[int, Entry],
    edges: dict[int, set[int]],
    forward: bool,
) -> None:
    """Edges of one side (a builder writes its statements in an order these agree with)."""
    tied: dict[int, list[int]] = {}
    for n, s in enumerate(statements):
        for e in s.to_entries if forward else s.from_entries:
            tied.setdefault(e, []).append(n)
    below = _Below(tied, entries)
    for e, users in tied.items():
        for d in below.deps(e):
            for a in tied[d]:
                for b in users:
                    if a == b:
                        continue
                    if forward:
                        edges[a].add(b)  # what e depends on is made first
                    else:
                        edges[b].add(a)  # e's state goes before what it depends on
    if forward:
        for n, s in enumerate(statements):
            for e in s.needs:
                for d in below(e) if e in entries else ():
                    for a in tied[d]:
                        if a != n:
                            edges[a].add(n)


def _names(statements: list[Statement], edges: dict[int, set[int]]) -> None:
    """A drop runs before a create of the same name (a recreation, or another kind of
    relation taking a dropped one's name)."""
    drops: dict[str, list[int]] = {}
    for n, s in enumerate(statements):
        if s.change is Change.DROP:
            drops.setdefault(s.name, []).append(n)
    for n, s in enumerate(statements):
        if s.change is Change.CREATE:
            for d in drops.get(s.name, ()):
                edges[d].add(n)


def _kahn(statements: list[Statement], edges: dict[int, set[int]]) -> list[Statement]:
    indegree = dict.fromkeys(edges, 0)
    for targets in edges.values():
        for t in targets:
            indegree[t] += 1

    def key(n: int) -> tuple[int, int, int]:
        s = statements[n]
        return (s.rank, s.position, n)

    heap = [(key(n), n) for n, d in indegree.items() if d == 0]
    heapq.heapify(heap)
    out: list[Statement] = []
    while heap:
        _, n = heapq.heappop(heap)
        out.append(statements[n])
        for t in edges[n]:
            indegree[t] -= 1
            if indegree[t] == 0:
                heapq.heappush(heap, (key(t), t))
    if len(out) < len(statements):
        cycle = _cycle({n for n, d in indegree.items() if d > 0}, edges)
        error = OrderError(sorted({statements[n].object for n in cycle}))
        error.statements = [statements[n].sql.split("\n", 1)[0] for n in cycle]
        raise error
    rank = {Part.BEFORE: 0, Part.TRANSACTION: 1, Part.AFTER: 2}
    for a, targets in edges.items():
        for b in targets:
            if rank[statements[a].part] > rank[statements[b].part]:
                # one outside the transaction needs one inside it before: no order runs both
                raise OrderError(sorted({statements[a].object, statements[b].object}))
    return _by_part(out)


def _cycle(left: set[int], edges: dict[int, set[int]]) -> list[int]:
    """One circle among the statements Kahn's algorithm could not free (each has a
    predecessor among them): walk predecessors until one repeats."""
    predecessors: dict[int, int] = {}
    for a in left:
        for b in edges[a]:
            if b in left:
                predecessors.setdefault(b, a)
    node = next(iter(left))
    path: list[int] = []
    seen: dict[int, int] = {}
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = predecessors[node]
    return path[seen[node] :]


def _by_part(ordered: Iterable[Statement]) -> list[Statement]:
    """Statements outside the transaction before it (BEFORE) or after it (AFTER), each part
    in the order found."""
    items = list(ordered)
    return [s for p in (Part.BEFORE, Part.TRANSACTION, Part.AFTER) for s in items if s.part is p]
