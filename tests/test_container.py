"""The container, proven without a Docker engine.

- the Dockerfile's essentials, read from the file itself;
- docker-compose.yml against the Compose Specification's JSON schema (as vendored by
  check-jsonschema, a dev dependency) and, where it is installed, docker-compose's own parser;
- the image's exact command line (ENTRYPOINT + CMD without tini) run as a plain process with
  the image's ENV and the compose service's environment, against real PostgreSQL servers
  standing in for `production` and `verify-db`: start-up sync with verification, SIGHUP, the
  HEALTHCHECK command, SIGTERM.

The image built and the compose stack run under a real Docker engine: test_container_engine.py.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from service.demo.cluster import ScratchCluster
from tests.daemon_proc import DaemonProcess

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "docker-compose.yml"
SERVICE = "pg-schema-sync"
IMAGE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"  # python:*-slim's


# -- reading the files ---------------------------------------------------------------------------


def dockerfile_stages(text: str) -> list[list[tuple[str, str]]]:
    """[(INSTRUCTION, arguments)] per build stage; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for line in logical:
        word, _, rest = line.partition(" ")
        if word.upper() == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((word.upper(), rest.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    """A JSON array (exec form); anything else (shell form) fails the test."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def one(stage: list[tuple[str, str]], instruction: str) -> str:
    found = [args for word, args in stage if word == instruction]
    assert len(found) == 1, f"expected one {instruction} in the final stage, found {found}"
    return found[0]


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages(DOCKERFILE.read_text())[-1]


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's variable substitution: ${VAR}, ${VAR:-default}, ${VAR-default}, $VAR, $$."""

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) or m.group(4)
        op, default = m.group(2), m.group(3) or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    pattern = r"\$\$|\$\{(\w+)(?:(:?-)([^}]*))?\}|\$(\w+)"
    return re.sub(pattern, sub, value)


def compose_service_env(host_env: dict[str, str]) -> dict[str, str]:
    spec: Any = YAML(typ="safe").load(COMPOSE.read_text())
    env = spec["services"][SERVICE]["environment"]
    assert isinstance(env, dict), "environment as a mapping"
    return {k: interpolate(str(v), host_env) for k, v in env.items()}


def image_env(stage: list[tuple[str, str]], substitutions: dict[str, str]) -> dict[str, str]:
    """The final stage's ENV as the container sees it (ARG defaults filled in), with the
    `substitutions` (regex -> replacement) for paths that live elsewhere on this machine."""
    args = {}
    for word, rest in stage:
        if word == "ARG" and "=" in rest:
            k, v = rest.split("=", 1)
            args[k] = v
    env: dict[str, str] = {}
    for word, rest in stage:
        if word == "ENV":
            for k, v in re.findall(r'(\w+)=("[^"]*"|\S+)', rest):
                value = interpolate(v.strip('"'), {**args, "PATH": IMAGE_PATH})
                for pattern, new in substitutions.items():
                    value = re.sub(pattern, new, value)
                env[k] = value
    return env


# -- the Dockerfile ------------------------------------------------------------------------------


def test_dockerfile_runs_the_daemon_as_non_root_with_signals_health_and_volumes() -> None:
    stages = dockerfile_stages(DOCKERFILE.read_text())
    assert len(stages) >= 2, "multi-stage: build tools stay out of the runtime image"
    build, final = stages[0], stages[-1]
    assert "slim" in final[0][1]
    syncs = [args for word, args in build if word == "RUN" and "uv sync" in args]
    assert syncs and all("--frozen" in s and "--no-dev" in s for s in syncs), syncs
    user = one(final, "USER").split(":")[0]
    assert user not in ("root", "0"), "runs as a non-root user"
    assert one(final, "STOPSIGNAL") == "SIGTERM"
    healthcheck = one(final, "HEALTHCHECK")
    options, _, command = healthcheck.partition(" CMD ")
    assert exec_form(command) == ["pg-schema-sync", "health"]
    assert "--start-period=" in options and "--interval=" in options
    entrypoint, cmd = exec_form(one(final, "ENTRYPOINT")), exec_form(one(final, "CMD"))
    assert entrypoint[:2] == ["/usr/bin/tini", "--"] and entrypoint[2:] + cmd == [SERVICE, "run"]
    assert one(final, "WORKDIR") == "/work"
    # Relative default paths (sql/schemas/..., backups/...) resolve into the two volumes.
    assert sorted(exec_form(one(final, "VOLUME"))) == ["/work/backups", "/work/sql"]
    runs = " ".join(args for word, args in final if word == "RUN")
    assert "apt.postgresql.org" in runs and "postgresql-client-${PG_CLIENT_MAJOR}" in runs
    assert "tini" in runs
    for word, args in final:  # no secret baked into the image
        if word in ("ENV", "ARG"):
            assert not re.search(r"PASSWORD|_DSN=|SECRET", args), args


# -- the compose file ----------------------------------------------------------------------------


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).parent / "check-jsonschema"
    return subprocess.run(
        [str(tool), "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def test_compose_file_validates_against_the_compose_specification(tmp_path: Path) -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator can fail: a misspelt condition is rejected.
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("service_healthy", "service_healty", 1))
    assert check_compose(broken).returncode == 1

    spec: Any = YAML(typ="safe").load(COMPOSE.read_text())
    svc = spec["services"][SERVICE]
    assert svc["depends_on"] == {
        "production": {"condition": "service_healthy"},
        "verify-db": {"condition": "service_healthy"},
    }
    assert {"./sql:/work/sql", "./backups:/work/backups"} <= set(svc["volumes"])
    assert all("healthcheck" in spec["services"][s] for s in ("production", "verify-db"))
    grace = int(svc["stop_grace_period"].rstrip("s"))
    assert grace > 30, "longer than stop_grace_s, so a running sync can finish"
    for mount in spec["services"]["production"]["volumes"] + spec["services"]["verify-db"].get(
        "volumes", []
    ):
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).is_file(), f"{source} is mounted but missing"


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_passes_docker_compose_config() -> None:
    result = subprocess.run(
        ["docker-compose", "-f", str(COMPOSE), "config", "-q"],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env={"PATH": IMAGE_PATH},
    )
    assert result.returncode == 0, result.stderr


# -- the container's command line, as a plain process --------------------------------------------


class ContainerProcess(DaemonProcess):
    """DaemonProcess with the image's argv and exactly the container's environment."""

    def __init__(self, cwd: Path, env: dict[str, str], argv: list[str]) -> None:
        self._start(argv, cwd, env)


def test_container_command_line_with_the_compose_environment_syncs_on_sighup_and_stops_on_sigterm(
    tmp_path: Path,
) -> None:
    final = final_stage()
    argv = exec_form(one(final, "ENTRYPOINT"))[2:] + exec_form(one(final, "CMD"))  # minus tini
    health_argv = exec_form(one(final, "HEALTHCHECK").partition(" CMD ")[2])
    compose_env = compose_service_env({})  # no .env: the file's defaults
    with ScratchCluster() as production, ScratchCluster() as verify_db:
        # What the two database services are set up with in docker-compose.yml.
        production.psql("postgres", f"ALTER ROLE postgres PASSWORD '{compose_env['PGPASSWORD']}'")
        production.create_database("trails", ROOT / "service/demo/sql/production.sql")
        verify_password = re.search(r"//postgres:([^@]+)@", compose_env["SCHEMA_SYNC_VERIFY_DSN"])
        assert verify_password
        verify_db.psql("postgres", f"ALTER ROLE postgres PASSWORD '{verify_password.group(1)}'")
        verify_db.psql("postgres", file=ROOT / "deploy/verify-db-roles.sql")

        # The only substitutions: where the servers and the client live on this machine.
        assert (compose_env["PGHOST"], compose_env["PGPORT"]) == ("production", "5432")
        compose_env["PGHOST"], compose_env["PGPORT"] = "127.0.0.1", str(production.port)
        compose_env["SCHEMA_SYNC_VERIFY_DSN"] = compose_env["SCHEMA_SYNC_VERIFY_DSN"].replace(
            "@verify-db:5432/", f"@127.0.0.1:{verify_db.port}/"
        )
        bindir = production.bindir
        env = {
            **image_env(
                final,
                {
                    "^/app/.venv/bin": str(Path(sys.executable).parent),
                    r"^/usr/lib/postgresql/\d+/bin": str(bindir),
                },
            ),
            "HOME": str(tmp_path / "work"),
            **compose_env,
        }
        assert env["SCHEMA_SYNC_PG_DUMP"] == str(bindir / "pg_dump"), env["SCHEMA_SYNC_PG_DUMP"]
        work = tmp_path / "work"  # WORKDIR, with the two volumes
        for sub in ("sql", "backups", "config"):
            (work / sub).mkdir(parents=True)
        shutil.copy(ROOT / "config/pg-schema-sync.example.toml", work / "config")
        resolved = shutil.which(argv[0], path=env["PATH"])
        assert resolved, f"{argv[0]} not on the image's PATH"
        with ContainerProcess(work, env, [resolved, *argv[1:]]) as c:
            started = c.wait_for("daemon.started")
            assert started["schedule"] == "*/15 * * * *" and started["sentry"] is False
            first = c.wait_for("sync.finished", timeout=60)
            assert first["first_run"] is True and first["verify"] == "passed", c.tail()
            assert (work / "sql/schemas/complete-schema.sql").stat().st_size > 0
            c.send(signal.SIGHUP)  # docker compose kill -s HUP pg-schema-sync
            c.wait_for("sync.started", reason="SIGHUP", timeout=5)
            second = c.wait_for("sync.finished", count=2, timeout=30)
            assert second["drift_count"] == 0 and second["files_written"] == []
            health = subprocess.run(
                [shutil.which(health_argv[0], path=env["PATH"]) or "", *health_argv[1:]],
                cwd=work,
                env=env,
                capture_output=True,
                text=True,
                check=False,
                timeout=30,
            )
            assert health.returncode == 0 and health.stdout.startswith("healthy: "), health
            t0 = time.monotonic()
            c.send(signal.SIGTERM)  # docker compose stop
            assert c.wait_exit(40) == 0
            assert time.monotonic() - t0 < 10
        assert c.err_lines == []
        assert [e["event"] for e in c.events][-1] == "daemon.stopped"  # every line is JSON
        assert compose_env["PGPASSWORD"] not in "".join(c.lines)
