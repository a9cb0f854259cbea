"""Pure: what a change to a table, foreign table, view or materialized view means.

The body (catalog_queries.py, RELATIONS) is `CREATE [UNLOGGED ]<KIND> name (`, one line per
column, one per constraint (`    CONSTRAINT name def`), `)`, then one line per table fact
(OF, PARTITION OF, INHERITS, PARTITION BY, USING, WITH, TABLESPACE, SERVER, row level
security, REPLICA IDENTITY, CLUSTER ON) and, for views, `AS` and the query.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from service.compare.impact_columns import Column, added_column, column_parts, parse_column
from service.compare.impact_constraints import constraint_changes
from service.compare.inventory import DbObject
from service.compare.levels import Impact, Part
from service.compare.meta import Shape, shape, tail_parts
from service.compare.sqltext import first_name, rename_words, split_top

RELATION_KINDS = frozenset({"table", "foreign table", "view", "materialized view"})
_VIEWS = frozenset({"view", "materialized view"})
_FACTS = (
    "OF ",
    "PARTITION OF ",
    "INHERITS (",
    "PARTITION BY ",
    "USING ",
    "WITH (toast.",
    "WITH (",
    "TABLESPACE ",
    "SERVER ",
    "ENABLE ROW LEVEL SECURITY",
    "FORCE ROW LEVEL SECURITY",
    "REPLICA IDENTITY ",
    "CLUSTER ON ",
)


@dataclass(frozen=True)
class Relation:
    unlogged: bool
    columns: tuple[Column, ...]
    constraints: dict[str, str]  # name -> definition
    facts: dict[str, str]  # the fact's opening words -> the rest of its line
    query: str | None
    odd: tuple[str, ...]  # lines no rule knows


def parse_relation(body: tuple[str, ...]) -> Relation | None:
    if not body or not body[0].endswith(" ("):
        return None
    try:
        close = body.index(")")
    except ValueError:
        return None
    columns: list[Column] = []
    constraints: dict[str, str] = {}
    for line in body[1:close]:
        if line.startswith("    CONSTRAINT "):
            name, definition = first_name(line[len("    CONSTRAINT ") :])
            constraints[name] = definition
        else:
            columns.append(parse_column(line))
    facts: dict[str, str] = {}
    odd: list[str] = []
    query = None
    rest = list(body[close + 1 :])
    if "AS" in rest:
        at = rest.index("AS")
        query = "\n".join(rest[at + 1 :])
        rest = rest[:at]
    for line in rest:
        word = next((w for w in _FACTS if line.startswith(w)), None)
        if word is None or word in facts:
            odd.append(line)
        else:
            facts[word] = line[len(word) :]
    return Relation(
        body[0].startswith("CREATE UNLOGGED "),
        tuple(columns),
        constraints,
        facts,
        query,
        tuple(odd),
    )


def relation_parts(old: DbObject, new: DbObject, was: Shape, now: Shape) -> list[Part]:
    before, after = parse_relation(was.body), parse_relation(now.body)
    if before is None or after is None:
        return [
            Part(Impact.BREAKING, "definition changed"),
            *tail_parts(old.kind, new.name, was, now),
        ]
    view = new.kind in _VIEWS
    parts: list[Part] = []
    renamed = _column_renames(before.columns, after.columns)
    for old_name, new_name in renamed.items():
        parts.append(
            Part(
                Impact.BREAKING,
                f"{'output ' if view else ''}column {old_name} renamed to {new_name}",
            )
        )
    if renamed:  # read the old text with the new column names: only real changes remain
        before = _with_columns_renamed(before, renamed, old.name)
        was = _tail_with_columns_renamed(was, renamed, old.name)
    parts += _columns(before.columns, after.columns, view)
    constraint_parts, renamed_constraints = constraint_changes(
        before.constraints, after.constraints
    )
    parts += constraint_parts
    if before.unlogged != after.unlogged:
        if after.unlogged:
            parts.append(
                Part(Impact.BREAKING, "now UNLOGGED: emptied after a crash, unreadable on standbys")
            )
        else:
            parts.append(Part(Impact.COMPATIBLE, "now logged"))
    parts += _facts(before.facts, after.facts, new.kind, renamed_constraints)
    if before.query != after.query:
        parts.append(Part(Impact.BEHAVIOURAL, f"{new.kind} query changed"))
    if before.odd != after.odd:
        parts.append(Part(Impact.BREAKING, "definition changed"))
    if renamed_constraints:
        was = replace(
            was,
            comments=tuple(
                _rename_constraint_comment(ln, renamed_constraints) for ln in was.comments
            ),
        )
    parts += tail_parts(old.kind, new.name, was, now)
    return parts


def column_renames(old: DbObject, new: DbObject) -> dict[str, str]:
    """{old column name: new name} of a changed table (for its indexes, policies...)."""
    before, after = parse_relation(shape(old).body), parse_relation(shape(new).body)
    if before is None or after is None:
        return {}
    return _column_renames(before.columns, after.columns)


# -- columns -------------------------------------------------------------------------------------


def _column_renames(old: tuple[Column, ...], new: tuple[Column, ...]) -> dict[str, str]:
    """{old name: new name} for columns in the same place, alike in all but the name."""
    old_names = {c.name for c in old}
    new_names = {c.name for c in new}
    out: dict[str, str] = {}
    for i, col in enumerate(old):
        if col.name in new_names or i >= len(new):
            continue
        other = new[i]
        if other.name not in old_names and other.line == col.line and col.parsed:
            out[col.name] = other.name
    return out


def _with_columns_renamed(rel: Relation, renamed: dict[str, str], table: str) -> Relation:
    """The relation as it reads with the new column names, where they are the columns: a
    generated column's expression, constraints (a foreign key's own columns, and the columns
    it references when it references this table), the partition key."""
    columns = []
    for col in rel.columns:
        name = renamed.get(col.name, col.name)
        line = rename_words(col.line, renamed) if col.generated else col.line
        columns.append(col if (name, line) == (col.name, col.line) else parse_column(name + line))
    constraints = {}
    for key, definition in rel.constraints.items():
        if definition.startswith("FOREIGN KEY ") and " REFERENCES " in definition:
            own, _, target = definition.partition(" REFERENCES ")
            if target.startswith(table + "("):
                target = rename_words(target, renamed)
            constraints[key] = f"{rename_words(own, renamed)} REFERENCES {target}"
        else:
            constraints[key] = rename_words(definition, renamed)
    facts = dict(rel.facts)
    if "PARTITION BY " in facts:
        facts["PARTITION BY "] = rename_words(facts["PARTITION BY "], renamed)
    return replace(rel, columns=tuple(columns), constraints=constraints, facts=facts)


def _tail_with_columns_renamed(was: Shape, renamed: dict[str, str], table: str) -> Shape:
    """Column privileges and column comments under the new column names."""
    acl, comments = list(was.acl), list(was.comments)
    for old, new in renamed.items():
        acl = [ln.replace(f" ({old}) ON ", f" ({new}) ON ", 1) for ln in acl]
        prefix = f"COMMENT ON COLUMN {table}.{old} IS "
        comments = [
            f"COMMENT ON COLUMN {table}.{new} IS {ln[len(prefix) :]}"
            if ln.startswith(prefix)
            else ln
            for ln in comments
        ]
    return replace(was, acl=tuple(acl), comments=tuple(comments))


def _columns(old: tuple[Column, ...], new: tuple[Column, ...], view: bool) -> list[Part]:
    before = {c.name: c for c in old}
    after = {c.name: c for c in new}
    parts: list[Part] = []
    for col in old:
        if col.name not in after:
            what = "output column" if view else "column"
            parts.append(Part(Impact.BREAKING, f"{what} {col.name} dropped"))
        else:
            parts += column_parts(col, after[col.name], view)
    parts += [added_column(c, view) for c in new if c.name not in before]
    kept_old = [c.name for c in old if c.name in after]
    kept_new = [c.name for c in new if c.name in before]
    if kept_old != kept_new:
        # SELECT * and INSERT without a column list see the columns in another order
        parts.append(Part(Impact.BREAKING, f"{'output ' if view else ''}column order changed"))
    return parts


def _rename_constraint_comment(line: str, renamed: dict[str, str]) -> str:
    for old, new in renamed.items():
        prefix = f"COMMENT ON CONSTRAINT {old} ON "
        if line.startswith(prefix):
            return f"COMMENT ON CONSTRAINT {new} ON " + line[len(prefix) :]
    return line


# -- table facts ---------------------------------------------------------------------------------


def _facts(
    old: dict[str, str], new: dict[str, str], kind: str, renamed_constraints: dict[str, str]
) -> list[Part]:
    parts: list[Part] = []
    for word in _FACTS:
        was, now = old.get(word), new.get(word)
        if word in ("CLUSTER ON ", "REPLICA IDENTITY ") and was is not None:
            for a, b in renamed_constraints.items():  # an index named after its constraint
                was = b if was == a else was.replace(f"USING INDEX {a}", f"USING INDEX {b}")
        if was == now:
            continue
        parts += _fact(word, was, now, kind)
    return parts


def _fact(word: str, was: str | None, now: str | None, kind: str) -> list[Part]:
    key = word.strip(" (")
    if word == "ENABLE ROW LEVEL SECURITY":
        if now is not None:
            return [Part(Impact.BREAKING, "row level security enabled")]
        return [Part(Impact.COMPATIBLE, "row level security disabled")]
    if word == "FORCE ROW LEVEL SECURITY":
        if now is not None:
            return [Part(Impact.BREAKING, "row level security forced on the owner")]
        return [Part(Impact.COMPATIBLE, "row level security no longer forced")]
    if word == "PARTITION OF ":
        if now is None:
            return [Part(Impact.BREAKING, "detached from its partitioned table")]
        if was is None:
            return [Part(Impact.BEHAVIOURAL, "attached as a partition")]
        return [Part(Impact.BREAKING, "partition bounds changed")]
    if word == "PARTITION BY ":
        return [Part(Impact.BREAKING, "partition key changed")]
    if word == "INHERITS (":
        return [Part(Impact.BEHAVIOURAL, "inheritance changed")]
    if word == "REPLICA IDENTITY ":
        if now == "NOTHING":
            return [
                Part(
                    Impact.BREAKING,
                    "replica identity NOTHING: UPDATE and DELETE fail while it is published",
                )
            ]
        return [Part(Impact.COSMETIC, "replica identity changed")]
    if word == "SERVER ":
        return [Part(Impact.BEHAVIOURAL, "foreign server or its options changed")]
    if word == "WITH (" and kind == "view":
        return _view_options(was, now)
    if word == "OF ":
        if now is None:
            return [Part(Impact.COSMETIC, "no longer a typed table")]
        return [Part(Impact.COSMETIC, "now a typed table")]
    names = {
        "USING ": "access method",
        "WITH (toast.": "TOAST storage parameters",
        "WITH (": "storage parameters",
        "TABLESPACE ": "tablespace",
        "CLUSTER ON ": "CLUSTER ON index",
    }
    return [Part(Impact.COSMETIC, f"{names.get(word, key)} changed")]


def _options(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    out = {}
    for item in split_top(text.removesuffix(")"), ", "):
        key, _, value = item.partition("=")
        out[key] = value
    return out


def _view_options(was: str | None, now: str | None) -> list[Part]:
    before, after = _options(was), _options(now)
    parts: list[Part] = []
    for key in sorted(before.keys() | after.keys()):
        old, new = before.get(key), after.get(key)
        if old == new:
            continue
        if key == "check_option":
            stricter = new is not None and (old is None or (old, new) == ("local", "cascaded"))
            if stricter:
                parts.append(
                    Part(Impact.BREAKING, f"check_option {new}: writes outside the view fail")
                )
            else:
                parts.append(Part(Impact.COMPATIBLE, f"check_option {old} -> {new or 'none'}"))
        elif key == "security_invoker":
            if new == "true":
                parts.append(
                    Part(
                        Impact.BREAKING,
                        "security_invoker on: callers need privileges on the tables it reads",
                    )
                )
            else:
                parts.append(Part(Impact.BEHAVIOURAL, "security_invoker off"))
        else:
            parts.append(Part(Impact.BEHAVIOURAL, f"{key} {old or 'unset'} -> {new or 'unset'}"))
    return parts
