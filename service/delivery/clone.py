"""Which remote, branch and path the daemon's clone was made for, and what happens on a change.

The clone's history belongs to one remote: after git_repository, git_branch or git_path
changes, reusing it would push one repository's commits into another (the delivery branch would
not descend from the new repository's default branch, and a review would list every file of the
old one). So the clone is recorded with what it was made for (`clone.json` beside it), and on
any difference it is moved aside to `previous/` and a fresh clone starts from the new remote.
The moved clone is kept until the next successful push, then removed: it may hold commits that
never reached the old remote.

The remote URL may hold a token (`https://TOKEN@host/...`: a password after a colon is refused
by the settings, a bare user name is not). It is stored scrubbed, for people to read, and as an
HMAC under a random salt, to compare with; git gets it through its environment
(GIT_CONFIG_COUNT), so it is not in the clone's .git/config either.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from service.delivery.config import GitConfig
from service.delivery.gitcmd import GitError, Result
from service.disk import files

RECORD_NAME = "clone.json"
ASIDE_DIR = "previous"
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@")


def scrub_url(url: str) -> str:
    """The URL without its userinfo (`https://***@host/x.git`); scp-like and paths as they are
    (an ssh user name is not a secret, and such URLs cannot carry a token)."""
    return _USERINFO.sub(r"\1***@", url)


def _keyed(salt: str, url: str) -> str:
    return hmac.new(bytes.fromhex(salt), url.encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class CloneRecord:
    remote: str  # scrubbed, for people
    salt: str
    remote_hmac: str  # HMAC-SHA256(salt, the URL as configured), for comparing
    branch: str
    path: str

    @classmethod
    def made_for(cls, url: str, branch: str, path: str) -> CloneRecord:
        salt = secrets.token_hex(16)
        return cls(scrub_url(url), salt, _keyed(salt, url), branch, path)

    def matches(self, url: str, branch: str, path: str) -> bool:
        same_url = hmac.compare_digest(self.remote_hmac, _keyed(self.salt, url))
        return same_url and (self.branch, self.path) == (branch, path)

    def differences(self, url: str, branch: str, path: str) -> list[str]:
        """What changed, in words fit for a log line (the URLs scrubbed)."""
        out = []
        if not hmac.compare_digest(self.remote_hmac, _keyed(self.salt, url)):
            out.append(f"git_repository {self.remote} -> {scrub_url(url)}")
        if self.branch != branch:
            out.append(f"git_branch {self.branch} -> {branch}")
        if self.path != path:
            out.append(f"git_path {self.path} -> {path}")
        return out


def load(workdir: Path) -> CloneRecord | None:
    try:
        data = json.loads((workdir / RECORD_NAME).read_text(encoding="utf-8"))
        return CloneRecord(**{k: str(data[k]) for k in CloneRecord.__dataclass_fields__})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def save(workdir: Path, record: CloneRecord) -> None:
    text = json.dumps(asdict(record), indent=2, sort_keys=True) + "\n"
    files.write_atomically(workdir / RECORD_NAME, text.encode())


def move_aside(workdir: Path, repo: Path) -> Path:
    """Move the clone (and its record) out of the way, keeping it; returns where it went."""
    aside = workdir / ASIDE_DIR
    aside.mkdir(exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    target = aside / f"repo-{stamp}"
    os.rename(repo, target)
    record = workdir / RECORD_NAME
    if record.exists():
        os.rename(record, aside / f"repo-{stamp}.json")
    files.fsync_dir(aside)
    files.fsync_dir(workdir)
    return target


def clear_aside(workdir: Path) -> list[Path]:
    """After a successful push: the clones moved aside are no longer needed."""
    aside = workdir / ASIDE_DIR
    if not aside.is_dir():
        return []
    removed = sorted(aside.iterdir())
    shutil.rmtree(aside)
    return removed


Git = Callable[..., Awaitable[str]]  # runs git in the clone; GitError on failure
Attempt = Callable[..., Awaitable[Result]]  # the same, returning the result whatever it is


async def changes(cfg: GitConfig, attempt: Attempt, last_branch: str | None) -> list[str]:
    """How the configuration differs from what the clone was made for ([] = the same)."""
    made = load(cfg.workdir)
    if made is not None:
        return made.differences(cfg.repository, cfg.branch, cfg.path)
    # A clone from before the record: its own .git/config names the URL, the state the
    # branch (the path was not kept: taken as unchanged). Adopted when they agree, and the URL
    # then leaves .git/config (it comes from the environment now).
    found = await attempt("config", "--file", ".git/config", "remote.origin.url")
    url = found.stdout.strip()
    out = []
    if url != cfg.repository:
        out.append(f"git_repository {scrub_url(url)} -> {scrub_url(cfg.repository)}")
    if last_branch not in (None, cfg.branch):
        out.append(f"git_branch {last_branch} -> {cfg.branch}")
    if not out:
        await attempt("config", "--file", ".git/config", "--unset-all", "remote.origin.url")
        save(cfg.workdir, CloneRecord.made_for(cfg.repository, cfg.branch, cfg.path))
    return out


async def refuse_foreign_history(cfg: GitConfig, git: Git, attempt: Attempt) -> None:
    """Never push one repository's history into another (a second line behind the record):
    a branch that shares no commit with any branch of the remote may only hold this tool's own
    commits (one begun from nothing, where the remote has no default branch)."""
    refs = await git("for-each-ref", "--format=%(objectname)", "refs/remotes/origin")
    remote_heads = refs.split()[:256]
    if not remote_heads or (await attempt("merge-base", "HEAD", *remote_heads)).code == 0:
        return
    name, email = cfg.author
    authors = set((await git("log", "--format=%an <%ae>", "HEAD")).splitlines())
    foreign = sorted(authors - {f"{name} <{email}>"})
    if foreign:
        raise GitError(
            f"refusing to push to {scrub_url(cfg.repository)}: {cfg.branch} shares no history "
            f"with it and holds commits by {', '.join(foreign[:3])} (another repository's); "
            f"remove {cfg.workdir / RECORD_NAME} to start a fresh clone"
        )
