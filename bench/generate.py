"""A deterministic schema of scale S, and its drifted twin (exactly three object changes).

Scale S gives S tables (11 columns of mixed types, identity PK, a FK to the previous table,
checks, secondary indexes), S plpgsql functions (every fifth an overload of the one before),
S/5 views, S/10 triggers, S/20 enums and sequences, comments and grants, spread over five
schemas. The same S always gives the same text, byte for byte.

The drifted variant is the base plus `drift_sql(S)`: a column added to one table, one
function body changed, one secondary index dropped. Nothing else depends on those objects
(views name their columns, no constraint uses the index), so a correct diff reports three
changes and nothing more.
"""

from __future__ import annotations

SCHEMAS = ("core", "sales", "stock", "billing", "audit")
ROLES = ("bench_reader", "bench_writer")

# What drift_sql changes, as (kind, name) the way `compare --json` names objects.
# Filled by expected_changes(S).


def _schema(i: int) -> str:
    return SCHEMAS[i % len(SCHEMAS)]


def _table(i: int) -> str:
    return f"{_schema(i)}.t{i:05d}"


def _enum(i: int, enums: int) -> str:
    e = i % enums
    return f"{_schema(e)}.kind{e:04d}"


def counts(scale: int) -> dict[str, int]:
    """How many of each object family scale S creates."""
    return {
        "tables": scale,
        "functions": scale,
        "views": max(1, scale // 5),
        "triggers": max(1, scale // 10),
        "enums": max(1, scale // 20),
        "sequences": max(1, scale // 20),
    }


def _prelude() -> list[str]:
    out = [
        "SET synchronous_commit = off;",
        "SET client_min_messages = warning;",
        "SET check_function_bodies = off;",
    ]
    for role in ROLES:
        out.append(
            f"DO $$BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
            f"THEN CREATE ROLE {role}; END IF; END$$;"
        )
    out.append("BEGIN;")
    for s in SCHEMAS:
        out.append(f"CREATE SCHEMA {s};")
        out.append(f"COMMENT ON SCHEMA {s} IS 'benchmark schema {s}';")
        out.append(f"GRANT USAGE ON SCHEMA {s} TO bench_reader, bench_writer;")
        # The trigger function of the schema (triggers share it, as real schemas do).
        out.append(
            f"CREATE FUNCTION {s}.touch() RETURNS trigger LANGUAGE plpgsql AS $f$\n"
            "BEGIN\n  NEW.created_at := now();\n  RETURN NEW;\nEND\n$f$;"
        )
    return out


def _types(n: dict[str, int]) -> list[str]:
    out = []
    for e in range(n["enums"]):
        name = _enum(e, n["enums"])
        out.append(f"CREATE TYPE {name} AS ENUM ('new', 'open', 'held', 'closed', 'v{e}');")
        out.append(f"COMMENT ON TYPE {name} IS 'lifecycle {e}';")
    for q in range(n["sequences"]):
        name = f"{_schema(q)}.seq{q:04d}"
        out.append(f"CREATE SEQUENCE {name} START {q + 1} INCREMENT 3 CACHE 1;")
        out.append(f"GRANT USAGE ON SEQUENCE {name} TO bench_writer;")
    return out


def _tables(scale: int, n: dict[str, int]) -> list[str]:
    out = []
    for i in range(scale):
        t = _table(i)
        short = f"t{i:05d}"
        parent = (
            f",\n  parent_id bigint REFERENCES {_table(i - 1)} (id) ON DELETE SET NULL"
            if i
            else ",\n  parent_id bigint"
        )
        out.append(
            f"CREATE TABLE {t} (\n"
            "  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
            f"{parent},\n"
            "  code varchar(40) NOT NULL,\n"
            f"  kind {_enum(i, n['enums'])} NOT NULL DEFAULT 'new',\n"
            "  amount numeric(12,2) CHECK (amount >= 0),\n"
            "  qty integer NOT NULL DEFAULT 0,\n"
            "  created_at timestamptz NOT NULL DEFAULT now(),\n"
            "  is_active boolean NOT NULL DEFAULT true,\n"
            "  payload jsonb,\n"
            "  tags text[],\n"
            "  ref uuid,\n"
            f"  CONSTRAINT {short}_qty_ck CHECK (qty BETWEEN 0 AND {1000 + i}),\n"
            f"  CONSTRAINT {short}_code_uq UNIQUE (code)\n"
            ");"
        )
        out.append(f"CREATE INDEX {short}_parent_idx ON {t} (parent_id);")
        if i % 3 == 0:
            out.append(
                f"CREATE INDEX {short}_created_idx ON {t} (created_at DESC) WHERE is_active;"
            )
        out.append(f"COMMENT ON TABLE {t} IS 'table number {i}';")
        if i % 4 == 0:
            out.append(f"COMMENT ON COLUMN {t}.amount IS 'in cents of unit {i}';")
        out.append(f"GRANT SELECT ON {t} TO bench_reader;")
        if i % 3 == 0:
            out.append(f"GRANT INSERT, UPDATE ON {t} TO bench_writer;")
        if i % 10 == 0:
            out.append(
                f"CREATE TRIGGER {short}_touch BEFORE UPDATE ON {t} "
                f"FOR EACH ROW EXECUTE FUNCTION {_schema(i)}.touch();"
            )
    return out


def _function_name(i: int) -> str:
    base = i - 1 if i % 5 == 4 else i  # every fifth function overloads the one before it
    return f"{_schema(base)}.fn{base:05d}"


def _function(i: int, body_variant: str = "") -> str:
    name = _function_name(i)
    if i % 5 == 4:
        args, ret, expr = "a integer, b text", "text", f"b || (a + {i})::text"
    else:
        args, ret, expr = "a integer", "integer", f"a * 2 + {i}"
    return (
        f"CREATE OR REPLACE FUNCTION {name}({args}) RETURNS {ret}\n"
        "LANGUAGE plpgsql STABLE AS $f$\n"
        "DECLARE\n  n integer := 0;\nBEGIN\n"
        f"  IF a IS NULL THEN\n    RAISE EXCEPTION 'fn {i}: a is null';\n  END IF;\n"
        f"  n := n + 1;{body_variant}\n"
        f"  RETURN {expr};\nEND\n$f$;"
    )


def _signature(i: int) -> str:
    return f"{_function_name(i)}({'integer, text' if i % 5 == 4 else 'integer'})"


def _functions(scale: int) -> list[str]:
    out = []
    for i in range(scale):
        out.append(_function(i))
        if i % 4 == 0:
            out.append(f"COMMENT ON FUNCTION {_signature(i)} IS 'function {i}';")
        if i % 7 == 0:
            out.append(f"GRANT EXECUTE ON FUNCTION {_signature(i)} TO bench_reader;")
    return out


def _views(n: dict[str, int]) -> list[str]:
    out = []
    for v in range(n["views"]):
        t = 5 * v
        name = f"{_schema(t)}.v{v:05d}"
        out.append(
            f"CREATE VIEW {name} AS SELECT id, code, amount, qty * 2 AS double_qty "
            f"FROM {_table(t)} WHERE is_active;"
        )
        out.append(f"GRANT SELECT ON {name} TO bench_reader;")
    return out


def base_sql(scale: int) -> str:
    """The whole base schema as one psql script (one transaction, fast to load)."""
    if scale < 10:
        raise ValueError(f"scale {scale} is too small: use S >= 10")
    n = counts(scale)
    parts = [*_prelude(), *_types(n), *_tables(scale, n), *_functions(scale), *_views(n)]
    parts.append("COMMIT;")
    return "\n".join(parts) + "\n"


def _drift_targets(scale: int) -> tuple[int, int, int]:
    """(table with the new column, function with the new body, table losing its index)."""
    return scale // 3 + 1, (scale // 2) // 5 * 5 + 4, scale - 2


def drift_sql(scale: int) -> str:
    """The three changes that turn the base into the drifted variant."""
    table, function, index_table = _drift_targets(scale)
    return (
        "SET synchronous_commit = off;\nBEGIN;\n"
        f"ALTER TABLE {_table(table)} ADD COLUMN note text;\n"
        f"{_function(function, chr(10) + '  n := n * 2;  -- hot fix')}\n"
        f"DROP INDEX {_schema(index_table)}.t{index_table:05d}_parent_idx;\n"
        "COMMIT;\n"
    )


def drifted_sql(scale: int) -> str:
    """The drifted variant as one script: base, then the three changes."""
    return base_sql(scale) + drift_sql(scale)


def expected_changes(scale: int) -> set[tuple[str, str, str]]:
    """(change, kind, name) that `compare` must report from base to drifted, and no more."""
    table, function, index_table = _drift_targets(scale)
    return {
        ("changed", "table", _table(table)),
        ("changed", "function", _signature(function)),
        ("removed", "index", f"{_schema(index_table)}.t{index_table:05d}_parent_idx"),
    }
