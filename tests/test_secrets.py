"""Secrets: foreign DSNs rejected without echo, and children get only what they need."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from service.logs import redact
from service.production.conninfo import ConnInfo, ConnInfoError
from tests.conftest import Database, run_cli

SECRET = "Sup3r-S3cret-pw"


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql+psycopg2://reader:{SECRET}@db.example/app",
        f"mysql://reader:{SECRET}@db.example/app",
        f"http://reader:{SECRET}@db.example/app",
        f"reader:{SECRET}@db.example/app",  # no scheme, no keyword: not a database name
        f"postgresql://reader:{SECRET}/app",  # missing "@": the password sits in the port
        f"host=db.example password={SECRET} port=x{SECRET}",
    ],
)
def test_foreign_or_broken_dsn_is_refused_in_one_line_without_echo(
    dsn: str, tmp_path: Path
) -> None:
    for command in (["check"], ["sync"], ["run"]):
        result = run_cli(*command, cwd=tmp_path, env={"SCHEMA_SYNC_DSN": dsn}, timeout=30)
        assert result.code == 2, (command, result.err)
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.err, result.err
        assert SECRET not in result.err + result.out
        assert "connection string" in lines[0] or "port" in lines[0]
    # Nothing written that could carry it either (state file, backups).
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_scrubber_removes_passwords_from_any_scheme() -> None:
    for scheme in ("postgresql+psycopg2", "mysql", "https", "redis", "postgres"):
        text = f"cannot use {scheme}://reader:{SECRET}@db.example:5432/app today"
        assert SECRET not in redact(text), scheme
        assert f"{scheme}://reader:***@db.example" in redact(text)
    assert SECRET not in redact(f"x mysql://u:p@{SECRET}@host/db")  # an unencoded @ inside


def test_pgport_that_is_not_a_number_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConnInfoError, match="PGPORT 'abc'"):
        ConnInfo.from_env({"PGPORT": "abc"})
    assert ConnInfo.parse("host=a,b port=5432,5433").port == 5432


# --------------------------------------------------------------------------------------------
# Children's environment, read from the real processes


def _recording_stub(folder: Path, real: str, name: str) -> Path:
    """A `name` that records its environment (NUL-separated, one file per process), then
    becomes the real program: the real child, with the environment it was given."""
    stub = folder / name
    stub.write_text(
        "#!/bin/sh\n"
        f'env -0 > "{folder}/env-{name}-$$"\n'
        f'printf "%s\\n" "$@" > "{folder}/argv-{name}-$$"\n'
        f'exec "{real}" "$@"\n'
    )
    stub.chmod(0o755)
    return stub


def _recorded(folder: Path, name: str) -> list[tuple[list[str], dict[str, str]]]:
    out = []
    for env_file in sorted(folder.glob(f"env-{name}-*")):
        pid = env_file.name.rsplit("-", 1)[1]
        env = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
        argv = (folder / f"argv-{name}-{pid}").read_text().splitlines()
        out.append((argv, env))
    return out


@pytest.fixture
def reader(db: Database) -> Iterator[str]:
    db.sql(f"CREATE ROLE env_reader LOGIN SUPERUSER PASSWORD '{SECRET}'")
    db.sql("CREATE TABLE t (id int PRIMARY KEY)")
    yield "env_reader"
    db.sql("DROP OWNED BY env_reader; DROP ROLE env_reader")


def test_children_get_an_allow_listed_environment_and_the_password_only_to_connect(
    db: Database, cluster: ScratchCluster, reader: str, tmp_path: Path
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    real_dump = shutil.which("pg_dump", path=str(cluster.bindir)) or str(cluster.bindir / "pg_dump")
    stub = _recording_stub(bindir, real_dump, "pg_dump")
    _recording_stub(bindir, str(cluster.bindir / "psql"), "psql")
    work = tmp_path / "work"
    work.mkdir()
    other_secret = "Other-S3cret"
    sentry = "https://public-key@o1.ingest.example/1"
    env = {
        "SCHEMA_SYNC_DSN": cluster.tcp_dsn(db.name, reader, SECRET),
        "SCHEMA_SYNC_VERIFY_DSN": cluster.tcp_dsn("postgres", reader, SECRET),
        "SCHEMA_SYNC_SENTRY_DSN": sentry,
        "SCHEMA_SYNC_VERIFY": "warn",
        "SCHEMA_SYNC_PG_DUMP": str(stub),
        "AWS_SECRET_ACCESS_KEY": other_secret,  # anything else a container injects
        "PGSSLCRL": "/nonexistent/crl.pem",  # libpq-only: psql would honour it
    }
    result = run_cli("sync", cwd=work, env=env)
    assert result.code == 0, result.err
    dumps = _recorded(bindir, "pg_dump")
    psqls = _recorded(bindir, "psql")
    version_calls = [e for argv, e in dumps if argv == ["--version"]]
    exports = [e for argv, e in dumps if "--schema-only" in argv]
    assert version_calls and exports and psqls, (dumps, psqls)
    for argv, child in dumps + psqls:
        leaked = {k for k in child if k.startswith("SCHEMA_SYNC_") or "SENTRY" in k}
        assert not leaked, (argv, leaked)
        assert "AWS_SECRET_ACCESS_KEY" not in child
        assert all(SECRET not in a for a in argv), argv  # never on the command line
        assert child.get("PGSSLCRL") == "/nonexistent/crl.pem"
    for child in version_calls:  # it connects nowhere: no password, no connection at all
        assert not any(k in child for k in ("PGPASSWORD", "PGHOST", "PGUSER", "PGDATABASE"))
    for argv, _ in dumps:  # keepalives ride in argv (libpq reads no variable for them)
        if "--schema-only" in argv:
            assert any(a.startswith("--dbname=keepalives=1 keepalives_idle=") for a in argv)
    for child in exports:  # production's export, and verify's re-dump of its scratch copy
        assert child["PGPASSWORD"] == SECRET
    assert db.name in {child["PGDATABASE"] for child in exports}
    assert os.environ.get("SCHEMA_SYNC_DSN") is None  # the test itself leaks nothing back
