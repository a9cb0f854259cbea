"""What every benchmark shares: the repository's paths, the children's environment, a scale
loaded into a scratch cluster, and migra in a virtualenv of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import generate
from service.demo.cluster import ScratchCluster

ROOT = Path(__file__).resolve().parent.parent
VENVS = ROOT / ".bench"


def say(msg: str) -> None:
    print(f"bench: {msg}", file=sys.stderr, flush=True)


def child_env(cluster: ScratchCluster, **extra: str) -> dict[str, str]:
    """Our environment minus libpq and SCHEMA_SYNC_ variables; the cluster's pg_dump first."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "SCHEMA_SYNC_"))}
    env["PATH"] = f"{cluster.bindir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    # Production images compile bytecode (Dockerfile: UV_COMPILE_BYTECODE=1). Where
    # PYTHONDONTWRITEBYTECODE is set, every run would compile ~140 modules from source
    # (~0.5 s CPU), so our children keep their bytecode under .bench/ instead.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(VENVS / "pycache")
    env["XDG_CACHE_HOME"] = str(VENVS / "cache")  # check's settings cache: not the user's home
    env.update(extra)
    return env


def load_scale(cluster: ScratchCluster, scale: int, scratch: Path) -> tuple[str, str, float]:
    """(base db, drifted db, load seconds): the base from one script, drifted as its clone."""
    base, drifted = f"base_{scale}", f"drifted_{scale}"
    script = scratch / f"base_{scale}.sql"
    script.write_text(generate.base_sql(scale))
    delta = scratch / f"drift_{scale}.sql"
    delta.write_text(generate.drift_sql(scale))
    t0 = time.perf_counter()
    cluster.create_database(base, script)
    # A template clone plus the three changes is the drifted script's result, in a second.
    cluster.psql("postgres", f'CREATE DATABASE "{drifted}" TEMPLATE "{base}"')
    cluster.psql(drifted, file=delta)
    cluster.psql(base, "VACUUM ANALYZE")  # a production catalog has statistics
    cluster.psql(drifted, "VACUUM ANALYZE")
    return base, drifted, time.perf_counter() - t0


def migra_bin(install: bool) -> tuple[Path | None, str]:
    """migra in its own virtualenv under .bench/ (SQLAlchemy 1.4, psycopg2), or why not."""
    exe = VENVS / "migra" / "bin" / "migra"
    if exe.exists():
        return exe, ""
    if not install:
        return None, "migra skipped (not installed in .bench/migra and installing was off)"
    uv = shutil.which("uv")
    if uv is None:
        return None, "migra skipped: uv not found to create its virtualenv"
    venv = VENVS / "migra"
    py = str(venv / "bin" / "python")
    # schemainspect still imports pkg_resources, which setuptools >= 70 no longer ships.
    steps = [
        [uv, "venv", "-q", str(venv)],
        [uv, "pip", "install", "-q", "--python", py, "migra", "psycopg2-binary", "sqlalchemy<2"],
        [uv, "pip", "install", "-q", "--python", py, "setuptools<70"],
    ]
    say("installing migra into .bench/migra (PyPI)")
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["?"])[-1]
            return None, f"migra skipped: could not install it ({last})"
    return (exe, "") if exe.exists() else (None, "migra skipped: installed but no executable")
