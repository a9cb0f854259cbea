"""Settings you can see: every setting documented by the model, the generated example and
reference page current, `pg-schema-sync config` naming where each value came from, and typos
in settings caught (an unknown variable warned about, an unknown key refused) with the nearest
valid name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from service.settings.documents import DOCS_FILE, EXAMPLE_FILE, example_toml, markdown
from service.settings.model import Settings, load_settings
from service.settings.reference import field_rows, settings_rows, target_rows
from service.settings.targets import TargetOverrides
from service.settings.webhooks import WebhookSettings
from tests.conftest import run_cli

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / EXAMPLE_FILE


def test_the_committed_example_is_the_generators_output() -> None:
    assert EXAMPLE.read_text() == example_toml(), "stale: run ./dev reference"


def test_the_committed_reference_page_is_the_generators_output() -> None:
    assert (ROOT / DOCS_FILE).read_text() == markdown(), "stale: run ./dev reference"


def test_config_example_prints_the_example_file(tmp_path: Path) -> None:
    result = run_cli("config", "--example", cwd=tmp_path)
    assert result.code == 0 and result.out == EXAMPLE.read_text()


def test_every_setting_has_a_description() -> None:
    rows = settings_rows() + target_rows() + field_rows(WebhookSettings)
    missing = sorted({r.name for r in rows if len(r.description) < 10})
    assert missing == [], f"give these fields a description= in the model: {missing}"


def test_example_config_loads_with_the_documented_defaults() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.schema_file == Path("sql/schemas/complete-schema.sql")
    assert settings.schedule == "*/15 * * * *"
    assert settings.verify == "off"
    assert settings.model_dump() == Settings().model_dump()  # every uncommented value a default


def test_every_setting_is_in_the_example_and_the_page() -> None:
    text, page = EXAMPLE.read_text(), (ROOT / DOCS_FILE).read_text()
    for name in Settings.model_fields:
        assert f"{name} = " in text or f"# {name}: [[{name}]]" in text, name
        assert f"| `{name}` |" in page and f"`SCHEMA_SYNC_{name.upper()}`" in page, name
    for name in TargetOverrides.model_fields:
        assert f"# {name} = " in text, name
    for name in WebhookSettings.model_fields:
        assert f"# {name} = " in text, name


def test_every_commented_example_is_valid_when_uncommented(tmp_path: Path) -> None:
    """Uncommenting the examples (of the settings, a target, a webhook) gives a config that
    loads: what the example shows a user can write is valid."""
    lines = EXAMPLE.read_text().splitlines()
    tables, hooks = lines.index("# [[targets]]"), lines.index("# [[webhooks]]")

    def uncommented(block: list[str]) -> str:
        return "\n".join(ln[2:] for ln in block if re.match(r"# [a-z_]+ = ", ln))

    root = uncommented(lines[:tables])
    alone = tmp_path / "root.toml"
    alone.write_text(root + "\n")
    assert load_settings(alone).state_dir == Path("/var/lib/pg-schema-sync")
    # With targets each keeps its own state and lock file: those two settings go.
    fleet_root = "\n".join(
        ln for ln in root.splitlines() if not ln.startswith(("state_file", "lock_file"))
    )
    fleet = tmp_path / "fleet.toml"
    fleet.write_text(
        f"{fleet_root}\n\n[[targets]]\n{uncommented(lines[tables:hooks])}\n\n"
        f"[[webhooks]]\n{uncommented(lines[hooks:])}\n"
    )
    settings = load_settings(fleet)
    assert [t.name for t in settings.targets] == ["trails"]
    assert settings.webhooks[0].format == "json"


# --------------------------------------------------------------------------------------------
# pg-schema-sync config


SECRET = "s3cr3t-Pa55-word"


def test_config_names_the_origin_of_every_setting_and_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config/pg-schema-sync.toml").write_text(
        "# my settings\nretain_count = 7\n\nschedule = '0 * * * *'\n\n[[webhooks]]\n"
        f"url = 'https://hooks.slack.com/services/{SECRET}'\nformat = 'slack'\n"
    )
    (tmp_path / ".env").write_text(
        f"COMPOSE_PROJECT_NAME=shop\nSCHEMA_SYNC_PASSWORD={SECRET}\nSCHEMA_SYNC_TIMEZONE=Europe/Berlin\n"
    )
    env = {
        "SCHEMA_SYNC_SCHEDULE": "30 * * * *",
        "SCHEMA_SYNC_DSN": f"postgresql://reader:{SECRET}@db.internal/app",
        "SCHEMA_SYNC_GIT_REPOSITORY": f"https://{SECRET}@github.com/acme/db.git",
        "PGPASSWORD": SECRET,
    }
    result = run_cli("config", "--no-owners", "--log-level", "debug", cwd=tmp_path, env=env)
    assert result.code == 0, result.err
    assert SECRET not in result.out + result.err
    lines = {ln.split("  ")[-1].split(" = ")[0].strip(): ln for ln in result.out.splitlines()}
    assert lines["schedule"].startswith("env SCHEMA_SYNC_SCHEDULE ")  # env beats the file
    assert lines["schedule"].endswith('schedule = "30 * * * *"')
    assert lines["retain_count"].startswith("file config/pg-schema-sync.toml:2 ")
    assert lines["webhooks"].startswith("file config/pg-schema-sync.toml:6 ")
    assert 'url = "***"' in lines["webhooks"]
    assert lines["password"].startswith("dotenv .env:2 SCHEMA_SYNC_PASSWORD ")
    assert lines["password"].endswith('password = "***"')
    assert lines["timezone"].startswith("dotenv .env:3 ")
    assert lines["include_owners"].startswith("flag --no-owners ")
    assert lines["include_owners"].endswith("include_owners = false")
    assert lines["pg_dump"].startswith("default ") and lines["pg_dump"].endswith('"pg_dump"')
    assert lines["log_level"].startswith("flag --log-level ")
    assert lines["log_level"].endswith('log_level = "debug"')
    assert lines["dsn"].endswith('dsn = "***"')
    assert lines["git_repository"].endswith('"https://***@github.com/acme/db.git"')
    assert "# production connection: reader@db.internal:5432/app" in result.out
    assert "PGPASSWORD=***" in result.out

    doc = run_cli("config", "--json", cwd=tmp_path, env=env)
    assert doc.code == 0 and SECRET not in doc.out
    by_name = {s["name"]: s for s in doc.json()["settings"]}
    assert by_name["retain_count"]["value"] == 7
    assert by_name["retain_count"]["origin"] == {
        "source": "file",
        "name": None,
        "file": "config/pg-schema-sync.toml",
        "line": 2,
    }
    assert by_name["password"]["value"] == "***" and by_name["password"]["secret"] is True
    assert by_name["schedule"]["origin"]["name"] == "SCHEMA_SYNC_SCHEDULE"
    assert by_name["webhooks"]["value"][0]["url"] == "***"
    assert doc.json()["config_file"] == "config/pg-schema-sync.toml"


def test_config_with_invalid_settings_is_one_line(tmp_path: Path) -> None:
    result = run_cli("config", cwd=tmp_path, env={"SCHEMA_SYNC_RETAIN_COUNT": "many"})
    assert result.code == 2 and result.out == ""
    [line] = result.err.splitlines()
    assert line.startswith("pg-schema-sync: invalid setting retain_count='many'")


# --------------------------------------------------------------------------------------------
# Typos


@pytest.mark.parametrize(
    ("variable", "nearest"),
    [
        ("SCHEMA_SYNC_SCHEDUL", "SCHEMA_SYNC_SCHEDULE"),
        ("SCHEMA_SYNC_VERIFYDSN", "SCHEMA_SYNC_VERIFY_DSN"),
        ("schema_sync_retain_cont", "SCHEMA_SYNC_RETAIN_COUNT"),
        ("SCHEMA_SYNC_XYZZY", None),
    ],
)
def test_an_unknown_variable_is_one_warning_naming_the_nearest_setting(
    tmp_path: Path, variable: str, nearest: str | None
) -> None:
    env = {variable: "1", "SCHEMA_SYNC_LOG_FORMAT": "json", "SCHEMA_SYNC_CONFIG": ""}
    result = run_cli("health", cwd=tmp_path, env=env)
    assert result.out.startswith("unhealthy: no state file")  # the command still runs
    [line] = [ln for ln in result.err.splitlines() if ln.strip()]
    event = json.loads(line)
    assert event["event"] == "settings.unknown_variable" and event["level"] == "warning"
    assert event["variable"] == variable and event["nearest"] == nearest
    assert event["source"] == "environment"


def test_an_unknown_variable_in_dotenv_names_its_line_and_other_tools_variables_pass(
    tmp_path: Path,
) -> None:
    # A .env shared with docker compose holds its variables too: they are not ours to refuse.
    (tmp_path / ".env").write_text(
        "POSTGRES_PASSWORD=x\nCOMPOSE_FILE=a.yml\nSCHEMA_SYNC_SHEDULE=1\n"
    )
    result = run_cli("health", "--log-format", "json", cwd=tmp_path)
    assert result.out.startswith("unhealthy: no state file"), result.out + result.err
    [event] = [json.loads(ln) for ln in result.err.splitlines() if ln.strip()]
    assert (event["variable"], event["source"], event["nearest"]) == (
        "SCHEMA_SYNC_SHEDULE",
        ".env:3",
        "SCHEMA_SYNC_SCHEDULE",
    )


def test_an_unknown_key_in_the_config_is_refused_with_the_nearest_name(tmp_path: Path) -> None:
    config = tmp_path / "my.toml"
    config.write_text("schedule = '0 * * * *'\n\nretain_cout = 3\n")
    result = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 2
    assert result.err.splitlines() == [
        f"pg-schema-sync: unknown setting retain_cout in {config}:3: did you mean "
        "retain_count? `pg-schema-sync config --example` lists every setting"
    ]
    assert "config/" not in result.err.replace(str(config), "")


def test_an_unknown_key_in_a_webhook_table_names_the_webhook_keys(tmp_path: Path) -> None:
    config = tmp_path / "my.toml"
    config.write_text("[[webhooks]]\nurl = 'https://hooks.example/x'\nformt = 'slack'\n")
    result = run_cli("check", "--config", str(config), cwd=tmp_path)
    assert result.code == 2
    assert "unknown setting webhooks.0.formt" in result.err
    assert "did you mean format?" in result.err
