"""Git delivery: commit the schema files a sync or rollback wrote, and push them.

The daemon works in a clone of its own (git_workdir, default <backup_dir>/.git-delivery/repo),
never in a user's work tree: a local repository path is treated like any remote and only
receives pushes to the delivery branch. Each delivery copies the current schema files into the
clone and commits them when they differ from the branch, so a commit missed because git was
unreachable (or delivery was just switched on) is made on the next cycle; an idle cycle runs no
git command at all. Pushes never force: when the branch moved, the commits are rebased onto it;
when that conflicts, they go to a fresh branch and nobody's work is lost.

Nothing here raises into the sync: every failure becomes a GitResult with an error, a
`git.push_failed` (or `git.failed`) event, and a state the next cycle retries from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from service.delivery import clone, gitcmd
from service.delivery import state as gstate
from service.delivery.config import GitConfig
from service.delivery.gitcmd import GitError
from service.delivery.message import CommitFacts, catch_up_message
from service.delivery.state import GitState, PushState
from service.disk import files
from service.disk.lock import LockHeld, hold
from service.logs import register_secret
from service.settings.model import Settings

PUSH_ATTEMPTS = 3  # the branch moved again while we rebased: try again, then wait a cycle


@dataclass(frozen=True)
class GitResult:
    """What a delivery did; `commit` is this run's commit (None when nothing changed)."""

    branch: str
    commit: str | None
    head: str | None  # the branch's last commit, this run's or an earlier one
    push_state: str
    error: str | None = None
    cause: str | None = None
    fresh_branch: str | None = None
    alert: str | None = None  # state.ALERT_FAILING / ALERT_RECOVERED: for the daemon's alerts
    consecutive_failures: int = 0

    def line(self) -> str:
        """One line for the CLI."""
        what = f"committed {self.commit[:12]}" if self.commit else "no new commit"
        where = f" to {self.branch}"
        if self.error:
            return f"git: {what}{where}; {self.error} (kept locally, retried next sync)"
        if self.fresh_branch:
            return f"git: {what}; the branch had conflicting changes, pushed {self.fresh_branch}"
        return f"git: {what}{where}; push {self.push_state}"


def last_commit(settings: Settings) -> str | None:
    """The target's last delivered commit id (for messages that name it); None when off."""
    cfg = GitConfig.of(settings)
    return gstate.load(cfg.state_file).last_commit if cfg else None


def load_state(settings: Settings) -> GitState | None:
    cfg = GitConfig.of(settings)
    return gstate.load(cfg.state_file) if cfg else None


def classify(error: str) -> str:
    """The cause a user acts on, from git's own words."""
    text = error.lower()
    if "timed out" in text:
        return "timeout"
    if any(s in text for s in ("permission denied", "authentication", "could not read username")):
        return "auth"
    if "does not appear to be a git repository" in text or "not a git repository" in text:
        return "not_a_repository"
    if "remote rejected" in text or "hook declined" in text or "[rejected]" in text:
        return "rejected"
    if any(s in text for s in ("could not read from remote", "unable to access", "resolve host")):
        return "unreachable"
    if "holds files but no git repository" in text:
        return "workdir"
    return "git"


# --------------------------------------------------------------------------------------------


async def deliver(
    settings: Settings,
    sources: Sequence[Path],
    facts: CommitFacts,
    message: str | None,
    log: Any,
) -> GitResult | None:
    """Commit `sources` (the schema files) when they changed, then push; never raises except
    on cancel. `message` describes what this run wrote; None when it wrote nothing."""
    cfg = GitConfig.of(settings)
    if cfg is None:
        return None
    if cfg.token_env:
        register_secret(os.environ.get(cfg.token_env))
    try:
        cfg.workdir.mkdir(parents=True, exist_ok=True)
        with hold(cfg.workdir / ".lock"):
            return await _Delivery(cfg, log).run(sources, facts, message)
    except LockHeld:
        log.warning("git.busy", workdir=str(cfg.workdir))
        return GitResult(cfg.branch, None, None, "busy", "another process is delivering", "busy")
    except (GitError, OSError) as exc:  # the folder or the state file, not git's remote
        log.error("git.failed", error=str(exc), cause=classify(str(exc)))
        return GitResult(cfg.branch, None, None, "failed", str(exc), classify(str(exc)))
    except Exception as exc:  # a bug here must not fail a sync whose files are in place
        log.exception("git.crashed")
        error = f"{type(exc).__name__}: {exc}"
        return GitResult(cfg.branch, None, None, "failed", error, "internal")


class _Delivery:
    def __init__(self, cfg: GitConfig, log: Any) -> None:
        self.cfg, self.log = cfg, log.bind(branch=cfg.branch)
        self.askpass = cfg.workdir / "askpass"
        self.env = gitcmd.git_env(
            os.environ, cfg.author, cfg.token_env, self.askpass, cfg.timeout_s, cfg.repository
        )
        self.remote_ref = f"refs/remotes/origin/{cfg.branch}"

    async def git(self, *args: str, stdin: bytes | None = None) -> str:
        result = await gitcmd.run(args, self.cfg.repo, self.env, self.cfg.timeout_s, stdin)
        return result.stdout

    async def attempt(self, *args: str) -> gitcmd.Result:
        return await gitcmd.run(args, self.cfg.repo, self.env, self.cfg.timeout_s, check=False)

    async def has_ref(self, ref: str) -> bool:
        return (await self.attempt("rev-parse", "--verify", "-q", ref)).code == 0

    # -- the steps ---------------------------------------------------------------------------
    async def run(
        self, sources: Sequence[Path], facts: CommitFacts, message: str | None
    ) -> GitResult:
        st = gstate.load(self.cfg.state_file)
        if message:  # kept until committed: a failure before the commit must not lose it
            st = gstate.with_pending(st, message)
        differ = await asyncio.to_thread(self._differs, sources)
        # Settled: the branch holds these files and the remote has them (or is not wanted).
        # A changed repository, branch, path or git_push makes the next cycle go to work again.
        made = clone.load(self.cfg.workdir)
        cfg = self.cfg
        settled = (
            made is not None
            and made.matches(cfg.repository, cfg.branch, cfg.path)
            and (
                st.push_state == PushState.PUSHED
                or (st.push_state == PushState.OFF and not self.cfg.push)
            )
        )
        if (self.cfg.repo / ".git").is_dir() and not differ and settled and not message:
            return self._result(st, None)  # idle cycle: no git command, no network
        commit: str | None = None
        try:
            if await self._prepare(st.branch):
                # Another remote, branch or path: what the state says is about the old clone;
                # the syncs not yet committed still are (they go into the first commit).
                st = GitState(pending_messages=st.pending_messages)
            has_local = await self.has_ref(f"refs/heads/{self.cfg.branch}")
            fetch_error = None
            if self.cfg.push or not has_local:
                fetch_error = await self._fetch()
            if fetch_error and not has_local:
                # Nothing to build on yet: the files stay on disk, the message pending.
                return self._finish(st, None, fetch_error)
            await self._checkout(has_local, fetch_error is None)
            commit = await self._commit(sources, facts, st.pending_messages)
            st = st.updated(pending_messages=[])
            if commit:
                st = st.updated(
                    last_commit=commit,
                    last_commit_at=datetime.now(UTC).isoformat(),
                    last_subject=(await self.git("log", "-1", "--format=%s")).strip(),
                    push_state=PushState.PENDING.value,
                )
                self.log.info("git.committed", commit=commit, path=self.cfg.path)
            if not self.cfg.push:
                return self._finish(st.updated(push_state=PushState.OFF.value), commit, None)
            if fetch_error:
                return self._finish(st, commit, fetch_error)
            fresh = await self._publish()
            head = (await self.attempt("rev-parse", "-q", "--verify", "HEAD")).stdout.strip()
            st = st.updated(fresh_branch=fresh or st.fresh_branch)
            if head:
                st = st.updated(pushed_commit=head, push_state=PushState.PUSHED.value)
            return self._finish(st, commit, None, fresh)
        except (GitError, OSError) as exc:  # OSError: the clone's folder (full, read-only)
            return self._finish(st, commit, str(exc))

    def _differs(self, sources: Sequence[Path]) -> bool:
        dest = self.cfg.repo / self.cfg.path
        return any(src.exists() and not files.same_bytes(src, dest / src.name) for src in sources)

    async def _prepare(self, last_branch: str | None) -> bool:
        """The daemon's clone exists, was made for the configured remote, branch and path,
        and is not mid-rebase. True when it had to start afresh (clone.py says why)."""
        repo = self.cfg.repo
        files.write_atomically(self.askpass, gitcmd.ASKPASS_SCRIPT.encode())
        os.chmod(self.askpass, 0o700)
        afresh = False
        if (repo / ".git").is_dir():
            changes = await clone.changes(self.cfg, self.attempt, last_branch)
            if changes:
                moved = await asyncio.to_thread(clone.move_aside, self.cfg.workdir, repo)
                self.log.warning(
                    "git.remote_changed",
                    changes=changes,
                    moved_to=str(moved),
                    effect="a fresh clone starts from the new remote; the old one is kept "
                    "until the next successful push",
                )
                afresh = True
        if not (repo / ".git").is_dir():
            if repo.exists() and any(repo.iterdir()):
                raise GitError(
                    f"{repo} holds files but no git repository: empty it, or set git_workdir "
                    "to a folder of its own"
                )
            repo.mkdir(parents=True, exist_ok=True)
            await self.git("init", "-q")
            # The URL itself comes from the environment on every command (gitcmd.git_env).
            await self.git("config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
            cfg = self.cfg
            clone.save(
                cfg.workdir, clone.CloneRecord.made_for(cfg.repository, cfg.branch, cfg.path)
            )
            return afresh
        # Leftovers of a run killed half-way (the clone is ours: nobody else is in it).
        if (repo / ".git" / "rebase-merge").exists() or (repo / ".git" / "rebase-apply").exists():
            await self.attempt("rebase", "--abort")
        with contextlib.suppress(FileNotFoundError):
            (repo / ".git" / "index.lock").unlink()
        return afresh

    async def _fetch(self) -> str | None:
        try:
            await self.git("fetch", "-q", "--prune", "origin")
        except GitError as exc:
            return str(exc)
        return None

    async def _checkout(self, has_local: bool, fetched: bool) -> None:
        branch = self.cfg.branch
        if has_local:
            await self.git("checkout", "-q", "-f", branch)
            if fetched and await self.has_ref(self.remote_ref):
                behind = await self.attempt("merge-base", "--is-ancestor", "HEAD", self.remote_ref)
                if behind.code == 0:  # only others' commits are new: take them
                    await self.git("reset", "-q", "--hard", self.remote_ref)
            return
        start = self.remote_ref if await self.has_ref(self.remote_ref) else await self._base()
        if start:
            await self.git("checkout", "-q", "-f", "--no-track", "-B", branch, start)
        else:  # an empty repository: the branch begins with our first commit
            await self.git("symbolic-ref", "HEAD", f"refs/heads/{branch}")

    async def _base(self) -> str | None:
        """The remote's default branch, where a new delivery branch starts (for a review)."""
        found = await self.attempt("ls-remote", "--symref", "origin", "HEAD")
        for line in found.stdout.splitlines():
            if line.startswith("ref: refs/heads/") and line.endswith("\tHEAD"):
                ref = "refs/remotes/origin/" + line[len("ref: refs/heads/") : -len("\tHEAD")]
                if await self.has_ref(ref):
                    return ref
        return None

    async def _commit(
        self, sources: Sequence[Path], facts: CommitFacts, pending: list[str]
    ) -> str | None:
        """Copy the files in and commit exactly them when they differ from the branch."""
        dest = self.cfg.repo / self.cfg.path
        names = []
        for src in sources:
            if src.exists():
                await asyncio.to_thread(files.copy_atomically, src, dest / src.name)
                names.append(str(Path(self.cfg.path) / src.name))
        if not names:
            return None
        await self.git("add", "--", *names)
        staged = await self.attempt("diff", "--cached", "--quiet", "--", *names)
        if staged.code == 0:
            return None  # the branch already holds these bytes: no empty commit
        message = catch_up_message(facts, pending)
        await self.git(
            "commit", "-q", "--no-verify", "-F", "-", "--", *names, stdin=message.encode()
        )
        return (await self.git("rev-parse", "HEAD")).strip()

    async def _ahead(self) -> int:
        if not await self.has_ref("HEAD"):
            return 0
        span = f"{self.remote_ref}..HEAD" if await self.has_ref(self.remote_ref) else "HEAD"
        return int((await self.git("rev-list", "--count", span)).strip() or 0)

    async def _publish(self) -> str | None:
        """Push without force; on a moved branch rebase and retry; on a conflict push a fresh
        branch. Returns that fresh branch's name, if one was needed; GitError on failure."""
        branch = self.cfg.branch
        await clone.refuse_foreign_history(self.cfg, self.git, self.attempt)
        for _ in range(PUSH_ATTEMPTS):
            if not await self._ahead():
                return None
            pushed = await self.attempt(
                "push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}"
            )
            if pushed.code == 0:
                self.log.info("git.pushed", commit=await self._head())
                return None
            said = pushed.stdout + pushed.stderr
            if "(fetch first)" not in said and "(non-fast-forward)" not in said:
                raise GitError(gitcmd.last_words(pushed, "push") + _porcelain_reason(pushed))
            self.log.info("git.remote_moved")  # someone else pushed to the branch
            await self.git("fetch", "-q", "--prune", "origin")
            if (await self.attempt("rebase", "-q", self.remote_ref)).code != 0:
                await self.attempt("rebase", "--abort")
                return await self._fresh_branch()
        raise GitError(f"git push: {branch} kept moving during {PUSH_ATTEMPTS} attempts")

    async def _fresh_branch(self) -> str:
        head = await self._head()
        fresh = f"{self.cfg.branch}-{head[:12]}"
        await self.git("push", "-q", "origin", f"HEAD:refs/heads/{fresh}")
        self.log.warning("git.pushed_fresh_branch", fresh_branch=fresh, commit=head)
        # The shared branch goes on from the others' work; the next cycle commits the current
        # files on top of it (they are production's state), so that branch catches up too.
        await self.git("reset", "-q", "--hard", self.remote_ref)
        return fresh

    async def _head(self) -> str:
        return (await self.git("rev-parse", "HEAD")).strip()

    def _finish(
        self, st: GitState, commit: str | None, error: str | None, fresh: str | None = None
    ) -> GitResult:
        now = datetime.now(UTC).isoformat()
        ok = error is None
        st, alert = gstate.after_attempt(st, ok, error, self.cfg.alert_after)
        st = st.updated(
            repository=clone.scrub_url(self.cfg.repository),
            branch=self.cfg.branch,
            last_attempt_at=now,
        )
        if ok and st.push_state == PushState.PUSHED.value:
            for old in clone.clear_aside(self.cfg.workdir):
                self.log.info("git.previous_removed", removed=str(old))
        if not ok and st.last_commit and st.push_state != PushState.OFF.value:
            st = st.updated(push_state=PushState.FAILED.value)  # the commit waits locally
        if error:
            self.log.error(
                "git.push_failed",
                error=error,
                cause=classify(error),
                commit=st.last_commit,
                consecutive_failures=st.consecutive_failures,
                pending_commits=len(st.pending_messages),
            )
        try:
            gstate.save(self.cfg.state_file, st)
        except OSError as exc:
            self.log.error("git.state_write_failed", error=str(exc))
        return self._result(st, commit, fresh, alert, error)

    def _result(
        self,
        st: GitState,
        commit: str | None,
        fresh: str | None = None,
        alert: str | None = None,
        error: str | None = None,
    ) -> GitResult:
        return GitResult(
            branch=self.cfg.branch,
            commit=commit,
            head=st.last_commit,
            push_state=st.push_state,
            error=error,
            cause=classify(error) if error else None,
            fresh_branch=fresh,
            alert=alert,
            consecutive_failures=st.consecutive_failures,
        )


def _porcelain_reason(result: gitcmd.Result) -> str:
    """`git push --porcelain` puts a refused ref's reason on stdout, not stderr."""
    for line in result.stdout.splitlines():
        if line.startswith("!"):
            return " / " + line.split("\t")[-1].strip()
    return ""
