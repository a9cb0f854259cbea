"""Running the git CLI safely: a bounded time, a minimal environment, no prompts, no hooks.

Why the CLI and not a library: git itself speaks every credential mechanism a team already
uses (SSH keys and agents, known_hosts, GIT_SSH_COMMAND, credential helpers, askpass) and every
transport, with the behaviour its users know; libraries (dulwich, pygit2) each cover a subset.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

# The daemon's own environment holds the production password and DSNs (SCHEMA_SYNC_*, PG*):
# git and ssh get only what they need to find the user's git and ssh configuration.
PASSED_ENV = (
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "SSH_AUTH_SOCK",
    "GIT_SSH_COMMAND",
    "GIT_SSH",
    "GIT_ASKPASS",
    "SSH_ASKPASS",
    "GIT_CONFIG_GLOBAL",
    "XDG_CONFIG_HOME",
    "GIT_SSL_CAINFO",
    "GIT_SSL_CAPATH",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
)
# The variable through which the askpass helper receives git_token_env's value.
TOKEN_VAR = "GIT_DELIVERY_TOKEN"  # noqa: S105 - a name, not a secret
ASKPASS_SCRIPT = """#!/bin/sh
# Written by pg-schema-sync: answers git's HTTPS prompts from the environment only.
case "$1" in
  Username*) printf '%s\\n' "${GIT_TOKEN_USERNAME:-x-access-token}" ;;
  *) printf '%s\\n' "$GIT_DELIVERY_TOKEN" ;;
esac
"""
MAX_ERROR_CHARS = 400
TELLING = ("fatal:", "error:", "remote:", "!")
SSH_WORDS = ("Permission denied", "Connection refused", "Host key verification failed", "resolve")


class GitError(Exception):
    """A git command failed or timed out; the message is git's own last words, one line."""

    def __init__(self, message: str, stdout: str = "", stderr: str = "") -> None:
        super().__init__(message)
        self.stdout, self.stderr = stdout, stderr


@dataclass(frozen=True)
class Result:
    code: int
    stdout: str
    stderr: str


def git_env(
    environ: Mapping[str, str],
    author: tuple[str, str],
    token_env: str | None = None,
    askpass: Path | None = None,
    timeout_s: float = 60.0,
    remote_url: str | None = None,
) -> dict[str, str]:
    """The child's whole environment: the pass list, identity, and never a prompt. The
    remote's URL, when given, as configuration in the environment (remote.origin.url): it may
    hold a token, and so is never written to the clone's .git/config nor put in argv."""
    env = {k: environ[k] for k in PASSED_ENV if k in environ}
    if remote_url is not None:
        env.update(
            GIT_CONFIG_COUNT="1",
            GIT_CONFIG_KEY_0="remote.origin.url",
            GIT_CONFIG_VALUE_0=remote_url,
        )
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env["GIT_TERMINAL_PROMPT"] = "0"  # a missing credential fails instead of waiting forever
    env["GCM_INTERACTIVE"] = "never"
    env["LC_ALL"] = "C"  # messages we read (push rejections) in one language
    if "GIT_SSH_COMMAND" not in env and "GIT_SSH" not in env:
        # BatchMode: an unknown host key or a passphrase fails at once instead of prompting.
        env["GIT_SSH_COMMAND"] = f"ssh -o BatchMode=yes -o ConnectTimeout={max(1, int(timeout_s))}"
    name, email = author
    env.update(
        GIT_AUTHOR_NAME=name,
        GIT_AUTHOR_EMAIL=email,
        GIT_COMMITTER_NAME=name,
        GIT_COMMITTER_EMAIL=email,
    )
    token = environ.get(token_env) if token_env else None
    if token:
        env[TOKEN_VAR] = token
        if askpass is not None and "GIT_ASKPASS" not in env:
            env["GIT_ASKPASS"] = str(askpass)
    return env


def safety_flags(repo: Path) -> list[str]:
    """`-c` options on every command: nothing in the repository runs code or changes rules."""
    return [
        "-c",
        "core.hooksPath=/dev/null",  # no hook of a cloned repository runs here
        "-c",
        f"safe.directory={repo}",  # the volume may belong to another uid than the daemon
        "-c",
        "protocol.ext.allow=never",
        "-c",
        "commit.gpgsign=false",
        "-c",
        "core.autocrlf=false",  # the files are committed byte for byte
        "-c",
        "gc.autoDetach=false",  # no background gc outliving the run
        "-c",
        "core.fsmonitor=false",
    ]


async def run(
    args: Sequence[str],
    repo: Path,
    env: Mapping[str, str],
    timeout_s: float,
    stdin: bytes | None = None,
    check: bool = True,
) -> Result:
    """`git <safety flags> -C repo args`; GitError on failure (when check) or timeout.

    Its own process group, so a timeout or a cancel also ends the ssh child git started.
    """
    proc = await asyncio.create_subprocess_exec(
        "git",
        *safety_flags(repo),
        "-C",
        str(repo),
        *args,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=dict(env),
        start_new_session=True,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(stdin), timeout_s)
    except TimeoutError:
        await _kill(proc)
        raise GitError(f"git {args[0]} timed out after {timeout_s:g}s") from None
    except BaseException:  # cancelled: git must not outlive the run
        await _kill(proc)
        raise
    result = Result(
        proc.returncode or 0,
        out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"),
    )
    if check and result.code != 0:
        raise GitError(last_words(result, args[0]), result.stdout, result.stderr)
    return result


def last_words(result: Result, command: str) -> str:
    """git's own explanation on one line: the fatal/error/remote lines of its stderr."""
    lines = [ln.strip() for ln in result.stderr.splitlines() if ln.strip()]
    telling = [ln for ln in lines if ln.startswith(TELLING) or any(w in ln for w in SSH_WORDS)]
    text = " / ".join(telling or lines[-3:]) or f"exit code {result.code}"
    if len(text) > MAX_ERROR_CHARS:
        text = text[: MAX_ERROR_CHARS - 3] + "..."
    return f"git {command}: {text}"


async def _kill(proc: asyncio.subprocess.Process) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await proc.wait()
