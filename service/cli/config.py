"""The `config` command: every setting in effect and where it came from, or the example file.

`pg-schema-sync config` is `git config --list --show-origin` for this tool: one line per
setting, its origin first (flag, env VARIABLE, dotenv FILE:LINE, file FILE:LINE, default), secrets
masked; `--json` for scripts; `--example` prints the complete commented config generated from
the settings model (the same text as config/pg-schema-sync.example.toml).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from service.cli.common import EXIT_OK, add_target_option, flags_given

if TYPE_CHECKING:
    from service.settings.model import Settings
    from service.settings.origins import Entry

DESCRIPTION = """\
Print every setting in effect, one per line, with where its value came from, highest
precedence first: a flag, an environment variable (env NAME), a line of the .env file
(dotenv .env:LINE NAME), a line of the config file (file PATH:LINE), or its default.
Passwords, DSNs, webhook URLs and other secrets are masked. Then the production connection
these settings and the libpq variables (PGHOST, ...) make, each target's own settings, and
any SCHEMA_SYNC_* variable that names no setting.

--example prints a complete commented config file instead: every setting with its
description, environment variable and default (config/pg-schema-sync.example.toml is the same
text). Exit 0; 2 when the settings are invalid (the one line says which and why).
"""


def register(sub: Any, common: argparse.ArgumentParser, filters: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "config",
        parents=[common, filters],
        help="show every setting in effect and where it came from (--example: a full config)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.add_argument(
        "--example",
        action="store_true",
        help="print a complete commented config file generated from the settings model",
    )
    add_target_option(p)
    p.set_defaults(handler=cmd_config)


async def cmd_config(args: argparse.Namespace) -> int:
    if args.example:
        from service.settings.documents import example_toml

        sys.stdout.write(example_toml())
        return EXIT_OK
    from service.cli.common import chosen
    from service.settings.model import config_path
    from service.settings.origins import entries, origins

    path = config_path(args.config)
    settings, targets = chosen(args)  # SettingsError: main() prints its one line, exit 2
    logging = {k: getattr(args, k) for k in ("log_format", "log_level") if getattr(args, k)}
    rows = entries(settings, origins(path, flags_given(args)), logging)
    doc = _document(settings, targets, rows, path)
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        _print(doc, rows)
    return EXIT_OK


def _document(
    settings: Settings, targets: list[Settings], rows: list[Entry], path: Path | None
) -> dict[str, Any]:
    from service.production.conninfo import LIBPQ_ENV, ConnInfoError
    from service.settings.model import Settings as Model
    from service.settings.unknown import unknown_variables

    def connection(s: Settings) -> str:
        try:
            return s.conninfo().display()
        except (ConnInfoError, ValueError) as exc:
            return f"(invalid: {exc})"

    libpq = {
        name: "***" if name == "PGPASSWORD" else os.environ[name]
        for name in LIBPQ_ENV
        if os.environ.get(name)
    }
    return {
        "config_file": str(path) if path else None,
        "settings": [
            {
                "name": r.name,
                "value": r.data,
                "origin": r.origin.as_json(),
                "env": r.env,
                "secret": r.secret,
            }
            for r in rows
        ],
        "connection": connection(settings),
        "libpq_environment": libpq,
        "targets": [
            {
                "name": t.name,
                "connection": connection(t),
                "schema_dir": str(t.schema_file.parent),
                "backup_dir": str(t.backup_dir),
                "state_dir": str(t.state_dir or t.backup_dir),
                "own": _own(settings, t.name),
            }
            for t in targets
        ]
        if settings.targets
        else [],
        "unknown_variables": [
            {"name": u.name, "source": u.source, "nearest": u.nearest}
            for u in unknown_variables(Model.model_fields, os.environ)
        ],
    }


def _own(settings: Settings, name: str) -> dict[str, str]:
    """What a [[targets]] table sets itself, as TOML literals (secrets masked)."""
    from service.settings.origins import shown

    for table in settings.targets:
        if table.name == name:
            own = sorted(table.model_fields_set - {"name"})
            return {k: shown(k, getattr(table, k)) for k in own}
    return {}


def _print(doc: dict[str, Any], rows: list[Entry]) -> None:
    where = doc["config_file"] or "none (no --config, no $SCHEMA_SYNC_CONFIG, no default file)"
    print("# settings in effect; precedence: flag > environment > .env > config file > default")
    print(f"# config file: {where}")
    width = max(len(r.origin.label()) for r in rows)
    for r in rows:
        value = r.value or "(unset)"
        print(f"{r.origin.label():<{width}}  {r.name} = {value}")
    print(f"# production connection: {doc['connection']}")
    if doc["libpq_environment"]:
        pairs = " ".join(f"{k}={v}" for k, v in doc["libpq_environment"].items())
        print(f"# libpq environment (used where the settings leave a part unset): {pairs}")
    for t in doc["targets"]:
        print(
            f"# target {t['name']}: {t['connection']}; schema files in {t['schema_dir']}, "
            f"backups in {t['backup_dir']}, state in {t['state_dir']}"
        )
        for key, value in t["own"].items():
            print(f"#   targets[{t['name']}].{key} = {value}")
    for u in doc["unknown_variables"]:
        guess = f"; did you mean {u['nearest']}?" if u["nearest"] else ""
        print(f"# unknown: {u['name']} ({u['source']}) sets nothing{guess}")
