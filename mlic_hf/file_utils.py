"""Atomic rewrites of the files a user keeps (a checkpoint's ``config.json``, a run's ``mlic_run.json``, ...).

Opening a file for writing empties it at once: a process killed (or a disk that fills up) before the new content
is complete leaves a truncated file, and for ``config.json`` a checkpoint that no longer loads. Here the new content
goes to a temporary file in the same folder (same file system, so the rename is atomic), is flushed to disk, and
only then replaces the old file with :func:`os.replace`: a reader sees the old file or the new one, never a part.
Writers that write several files themselves (transformers' ``save_pretrained``) write into a staging folder
(:func:`staged_folder`) whose files then replace their namesakes one by one, in the same way.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["STAGING_PREFIX", "FileWriteError", "atomic_write", "atomic_write_text", "is_failed_write", "newest_file",
           "staged_folder"]

class FileWriteError(OSError):
    """A failed write (a full disk, a read-only folder): ``filename`` is the file, ``reason`` the cause, and the
    message ``could not write <file>: <reason>``."""

    def __init__(self, code: int, filename: str, reason: str):
        super().__init__(code, f"could not write {filename}: {reason}", filename)
        self.reason = reason

    def __str__(self) -> str:  # OSError's own would repeat the file name after the message
        return self.strerror


#: Name prefix of :func:`staged_folder`'s staging folders (left behind only by a killed process; uploads skip
#: dot folders).
STAGING_PREFIX = ".mlic_staging."


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``, on an error it is
    deleted and ``path`` is left as it was. An ``OSError`` (a full disk, a read-only folder) is raised again with a
    message naming ``path``."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    try:
        os.chmod(temporary, _file_mode(path))  # mkstemp's 0600 would make a shared checkpoint unreadable to others
        with os.fdopen(descriptor, mode, encoding=None if "b" in mode else encoding) as handle:
            yield handle
            handle.flush()
            _fsync(handle.fileno())  # the content must reach the disk before the rename makes it the file
        os.replace(temporary, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        if isinstance(err, OSError) and path not in str(err):
            raise OSError(err.errno, f"could not write {path}: {err.strerror or err}") from err
        raise


def _fsync(descriptor: int) -> None:
    """``os.fsync``, skipped on file systems without it (some network mounts); a write error (a full disk) raises."""
    try:
        os.fsync(descriptor)
    except OSError as err:
        if err.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise


def _file_mode(path: str) -> int:
    """The permissions the rewritten ``path`` keeps: its own, or a new file's (``0o666`` less the umask)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` by ``text`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, "w") as handle:
        handle.write(text)


@contextlib.contextmanager
def staged_folder(folder: str | os.PathLike, last: tuple[str, ...] = ("config.json",)) -> Iterator[str]:
    """A new staging folder inside ``folder`` for a writer that writes several files (``save_pretrained``). On a clean
    exit each staged file is flushed to disk and replaces its namesake in ``folder`` (:func:`os.replace`, atomic), the
    names in ``last`` after the others: a process killed at any point leaves every file of ``folder`` whole, old or
    new. On an error the staging folder is deleted, ``folder`` is left as it was, and an ``OSError`` names the file
    that was being written (the staged file modified last) under its final name."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(dir=folder, prefix=STAGING_PREFIX)
    try:
        try:
            yield staging
        except Exception as err:
            if not is_failed_write(err):
                raise
            raise _naming_staged_file(err, folder, staging) from err
        names = sorted(os.listdir(staging), key=lambda name: (name in last, name))
        for name in names:
            source = os.path.join(staging, name)
            if os.path.isfile(source):
                with open(source, "rb") as handle:
                    _fsync(handle.fileno())
                os.chmod(source, _file_mode(os.path.join(folder, name)))
        for name in names:
            os.replace(os.path.join(staging, name), os.path.join(folder, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def is_failed_write(err: BaseException) -> bool:
    """Whether ``err`` is a writer's error for a failed write: an ``OSError``, safetensors' ``SafetensorError`` (a
    full disk while serialising) or torch.save's ``RuntimeError`` about a file write (a bug or a failed collective
    is not)."""
    return isinstance(err, OSError) or type(err).__name__ == "SafetensorError" or (
        isinstance(err, RuntimeError) and "writ" in str(err).lower())


def newest_file(folder: str | os.PathLike) -> str | None:
    """The file under ``folder`` modified last: the one being written when a write failed (errors of safetensors
    and torch.save do not name their file)."""
    newest, newest_time = None, -1
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                modified = os.stat(path).st_mtime_ns
                if modified > newest_time:
                    newest, newest_time = path, modified
    return newest


def _naming_staged_file(err: BaseException, folder: str, staging: str) -> OSError:
    staged = newest_file(staging)
    reason = " ".join(str(getattr(err, "strerror", None) or err).split()) or type(err).__name__
    return FileWriteError(getattr(err, "errno", None) or errno.EIO,
                          os.path.join(folder, os.path.relpath(staged, staging)) if staged else folder, reason)
