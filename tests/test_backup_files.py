"""How a backup's files get there: the staged export hard-linked (no second copy of a large
schema), copied where the filesystem refuses a link; live files copied in the kernel, through
this process where the kernel cannot. Each way leaves the same bytes."""

from __future__ import annotations

import errno
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from service.disk import files

NOW = datetime(2026, 12, 3, 4, 5, 6, tzinfo=UTC)


def _staged(tmp_path: Path) -> dict[str, Path]:
    staging = tmp_path / "backups" / ".staging"
    staging.mkdir(parents=True)
    out = {}
    for name in files.BACKUP_RESTORABLE:
        path = staging / name
        path.write_bytes(f"-- {name}\n".encode() * 1000)
        out[name] = path
    return out


def test_a_backup_links_the_staged_files_and_outlives_them(tmp_path: Path) -> None:
    staged = _staged(tmp_path)
    expected = {name: path.read_bytes() for name, path in staged.items()}
    digests = files.settle(staged)
    backup = files.create_backup(
        tmp_path / "backups", NOW, {**staged, "note.md": b"hi"}, linked=files.BACKUP_RESTORABLE
    )
    for name, path in staged.items():
        assert (backup / name).stat().st_ino == path.stat().st_ino  # one copy on disk
        path.unlink()  # the staging folder goes away after the run
    for name, data in expected.items():
        assert (backup / name).read_bytes() == data
        assert files.sha256_file(backup / name) == digests[name]
    assert (backup / "note.md").read_bytes() == b"hi"


@pytest.mark.parametrize("refusal", [errno.EXDEV, errno.EPERM, errno.EMLINK])
def test_a_refused_link_is_a_copy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: int
) -> None:
    staged = _staged(tmp_path)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "link", refuse)  # another device, a filesystem without links
    backup = files.create_backup(tmp_path / "backups", NOW, staged, linked=files.BACKUP_RESTORABLE)
    for name, path in staged.items():
        assert (backup / name).stat().st_ino != path.stat().st_ino
        assert (backup / name).read_bytes() == path.read_bytes()


def test_a_staged_symlink_is_refused_not_linked(tmp_path: Path) -> None:
    staged = _staged(tmp_path)
    secret = tmp_path / "secret"
    secret.write_text("not yours")
    staged[files.BACKUP_SCHEMA].unlink()
    staged[files.BACKUP_SCHEMA].symlink_to(secret)
    with pytest.raises(files.LinkRefused, match="not a regular file"):
        files.create_backup(tmp_path / "backups", NOW, staged, linked=files.BACKUP_RESTORABLE)
    assert not list((tmp_path / "backups").glob("schema-sync-*"))
    assert not list((tmp_path / "backups").glob(".incomplete-*"))


@pytest.mark.parametrize("refusal", [errno.EXDEV, errno.ENOSYS, errno.EOPNOTSUPP, errno.EINVAL])
def test_a_copy_the_kernel_cannot_make_goes_through_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, refusal: int
) -> None:
    source = tmp_path / "source.sql"
    source.write_bytes(os.urandom(3 << 20))

    def refuse(*args: Any) -> int:
        raise OSError(refusal, os.strerror(refusal))

    monkeypatch.setattr(os, "copy_file_range", refuse)
    target = tmp_path / "sql" / "target.sql"
    files.copy_atomically(source, target)
    assert target.read_bytes() == source.read_bytes()


def test_a_copy_failing_halfway_fails_and_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "source.sql"
    source.write_bytes(b"new\n" * 100_000)
    target = tmp_path / "sql" / "target.sql"
    target.parent.mkdir()
    target.write_bytes(b"old\n")
    real = os.copy_file_range
    calls = []

    def fail_second(src: int, dst: int, count: int, *args: Any) -> int:
        calls.append(count)
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # the disk filled up
        return real(src, dst, 1000)

    monkeypatch.setattr(os, "copy_file_range", fail_second)
    with pytest.raises(OSError, match="No space left"):
        files.copy_atomically(source, target)
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in target.parent.iterdir()] == ["target.sql"]  # no temp file left
