"""A throwaway PostgreSQL cluster in a temp folder: for the demo, the tests and the benchmark."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from service.production.conninfo import LIBPQ_ENV, ConnInfo

SERVER_OS_USER = "postgres"  # when we run as root, the server runs as this user


class ClusterError(RuntimeError):
    """The throwaway cluster could not be created or started."""


def find_bindir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Folder holding initdb/pg_ctl/postgres: explicit, $PG_BINDIR, pg_config, then the newest."""
    candidates: list[str] = []
    if explicit:
        candidates.append(str(explicit))
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        candidates.append(out.stdout.strip())
    candidates += sorted(
        (str(p) for p in Path("/usr/lib/postgresql").glob("*/bin")),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists() and (Path(cand) / "postgres").exists():
            return Path(cand)
    raise ClusterError(
        "no PostgreSQL server binaries (initdb) found; install postgresql "
        "(apt-get install postgresql) or set PG_BINDIR"
    )


def client_bindir(bindir: Path) -> Path:
    """Where psql is: beside the server, else any installed one (server-only builds lack it)."""
    if (bindir / "psql").exists():
        return bindir
    found = shutil.which("psql")
    candidates = [Path(found).parent] if found else []
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    for cand in candidates:
        if (cand / "psql").exists():
            return cand
    raise ClusterError(f"no psql beside {bindir} nor installed; install postgresql-client")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """The caller's PG* variables (PGOPTIONS, PGHOST...) describe another server: drop them."""
    return {k: v for k, v in os.environ.items() if k not in LIBPQ_ENV}


class ScratchCluster:
    """initdb + pg_ctl in a temp folder; unix socket with trust, TCP on 127.0.0.1 with SCRAM."""

    def __init__(
        self,
        bindir: str | os.PathLike[str] | None = None,
        superuser: str = "postgres",
        port: int | None = None,
        settings: dict[str, str] | None = None,
        clientdir: str | os.PathLike[str] | None = None,
    ) -> None:
        self.bindir = find_bindir(bindir)
        self.clientdir = Path(clientdir) if clientdir else client_bindir(self.bindir)
        self.superuser = superuser
        self.port = port or free_port()
        self.settings = {"fsync": "off", "full_page_writes": "off", **(settings or {})}
        self.workdir = Path(tempfile.mkdtemp(prefix="pg-schema-sync-cluster-"))
        self.datadir = self.workdir / "data"
        self.sockdir = self.workdir / "sock"
        self.logfile = self.workdir / "server.log"
        self.run_as = SERVER_OS_USER if os.geteuid() == 0 else None
        self.started = False

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> ScratchCluster:
        self.sockdir.mkdir(parents=True, exist_ok=True)
        if self.run_as:
            entry = pwd.getpwnam(self.run_as)
            for path in (self.workdir, self.sockdir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                self.superuser,
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "--no-sync",
            ]
        )
        self.start_existing()
        return self

    def stop(self) -> None:
        # postmaster.pid too: an interrupted `pg_ctl start` may have launched the server.
        if self.started or (self.datadir / "postmaster.pid").exists():
            with contextlib.suppress(ClusterError):
                self._pg_ctl("-m", "immediate", "-w", "stop")
            self.started = False
        shutil.rmtree(self.workdir, ignore_errors=True)

    def restart(self) -> None:
        self.stop_server()
        self.start_existing()

    def stop_server(self) -> None:
        """Stop the server but keep its data (to simulate an outage)."""
        self._pg_ctl("-m", "fast", "-w", "stop")
        self.started = False

    def start_existing(self) -> None:
        """Start the server on an existing data folder (after stop_server)."""
        self._pg_ctl_start()
        self.started = True

    def _pg_ctl_start(self) -> None:
        opts = " ".join(
            [
                f"-p {self.port}",
                f"-k {self.sockdir}",
                "-c listen_addresses=127.0.0.1",
                *(f"-c {k}={v}" for k, v in self.settings.items()),
            ]
        )
        self._pg_ctl("-w", "-t", "60", "-l", str(self.logfile), "-o", opts, "start")

    def _pg_ctl(self, *args: str) -> None:
        self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), *args])

    def __enter__(self) -> ScratchCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connections -----------------------------------------------------------------------
    def dsn(self, dbname: str = "postgres", user: str | None = None) -> str:
        """Unix-socket URI (trust auth): `postgresql://user@/db?host=/sock&port=N`."""
        return (
            f"postgresql://{user or self.superuser}@/{dbname}?host={self.sockdir}&port={self.port}"
        )

    def tcp_dsn(self, dbname: str, user: str, password: str) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{dbname}"

    def conninfo(self, dbname: str = "postgres", user: str | None = None) -> ConnInfo:
        return ConnInfo.parse(self.dsn(dbname, user))

    def psql(
        self, dbname: str, sql: str | None = None, file: str | os.PathLike[str] | None = None
    ) -> str:
        """Run SQL with ON_ERROR_STOP; raise ClusterError with psql's message on failure."""
        argv = [
            str(self.clientdir / "psql"),
            "-X",
            "-q",
            "-At",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            self.dsn(dbname),
        ]
        if sql is not None:
            argv += ["-c", sql]
        if file is not None:
            argv += ["-f", str(file)]
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, env=_clean_env())
        if proc.returncode != 0:
            raise ClusterError(f"psql on {dbname} failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str, *files: str | os.PathLike[str]) -> str:
        self.psql("postgres", f'CREATE DATABASE "{name}"')
        for f in files:
            self.psql(name, file=f)
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        self.psql("postgres", f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- internals -------------------------------------------------------------------------
    def _run(self, argv: list[str]) -> None:
        # Named by the program (and pg_ctl's action), not by the last argument: that was
        # "--no-sync" for initdb and "start" for pg_ctl, and runuser hid the program.
        what = Path(argv[0]).name + (f" {argv[-1]}" if Path(argv[0]).name == "pg_ctl" else "")
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--", *argv]
        proc = subprocess.run(
            argv, capture_output=True, text=True, check=False, cwd=self.workdir, env=_clean_env()
        )
        if proc.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            rc = proc.returncode  # runuser reports a signalled child as 128 + signal
            signo = -rc if rc < 0 else rc - 128 if rc in (130, 143) else 0
            how = f"was interrupted (signal {signo})" if signo else f"failed (exit {rc})"
            raise ClusterError(f"{what} {how}: {proc.stderr.strip()} {log}".strip())
