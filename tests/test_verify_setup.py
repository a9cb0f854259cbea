"""Verify that works the first time: before installing anything it says, at once, every role,
membership, extension and privilege the verify server lacks, with the fix; `--no-owners`
(verify_owners = false) verifies where memberships cannot be granted. The password of the
verify role comes from a passfile, over TCP with SCRAM, as outside compose."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.demo.cluster import ScratchCluster
from service.disk.files import BACKUP_MANIFEST, list_backups
from service.production.dump_script import needs, without_owners
from service.verify import SCRATCH_PREFIX
from tests.conftest import FIXTURES, Database, new_database, run_cli

SCHEMA = Path("sql/schemas/complete-schema.sql")
PASSWORD = "verify-pw-" + uuid.uuid4().hex[:8]


def scratch_databases(cluster: ScratchCluster) -> list[str]:
    out = cluster.psql(
        "postgres", f"SELECT datname FROM pg_database WHERE datname LIKE '{SCRATCH_PREFIX}%'"
    )
    return out.split()


@pytest.fixture
def owned(cluster: ScratchCluster) -> Iterator[Database]:
    """Production whose objects belong to app_owner and are granted to app_reader."""
    cluster.psql("postgres", "CREATE ROLE app_owner NOLOGIN; CREATE ROLE app_reader NOLOGIN")
    d = new_database(cluster)
    d.sql(
        "CREATE SCHEMA shop AUTHORIZATION app_owner;"
        "CREATE TABLE shop.orders (id int PRIMARY KEY, qty int);"
        "ALTER TABLE shop.orders OWNER TO app_owner;"
        "GRANT SELECT ON shop.orders TO app_reader;"
        "CREATE FUNCTION shop.double(int) RETURNS int LANGUAGE sql AS $$ SELECT $1 * 2 $$;"
        "ALTER FUNCTION shop.double(int) OWNER TO app_owner;"
    )
    yield d
    cluster.drop_database(d.name)
    cluster.psql("postgres", "DROP ROLE app_owner; DROP ROLE app_reader")


@pytest.fixture
def checker(cluster: ScratchCluster, tmp_path: Path) -> Iterator[str]:
    """A verify login with a password, no CREATEDB, no memberships; its DSN names a passfile
    (mode 0600) and goes over TCP, where the cluster asks for the password (SCRAM)."""
    cluster.psql("postgres", f"CREATE ROLE checker LOGIN PASSWORD '{PASSWORD}'")
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"127.0.0.1:{cluster.port}:*:checker:{PASSWORD}\n")
    passfile.chmod(0o600)
    yield f"postgresql://checker@127.0.0.1:{cluster.port}/postgres?passfile={passfile}"
    cluster.psql("postgres", "DROP OWNED BY checker; DROP ROLE checker")


def line_of(path: Path, prefix: str) -> int:
    lines = path.read_text().splitlines()
    return next(i for i, t in enumerate(lines, 1) if t.startswith(prefix))


def add_line_after(path: Path, after: int, text: str) -> int:
    lines = path.read_text().splitlines(keepends=True)
    lines.insert(after, text)
    path.write_text("".join(lines))
    return after + 1


def test_verify_lists_every_lack_at_once_then_passes_once_fixed(
    cluster: ScratchCluster, owned: Database, checker: str, tmp_path: Path
) -> None:
    env = {"SCHEMA_SYNC_DSN": owned.dsn, "SCHEMA_SYNC_VERIFY_DSN": checker}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    schema = tmp_path / SCHEMA
    owner_line = line_of(schema, "ALTER SCHEMA shop OWNER TO app_owner;")
    ext_line = add_line_after(schema, 19, "CREATE EXTENSION IF NOT EXISTS no_such_ext;\n")
    grant_line = add_line_after(
        schema,
        line_of(schema, "GRANT SELECT ON TABLE shop.orders TO app_reader;"),
        "GRANT SELECT ON TABLE shop.orders TO ghost;\n",
    )
    owner_line += 1  # moved down by the extension line

    # Other tests' leftovers (a killed verify's) may be there: nothing is added to them.
    before = scratch_databases(cluster)
    result = run_cli("verify", cwd=tmp_path, env=env)
    assert result.code == 2, result.out + result.err
    where = f"checker@127.0.0.1:{cluster.port}/postgres"
    lines = result.err.splitlines()
    assert lines[0] == (
        f"pg-schema-sync: the verify server {where} is not ready for these files "
        "(4 problems; nothing was installed):"
    )
    assert lines[1:5] == [
        "  - checker may not create databases: ALTER ROLE checker CREATEDB;",
        f"  - role ghost does not exist there (the files grant it privileges, first at "
        f"{SCHEMA}:{grant_line}): CREATE ROLE ghost NOLOGIN;",
        f"  - checker is not a member of app_owner (it owns objects in the files, first at "
        f"{SCHEMA}:{owner_line}): GRANT app_owner TO checker;",
        f"  - extension no_such_ext is not available on the verify server (CREATE EXTENSION "
        f"at {SCHEMA}:{ext_line}): install its package there (the same major version as "
        "production's)",
    ]
    assert "verify --no-owners" in lines[5]
    assert PASSWORD not in result.out + result.err
    assert scratch_databases(cluster) == before

    # The fixes it named, but the membership: --no-owners verifies without it. (The hand
    # edits go too: a sync puts production's files back.)
    cluster.psql("postgres", "ALTER ROLE checker CREATEDB")
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    try:
        without = run_cli("verify", "--no-owners", cwd=tmp_path, env=env)
        assert without.code == 0, without.out + without.err
        assert without.out.startswith(f"verify passed: {SCHEMA} installs and re-dumps")
        # Owners counted again: only the membership is missing now.
        again = run_cli("verify", cwd=tmp_path, env=env)
        assert again.code == 2 and "(1 problem;" in again.err
        assert "GRANT app_owner TO checker;" in again.err
        cluster.psql("postgres", "GRANT app_owner TO checker")
        passed = run_cli("verify", cwd=tmp_path, env=env)
        assert passed.code == 0, passed.out + passed.err
    finally:
        cluster.psql("postgres", "REVOKE app_owner FROM checker")
        for name in scratch_databases(cluster):
            cluster.drop_database(name)
    assert scratch_databases(cluster) == []


def test_a_password_the_verify_server_cannot_get_is_one_line_with_the_fix(
    cluster: ScratchCluster, owned: Database, checker: str, tmp_path: Path
) -> None:
    env = {"SCHEMA_SYNC_DSN": owned.dsn}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    passfile = tmp_path / "pgpass"
    without = checker.split("?")[0]
    cases = [
        (without, "no password was given: add passfile=PATH (a 0600 .pgpass file) to verify_dsn"),
        (f"{without}?passfile={tmp_path / 'nope'}", f"passfile {tmp_path / 'nope'} cannot be read"),
    ]
    for dsn, expect in cases:
        result = run_cli("verify", cwd=tmp_path, env={**env, "SCHEMA_SYNC_VERIFY_DSN": dsn})
        assert result.code == 2 and expect in result.err, result.err
        assert len(result.err.splitlines()) == 1
    passfile.chmod(0o644)  # libpq and asyncpg ignore it then: say so, not just "failed"
    result = run_cli("verify", cwd=tmp_path, env={**env, "SCHEMA_SYNC_VERIFY_DSN": checker})
    assert result.code == 2
    assert result.err.splitlines() == [
        f"pg-schema-sync: authentication failed for verify server checker@127.0.0.1:"
        f'{cluster.port}/postgres: password authentication failed for user "checker"; '
        f"passfile {passfile} can be read by others (mode 0644), so it is ignored: "
        f"chmod 600 {passfile}"
    ]
    # Production's passfile (PGPASSFILE, or passfile= in the DSN) is read the same way.
    prod = f"postgresql://checker@127.0.0.1:{cluster.port}/{owned.name}?passfile={passfile}"
    check = run_cli("check", cwd=tmp_path, env={"SCHEMA_SYNC_DSN": prod})
    assert check.code == 2 and f"chmod 600 {passfile}" in check.err
    assert PASSWORD not in result.err + check.err


def test_no_owners_names_the_files_own_line_of_an_error(
    cluster: ScratchCluster, owned: Database, checker: str, tmp_path: Path
) -> None:
    cluster.psql("postgres", "ALTER ROLE checker CREATEDB")
    env = {"SCHEMA_SYNC_DSN": owned.dsn, "SCHEMA_SYNC_VERIFY_DSN": checker}
    assert run_cli("sync", cwd=tmp_path, env=env).code == 0
    schema = tmp_path / SCHEMA
    # Below every OWNER TO line: the installed copy has fewer lines above it than the file.
    broken = add_line_after(schema, line_of(schema, "GRANT SELECT ON TABLE"), "SELECT no_such;\n")
    result = run_cli("verify", "--no-owners", cwd=tmp_path, env=env)
    assert result.code == 1, result.out + result.err
    assert result.out.splitlines()[0] == (
        f'verify failed: {SCHEMA}:{broken}: ERROR: column "no_such" does not exist'
    )


def test_sync_verifies_without_owners_when_verify_owners_is_false(
    cluster: ScratchCluster, owned: Database, checker: str, tmp_path: Path
) -> None:
    cluster.psql("postgres", "ALTER ROLE checker CREATEDB")
    env = {
        "SCHEMA_SYNC_DSN": owned.dsn,
        "SCHEMA_SYNC_VERIFY_DSN": checker,
        "SCHEMA_SYNC_VERIFY": "require",
        "SCHEMA_SYNC_VERIFY_OWNERS": "false",
    }
    result = run_cli("sync", cwd=tmp_path, env=env)
    assert result.code == 0, result.err
    assert "OWNER TO app_owner" in (tmp_path / SCHEMA).read_text()  # the files keep them
    manifest = json.loads((list_backups(tmp_path / "backups")[-1] / BACKUP_MANIFEST).read_text())
    assert (manifest["status"], manifest["verify"]) == ("done", "passed")


# -- the script, read as psql reads it ----------------------------------------------------------

WEIRD = 'we"ird\nowner'  # a role name is anyone's text: a quote and a newline in it
# A body whose lines look like pg_dump's statements: they are text inside a dollar quote.
LOOKALIKE = """CREATE FUNCTION public.body() RETURNS text LANGUAGE plpgsql AS $f$
BEGIN
  RETURN '
ALTER TABLE public.t OWNER TO evil;
GRANT ALL ON TABLE public.t TO evil;
CREATE EXTENSION IF NOT EXISTS evil_ext;
';
END
$f$"""


@pytest.fixture
def family(cluster: ScratchCluster) -> Iterator[Database]:
    quoted = '"' + WEIRD.replace('"', '""') + '"'
    cluster.psql(
        "postgres",
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'fam_reader') "
        "THEN CREATE ROLE fam_reader; END IF; END $$",
    )
    cluster.psql("postgres", f"CREATE ROLE {quoted} NOLOGIN")
    d = new_database(cluster, FIXTURES / "every_family.sql")
    d.sql(
        f"CREATE TABLE public.t (id int); ALTER TABLE public.t OWNER TO {quoted};"
        f"GRANT SELECT ON public.t TO {quoted} WITH GRANT OPTION;"
        "ALTER DEFAULT PRIVILEGES FOR ROLE fam_reader GRANT SELECT ON TABLES TO PUBLIC;" + LOOKALIKE
    )
    yield d
    cluster.drop_database(d.name)
    cluster.psql("postgres", f"DROP ROLE {quoted}")


def pg_dump(cluster: ScratchCluster, db: Database, *flags: str) -> bytes:
    done = subprocess.run(
        [str(cluster.bindir / "pg_dump"), "--schema-only", *flags, "-d", db.dsn],
        capture_output=True,
        check=True,
    )
    return done.stdout


def without_key(script: bytes) -> bytes:
    """pg_dump's random \\restrict key (newer pg_dumps) is the one difference of two runs."""
    return re.sub(rb"^\\(un)?restrict \S+$", b"KEY", script, flags=re.MULTILINE)


def test_without_owners_is_what_pg_dump_no_owner_writes(
    cluster: ScratchCluster, family: Database
) -> None:
    with_owners = pg_dump(cluster, family)
    assert b"OWNER TO" in with_owners
    stripped, origin = without_owners(with_owners)
    assert without_key(stripped) == without_key(pg_dump(cluster, family, "--no-owner"))
    # Every line of the copy is the file's own line it says it is (headers aside).
    original = with_owners.split(b"\n")
    for number, line in zip(origin, stripped.split(b"\n"), strict=False):
        if not line.startswith(b"-- Name: "):
            assert original[number - 1] == line


def test_needs_reads_pg_dumps_own_statements_only(
    cluster: ScratchCluster, family: Database
) -> None:
    found = needs(pg_dump(cluster, family))
    assert WEIRD in found.owners and "postgres" in found.owners
    assert {"fam_reader", WEIRD} <= set(found.grantees)
    assert "PUBLIC" not in found.grantees
    # every_family.sql's own ALTER DEFAULT PRIVILEGES ran as postgres: pg_dump names it.
    assert found.default_privilege_roles.keys() == {"fam_reader", "postgres"}
    assert {"pg_trgm", "postgres_fdw", "file_fdw"} <= set(found.extensions)
    assert "evil" not in found.roles()  # a function body's look-alike statements
    assert "evil_ext" not in found.extensions
