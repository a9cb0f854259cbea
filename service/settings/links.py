"""Pure: where a target's pages are on the status page, and their address under `public_url`.

One place for the shapes of the paths, so the links in alerts and commit messages and the
routes the status page serves cannot disagree. Target names are folder names (NAME_RE) and
backup names ours (`schema-sync-...`); both are percent-quoted anyway, so a link never
changes meaning whatever reaches it.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit


def _part(text: str) -> str:
    return quote(text, safe="")


def target_path(target: str) -> str:
    return f"/targets/{_part(target)}"


def backup_path(target: str, backup: str) -> str:
    return f"/backups/{_part(target)}/{_part(backup)}"


def file_path(target: str, backup: str, name: str) -> str:
    return f"{backup_path(target, backup)}/{_part(name)}"


def page_url(public_url: str | None, path: str) -> str | None:
    """`public_url` + path, or None when no public address is configured."""
    if not public_url:
        return None
    return public_url.rstrip("/") + path


def drift_url(public_url: str | None, target: str, backup: str | None) -> str | None:
    """The page that shows a drift's diffs: its backup's when it has one, else the target's."""
    path = backup_path(target, backup) if backup else target_path(target)
    return page_url(public_url, path)


def check_public_url(value: str) -> str:
    """An http(s) base address without credentials, query or fragment; no trailing slash."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(
            "not an http(s) URL with a host; give the address people open the status page at, "
            "e.g. https://schema-sync.internal"
        )
    if parts.username or parts.password:
        # It is printed into chat messages and commits: a password would travel with it.
        raise ValueError("must not hold a user or password (it is shown in alerts and commits)")
    if parts.query or parts.fragment:
        raise ValueError("must not hold a query or fragment; give the base address only")
    if any(c in value for c in "<>|\"' \t\r\n"):
        raise ValueError("holds characters a chat message would break on; percent-encode them")
    return value.rstrip("/")
