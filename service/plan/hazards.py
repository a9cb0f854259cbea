"""What each kind of statement risks and which lock it takes: one table, used by every builder.

Lock names are PostgreSQL's (the strongest lock the statement takes on an existing table,
"none" where it takes none that blocks anyone), from the documentation of each command.
"""

from __future__ import annotations

from service.plan.model import Hazard

ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
SHARE = "SHARE"
NONE = "none"

# The kinds whose objects hold rows: dropping one deletes data.
DATA_KINDS = frozenset({"table", "sequence"})
# Objects clients refer to by name: removing or re-signing one breaks whoever uses it.
CLIENT_KINDS = frozenset(
    {
        "table",
        "view",
        "materialized view",
        "foreign table",
        "sequence",
        "function",
        "procedure",
        "aggregate",
        "type",
        "domain",
        "schema",
        "operator",
        "extension",
        "collation",
        "text search configuration",
        "publication",
        "server",
        "cast",
    }
)
# Dropping or creating these takes ACCESS EXCLUSIVE on their table (or on themselves).
_TABLE_LOCKING = frozenset(
    {"table", "view", "materialized view", "foreign table", "index", "rule", "policy"}
)

Risk = tuple[frozenset[Hazard], str]


def risk(*hazards: Hazard, lock: str = NONE) -> Risk:
    return frozenset(hazards), lock


def drop(kind: str, recreated: bool, concurrently: bool = False) -> Risk:
    """DROP of a whole object; `recreated` when the plan creates it again below."""
    hazards: set[Hazard] = set()
    if not recreated:
        if kind in DATA_KINDS:
            hazards.add(Hazard.DELETES_DATA)
        if kind in CLIENT_KINDS:
            hazards.add(Hazard.BREAKS_CLIENTS)
    if kind == "index" and concurrently:
        hazards.add(Hazard.NOT_TRANSACTIONAL)
        return frozenset(hazards), SHARE_UPDATE_EXCLUSIVE
    if kind in _TABLE_LOCKING or kind == "trigger":
        hazards.add(Hazard.ACCESS_EXCLUSIVE_LOCK)
        return frozenset(hazards), ACCESS_EXCLUSIVE
    return frozenset(hazards), NONE


def create(kind: str, desc: str, on_existing_table: bool, concurrently: bool = False) -> Risk:
    """One pg_dump entry run to create (part of) an object; `on_existing_table` when the
    table it builds on already holds rows (it is not created by this plan)."""
    if not on_existing_table:
        return frozenset(), NONE
    if desc == "INDEX" or (desc == "CONSTRAINT" and kind == "table"):
        if concurrently and desc == "INDEX":
            return risk(Hazard.NOT_TRANSACTIONAL, lock=SHARE_UPDATE_EXCLUSIVE)
        if desc == "CONSTRAINT":
            return risk(Hazard.INDEX_BUILD, Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE)
        return risk(Hazard.INDEX_BUILD, lock=SHARE)
    if desc in ("FK CONSTRAINT",):
        return risk(Hazard.VALIDATES_CONSTRAINT, lock=SHARE_ROW_EXCLUSIVE)
    if desc == "CHECK CONSTRAINT":
        return risk(
            Hazard.ACCESS_EXCLUSIVE_LOCK, Hazard.VALIDATES_CONSTRAINT, lock=ACCESS_EXCLUSIVE
        )
    if desc in ("TRIGGER",):
        return risk(lock=SHARE_ROW_EXCLUSIVE)
    if desc in ("RULE", "POLICY", "ROW SECURITY", "DEFAULT"):
        return risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE)
    if desc == "STATISTICS":
        return risk(lock=SHARE_UPDATE_EXCLUSIVE)
    if desc == "TABLE ATTACH":
        return risk(Hazard.VALIDATES_CONSTRAINT, lock=SHARE_UPDATE_EXCLUSIVE)
    if desc == "PUBLICATION TABLE":
        return risk(lock=SHARE_UPDATE_EXCLUSIVE)
    return frozenset(), NONE


# ALTER TABLE subcommands: what each risks on a table that holds rows.
ALTER_TABLE: dict[str, Risk] = {
    "add column": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "add column rewriting": risk(
        Hazard.REWRITES_TABLE, Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE
    ),
    "drop column": risk(
        Hazard.DELETES_DATA,
        Hazard.BREAKS_CLIENTS,
        Hazard.ACCESS_EXCLUSIVE_LOCK,
        lock=ACCESS_EXCLUSIVE,
    ),
    "type": risk(Hazard.REWRITES_TABLE, Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "type lossy": risk(
        Hazard.DELETES_DATA,
        Hazard.REWRITES_TABLE,
        Hazard.ACCESS_EXCLUSIVE_LOCK,
        lock=ACCESS_EXCLUSIVE,
    ),
    "type binary": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "default": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    # NOT NULL added: a client inserting NULL there now fails (a breaking drift, impact.py).
    "set not null": risk(
        Hazard.VALIDATES_CONSTRAINT,
        Hazard.ACCESS_EXCLUSIVE_LOCK,
        Hazard.BREAKS_CLIENTS,
        lock=ACCESS_EXCLUSIVE,
    ),
    "drop not null": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "identity": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "storage": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "statistics": risk(lock=SHARE_UPDATE_EXCLUSIVE),
    "options": risk(lock=SHARE_UPDATE_EXCLUSIVE),
    "add constraint": risk(
        Hazard.VALIDATES_CONSTRAINT, Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE
    ),
    "add constraint not valid": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "add index constraint": risk(
        Hazard.INDEX_BUILD, Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE
    ),
    "add foreign key": risk(Hazard.VALIDATES_CONSTRAINT, lock=SHARE_ROW_EXCLUSIVE),
    "add foreign key not valid": risk(lock=SHARE_ROW_EXCLUSIVE),
    "drop constraint": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "validate constraint": risk(Hazard.VALIDATES_CONSTRAINT, lock=SHARE_UPDATE_EXCLUSIVE),
    "alter constraint": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "rewrite": risk(Hazard.REWRITES_TABLE, Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "attach partition": risk(Hazard.VALIDATES_CONSTRAINT, lock=SHARE_UPDATE_EXCLUSIVE),
    "detach partition": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "inherit": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "row security": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "replica identity": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "cluster on": risk(lock=SHARE_UPDATE_EXCLUSIVE),
    "owner": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
    "other": risk(Hazard.ACCESS_EXCLUSIVE_LOCK, lock=ACCESS_EXCLUSIVE),
}


def alter_table(what: str, existing: bool = True) -> Risk:
    """An ALTER TABLE subcommand's risk; none on a table this plan creates (it is empty)."""
    return ALTER_TABLE[what] if existing else (frozenset(), NONE)


def merge(*risks: Risk) -> Risk:
    order = [NONE, SHARE_UPDATE_EXCLUSIVE, SHARE, SHARE_ROW_EXCLUSIVE, ACCESS_EXCLUSIVE]
    hazards = frozenset(h for r in risks for h in r[0])
    lock = max((r[1] for r in risks), key=order.index, default=NONE)
    return hazards, lock
