"""Atomic rewrites of the files a user keeps (a checkpoint's ``config.json``, a run's ``mlic_run.json``, ...).

Opening a file for writing empties it at once: a process killed (or a disk that fills up) before the new content
is complete leaves a truncated file, and for ``config.json`` a checkpoint that no longer loads. Here the new content
goes to a temporary file in the same folder (same file system, so the rename is atomic), is flushed to disk, and
only then replaces the old file with :func:`os.replace`: a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

__all__ = ["atomic_write", "atomic_write_text", "save_config_atomically"]


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


def save_config_atomically(config, folder: str | os.PathLike) -> str:
    """``config.save_pretrained(folder)`` for a folder that already holds a model: ``config.json`` is replaced
    atomically (transformers rewrites it in place). Returns the path written."""
    from transformers.utils import CONFIG_NAME

    os.makedirs(folder, exist_ok=True)
    path = os.path.join(os.fspath(folder), CONFIG_NAME)
    if hasattr(config, "validate"):  # as save_pretrained: a config that would not load is not written
        config.validate()
    # the same text as PretrainedConfig.to_json_file(use_diff=True), which save_pretrained writes
    atomic_write_text(path, config.to_json_string(use_diff=True))
    return path
