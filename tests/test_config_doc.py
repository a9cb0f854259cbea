"""config/pg-schema-sync.example.toml documents every setting and is itself a valid config."""

from __future__ import annotations

import re
from pathlib import Path

from service.settings.model import Settings, load_settings

EXAMPLE = Path(__file__).parent.parent / "config" / "pg-schema-sync.example.toml"


def test_example_config_loads_with_the_documented_defaults() -> None:
    settings = load_settings(EXAMPLE)
    assert settings.schema_file == Path("sql/schemas/complete-schema.sql")
    assert settings.schedule == "*/15 * * * *"
    assert settings.verify == "off"


def test_every_setting_is_documented_in_the_example() -> None:
    text = EXAMPLE.read_text()
    documented = set(re.findall(r"^#?\s*([a-z_]+)\s*=", text, re.MULTILINE))
    missing = sorted(set(Settings.model_fields) - documented - {"targets"})
    assert missing == [], f"settings missing from {EXAMPLE.name}: {missing}"
    assert "[[targets]]" in text
