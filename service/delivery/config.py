"""The git delivery settings of one target, resolved: defaults filled in, paths absolute."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from service.settings.model import Settings


@dataclass(frozen=True)
class GitConfig:
    target: str
    repository: str
    branch: str
    path: str
    author: tuple[str, str]
    push: bool
    workdir: Path
    token_env: str | None
    timeout_s: float
    alert_after: int

    @classmethod
    def of(cls, settings: Settings) -> GitConfig | None:
        """The target's delivery settings; None when git delivery is off."""
        if not settings.git_repository:
            return None
        repository = settings.git_repository
        if is_local_path(repository):  # git runs in the clone: a relative path would move
            repository = str(Path(repository).expanduser().resolve())
        workdir = settings.git_workdir or settings.backup_dir / ".git-delivery"
        return cls(
            target=settings.name,
            repository=repository,
            branch=settings.git_branch or f"schema-sync/{settings.name}",
            path=settings.git_path,
            author=(settings.git_author_name, settings.git_author_email),
            push=settings.git_push,
            workdir=workdir.absolute(),
            token_env=settings.git_token_env,
            timeout_s=settings.git_timeout_s,
            alert_after=settings.failure_alert_after,
        )

    @property
    def repo(self) -> Path:
        return self.workdir / "repo"

    @property
    def state_file(self) -> Path:
        return self.workdir / "state.json"


def is_local_path(repository: str) -> bool:
    """A path, not a URL (scheme://...) nor scp-like (host:path)."""
    if "://" in repository:
        return False
    head = repository.split("/", 1)[0]
    return ":" not in head
