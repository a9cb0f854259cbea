"""The git delivery settings: where a sync's files are committed and pushed (off by default).

Kept apart from the other settings so the model only mixes them in; validation is pure (no
git, no network): the values are checked for what could turn them into something else on a
git command line (a leading '-', a password inside a URL, a path leaving the repository).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

# A conservative subset of git's ref-name rules (git check-ref-format), and no leading '-'.
BRANCH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]{0,199}")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


def check_repository(value: str | None) -> str | None:
    if value is None:
        return None
    if not value.strip() or value.startswith("-") or any(c in value for c in "\n\r\0"):
        raise ValueError("give a local path or a URL (ssh://, https://, git@host:path, file://)")
    if value.startswith("ext::") or "::" in value.split("/", 1)[0]:
        raise ValueError("git remote helpers (transport::address) are not allowed")
    if "://" in value and urlsplit(value).password is not None:
        # It would land in argv, .git/config and every error message git prints.
        raise ValueError(
            "a password or token in the URL is refused; name an environment variable "
            "holding it in git_token_env, or use an SSH key"
        )
    return value


def check_branch(value: str | None) -> str | None:
    if value is None:
        return None
    bad = (
        not BRANCH_RE.fullmatch(value)
        or ".." in value
        or "//" in value
        or value.endswith(("/", ".", ".lock"))
        or "/." in value
        or value == "HEAD"
    )
    if bad:
        raise ValueError("not a usable branch name (letters, digits, '_', '-', '.', '/')")
    return value


def check_repo_path(value: str | None) -> str | None:
    if value is None:
        return None
    path = PurePosixPath(value)
    parts = [p for p in path.parts if p != "."]
    if (
        path.is_absolute()
        or ".." in parts
        or (parts and parts[0].lower() == ".git")
        or value.startswith("-")
        or "\\" in value
        or any(c in value for c in "\n\r\0")
    ):
        raise ValueError("a relative path inside the repository, e.g. sql/schemas")
    return value


def check_env_name(value: str | None) -> str | None:
    if value is not None and not ENV_NAME_RE.fullmatch(value):
        raise ValueError("the name of an environment variable, e.g. GIT_TOKEN")
    return value


CHECKS = {
    "git_repository": check_repository,
    "git_branch": check_branch,
    "git_path": check_repo_path,
    "git_token_env": check_env_name,
}


class GitFields(BaseModel):
    """Top-level git delivery settings (each target may override them)."""

    # A mixin, never validated on its own: building its validator at import would be wasted
    # (pydantic builds the classes that are validated, Settings and TargetOverrides, on first use).
    model_config = ConfigDict(defer_build=True)

    git_repository: str | None = Field(
        default=None,
        description="Git delivery: each sync that writes files commits them to this repository "
        "and pushes; off when unset (credentials through git's own means only)",
        examples=["git@github.com:acme/db.git"],
    )
    git_branch: str | None = Field(
        default=None,
        description="Branch the commits go to; default schema-sync/<target name>, never main "
        "unless set",
        examples=["schema-sync/default"],
    )
    git_path: str = Field(
        default="sql/schemas", description="Folder inside the repository for the schema files"
    )
    git_author_name: str = Field(default="pg-schema-sync", description="The commits' author")
    git_author_email: str = Field(
        default="pg-schema-sync@localhost", description="The commits' author e-mail"
    )
    git_push: bool = Field(default=True, description="false: commits stay in the daemon's clone")
    git_workdir: Path | None = Field(
        default=None,
        description="The clone the daemon owns; default <backup_dir>/.git-delivery",
        examples=["backups/.git-delivery"],
    )
    git_token_env: str | None = Field(
        default=None,
        description="HTTPS: the environment variable holding a token (never in the URL)",
        examples=["GIT_TOKEN"],
    )
    git_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Each git command gives up after this long"
    )

    @field_validator(*CHECKS)
    @classmethod
    def _checked(cls, value: str | None, info: ValidationInfo) -> str | None:
        return CHECKS[str(info.field_name)](value)


class GitOverrides(BaseModel):
    """The same settings in a `[[targets]]` table: unset means inherited."""

    model_config = ConfigDict(defer_build=True)  # a mixin of TargetOverrides (see GitFields)

    git_repository: str | None = None
    git_branch: str | None = None
    git_path: str | None = None
    git_author_name: str | None = None
    git_author_email: str | None = None
    git_push: bool | None = None
    git_workdir: Path | None = None
    git_token_env: str | None = None
    git_timeout_s: float | None = Field(default=None, gt=0, le=3600)

    @field_validator(*CHECKS)
    @classmethod
    def _checked(cls, value: str | None, info: ValidationInfo) -> str | None:
        return CHECKS[str(info.field_name)](value)
