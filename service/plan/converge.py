"""Whether a database reached TO: the comparison `check` uses, with one rule for column order.

A column added to a table goes to its end: PostgreSQL has no statement that puts it anywhere
else, short of rebuilding the table. So for the tables a plan says it adds columns to (and
their partitions and children, which get them from it), the verification compares columns
as PostgreSQL's catalog lists them for that table, order aside: the same columns, each with
exactly the same definition line, the same column comments and column privileges, and every
other fact of the table equal and in the same order. Nothing but the order of whole columns
is ignored, and only for those tables; every other object compares as `check` compares it.
"""

from __future__ import annotations

from collections.abc import Mapping

from service.compare.drift import Change, Drift, compare
from service.compare.inventory import Inventory
from service.plan.sqltext import fact_lines, split_statements
from service.production.catalog import CatalogOptions, CatalogRow


def differences(
    result: Mapping[str, CatalogRow],
    target: Mapping[str, CatalogRow],
    options: CatalogOptions,
    column_order: frozenset[str],
) -> Drift:
    """What still differs going from `result` to `target`."""
    drift = compare(_inventory(result, options), _inventory(target, options), sides=("got", "to"))
    kept = tuple(
        item
        for item in drift.items
        if not (
            item.change is Change.CHANGED
            and f"{item.kind} {item.name}" in column_order
            and same_but_column_order(
                result[f"{item.kind} {item.name}"], target[f"{item.kind} {item.name}"], options
            )
        )
    )
    return Drift(kept)


def _inventory(rows: Mapping[str, CatalogRow], options: CatalogOptions) -> Inventory:
    return Inventory.of(r.object(options) for r in rows.values())


def _columns_apart(body: str) -> tuple[list[str], list[str]]:
    """(the table's column lines, all its other lines in order)."""
    lines = fact_lines(body)
    if not lines or not lines[0].endswith(" ("):
        return [], lines
    end = lines.index(")") if ")" in lines else len(lines)
    columns = [ln for ln in lines[1:end] if not ln.startswith("    CONSTRAINT ")]
    others = [
        lines[0],
        *(ln for ln in lines[1:end] if ln.startswith("    CONSTRAINT ")),
        *lines[end:],
    ]
    return columns, others


def same_but_column_order(a: CatalogRow, b: CatalogRow, options: CatalogOptions) -> bool:
    """Equal in every fact, the order of whole columns aside."""
    a_cols, a_rest = _columns_apart(a.body)
    b_cols, b_rest = _columns_apart(b.body)
    if (
        a_rest != b_rest
        or sorted(a_cols) != sorted(b_cols)
        or (a_cols == b_cols and a.body != b.body)
    ):
        return False
    if options.owners and a.owner != b.owner:
        return False
    if options.privileges and sorted((a.acl or "").splitlines()) != sorted(
        (b.acl or "").splitlines()
    ):
        return False
    if options.comments:
        a_comments = sorted(split_statements(a.comments or "", "COMMENT ON "))
        if a_comments != sorted(split_statements(b.comments or "", "COMMENT ON ")):
            return False
    return True
