"""A check the probe answers without building the settings (cli/quick.py, settings/cache.py).

The second `check` of the same inputs reads what the first resolved the settings to. What a
user must never see from it: "in sync" where the usual check would find drift or an error, a
stale setting used after any input changed, or a password kept on disk. Whether the settings
were built is read from the modules the command loaded (pydantic), never from timings.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from service.settings import cache
from tests.conftest import NO_DRIFT, SETTINGS_CACHE, Database, new_database, run_cli
from tests.test_startup import loaded

BUILT = "service.settings.model"  # loaded only when the settings model is built


def _env(db: Database, **extra: str) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    return {**clean, "SCHEMA_SYNC_DSN": db.dsn, **extra}


def check(cwd: Path, env: dict[str, str], *flags: str) -> tuple[int, str, bool]:
    """(exit code, stdout, whether the settings model was built)."""
    result = loaded("check", *flags, cwd=cwd, env=env)
    modules = set(result["modules"])  # type: ignore[call-overload]
    return int(result["code"]), str(result["out"]), BUILT in modules  # type: ignore[call-overload]


@pytest.fixture
def synced(db: Database, tmp_path: Path) -> tuple[Database, Path]:
    db.sql("CREATE TABLE t (id int PRIMARY KEY)")
    db.sql("CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'")
    assert run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": db.dsn}).code == 0
    return db, tmp_path


def test_the_second_check_of_the_same_inputs_builds_no_settings(
    synced: tuple[Database, Path],
) -> None:
    db, work = synced
    env = _env(db)
    assert check(work, env) == (0, "in sync: no drift\n", True)
    assert check(work, env) == (0, "in sync: no drift\n", False)
    modules = set(loaded("check", cwd=work, env=env)["modules"])  # type: ignore[call-overload]
    # Neither the settings libraries nor the read it skips: the export and its splitter, the
    # comparison, the pipeline.
    unneeded = {"pydantic", "pydantic_settings", "service.production.export", "service.sync"}
    assert sorted(modules & (unneeded | {"service.compare.impact"})) == []
    # --json is other inputs: built once, then answered the same way, in the same words.
    for built in (True, False):
        code, out, was_built = check(work, env, "--json")
        assert (code, json.loads(out), was_built) == (0, NO_DRIFT, built)


@pytest.mark.parametrize("change", ["column added", "function replaced", "file edited"])
def test_a_change_after_the_quick_answer_is_still_found(
    synced: tuple[Database, Path], change: str
) -> None:
    db, work = synced
    env = _env(db)
    check(work, env)
    assert check(work, env) == (0, "in sync: no drift\n", False)
    if change == "column added":
        db.sql("ALTER TABLE t ADD COLUMN note text")
    elif change == "function replaced":
        db.sql("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 2'")
    else:
        schema = work / "sql/schemas/complete-schema.sql"
        schema.write_text(schema.read_text() + "\n-- edited by hand\n")
    code, out, built = check(work, env)
    assert code == 1 and out.startswith("drift:"), out
    assert built  # the usual check read production and said what changed
    if change != "file edited":
        assert ("public.t" if change == "column added" else "public.f()") in out


@pytest.mark.parametrize(
    "what",
    ["environment", "flag", "config file", ".env file", "working directory"],
)
def test_any_other_input_builds_the_settings_again(
    synced: tuple[Database, Path], what: str
) -> None:
    db, work = synced
    env = _env(db)
    for name, path in [
        ("SCHEMA_FILE", "sql/schemas/complete-schema.sql"),
        ("FUNCTIONS_FILE", "sql/schemas/functions.sql"),
        ("INVENTORY_FILE", "sql/schemas/inventory.json"),
        ("BACKUP_DIR", "backups"),
    ]:
        env[f"SCHEMA_SYNC_{name}"] = str(work / path)  # the same files from anywhere
    (work / "config").mkdir()
    config = work / "config/pg-schema-sync.toml"
    config.write_text("statement_timeout_ms = 60000\n")
    check(work, env)
    assert check(work, env)[2] is False
    argv: tuple[str, ...] = ()
    if what == "environment":
        env["SCHEMA_SYNC_STATEMENT_TIMEOUT_MS"] = "50000"
    elif what == "flag":
        argv = ("--log-level", "error")
    elif what == "config file":
        config.write_text("statement_timeout_ms = 50000\n")
    elif what == ".env file":
        (work / ".env").write_text("SCHEMA_SYNC_STATEMENT_TIMEOUT_MS=50000\n")
    else:
        (work / "sub").mkdir()
        (work / "sub/config").symlink_to(work / "config")  # the same config file's bytes
        work = work / "sub"
    code, out, built = check(work, env, *argv)
    assert built, f"a check after the {what} changed used the settings of before"
    assert code == 0 and out == "in sync: no drift\n"


def test_an_invalid_setting_is_reported_after_a_quick_answer(
    synced: tuple[Database, Path],
) -> None:
    db, work = synced
    env = _env(db)
    check(work, env)
    assert check(work, env)[2] is False
    bad = run_cli(
        "check", cwd=work, env={"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_STATEMENT_TIMEOUT_MS": "-5"}
    )
    assert bad.code == 2 and bad.out == ""
    assert "statement_timeout_ms" in bad.err and len(bad.err.strip().splitlines()) == 1


def test_an_unknown_variable_is_warned_of_on_both_paths(synced: tuple[Database, Path]) -> None:
    db, work = synced
    env = {"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_INCLUDE_COMENTS": "false"}
    for _ in range(2):
        result = run_cli("check", cwd=work, env=env)
        assert result.code == 0 and result.out == "in sync: no drift\n"
        assert "SCHEMA_SYNC_INCLUDE_COMENTS" in result.err
        assert "SCHEMA_SYNC_INCLUDE_COMMENTS" in result.err  # the nearest valid name
    assert check(work, _env(db, SCHEMA_SYNC_INCLUDE_COMENTS="false"))[2] is False


def _cached_text() -> str:
    return "".join(p.read_text(errors="replace") for p in SETTINGS_CACHE.rglob("*") if p.is_file())


def test_no_password_is_kept(cluster: ScratchCluster, db: Database, tmp_path: Path) -> None:
    role = f"quick_{uuid.uuid4().hex[:8]}"
    secret = f"Pw-{uuid.uuid4().hex}"
    db.sql(f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{secret}'; CREATE TABLE t (id int)")
    try:
        with_password = cluster.tcp_dsn(db.name, role, secret)
        assert run_cli("sync", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": with_password}).code == 0
        clean = _env(db)
        # A password in the DSN: nothing is kept, every check builds the settings.
        env = {**clean, "SCHEMA_SYNC_DSN": with_password}
        assert check(tmp_path, env) == (0, "in sync: no drift\n", True)
        assert check(tmp_path, env) == (0, "in sync: no drift\n", True)
        # The password in PGPASSWORD: kept is everything but it.
        env = {**clean, "SCHEMA_SYNC_DSN": with_password.replace(f":{secret}@", "@")}
        env["PGPASSWORD"] = secret
        assert check(tmp_path, env) == (0, "in sync: no drift\n", True)
        assert check(tmp_path, env) == (0, "in sync: no drift\n", False)
        assert secret not in _cached_text()
        # The password is read when connecting: a wrong one is the usual one-line failure.
        env["PGPASSWORD"] = "wrong"
        result = run_cli("check", cwd=tmp_path, env=env)
        assert result.code == 2 and result.out == ""
        assert "password" in result.err and len(result.err.strip().splitlines()) == 1
        assert secret not in result.err
    finally:
        db.sql(f"DROP OWNED BY {role}; DROP ROLE {role}")


@pytest.mark.parametrize(
    "damage", ["not json", "another shape", "another key", "a folder", "writable by others"]
)
def test_a_damaged_entry_is_built_afresh(synced: tuple[Database, Path], damage: str) -> None:
    db, work = synced
    env = _env(db)
    before = set(SETTINGS_CACHE.rglob("*.json"))
    check(work, env)
    # This test's new entry: other tests (other processes) may be adding theirs meanwhile.
    (entry,) = [
        p for p in set(SETTINGS_CACHE.rglob("*.json")) - before if str(work) in p.read_text()
    ]
    if damage == "not json":
        entry.write_text("{not json")
    elif damage == "another shape":
        entry.write_text(json.dumps({"format": 1, "key": entry.stem, "target": {"name": 1}}))
    elif damage == "another key":  # a planted entry must name the key it is stored under
        data = json.loads(entry.read_text())
        data["key"] = "0" * 64
        entry.write_text(json.dumps(data))
    elif damage == "writable by others":  # another user could have planted it
        entry.chmod(0o666)
    else:
        entry.unlink()
        entry.mkdir()
    assert check(work, env) == (0, "in sync: no drift\n", True)


def test_without_a_writable_cache_every_check_builds_the_settings(
    synced: tuple[Database, Path], tmp_path: Path
) -> None:
    db, work = synced
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    env = _env(db, XDG_CACHE_HOME=str(blocker))
    for _ in range(2):
        assert check(work, env) == (0, "in sync: no drift\n", True)


def test_the_key_follows_every_input_but_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    base = {"SCHEMA_SYNC_DSN": "postgresql://r@h/d", "PATH": "/usr/bin", "PGPASSWORD": "a"}
    first = cache.key(["check"], None, base)
    assert first is not None and first == cache.key(["check"], None, dict(base))
    same = [
        {**base, "PGPASSWORD": "b"},
        {**base, "TERM": "dumb", "OLDPWD": "/elsewhere"},
    ]
    for env in same:
        assert cache.key(["check"], None, env) == first
    other = [
        (["check", "--json"], base),
        (["check"], {**base, "SCHEMA_SYNC_DSN": "postgresql://r@h/e"}),
        (["check"], {**base, "schema_sync_include_owners": "false"}),  # any case
        (["check"], {**base, "PGHOST": "elsewhere"}),
        (["check"], {**base, "PATH": "/opt/pg/bin:/usr/bin"}),  # another pg_dump
    ]
    for argv, env in other:
        assert cache.key(argv, None, env) != first, (argv, env)
    (tmp_path / ".env").write_text("SCHEMA_SYNC_NAME=x\n")
    with_dotenv = cache.key(["check"], None, base)
    assert with_dotenv != first
    (tmp_path / "config").mkdir()
    (tmp_path / "config/pg-schema-sync.toml").write_text("name = 'x'\n")
    with_config = cache.key(["check"], None, base)
    assert with_config not in (first, with_dotenv)
    # A config file that does not exist: no key (the usual check says what is wrong).
    assert cache.key(["check"], tmp_path / "missing.toml", base) is None


def test_an_unreachable_database_is_one_line_at_once(
    cluster: ScratchCluster, tmp_path: Path
) -> None:
    gone = new_database(cluster)
    gone.sql("CREATE TABLE t (id int)")
    env = _env(gone)
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    check(tmp_path, env)
    assert check(tmp_path, env) == (0, "in sync: no drift\n", False)
    cluster.drop_database(gone.name)
    # The probe's failure is the answer: no settings built, no second attempt to connect.
    code, out, built = check(tmp_path, env)
    assert (code, out, built) == (2, "", False)
    result = run_cli("check", cwd=tmp_path, env=env)
    assert result.code == 2 and result.out == ""
    assert gone.name in result.err and len(result.err.strip().splitlines()) == 1


SKIPPED_SYNC = "in sync: no drift, nothing written (catalog unchanged since the last full sync)\n"


def _sync(cwd: Path, env: dict[str, str]) -> tuple[int, str, bool]:
    """(exit code, stdout, whether the settings model was built) of a `sync`."""
    result = loaded("sync", cwd=cwd, env=env)
    modules = set(result["modules"])  # type: ignore[call-overload]
    return int(result["code"]), str(result["out"]), BUILT in modules  # type: ignore[call-overload]


def _tree(root: Path) -> dict[Path, tuple[bytes, int]]:
    return {
        p: (p.read_bytes() if p.is_file() else b"", p.stat().st_mtime_ns)
        for p in [root, *root.rglob("*")]
    }


def _finished(cwd: Path, env: dict[str, str]) -> dict[str, object]:
    """The sync.finished event of a `sync` logging JSON at info."""
    result = run_cli("sync", "--log-format", "json", "--log-level", "info", cwd=cwd, env=env)
    assert result.code == 0, result.err
    events = [json.loads(line) for line in result.err.splitlines() if line.startswith("{")]
    finished: dict[str, object]
    [finished] = [e for e in events if e.get("event") == "sync.finished"]
    assert [e["event"] for e in events if e["event"].startswith("sync.")] == [
        "sync.started",
        "sync.finished",
    ]
    return finished


def test_an_unchanged_sync_of_the_same_inputs_builds_no_settings_and_writes_nothing(
    synced: tuple[Database, Path],
) -> None:
    db, work = synced
    env = _env(db)
    sql = _tree(work / "sql")
    backups = sorted((work / "backups").iterdir())
    assert _sync(work, env) == (0, SKIPPED_SYNC, False)  # the fixture's sync kept its settings
    assert _tree(work / "sql") == sql  # not even a temp file came and went
    assert sorted((work / "backups").iterdir()) == backups
    # Logged as the usual path logs it: the same events with the same fields.
    built = _finished(work, env)  # other flags: settings built
    quick = _finished(work, env)
    assert quick.keys() == built.keys()
    assert {k: quick[k] for k in ("skipped", "drift_count", "objects", "files_written")} == {
        "skipped": "unchanged",
        "drift_count": 0,
        "objects": built["objects"],
        "files_written": [],
    }


def test_a_change_after_a_quick_sync_is_read_and_written(synced: tuple[Database, Path]) -> None:
    db, work = synced
    env = _env(db)
    assert _sync(work, env)[2] is False
    db.sql("ALTER TABLE t ADD COLUMN note text")
    code, out, built = _sync(work, env)
    assert code == 0 and built, out
    assert "public.t" in out and "wrote " in out
    assert "note text" in (work / "sql/schemas/complete-schema.sql").read_text()
    assert _sync(work, env) == (0, SKIPPED_SYNC, False)


def test_a_sync_with_verify_or_git_delivery_always_builds_its_settings(
    synced: tuple[Database, Path], cluster: ScratchCluster
) -> None:
    db, work = synced
    verify = _env(db, SCHEMA_SYNC_VERIFY="warn", SCHEMA_SYNC_VERIFY_DSN=cluster.dsn("postgres"))
    for _ in range(2):
        assert _sync(work, verify) == (0, SKIPPED_SYNC, True)
    # A misconfigured verify fails every cycle, the skipped ones included: never cached away.
    broken = _env(db, SCHEMA_SYNC_VERIFY="require")
    for _ in range(2):
        result = run_cli("sync", cwd=work, env=broken)
        assert (result.code, result.out) == (2, ""), result.err
        assert "verify_dsn is not set" in result.err
    (work / "repo").mkdir()
    git = _env(db, SCHEMA_SYNC_GIT_REPOSITORY=str(work / "repo"))
    for _ in range(2):
        assert _sync(work, git)[2] is True
