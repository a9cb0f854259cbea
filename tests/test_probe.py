"""The catalog probe against a real PostgreSQL: every kind of schema change moves the
fingerprint and the next cycle reports exactly that drift; ordinary activity does not move it
(or, where it does, the full sync it causes finds nothing); uncommitted DDL is invisible.

One database for the whole module; each test leaves it synced (the record up to date), which
the next test checks first by expecting a skipped cycle.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from service.demo.cluster import ScratchCluster
from service.disk.record import read_record
from service.production.db import SessionLimits, connect
from service.production.probe import covered_catalogs, probe_once
from service.settings.model import Settings
from service.sync import SyncOutcome, check_target, sync_target
from tests.conftest import Database, new_database

OWNER = f"probe_owner_{uuid.uuid4().hex[:8]}"

BASE = f"""
CREATE ROLE {OWNER};
CREATE SCHEMA app;
CREATE SCHEMA spare;
CREATE TABLE app.t (id int PRIMARY KEY, v text, n int);
CREATE TABLE app.t2 (id int);
CREATE TABLE app.big (id int PRIMARY KEY, payload text);
CREATE VIEW app.v AS SELECT id FROM app.t;
CREATE MATERIALIZED VIEW app.mv AS SELECT 1 AS x;
CREATE FUNCTION app.f(i int) RETURNS int LANGUAGE sql AS $$ SELECT i + 1 $$;
CREATE FUNCTION app.trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER t_trg BEFORE INSERT ON app.t FOR EACH ROW EXECUTE FUNCTION app.trg();
CREATE TYPE app.mood AS ENUM ('sad', 'ok');
CREATE SEQUENCE app.s;
CREATE INDEX t_v_idx ON app.t (v);
ALTER TABLE app.t ENABLE ROW LEVEL SECURITY;
CREATE POLICY p ON app.t USING (true);
CREATE DOMAIN app.d AS int;
CREATE EXTENSION hstore VERSION '1.7';
"""

# (id, DDL, expected drift as {(kind, name)}): each is one schema change a user could make.
CHANGES: list[tuple[str, str, set[tuple[str, str]]]] = [
    ("create-table", "CREATE TABLE app.n1 (a int)", {("table", "app.n1")}),
    ("add-column", "ALTER TABLE app.t ADD COLUMN extra text", {("table", "app.t")}),
    ("alter-column-type", "ALTER TABLE app.t ALTER COLUMN n TYPE bigint", {("table", "app.t")}),
    ("column-default", "ALTER TABLE app.t ALTER COLUMN n SET DEFAULT 7", {("table", "app.t")}),
    (
        "statistics-target",
        "ALTER TABLE app.t ALTER COLUMN v SET STATISTICS 500",
        {("table", "app.t")},
    ),
    (
        "check-constraint",
        "ALTER TABLE app.t ADD CONSTRAINT n_pos CHECK (n > 0)",
        {("table", "app.t")},
    ),
    # One item since issue 18: the new name, carrying the old one.
    ("rename-table", "ALTER TABLE app.t2 RENAME TO t3", {("table", "app.t2 -> app.t3")}),
    ("drop-table", "DROP TABLE app.t3", {("table", "app.t3")}),
    (
        "replace-view",
        "CREATE OR REPLACE VIEW app.v AS SELECT id, v FROM app.t",
        {("view", "app.v")},
    ),
    ("create-view", "CREATE VIEW app.v2 AS SELECT 1 AS one", {("view", "app.v2")}),
    (
        "create-function",
        "CREATE FUNCTION app.g() RETURNS int LANGUAGE sql AS 'SELECT 1'",
        {("function", "app.g()")},
    ),
    (
        "replace-function-whitespace",
        "CREATE OR REPLACE FUNCTION app.f(i int) RETURNS int LANGUAGE sql AS $$ SELECT  i + 1 $$",
        {("function", "app.f(integer)")},
    ),
    (
        "function-config",
        "ALTER FUNCTION app.f(int) SET search_path = app",
        {("function", "app.f(integer)")},
    ),
    ("drop-function", "DROP FUNCTION app.g()", {("function", "app.g()")}),
    ("create-index", "CREATE INDEX t_n_idx ON app.t (n)", {("index", "app.t_n_idx")}),
    ("create-sequence", "CREATE SEQUENCE app.s2", {("sequence", "app.s2")}),
    ("alter-sequence", "ALTER SEQUENCE app.s INCREMENT BY 5", {("sequence", "app.s")}),
    ("create-enum", "CREATE TYPE app.color AS ENUM ('red')", {("type", "app.color")}),
    ("enum-add-value", "ALTER TYPE app.mood ADD VALUE 'happy'", {("type", "app.mood")}),
    (
        "domain-constraint",
        "ALTER DOMAIN app.d ADD CONSTRAINT d_pos CHECK (VALUE > 0)",
        {("domain", "app.d")},
    ),
    ("create-schema", "CREATE SCHEMA extra", {("schema", "extra")}),
    ("drop-schema", "DROP SCHEMA spare", {("schema", "spare")}),
    ("grant", "GRANT SELECT ON app.t TO PUBLIC", {("table", "app.t")}),
    ("revoke", "REVOKE SELECT ON app.t FROM PUBLIC", {("table", "app.t")}),
    ("comment-table", "COMMENT ON TABLE app.t IS 'orders'", {("table", "app.t")}),
    ("comment-column", "COMMENT ON COLUMN app.t.v IS 'value'", {("table", "app.t")}),
    (
        "comment-function",
        "COMMENT ON FUNCTION app.f(int) IS 'adds one'",
        {("function", "app.f(integer)")},
    ),
    ("owner", f"ALTER TABLE app.t OWNER TO {OWNER}", {("table", "app.t")}),
    (
        "default-privileges",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA app GRANT SELECT ON TABLES TO PUBLIC",
        {("default privileges", "FOR ROLE postgres IN SCHEMA app ON TABLES")},
    ),
    ("create-extension", "CREATE EXTENSION citext", {("extension", "citext")}),
    ("extension-update", "ALTER EXTENSION hstore UPDATE TO '1.8'", {("extension", "hstore")}),
    ("drop-extension", "DROP EXTENSION citext", {("extension", "citext")}),
    ("trigger-disable", "ALTER TABLE app.t DISABLE TRIGGER t_trg", {("trigger", "t_trg ON app.t")}),
    ("drop-trigger", "DROP TRIGGER t_trg ON app.t", {("trigger", "t_trg ON app.t")}),
    ("policy-change", "ALTER POLICY p ON app.t USING (id > 0)", {("policy", "p ON app.t")}),
    (
        "matview",
        "CREATE MATERIALIZED VIEW app.mv2 AS SELECT 2 AS y",
        {("materialized view", "app.mv2")},
    ),
    ("rule", "CREATE RULE r AS ON UPDATE TO app.v DO INSTEAD NOTHING", {("rule", "r ON app.v")}),
    (
        "statistics-object",
        "CREATE STATISTICS app.st ON id, n FROM app.t",
        {("statistics", "app.st")},
    ),
]


@pytest.fixture(scope="module")
def probed(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster)
    d.sql(BASE)
    yield d
    cluster.drop_database(d.name)
    cluster.psql("postgres", f"DROP ROLE IF EXISTS {OWNER}")


@pytest.fixture(scope="module")
def settings(probed: Database, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    out = tmp_path_factory.mktemp("probe")
    return Settings(
        dsn=SecretStr(probed.dsn),
        schema_file=out / "sql/complete-schema.sql",
        functions_file=out / "sql/functions.sql",
        inventory_file=out / "sql/inventory.json",
        backup_dir=out / "backups",
    )


@pytest.fixture(scope="module")
async def synced(settings: Settings) -> Settings:
    first = await sync_target(settings)
    assert first.first_run and first.skipped is None
    return settings


def drift_of(outcome: SyncOutcome) -> set[tuple[str, str]]:
    return {
        (i.kind, f"{i.from_name} -> {i.name}" if i.from_name else i.name)
        for i in outcome.drift.items
    }


async def assert_skipped(settings: Settings) -> None:
    again = await sync_target(settings)
    assert again.skipped == "unchanged", again.probe


def test_every_catalog_table_is_fingerprinted_or_left_out_for_a_reason(probed: Database) -> None:
    listed = probed.sql(
        "SELECT relname FROM pg_class WHERE relnamespace = 'pg_catalog'::regnamespace"
        " AND relkind = 'r' ORDER BY 1"
    ).split()
    assert sorted(set(listed) - covered_catalogs()) == []


@pytest.mark.parametrize(("ddl", "expected"), [c[1:] for c in CHANGES], ids=[c[0] for c in CHANGES])
async def test_schema_change_moves_the_fingerprint_and_the_next_cycle_reports_it(
    probed: Database, synced: Settings, ddl: str, expected: set[tuple[str, str]]
) -> None:
    # The module's previous test left the record up to date (its last cycle was skipped or
    # recorded a full sync), so what the probe sees moved is this DDL alone.
    probed.sql(ddl)
    outcome = await sync_target(synced)
    assert outcome.skipped is None and outcome.probe is not None
    assert outcome.probe.reason == "catalog changed"
    assert drift_of(outcome) == expected


NEEDLESS: list[str] = []  # activities that moved the fingerprint (each then found no drift)

ACTIVITY: list[tuple[str, str]] = [
    (
        "dml-100k-rows",
        "INSERT INTO app.big SELECT g, repeat('x', 50) FROM generate_series(1, 100000) g;"
        " UPDATE app.big SET payload = 'y' WHERE id % 2 = 0; DELETE FROM app.big WHERE id % 3 = 0",
    ),
    ("vacuum", "VACUUM app.big"),
    ("vacuum-freeze", "VACUUM FREEZE"),
    ("vacuum-full", "VACUUM FULL app.big"),
    ("vacuum-full-catalog", "VACUUM FULL pg_catalog.pg_attribute"),
    ("analyze", "ANALYZE"),
    ("nextval", "SELECT nextval('app.s') FROM generate_series(1, 1000)"),
    ("setval", "SELECT setval('app.s', 424242)"),
    ("truncate", "TRUNCATE app.big"),
    ("reindex", "REINDEX TABLE app.t"),
    ("refresh-matview", "REFRESH MATERIALIZED VIEW app.mv"),
    ("checkpoint", "CHECKPOINT"),
    (
        "temp-table-same-run",
        "CREATE TEMP TABLE tt (a serial PRIMARY KEY, b text DEFAULT 'x' CHECK (b <> ''));"
        " CREATE TEMP VIEW tv AS SELECT * FROM tt; COMMENT ON TABLE tt IS 'temp'",
    ),
    ("stats-reset", "SELECT pg_stat_reset()"),
]


@pytest.mark.parametrize("sql", [a[1] for a in ACTIVITY], ids=[a[0] for a in ACTIVITY])
async def test_ordinary_activity_is_not_drift(
    probed: Database, synced: Settings, sql: str, request: pytest.FixtureRequest
) -> None:
    probed.sql(sql)
    outcome = await sync_target(synced)
    assert outcome.drift.items == ()
    if outcome.skipped is None:  # the fingerprint moved: a needless full sync, no drift
        assert outcome.probe and outcome.probe.reason == "catalog changed"
        NEEDLESS.append(request.node.callspec.id)


async def test_other_sessions_temp_tables_and_open_transactions_are_not_drift(
    probed: Database, synced: Settings
) -> None:
    other = await connect(probed.conninfo)
    idle = await connect(probed.conninfo)
    try:
        await other.execute("SET default_transaction_read_only = off")
        await other.execute(
            "CREATE TEMP TABLE scratch (a serial PRIMARY KEY, b text UNIQUE);"
            " CREATE INDEX ON scratch (b); CREATE TEMP SEQUENCE scratch_s"
        )
        await idle.execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM app.t")
        outcome = await sync_target(synced)  # both sessions alive during the probe
        assert outcome.skipped == "unchanged", outcome.probe
    finally:
        await other.close()
        await idle.close()
    await assert_skipped(synced)
    print(
        f"\nneedless full syncs from ordinary activity: {len(NEEDLESS)} of "
        f"{len(ACTIVITY)} ({', '.join(NEEDLESS) or 'none'})"
    )


async def test_uncommitted_ddl_is_not_drift_until_it_commits(
    probed: Database, synced: Settings
) -> None:
    other = await connect(probed.conninfo)
    try:
        await other.execute("SET default_transaction_read_only = off")
        await other.execute(
            "BEGIN; CREATE TABLE app.pending (a int); ALTER TABLE app.t ADD COLUMN p int"
        )
        # The ALTER holds an ACCESS EXCLUSIVE lock on app.t: the probe takes none on user
        # tables, so the cycle completes (a full read would wait on that lock).
        during = await sync_target(synced)
        assert during.skipped == "unchanged" and during.drift.items == ()
        await other.execute("COMMIT")
    finally:
        await other.close()
    after = await sync_target(synced)
    assert drift_of(after) == {("table", "app.pending"), ("table", "app.t")}


async def test_edited_files_changed_settings_and_full_flag_read_in_full(
    synced: Settings,
) -> None:
    await assert_skipped(synced)
    forced = await sync_target(synced, full=True)
    assert forced.skipped is None and forced.probe and forced.probe.reason == "full sync requested"
    synced.schema_file.write_text(synced.schema_file.read_text() + "-- edited by hand\n")
    edited = await check_target(synced)
    assert (
        edited.skipped is None and edited.probe and edited.probe.reason == "files changed on disk"
    )
    assert [i.kind for i in edited.drift.items] == ["file"]
    repaired = await sync_target(synced)
    assert [i.kind for i in repaired.drift.items] == ["file"]
    await assert_skipped(synced)
    no_owners = synced.model_copy(update={"include_owners": False})
    assert (await check_target(no_owners)).probe.reason == "settings changed"  # type: ignore[union-attr]
    stale = synced.model_copy(update={"full_sync_interval_s": 0})
    assert (await check_target(stale)).probe.reason == "full_sync_interval reached"  # type: ignore[union-attr]
    record = read_record(synced.backup_dir)
    assert record is not None and record.file_hashes


def test_xmin_from_age_arithmetic_is_the_raw_xmin(probed: Database) -> None:
    # The probe reads xmin as (X - age(xmin)) mod 2^32 to avoid a text cast per row.
    same = probed.sql(
        "BEGIN; SELECT bool_and(((SELECT age('3'::xid)::int8 + 3) - age(xmin)) & 4294967295"
        " = xmin::text::int8) FROM pg_attribute WHERE age(xmin) <> 2147483647; COMMIT"
    )
    assert "t" in same.split()


async def test_prepared_transaction_with_ddl_is_not_drift_until_commit_prepared(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # Its own small cluster: two-phase commit needs max_prepared_transactions > 0.
    with ScratchCluster(settings={"max_prepared_transactions": "2"}) as own:
        own.create_database("app")
        own.psql("app", "CREATE TABLE public.t (id int)")
        out = tmp_path_factory.mktemp("prepared")
        settings = Settings(
            dsn=SecretStr(own.dsn("app")),
            schema_file=out / "sql/complete-schema.sql",
            functions_file=out / "sql/functions.sql",
            inventory_file=out / "sql/inventory.json",
            backup_dir=out / "backups",
        )
        assert (await sync_target(settings)).first_run
        own.psql(
            "app",
            "BEGIN; CREATE TABLE public.later (a int); ALTER TABLE public.t ADD COLUMN b int;"
            " PREPARE TRANSACTION 'ddl'",
        )
        pending = await sync_target(settings)
        assert pending.skipped == "unchanged" and pending.drift.items == ()
        own.psql("app", "COMMIT PREPARED 'ddl'")
        after = await sync_target(settings)
        assert drift_of(after) == {("table", "public.later"), ("table", "public.t")}


async def test_a_role_made_superuser_reads_in_full_and_writes_what_it_now_sees(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    # pg_dump leaves subscriptions out for a role that is not a superuser (with a warning);
    # ALTER ROLE ... SUPERUSER changes no catalog the probe hashed by content.
    d = new_database(cluster)
    role, sub = f"reader_{d.name}", f"sub_{d.name}"
    cluster.psql("postgres", f"CREATE ROLE {role} LOGIN")
    d.sql(
        f"CREATE SUBSCRIPTION {sub} CONNECTION 'dbname=nowhere' PUBLICATION p"
        " WITH (connect = false, slot_name = NONE, enabled = false)"
    )
    settings = Settings(
        dsn=SecretStr(cluster.dsn(d.name, role)),
        schema_file=tmp_path / "sql/complete-schema.sql",
        functions_file=tmp_path / "sql/functions.sql",
        inventory_file=tmp_path / "sql/inventory.json",
        backup_dir=tmp_path / "backups",
    )
    try:
        assert (await sync_target(settings)).first_run
        assert "CREATE SUBSCRIPTION" not in settings.schema_file.read_text()
        await assert_skipped(settings)
        cluster.psql("postgres", f"ALTER ROLE {role} SUPERUSER")
        after = await sync_target(settings)
        assert after.skipped is None and after.probe is not None
        assert after.probe.reason == "catalog changed"
        assert "session" in after.probe.changed_catalogs
        assert f"CREATE SUBSCRIPTION {sub} " in settings.schema_file.read_text()
        await assert_skipped(settings)  # rebuilt for what the role now reads: stable again
    finally:
        d.sql(f"DROP SUBSCRIPTION {sub}")
        cluster.drop_database(d.name)
        cluster.psql("postgres", f"DROP ROLE {role}")


async def test_the_collation_librarys_version_is_in_the_fingerprint(
    probed: Database, settings: Settings
) -> None:
    # No DDL changes it (an OS upgrade does), and the catalog queries sort text by it.
    expected = probed.sql(
        "SELECT hashtextextended(coalesce(pg_database_collation_actual_version(oid), ''), 0)"
        " FROM pg_database WHERE datname = current_database()"
    ).strip()
    fingerprint = await probe_once(settings.conninfo(), SessionLimits())
    assert fingerprint.parts["collation version"] == f"1:{expected}"
