"""Replace a directory with a copy of another, safely against concurrent copies and a process killed midway.

Kept apart from :mod:`edgepipe.pipeline.artifacts` because it is a file-system protocol (a lock, a staging folder,
two renames), not a fact about any artifact type: the artifact classes say *what* is copied (which files, which
destinations a copy may replace), this module only *how* a directory is swapped without ever leaving a half-written
or missing one behind.
"""
from __future__ import annotations

import fcntl
import glob
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator


def replace_with_copy(source: Path, destination: str | os.PathLike,
                      may_replace: Callable[[Path], str | None] | None = None,
                      ignore: tuple[str, ...] = ()) -> Path:
    """Copy ``source``'s files (less those matching ``ignore``) to ``destination``, replacing what is there.

    Why this shape: two runs may write the same ``--output`` at once, and a process may die at any point. So every
    copy holds an exclusive ``flock`` on ``.<name>.lock`` beside the destination for its whole duration (deleted
    when released, see :func:`_exclusive_lock`; one killed meanwhile leaves it to the next copy), stages into a
    fresh ``mkdtemp`` folder beside it (same file system, so the renames are atomic), moves the old destination
    aside under another unique name, renames the staged copy into place and only then deletes the old one. Staging
    and old folders left behind by a killed copy are recognisable by name and, since they can only exist while
    their owner holds the lock, deleted by the next copy. ``may_replace(destination)`` runs under the lock when the
    destination exists and returns why it must not be replaced (then
    :class:`~edgepipe.pipeline.errors.ConfigError`, nothing touched) or None.
    """
    from edgepipe.pipeline.errors import ConfigError

    destination = Path(os.path.abspath(destination))  # "out/." or "." named: the lock and staging need a name
    parent, name = destination.parent, destination.name
    parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(parent / f".{name}.lock"):
        for stale in (*parent.glob(glob.escape(f".{name}.partial-") + "*"),
                      *parent.glob(glob.escape(f".{name}.old-") + "*")):
            shutil.rmtree(stale, ignore_errors=True)
        exists = destination.exists() or destination.is_symlink()
        reason = may_replace(destination) if exists and may_replace is not None else None
        if reason:
            raise ConfigError(f"{destination}: {reason}")
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=parent))
        old = None
        try:
            shutil.copytree(source, staging / name, ignore=shutil.ignore_patterns(*ignore))
            if exists:
                old = Path(tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent))
                destination.rename(old / name)
            try:
                (staging / name).rename(destination)
            except BaseException:
                if old is not None:  # interrupted between the renames: the earlier content goes back
                    (old / name).rename(destination)
                    old = None
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    return destination


def write_problem(destination: str | os.PathLike) -> str | None:
    """Why :func:`replace_with_copy` could not write ``destination`` ('permission denied at PATH', 'read-only
    file system at PATH'), or None. It creates the lock and the staging folder in the parent (or in the parent's
    first existing ancestor, for folders it would create) and renames an existing destination aside, which needs
    write access to the parent and to the destination directory itself. Asked before a run, so an unwritable
    ``--output`` is known in a second instead of after the whole pipeline; a full disk is found only when copying."""
    destination = Path(os.path.abspath(destination))
    ancestor = destination.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    checks = [ancestor, *([destination] if destination.is_dir() and not destination.is_symlink() else [])]
    for path in checks:
        if path.is_dir() and not os.access(path, os.W_OK | os.X_OK):
            read_only = os.statvfs(path).f_flag & os.ST_RDONLY
            return f"{'read-only file system' if read_only else 'permission denied'} at {path}"
    return None


@contextmanager
def _exclusive_lock(lock_file: Path) -> Iterator[None]:
    """Hold ``flock(LOCK_EX)`` on ``lock_file`` (created if missing), and delete it on release, so no zero-byte
    ``.<name>.lock`` is left beside the user's output.

    Why deleting is safe here: unlinking a lock file alone is not (a process waiting on the old inode would get its
    lock while a newcomer locks a fresh file of the same name, and both would copy at once). So the file is
    unlinked only while its lock is held, and whoever obtains a lock checks that the path still names the inode it
    locked; if not (unlinked or replaced meanwhile) it closes and tries again on the current file. At any moment
    only the holder of the lock on the inode the path names proceeds."""
    while True:
        fd = os.open(lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.path.samestat(os.fstat(fd), os.stat(lock_file))
            except FileNotFoundError:
                current = False
        except BaseException:
            os.close(fd)
            raise
        if current:
            break
        os.close(fd)  # locked a file its holder had deleted: the next one is the lock now
    try:
        yield
    finally:
        try:
            os.unlink(lock_file)  # still held: a waiter on this inode sees it is gone and retries
        except OSError:
            pass
        os.close(fd)  # closing releases the lock
