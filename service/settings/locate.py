"""Where the settings come from on disk: the config file in effect, and the .env file.

Light (no pydantic): a check the probe answers locates the same files to recognise settings
it has resolved before (settings/cache.py) without building the model.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from service.errors import SettingsError

ENV_PREFIX = "SCHEMA_SYNC_"
DEFAULT_CONFIG = Path("config/pg-schema-sync.toml")
DOTENV = Path(".env")


def config_path(
    config: Path | None = None, environ: Mapping[str, str] | None = None
) -> Path | None:
    """The config file in effect: --config, $SCHEMA_SYNC_CONFIG, else the default if present."""
    env = os.environ if environ is None else environ
    path = config or (Path(env[ENV_PREFIX + "CONFIG"]) if env.get(ENV_PREFIX + "CONFIG") else None)
    if path is None and DEFAULT_CONFIG.exists():
        path = DEFAULT_CONFIG
    if path is not None and not path.is_file():
        raise SettingsError(f"config file {path} does not exist: create it or fix --config")
    return path
