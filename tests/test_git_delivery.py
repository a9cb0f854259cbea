"""Git delivery end to end: real syncs against the test cluster, real bare repositories as the
remote, and "someone else" pushing, refusing and going away."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from pytest_httpserver import HTTPServer

from service.delivery.config import GitConfig
from service.delivery.git import deliver
from service.delivery.gitcmd import TOKEN_VAR
from service.delivery.message import CommitFacts
from service.demo.cluster import ScratchCluster
from service.settings.model import SettingsError, load_settings
from tests.conftest import FIXTURES, CliResult, Database, new_database, run_cli
from tests.daemon_proc import DaemonProcess
from tests.test_alerts import envelopes

BRANCH = "schema-sync/default"
FILES = [
    "sql/schemas/complete-schema.sql",
    "sql/schemas/functions.sql",
    "sql/schemas/inventory.json",
]


def git(*args: str, cwd: Path) -> str:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(cwd), "GIT_CONFIG_NOSYSTEM": "1"}
    env |= {"GIT_AUTHOR_NAME": "Someone Else", "GIT_AUTHOR_EMAIL": "else@example.org"}
    env |= {"GIT_COMMITTER_NAME": "Someone Else", "GIT_COMMITTER_EMAIL": "else@example.org"}
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=True, timeout=30
    ).stdout


@pytest.fixture
def shop(cluster: ScratchCluster) -> Iterator[Database]:
    d = new_database(cluster, FIXTURES / "shop.sql")
    yield d
    cluster.drop_database(d.name)


@pytest.fixture
def remote(tmp_path: Path) -> Path:
    """A bare repository whose main branch holds a README, like a team's repository."""
    bare = tmp_path / "remote.git"
    git("init", "-q", "--bare", "-b", "main", str(bare), cwd=tmp_path)
    seed = tmp_path / "seed"
    git("clone", "-q", str(bare), str(seed), cwd=tmp_path)
    (seed / "README.md").write_text("team repo\n")
    git("add", "README.md", cwd=seed)
    git("commit", "-q", "-m", "start", cwd=seed)
    git("push", "-q", "origin", "HEAD:main", cwd=seed)
    return bare


def sync(db: Database, work: Path, repository: str, **extra: str) -> CliResult:
    env = {"SCHEMA_SYNC_DSN": db.dsn, "SCHEMA_SYNC_GIT_REPOSITORY": repository}
    env.update(extra)
    env.setdefault("SCHEMA_SYNC_LOG_LEVEL", "info")
    env.setdefault("SCHEMA_SYNC_LOG_FORMAT", "json")
    work.mkdir(exist_ok=True)
    return run_cli("sync", cwd=work, env=env)


def events(result: CliResult, name: str) -> list[dict[str, object]]:
    found = []
    for line in result.err.splitlines():
        if line.startswith("{"):
            event = json.loads(line)
            if event.get("event") == name:
                found.append(event)
    return found


def log_of(bare: Path, ref: str = BRANCH) -> list[str]:
    return git("log", "--format=%H %an %s", ref, cwd=bare).splitlines()


def someone_else_pushes(bare: Path, tmp: Path, path: str, content: str) -> None:
    other = tmp / "other"
    shutil.rmtree(other, ignore_errors=True)
    git("clone", "-q", "-b", BRANCH, str(bare), str(other), cwd=tmp)
    (other / path).parent.mkdir(parents=True, exist_ok=True)
    (other / path).write_text(content)
    git("add", path, cwd=other)
    git("commit", "-q", "-m", f"edit {path} by hand", cwd=other)
    git("push", "-q", "origin", f"HEAD:{BRANCH}", cwd=other)


def add_column(db: Database, column: str) -> None:
    db.sql(f"ALTER TABLE shop.orders ADD COLUMN {column} text;")


# --------------------------------------------------------------------------------------------


def test_sync_commits_exactly_the_schema_files_with_a_reviewers_message_and_pushes(
    shop: Database, cluster: ScratchCluster, remote: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    url = remote.as_uri()  # file://
    secret = "Git-Secret-pw9"
    shop.sql(f"CREATE ROLE git_reader LOGIN SUPERUSER PASSWORD '{secret}'")
    dsn = cluster.tcp_dsn(shop.name, "git_reader", secret)
    try:
        _commits_and_pushes(shop, dsn, secret, work, url, remote)
    finally:
        shop.sql("DROP OWNED BY git_reader; DROP ROLE git_reader")


def _commits_and_pushes(
    shop: Database, dsn: str, secret: str, work: Path, url: str, remote: Path
) -> None:
    outputs = []
    first = sync(shop, work, url, SCHEMA_SYNC_DSN=dsn)
    outputs.append(first)
    assert first.code == 0, first.err
    assert f"to {BRANCH}; push pushed" in first.out
    commits = log_of(remote)
    assert len(commits) == 2 and commits[0].split(" ", 2)[2].startswith("schema: first sync")
    # The branch starts from the default branch (reviewable as a pull request), main untouched.
    assert git("rev-parse", f"{BRANCH}~1", cwd=remote) == git("rev-parse", "main", cwd=remote)
    changed = git("show", "--name-only", "--format=", BRANCH, cwd=remote).split()
    assert sorted(changed) == sorted(FILES)
    for rel in FILES:
        assert git("show", f"{BRANCH}:{rel}", cwd=remote) == (work / rel).read_text()

    remote.rename(remote.with_name("away.git"))  # an idle cycle does not even fetch
    again = sync(shop, work, url, SCHEMA_SYNC_DSN=dsn)  # nothing changed: no commit
    remote.with_name("away.git").rename(remote)
    assert again.code == 0 and "no new commit" in again.out and "push pushed" in again.out
    assert not events(again, "git.push_failed")
    assert len(log_of(remote)) == 2

    add_column(shop, "note")
    drift = sync(shop, work, url, SCHEMA_SYNC_DSN=dsn)
    assert drift.code == 0, drift.err
    outputs += [again, drift]
    message = git("log", "-1", "--format=%B", BRANCH, cwd=remote)
    inventory = (work / FILES[2]).read_bytes()
    backup = sorted((work / "backups").glob("schema-sync-*"))[-1].name
    assert message.startswith("schema drift: 1 compatible\n")
    assert "compatible  changed  table shop.orders: column note added" in message
    assert f"Backup: {backup}" in message
    assert f"Inventory-SHA256: {hashlib.sha256(inventory).hexdigest()}" in message
    source = next(ln for ln in message.splitlines() if ln.startswith("Source: "))
    assert source.endswith(f"/{shop.name}")
    assert "pg-schema-sync" in log_of(remote)[0]  # the configured author
    assert [e["commit"] for e in events(drift, "git.pushed")] == [log_of(remote)[0].split()[0]]

    status = run_cli("git", "status", "--json", cwd=work, env={"SCHEMA_SYNC_GIT_REPOSITORY": url})
    doc = status.json()["default"]
    assert (doc["push_state"], doc["last_commit"]) == ("pushed", log_of(remote)[0].split()[0])
    assert doc["consecutive_failures"] == 0
    # The production password is nowhere: not in any commit, the clone, its state or the logs.
    everything = git("log", "-p", "--all", cwd=remote)
    assert "git_reader" in everything and secret not in everything
    for path in (work / "backups" / ".git-delivery").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    for result in outputs:
        assert secret not in result.out + result.err


def test_remote_moved_is_rebased_onto_and_a_conflict_goes_to_a_fresh_branch(
    shop: Database, remote: Path, tmp_path: Path
) -> None:
    work, url = tmp_path / "work", remote.as_uri()
    assert sync(shop, work, url).code == 0
    # Someone else pushed first: our next commit lands on top of theirs.
    someone_else_pushes(remote, tmp_path, "docs/notes.md", "theirs\n")
    add_column(shop, "a1")
    assert sync(shop, work, url).code == 0
    subjects = [c.split(" ", 1)[1] for c in log_of(remote)]
    assert subjects[0].startswith("pg-schema-sync schema drift")
    assert subjects[1] == "Someone Else edit docs/notes.md by hand"

    # Our commit waits locally (remote away) while someone else rewrites the same file: the
    # push is refused as non-fast-forward, the rebase conflicts, and our commit goes to a
    # fresh branch; theirs stays where it was. Nothing is forced, nothing lost.
    parked = remote.with_name("parked.git")
    remote.rename(parked)
    add_column(shop, "a2")
    offline = sync(shop, work, url)
    assert offline.code == 0, offline.err
    assert "kept locally, retried next sync" in offline.out
    parked.rename(remote)
    someone_else_pushes(remote, tmp_path, FILES[0], "-- rewritten by hand\n")
    theirs = git("rev-parse", BRANCH, cwd=remote).strip()
    back = sync(shop, work, url)
    assert back.code == 0, back.err
    fresh = events(back, "git.pushed_fresh_branch")
    assert len(fresh) == 1
    name = str(fresh[0]["fresh_branch"])
    assert name.startswith(BRANCH + "-")
    assert git("rev-parse", f"{name}~1", cwd=remote).strip() != theirs
    assert b"a2 text" in git("show", f"{name}:{FILES[0]}", cwd=remote).encode()
    assert git("rev-parse", BRANCH, cwd=remote).strip() == theirs  # not overwritten

    # The next cycle puts production's files on top of their edit: the branch catches up.
    nxt = sync(shop, work, url)
    assert nxt.code == 0, nxt.err
    assert git("rev-parse", f"{BRANCH}~1", cwd=remote).strip() == theirs
    assert git("show", f"{BRANCH}:{FILES[0]}", cwd=remote) == (work / FILES[0]).read_text()


def test_refusing_remote_keeps_the_commit_counts_failures_and_the_sync_succeeds(
    shop: Database, remote: Path, tmp_path: Path
) -> None:
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'policy: bots may not push here' >&2\nexit 1\n")
    hook.chmod(0o755)
    work, url = tmp_path / "work", remote.as_uri()
    extra = {"SCHEMA_SYNC_FAILURE_ALERT_AFTER": "2"}
    first = sync(shop, work, url, **extra)
    assert first.code == 0, first.err
    assert (work / FILES[0]).exists()  # the sync itself did its work
    failed = events(first, "git.push_failed")
    assert len(failed) == 1 and failed[0]["cause"] == "rejected"
    assert "bots may not push here" in str(failed[0]["error"])
    assert BRANCH not in git("branch", "--list", cwd=remote)
    second = sync(shop, work, url, **extra)  # no drift: the push is retried anyway
    assert [e["consecutive_failures"] for e in events(second, "git.push_failed")] == [2]
    status = run_cli("git", "status", cwd=work, env={"SCHEMA_SYNC_GIT_REPOSITORY": url})
    assert "push failed" in status.out and "2 failures in a row" in status.out
    hook.unlink()
    third = sync(shop, work, url, **extra)
    assert events(third, "git.pushed") and not events(third, "git.push_failed")
    assert log_of(remote)[0].split(" ", 2)[2].startswith("schema: first sync")


def test_unreachable_or_non_repository_remote_loses_nothing_and_catches_up(
    shop: Database, remote: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    (plain / "keep.txt").write_text("mine\n")
    result = sync(shop, work, str(plain))
    assert result.code == 0, result.err
    assert "does not appear to be a git repository" in result.out
    assert events(result, "git.push_failed")[0]["cause"] == "not_a_repository"
    assert sorted(p.name for p in plain.iterdir()) == ["keep.txt"]  # untouched
    unreachable = "ssh://git@127.0.0.1:1/schemas.git"  # nothing listens on port 1
    add_column(shop, "while_away")
    result = sync(shop, work, unreachable)
    assert result.code == 0, result.err
    assert events(result, "git.push_failed")[0]["cause"] in ("unreachable", "timeout")
    # Once a repository answers, the syncs it missed are committed, with their messages.
    back = sync(shop, work, remote.as_uri())
    assert back.code == 0, back.err
    message = git("log", "-1", "--format=%B", BRANCH, cwd=remote)
    assert message.startswith("schema: 2 syncs while the repository was unreachable")
    assert "schema: first sync" in message and "schema drift: 1 compatible" in message
    assert git("show", f"{BRANCH}:{FILES[0]}", cwd=remote) == (work / FILES[0]).read_text()


def test_rollback_is_committed_and_hooks_in_the_clone_never_run(
    shop: Database, remote: Path, tmp_path: Path
) -> None:
    work, url = tmp_path / "work", remote.as_uri()
    assert sync(shop, work, url).code == 0
    clone_hooks = work / "backups" / ".git-delivery" / "repo" / ".git" / "hooks"
    marker = tmp_path / "hook-ran"
    for name in ("pre-commit", "post-commit", "pre-push", "commit-msg"):
        (clone_hooks / name).write_text(f"#!/bin/sh\ntouch {marker}\n")
        (clone_hooks / name).chmod(0o755)
    add_column(shop, "undo_me")
    assert sync(shop, work, url).code == 0
    env = {"SCHEMA_SYNC_GIT_REPOSITORY": url, "SCHEMA_SYNC_DSN": shop.dsn}
    rolled = run_cli("rollback", cwd=work, env=env)
    assert rolled.code == 0, rolled.err
    assert "push pushed" in rolled.out
    message = git("log", "-1", "--format=%B", BRANCH, cwd=remote)
    assert message.startswith("schema rollback: restored schema-sync-")
    assert b"undo_me" not in git("show", f"{BRANCH}:{FILES[0]}", cwd=remote).encode()
    assert len(log_of(remote)) == 4  # start, first sync, drift, rollback
    assert not marker.exists()


def test_push_off_commits_locally_and_pushes_once_switched_on(
    shop: Database, remote: Path, tmp_path: Path
) -> None:
    work, url = tmp_path / "work", remote.as_uri()
    result = sync(shop, work, url, SCHEMA_SYNC_GIT_PUSH="false")
    assert result.code == 0, result.err
    assert "push off" in result.out
    assert BRANCH not in git("branch", "--list", cwd=remote)
    clone = work / "backups" / ".git-delivery" / "repo"
    assert git("log", "-1", "--format=%s", BRANCH, cwd=clone).startswith("schema: first sync")
    on = sync(shop, work, url)  # switched on later: the waiting commit goes out, no drift needed
    assert on.code == 0, on.err
    assert "push pushed" in on.out
    assert git("log", "-1", "--format=%s", BRANCH, cwd=remote).startswith("schema: first sync")


def other_team_repo(tmp_path: Path, name: str) -> Path:
    """A bare repository whose default branch (trunk) has a history of its own."""
    bare = tmp_path / f"{name}.git"
    git("init", "-q", "--bare", "-b", "trunk", str(bare), cwd=tmp_path)
    seed = tmp_path / f"{name}-seed"
    git("clone", "-q", str(bare), str(seed), cwd=tmp_path)
    (seed / "app.py").write_text("print('their app')\n")
    git("add", "app.py", cwd=seed)
    git("commit", "-q", "-m", "their first commit", cwd=seed)
    git("push", "-q", "origin", "HEAD:trunk", cwd=seed)
    return bare


def commits_of(bare: Path) -> set[str]:
    return set(git("rev-list", "--all", cwd=bare).split())


def test_a_new_repository_branch_or_path_starts_a_fresh_clone_and_never_carries_history(
    shop: Database, remote: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    first = sync(shop, work, remote.as_uri())
    assert first.code == 0 and "push pushed" in first.out, first.err
    old_history = commits_of(remote)
    old_branch = git("rev-parse", BRANCH, cwd=remote)
    workdir = work / "backups" / ".git-delivery"

    # The real repository, unreachable at first: nothing of the scratch one goes anywhere,
    # and the old clone is moved aside, not deleted.
    real = other_team_repo(tmp_path, "real")
    real.rename(real.with_name("gone.git"))
    away = sync(shop, work, real.as_uri())
    assert away.code == 0, away.err  # the files are written; delivery retries next sync
    assert events(away, "git.remote_changed") and events(away, "git.push_failed")
    aside = [p for p in (workdir / "previous").iterdir() if p.is_dir()]
    assert len(aside) == 1 and (aside[0] / ".git").is_dir()
    real.with_name("gone.git").rename(real)

    add_column(shop, "switched")
    moved = sync(shop, work, real.as_uri())
    assert moved.code == 0 and "push pushed" in moved.out, moved.err
    # The delivery branch descends from the new repository's default branch, holds no commit
    # of the old one, and differs from trunk by exactly the schema files.
    assert not (commits_of(real) & old_history)
    git("merge-base", "--is-ancestor", "trunk", BRANCH, cwd=real)
    diff = git("diff", "--name-only", "trunk", BRANCH, cwd=real).split()
    assert sorted(diff) == sorted(FILES)
    assert git("rev-parse", BRANCH, cwd=remote) == old_branch  # the old remote untouched
    assert not (workdir / "previous").exists() or not any((workdir / "previous").iterdir())

    # Another branch, then another path, in the same repository: fresh each time, from trunk.
    env = {"SCHEMA_SYNC_GIT_BRANCH": "schema/prod"}
    branch = sync(shop, work, real.as_uri(), **env)
    assert branch.code == 0 and "push pushed" in branch.out, branch.err
    assert events(branch, "git.remote_changed")
    git("merge-base", "--is-ancestor", "trunk", "schema/prod", cwd=real)
    assert git("rev-list", "--count", "trunk..schema/prod", cwd=real).strip() == "1"
    path = sync(shop, work, real.as_uri(), SCHEMA_SYNC_GIT_PATH="db/schema", **env)
    assert path.code == 0 and "push pushed" in path.out, path.err
    shown = git("show", "--name-only", "--format=", "schema/prod", cwd=real).split()
    assert sorted(shown) == sorted(f.replace("sql/schemas", "db/schema") for f in FILES)
    # A clone made before clones were recorded (the URL in its .git/config) is adopted when
    # its URL and branch agree, and the URL leaves .git/config.
    (workdir / "clone.json").unlink()
    git("config", "remote.origin.url", real.as_uri(), cwd=workdir / "repo")
    add_column(shop, "adopted")
    adopted = sync(shop, work, real.as_uri(), SCHEMA_SYNC_GIT_PATH="db/schema", **env)
    assert adopted.code == 0 and "push pushed" in adopted.out, adopted.err
    assert not events(adopted, "git.remote_changed") and (workdir / "clone.json").exists()
    assert real.as_uri() not in (workdir / "repo" / ".git" / "config").read_text()
    assert git("rev-list", "--count", "trunk..schema/prod", cwd=real).strip() == "3"


def test_a_token_in_the_repository_url_is_stored_and_shown_nowhere(
    shop: Database, tmp_path: Path
) -> None:
    work, token = tmp_path / "work", "ghp_Tok3nInTheUrl0000"
    url = f"http://{token}@127.0.0.1:9/team/db.git"  # nothing listens: the push fails
    result = sync(shop, work, url)
    assert result.code == 0, result.err
    assert events(result, "git.push_failed")
    status = run_cli("git", "status", cwd=work, env={"SCHEMA_SYNC_GIT_REPOSITORY": url})
    for text in (result.out, result.err, status.out, status.err):
        assert token not in text
    assert "http://***@127.0.0.1:9/team/db.git" in status.out
    for found in (work / "backups" / ".git-delivery").rglob("*"):
        if found.is_file():
            assert token.encode() not in found.read_bytes(), found


# -- settings and the git child's environment (no database, no sync) ---------------------------


@pytest.mark.parametrize(
    ("field", "value", "why"),
    [
        ("git_repository", "https://bot:tok3n-Secret@github.com/a/b.git", "git_token_env"),
        ("git_repository", "--upload-pack=touch /tmp/pwned", "local path or a URL"),
        ("git_repository", "ext::sh -c touch% /tmp/pwned", "not allowed"),
        ("git_branch", "-f", "branch name"),
        ("git_branch", "main..x", "branch name"),
        ("git_branch", "x.lock", "branch name"),
        ("git_path", "../../etc", "inside the repository"),
        ("git_path", "/etc", "inside the repository"),
        ("git_path", ".git/hooks", "inside the repository"),
        ("git_token_env", "A-B; rm", "environment variable"),
    ],
)
def test_git_settings_refuse_values_that_would_change_the_git_command(
    field: str, value: str, why: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SettingsError) as err:
        load_settings(None, **{field: value})
    message = str(err.value)
    assert field in message and why in message and "\n" not in message
    assert "tok3n-Secret" not in message
    with pytest.raises(SettingsError) as err:  # a target's own value is checked the same way
        load_settings(targets=[{"name": "t", field: value}])
    assert f"targets[t].{field}" in str(err.value) and "tok3n-Secret" not in str(err.value)


def test_each_target_gets_its_own_branch_and_clone_and_may_override_git_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        git_repository="git@example.org:acme/db.git",
        git_workdir=Path("clones"),
        targets=[{"name": "a"}, {"name": "b", "git_branch": "main", "git_push": False}],
    )
    a, b = (GitConfig.of(t) for t in settings.resolved_targets())
    assert a is not None and b is not None
    assert (a.branch, a.push, a.workdir) == ("schema-sync/a", True, tmp_path / "clones" / "a")
    assert (b.branch, b.push, b.workdir) == ("main", False, tmp_path / "clones" / "b")
    assert a.repository == "git@example.org:acme/db.git"  # scp-like: not a local path
    local = load_settings(git_repository="../team-repo")
    cfg = GitConfig.of(local)
    assert cfg is not None and cfg.repository == str((tmp_path.parent / "team-repo").resolve())
    assert GitConfig.of(load_settings()) is None  # off by default


def test_git_and_ssh_get_no_daemon_secret_and_a_token_only_through_askpass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dump = tmp_path / "ssh-env"
    fake_ssh = tmp_path / "fake-ssh"
    fake_ssh.write_text(f'#!/bin/sh\nenv > {dump}\necho "$@" >> {dump}\nexit 255\n')
    fake_ssh.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SCHEMA_SYNC_DSN", "postgresql://u:Daemon-Secret-1@h/db")
    monkeypatch.setenv("PGPASSWORD", "Daemon-Secret-2")
    monkeypatch.setenv("GIT_SSH_COMMAND", str(fake_ssh))
    monkeypatch.setenv("MY_GIT_TOKEN", "Token-Secret-3")
    settings = load_settings(
        git_repository="ssh://git@127.0.0.1/acme/db.git", git_token_env="MY_GIT_TOKEN"
    )
    source = tmp_path / "complete-schema.sql"
    source.write_text("CREATE TABLE t ();\n")
    facts = CommitFacts("default", "u@h:5432/db", None, None)
    log = structlog.get_logger()
    result = asyncio.run(deliver(settings, [source], facts, "schema: test", log))
    assert result is not None and result.cause == "unreachable" and result.commit is None
    seen = dump.read_text()
    assert "git@127.0.0.1" in seen  # our fake ssh really ran, as git's transport
    assert "Daemon-Secret-1" not in seen and "Daemon-Secret-2" not in seen
    assert not [ln for ln in seen.splitlines() if ln.startswith(("PG", "SCHEMA_SYNC_"))]
    assert "GIT_TERMINAL_PROMPT=0" in seen
    # The token reaches git's askpass helper through the environment, never argv or files.
    assert seen.count("Token-Secret-3") == 1 and f"{TOKEN_VAR}=Token-Secret-3" in seen
    askpass = tmp_path / "backups" / ".git-delivery" / "askpass"
    assert "Token-Secret-3" not in askpass.read_text()
    env = {"PATH": "/usr/bin:/bin", TOKEN_VAR: "Token-Secret-3"}
    for prompt, answer in (
        ("Username for 'https://h': ", "x-access-token"),
        ("Password: ", "Token-Secret-3"),
    ):
        out = subprocess.run([str(askpass), prompt], env=env, capture_output=True, text=True)
        assert out.stdout == answer + "\n"
    state = (tmp_path / "backups" / ".git-delivery" / "state.json").read_text()
    assert json.loads(state)["pending_messages"] == ["schema: test"]  # kept for the next cycle


def test_a_hanging_remote_times_out_and_leaves_no_process_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid_file = tmp_path / "ssh.pid"
    hanging = tmp_path / "hanging-ssh"
    hanging.write_text(f"#!/bin/sh\necho $$ > {pid_file}\nexec sleep 60\n")
    hanging.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_SSH_COMMAND", str(hanging))
    settings = load_settings(git_repository="ssh://git@127.0.0.1/x.git", git_timeout_s=1)
    source = tmp_path / "complete-schema.sql"
    source.write_text("CREATE TABLE t ();\n")
    facts = CommitFacts("default", "-", None, None)
    result = asyncio.run(deliver(settings, [source], facts, "m", structlog.get_logger()))
    assert result is not None and result.cause == "timeout"
    assert "timed out after 1s" in str(result.error)
    # Killed with git, not left to finish its sleep (a zombie waiting for PID 1 is dead too).
    status = Path(f"/proc/{int(pid_file.read_text())}/status")
    state = status.read_text() if status.exists() else "State: gone"
    assert re.search(r"^State:\s+(Z|X|gone)", state, re.MULTILINE), state


def test_a_workdir_holding_someone_elses_files_is_refused_untouched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, remote: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "theirs"
    (workdir / "repo").mkdir(parents=True)
    (workdir / "repo" / "draft.sql").write_text("-- uncommitted work\n")
    settings = load_settings(git_repository=remote.as_uri(), git_workdir=workdir)
    source = tmp_path / "complete-schema.sql"
    source.write_text("CREATE TABLE t ();\n")
    result = asyncio.run(
        deliver(
            settings, [source], CommitFacts("default", "-", None, None), "m", structlog.get_logger()
        )
    )
    assert result is not None and result.cause == "workdir"
    assert "holds files but no git repository" in str(result.error)
    assert sorted(p.name for p in (workdir / "repo").iterdir()) == ["draft.sql"]


# -- over SSH, to a throwaway sshd on 127.0.0.1 ------------------------------------------------

SSHD = Path("/usr/sbin/sshd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    """(port, the authorized client key, known_hosts) of an sshd bound to 127.0.0.1 only,
    with throwaway keys; stopped afterwards, also on failure."""
    if not SSHD.exists() or os.geteuid() != 0:
        why = "needs /usr/sbin/sshd and root (`./dev test` installs openssh-server as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    d = tmp_path / "ssh"
    d.mkdir()
    for name in ("host_key", "client_key", "stranger_key"):
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)], check=True
        )
    (d / "authorized_keys").write_text((d / "client_key.pub").read_text())
    port = free_port()
    (d / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {d / 'host_key'}\n"
        f"AuthorizedKeysFile {d / 'authorized_keys'}\nPidFile {d / 'sshd.pid'}\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n"
        "StrictModes no\nPermitRootLogin prohibit-password\n"
    )
    host = (d / "host_key.pub").read_text().split()
    (d / "known_hosts").write_text(f"[127.0.0.1]:{port} {host[0]} {host[1]}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    proc = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(d / "sshd_config")])
    try:
        for _ in range(100):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield port, d / "client_key", d / "known_hosts"
    finally:
        proc.terminate()
        proc.wait(10)


def test_push_over_ssh_with_a_mounted_key_and_a_wrong_key_is_an_auth_failure(
    shop: Database, remote: Path, tmp_path: Path, sshd: tuple[int, Path, Path]
) -> None:
    port, key, known_hosts = sshd
    url = f"ssh://{getpass.getuser()}@127.0.0.1:{port}{remote}"
    work = tmp_path / "work"

    def ssh_with(k: Path) -> str:  # as docker-compose.yml shows it for a mounted key
        return f"ssh -i {k} -o IdentitiesOnly=yes -o UserKnownHostsFile={known_hosts}"

    stranger = sync(shop, work, url, GIT_SSH_COMMAND=ssh_with(key.with_name("stranger_key")))
    assert stranger.code == 0, stranger.err
    assert events(stranger, "git.push_failed")[0]["cause"] == "auth"
    assert "Permission denied" in stranger.out
    result = sync(shop, work, url, GIT_SSH_COMMAND=ssh_with(key))
    assert result.code == 0, result.err
    assert events(result, "git.pushed")
    assert git("log", "-1", "--format=%s", BRANCH, cwd=remote).startswith("schema: first sync")


# -- the daemon: retries each cycle, one alert per streak, one on recovery ---------------------


def test_daemon_retries_a_refused_push_each_cycle_alerts_once_and_on_recovery(
    shop: Database, remote: Path, tmp_path: Path, httpserver: HTTPServer
) -> None:
    httpserver.expect_request("/api/1/envelope/", method="POST").respond_with_json({"id": "x"})
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'frozen for the release' >&2\nexit 1\n")
    hook.chmod(0o755)
    env = {
        "SCHEMA_SYNC_DSN": shop.dsn,
        "SCHEMA_SYNC_GIT_REPOSITORY": remote.as_uri(),
        "SCHEMA_SYNC_SCHEDULE": "0 0 1 1 *",  # only start-up and SIGHUP run
        "SCHEMA_SYNC_FAILURE_ALERT_AFTER": "2",
        "SCHEMA_SYNC_SENTRY_DSN": f"http://public@127.0.0.1:{httpserver.port}/1",
    }
    with DaemonProcess(tmp_path, env) as d:
        d.wait_for("git.push_failed")
        d.wait_for("sync.finished")
        d.send(signal.SIGHUP)  # nothing drifted: the daemon retries the push anyway
        d.wait_for("sync.finished", count=2)
        d.send(signal.SIGHUP)
        d.wait_for("sync.finished", count=3)
        failures = [e["consecutive_failures"] for e in d.named("git.push_failed")]
        assert failures == [1, 2, 3]
        assert len(d.named("git.failure_alert")) == 1  # one per streak, at the threshold
        hook.unlink()
        d.send(signal.SIGHUP)
        d.wait_for("git.recovered")
        d.wait_for("sync.finished", count=4)
        assert d.named("git.pushed")
        d.send(signal.SIGTERM)
        assert d.wait_exit(15) == 0
    assert git("log", "-1", "--format=%s", BRANCH, cwd=remote).startswith("schema: first sync")
    events_sent = [e for _, evs in envelopes(httpserver) for e in evs]
    assert [(e["level"], e["fingerprint"][0]) for e in events_sent] == [
        ("error", "git-delivery-failed"),
        ("info", "git-delivery-recovered"),
    ]
    assert "frozen for the release" in events_sent[0]["message"]
