"""The documents generated from the settings reference: the commented example config
(`pg-schema-sync config --example`, config/pg-schema-sync.example.toml) and the documentation's
configuration page (docs/configuration.md). `python -m service.settings.documents`
(`./dev reference`) rewrites both; tests/test_config_doc.py fails when either is stale.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path

from service.settings.reference import (
    Row,
    by_section,
    field_rows,
    settings_rows,
    target_rows,
)
from service.settings.webhooks import WebhookSettings

EXAMPLE_FILE = Path("config/pg-schema-sync.example.toml")
DOCS_FILE = Path("docs/configuration.md")
WIDTH = 96
TABLE_FIELDS = ("webhooks", "targets")  # lists of tables: at the end of a TOML file


HEADER = """\
# pg-schema-sync configuration: copy to config/pg-schema-sync.toml (git-ignored) or point
# --config / SCHEMA_SYNC_CONFIG at it. Every setting can also be set as an environment
# variable SCHEMA_SYNC_<NAME> (e.g. SCHEMA_SYNC_SCHEDULE) or in a .env file; precedence is
# command-line flag > environment > .env > this file > default. Values shown are the defaults;
# commented-out settings are unset by default and show an example.
# Generated from the settings model (`pg-schema-sync config --example`): every setting is here.
# `pg-schema-sync config` prints the settings in effect and where each one came from.
"""


def _comment(text: str, indent: str = "# ") -> list[str]:
    return textwrap.wrap(
        text,
        WIDTH,
        initial_indent=indent,
        subsequent_indent=indent,
        break_on_hyphens=False,
        break_long_words=False,
    )


def _setting_lines(row: Row, prefix: str = "") -> list[str]:
    lines = _comment(row.description, f"{prefix}# ")
    if row.default:
        lines.append(f"{prefix}{row.name} = {row.default}")
    else:
        lines.append(f"{prefix}# {row.name} = {row.example or _placeholder(row)}")
    return lines


def _placeholder(row: Row) -> str:
    return '"..."' if "string" in row.type or "path" in row.type else "..."


def example_toml() -> str:
    """The complete commented example config: every setting, its description, its default."""
    out = [HEADER.rstrip("\n")]
    rows = settings_rows()
    for section, members in by_section(rows):
        out += ["", f"# --- {section.title} " + "-" * max(3, WIDTH - 7 - len(section.title))]
        if section.intro:
            out += _comment(section.intro)
        for row in members:
            out.append("")
            if row.name in TABLE_FIELDS:
                out += _comment(row.description)
                out.append(f"# {row.name}: [[{row.name}]] tables at the end of this file")
                continue
            out += _setting_lines(row)
    out += _tables()
    return "\n".join(out) + "\n"


def _tables() -> list[str]:
    """[[targets]] and [[webhooks]], commented out: tables must follow every top-level key."""
    out = ["", "# --- Tables: keep them after every top-level setting " + "-" * 41]
    out += _comment(
        "A [[targets]] table names one database and sets only what differs from the "
        "settings above; every key below may be set in it. Environment: "
        'SCHEMA_SYNC_TARGETS=\'[{"name": "trails", "database": "trails"}]\'.'
    )
    out += ["", "# [[targets]]"]
    for row in target_rows():
        if row.name == "name":
            out += _comment(row.description, "# # ")
            out += ['# name = "trails"', "# # and any of these (each overrides the setting above):"]
            continue
        out.append(f"# {row.name} = {row.example or _placeholder(row)}")
    out.append("")
    out += _comment(
        "A [[webhooks]] table is one receiver (a target may set its own list, or [] for none). "
        'Its URL is a secret: prefer SCHEMA_SYNC_WEBHOOKS=\'[{"url": "https://hooks.slack.com'
        '/services/...", "format": "slack"}]\'.'
    )
    out += ["", "# [[webhooks]]"]
    for row in field_rows(WebhookSettings):
        out += _comment(row.description, "# # ")
        value = row.default if row.default else (row.example or _placeholder(row))
        out.append(f"# {row.name} = {value}")
    return out


# --------------------------------------------------------------------------------------------
# The documentation page


def _text(text: str) -> str:
    """Markdown text: `<name>` would be read as an HTML tag and vanish."""
    return text.replace("<", "&lt;").replace(">", "&gt;")


def _cell(text: str) -> str:
    return _text(text).replace("|", "\\|").replace("\n", " ") or "-"


def markdown() -> str:
    """docs/configuration.md: the precedence, then a table per section, targets, webhooks."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated from the settings model by `./dev reference`"
        " (service/settings/documents.py): do not edit; tests/test_config_doc.py fails when "
        "it is stale. -->",
        "",
        "Settings come from, highest first: command-line flags, `SCHEMA_SYNC_*` environment "
        "variables, a `.env` file in the working directory, the TOML config file (`--config`, "
        "`$SCHEMA_SYNC_CONFIG`, or `config/pg-schema-sync.toml` when present), defaults. "
        "The standard libpq variables (PGHOST, PGPORT, PGUSER, PGDATABASE, PGPASSWORD, "
        "PGPASSFILE, PGSSLMODE) work exactly as for psql; `dsn` and the connection settings "
        "override them.",
        "",
        "- `pg-schema-sync config` prints every setting in effect with where it came from "
        "(flag, environment variable, `.env` line, config file line, default), secrets masked; "
        "`--json` for scripts.",
        "- `pg-schema-sync config --example` prints a complete commented config file "
        "(`config/pg-schema-sync.example.toml` in the repository is the same text).",
        "- Lists and tables given as environment variables are JSON, e.g. "
        "`SCHEMA_SYNC_SCHEMAS='[\"app\"]'`. An unknown `SCHEMA_SYNC_*` variable is reported "
        "at start with the nearest setting; an unknown key in the config file stops the "
        "command.",
    ]
    for section, members in by_section(settings_rows()):
        out += ["", f"## {section.title}", ""]
        if section.intro:
            out += [_text(section.intro), ""]
        out += [
            "| setting | type | default | environment variable | description |",
            "|---|---|---|---|---|",
        ]
        for r in members:
            default = f"`{r.default}`" if r.default else "unset"
            out.append(
                f"| `{r.name}` | {_cell(r.type)} | {_cell(default)} | `{r.env}` | "
                f"{_cell(r.description)} |"
            )
    out += ["", "## Keys of a `[[targets]]` table", ""]
    out += [
        "Each key overrides the top-level setting of the same name for that target only "
        "(a target's `dsn` also replaces the inherited host, port, user, database and sslmode).",
        "",
        "| key | type | description |",
        "|---|---|---|",
    ]
    for r in target_rows():
        out.append(f"| `{r.name}` | {_cell(r.type)} | {_cell(r.description)} |")
    out += ["", "## Keys of a `[[webhooks]]` table", "", "| key | type | default | description |"]
    out.append("|---|---|---|---|")
    for r in field_rows(WebhookSettings):
        default = f"`{r.default}`" if r.default else "required" if r.name == "url" else "unset"
        out.append(f"| `{r.name}` | {_cell(r.type)} | {_cell(default)} | {_cell(r.description)} |")
    return "\n".join(out) + "\n"


def generated() -> dict[Path, str]:
    """Each generated file (relative to the repository root) and its text."""
    return {EXAMPLE_FILE: example_toml(), DOCS_FILE: markdown()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m service.settings.documents",
        description=f"Write {EXAMPLE_FILE} and {DOCS_FILE} from the settings model.",
    )
    parser.add_argument("--root", type=Path, default=Path("."), help="the repository's root")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is stale")
    args = parser.parse_args(argv)
    stale = []
    for path, text in generated().items():
        target = args.root / path
        current = target.read_text(encoding="utf-8") if target.exists() else None
        if current == text:
            continue
        stale.append(str(path))
        if not args.check:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
    verb = "stale" if args.check else "written"
    print(f"{verb}: {', '.join(stale)}" if stale else "up to date", file=sys.stderr)
    return 1 if stale and args.check else 0


if __name__ == "__main__":
    raise SystemExit(main())
