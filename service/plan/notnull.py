"""NOT NULL constraints as PostgreSQL 18 keeps them: named, possibly NOT VALID or NO INHERIT.

A column's plain NOT NULL (a valid, inheritable constraint of the default name
`<table>_<column>_not_null`, as SET NOT NULL makes it) stays the column builder's; any other
one -- as the inventory, which shows only those -- is planned here: renamed, validated, or
dropped and added again with its name and state. Before 18 there are none of them."""

from __future__ import annotations

from service.plan.columns import Table, relname
from service.plan.facts import special_not_null
from service.plan.model import Change, Hazard
from service.plan.sqltext import quote_ident


def not_null(t: Table) -> None:
    for n_col in t.new.columns:
        o_col = t.old.column(n_col.name)
        name = relname(t.name)
        o = special_not_null(t.old, name, n_col.name) if o_col else None
        n = special_not_null(t.new, name, n_col.name)
        if o is None and n is None:
            continue
        col = quote_ident(n_col.name)
        default = f"{name}_{n_col.name}_not_null"
        current = o.name if o else default if o_col and o_col.not_null else None
        if n is None:
            if not n_col.not_null:
                t.add(f"ALTER COLUMN {col} DROP NOT NULL", "drop not null")
                continue
            target_name, validated, no_inherit, definition = default, True, False, f"NOT NULL {col}"
        else:
            target_name, validated, no_inherit, definition = (
                n.name,
                n.validated,
                n.no_inherit,
                n.definition,
            )
        old_state = (o.validated, o.no_inherit) if o else (True, False)
        # A valid constraint cannot become NOT VALID again, nor change NO INHERIT: added anew.
        keep = current is not None and old_state[1] == no_inherit
        keep = keep and not (old_state[0] and not validated)
        if current is None or not keep:
            if current is not None:
                t.add(f"ALTER COLUMN {col} DROP NOT NULL", "drop not null")
            what = "add constraint not valid" if not validated else "add constraint"
            added = frozenset({Hazard.BREAKS_CLIENTS}) if current is None else frozenset()
            t.add(f"ADD CONSTRAINT {quote_ident(target_name)} {definition}", what, extra=added)
            continue
        if current != target_name:
            sql = f"RENAME CONSTRAINT {quote_ident(current)} TO {quote_ident(target_name)}"
            t.add(sql, "alter constraint", Change.ALTER)
        if not old_state[0] and validated:
            t.add(f"VALIDATE CONSTRAINT {quote_ident(target_name)}", "validate constraint")
