"""What the last `check` of the very same inputs resolved the settings to, so that a check the
probe answers need not build the settings model again.

Building the model (pydantic, pydantic-settings and the classes) is about 0.35 s of CPU: half
of a `check` whose probe finds nothing changed (docs/benchmark.md). Settings are a pure
function of their inputs, so the check that did build them leaves what a probe needs, and a
later check whose inputs are identical byte for byte uses it instead. The key is a SHA-256 of
every input the settings are made from:
- the command line, and the working directory (relative paths, .env, the default config);
- the environment variables the model reads (SCHEMA_SYNC_*, in any case) and those the
  connection or the probe's digest depend on (libpq's PG*, PATH, the user's name, a pod's name);
  PGPASSWORD is left out: it is read at the time, like the rest of the password;
- the bytes of the .env file and of the config file in effect;
- this tool's code (every module's size and time) and its settings libraries.
Any difference is another key, and a miss builds the settings as always. An entry is only ever
written from settings that were valid, and holds no password: settings with a password
anywhere but in PGPASSWORD or a passfile (a DSN's, the `password` setting) write none.

Stdlib only: this runs before anything heavy is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from service import __version__
from service.errors import SettingsError
from service.settings.locate import DOTENV, ENV_PREFIX, config_path

FORMAT = 1
KEEP = 32  # entries kept (the newest); one per working directory and set of inputs
_SERVICE = Path(__file__).resolve().parent.parent
# libpq's variables but the password (PGPASSWORD is read when connecting, never kept), the
# user name getpass falls back to, pg_dump's PATH, and the pod name a shard = "auto" reads.
_NAMES = ("PATH", "LOGNAME", "USER", "LNAME", "USERNAME", "POD_NAME", "HOSTNAME")
_LIBRARIES = ("pydantic", "pydantic_core", "pydantic_settings")


def folder(environ: Mapping[str, str]) -> Path | None:
    """$XDG_CACHE_HOME/pg-schema-sync/settings, else ~/.cache/...; None without a home."""
    base = environ.get("XDG_CACHE_HOME") or (
        str(Path(environ["HOME"], ".cache")) if environ.get("HOME") else None
    )
    return Path(base, "pg-schema-sync", "settings") if base and Path(base).is_absolute() else None


def key(argv: Sequence[str], config: Path | None, environ: Mapping[str, str]) -> str | None:
    """The key of these inputs, or None when one cannot be read (no entry then)."""
    digest = hashlib.sha256()

    def add(*parts: object) -> None:
        digest.update(json.dumps(parts, default=str).encode() + b"\n")

    add(FORMAT, __version__, sys.version, list(argv), os.getcwd(), os.getuid())
    for name in sorted(environ):
        upper = name.upper()
        if (
            upper.startswith(ENV_PREFIX)
            or (name.startswith("PG") and name != "PGPASSWORD")
            or name in _NAMES
        ):
            add("env", name, environ[name])
    try:
        path = config_path(config, environ)
        for what, file in (("config", path), ("dotenv", DOTENV)):
            add(what, str(file.absolute()) if file else None, _content(file))
        add("code", _code_stamp())
    except (OSError, SettingsError):
        return None
    return digest.hexdigest()


def read(key: str, environ: Mapping[str, str]) -> dict[str, Any] | None:
    """The entry stored under `key`, or None (none, unreadable or not ours: built afresh)."""
    where = folder(environ)
    if where is None:
        return None
    path = where / f"{key}.json"
    try:
        # Only an entry this user wrote: one that others could have written (another owner,
        # group- or world-writable, here or in its folder) could point the probe anywhere.
        if not all(_own(p) for p in (where, path)):
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT or data.get("key") != key:
        return None
    return data


def write(key: str, entry: dict[str, Any], environ: Mapping[str, str]) -> None:
    """Store `entry` under `key` (replacing it atomically), and drop all but the newest KEEP.
    A cache: any failure (a read-only home, a full disk) only means the next check builds the
    settings again, so it is swallowed."""
    where = folder(environ)
    if where is None:
        return
    with contextlib.suppress(OSError):
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".entry-", suffix=".tmp")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump({"format": FORMAT, "key": key, **entry}, out, sort_keys=True)
            os.replace(tmp, where / f"{key}.json")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _prune(where)


def _own(path: Path) -> bool:
    st = os.lstat(path)
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _prune(where: Path) -> None:
    entries = sorted(where.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[KEEP:]:
        with contextlib.suppress(OSError):
            old.unlink()


def _content(path: Path | None) -> str | None:
    """The file's SHA-256, or None when there is no such file (a folder named so: an error)."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except FileNotFoundError:
        return None


def _code_stamp() -> list[object]:
    """Size and time of every module of this tool, and of the settings libraries' first
    modules (an upgrade rewrites them): an edited or upgraded module is another key."""
    stamp: list[object] = []
    for dirpath, dirnames, filenames in os.walk(_SERVICE):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        for name in sorted(filenames):
            if name.endswith(".py"):
                stamp.append((dirpath, name, *_stat(os.path.join(dirpath, name))))
    for library in _LIBRARIES:
        spec = importlib.util.find_spec(library)  # finds it, does not import it
        origin = spec.origin if spec is not None else None
        stamp.append((library, origin, *(_stat(origin) if origin else ())))
    return stamp


def _stat(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
