"""Crash-safe training checkpoints: which ``checkpoint-N`` folder counts as complete, which one ``last`` resumes
from, and how old ones are deleted.

A checkpoint is complete once its marker ``mlic_checkpoint_complete.json`` exists: written last (after the model,
optimizer, scheduler, RNG states, ``trainer_state.json`` and the EMA), atomically (a temporary file renamed), after
every file was flushed to disk, and listing every file of the folder with its size. A run killed while saving leaves a
folder without the marker; a file truncated afterwards (or by a disk-full error that went unnoticed) no longer has
its listed size. Either way the folder is skipped by ``last`` and refused as an explicit resume path. Deleting a
checkpoint removes its marker first, so a deletion stopped halfway leaves an incomplete folder too.

Also here: the lock a run holds on its output folder (a second run there would delete its checkpoints), and the
errors of a failed save (a full disk) or of a resume file torch cannot load safely, each naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import pickle
import re
import shutil
from collections.abc import Iterator, Sequence

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from ..file_utils import is_failed_write, newest_file
from .ema import EMA_WEIGHTS_NAME

__all__ = [
    "COMPLETE_MARKER",
    "mark_checkpoint_complete",
    "checkpoint_problem",
    "checkpoint_folders",
    "last_complete_checkpoint",
    "resolve_resume_checkpoint",
    "naming_unloadable_files",
    "CheckpointWriteError",
    "LOCK_FILE",
    "output_dir_lock",
    "naming_failed_writes",
    "remove_checkpoint",
    "rotate_checkpoints",
]

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "mlic_checkpoint_complete.json"
#: Held (``flock``) by the run training into an output folder: a second run there would delete its checkpoints.
#: Kept after the run (deleting it would let two runs lock two different files); not uploaded (not in the Hub's
#: allow patterns).
LOCK_FILE = ".mlic_train.lock"
_MARKER_FORMAT = 1
# What a checkpoint of MLICTrainer holds: named when a folder without its marker is refused (the model may be
# sharded, so any ``*.safetensors`` file stands for it).
_EXPECTED_FILES = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json")


def _file_sizes(folder: str) -> dict[str, int]:
    """Every file under ``folder`` (relative path with ``/``) and its size, the marker and its temporary excluded."""
    sizes = {}
    for root, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(root, name)
            relative = os.path.relpath(path, folder).replace(os.sep, "/")
            if not relative.startswith(COMPLETE_MARKER):
                sizes[relative] = os.path.getsize(path)
    return dict(sorted(sizes.items()))


def _fsync(path: str) -> None:
    """Flush a file (or a folder's entries) to disk: the marker must never reach the disk before what it lists."""
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) if os.path.isdir(path) else os.O_RDONLY
    try:
        descriptor = os.open(path, flags)
    except OSError:  # folders cannot be opened on some platforms (Windows): nothing to flush there
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # file systems without fsync (some network mounts): the rename below still orders the writes
    finally:
        os.close(descriptor)


def mark_checkpoint_complete(folder: str, step: int) -> None:
    """Write the marker of ``folder`` (call it after everything else of the checkpoint is written)."""
    sizes = _file_sizes(folder)
    for relative in sizes:
        _fsync(os.path.join(folder, relative))
    marker = os.path.join(folder, COMPLETE_MARKER)
    temporary = marker + ".tmp"
    with open(temporary, "w") as handle:
        json.dump({"format": _MARKER_FORMAT, "global_step": int(step), "files": sizes}, handle, indent=1)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, marker)
    _fsync(folder)


def _listed_sizes(marker: str) -> dict[str, int] | None:
    """The ``files`` of a marker, ``None`` if it is unreadable or not a marker."""
    try:
        with open(marker) as handle:
            files = json.load(handle).get("files")
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(files, dict) or not all(isinstance(size, int) for size in files.values()):
        return None
    return files


def checkpoint_problem(folder: str, expected: tuple[str, ...] = ()) -> str | None:
    """Why ``folder`` cannot be resumed from (what is missing or truncated), or ``None`` if it is complete.
    ``expected``: further files the resuming trainer needs (its EMA), named if the marker is missing too."""
    if not os.path.isdir(folder):
        return "no such folder"
    marker = os.path.join(folder, COMPLETE_MARKER)
    if not os.path.isfile(marker):
        absent = [name for name in (*_EXPECTED_FILES, *expected) if not os.path.isfile(os.path.join(folder, name))]
        if not any(name.endswith(".safetensors") and name != EMA_WEIGHTS_NAME for name in os.listdir(folder)):
            absent.insert(0, "model.safetensors")
        also = f" (also missing: {', '.join(absent)})" if absent else ""
        return (f"no {COMPLETE_MARKER}, the file written last when a checkpoint is complete{also}: the run was "
                "stopped while saving or deleting it")
    sizes = _listed_sizes(marker)
    if sizes is None:
        return f"{COMPLETE_MARKER} is unreadable"
    missing = [name for name in sizes if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        return f"missing {', '.join(missing)}"
    wrong = [f"{name} has {os.path.getsize(os.path.join(folder, name))} bytes, not {size}"
             for name, size in sizes.items() if os.path.getsize(os.path.join(folder, name)) != size]
    if wrong:
        return f"truncated or changed since it was saved: {'; '.join(wrong)}"
    return None


def checkpoint_folders(output_dir: str) -> list[tuple[int, str]]:
    """``(step, path)`` of every ``checkpoint-N`` folder of ``output_dir``, oldest step first."""
    if not os.path.isdir(output_dir):
        return []
    found = []
    for name in os.listdir(output_dir):
        prefix, _, step = name.partition("-")
        path = os.path.join(output_dir, name)
        if prefix == PREFIX_CHECKPOINT_DIR and step.isdigit() and os.path.isdir(path):
            found.append((int(step), path))
    return sorted(found)


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The ``checkpoint-N`` folder of ``output_dir`` with the highest N among the complete ones (incomplete ones are
    skipped with a warning naming what they lack); ``None`` if there is none."""
    for _, folder in reversed(checkpoint_folders(output_dir)):
        problem = checkpoint_problem(folder)
        if problem is None:
            return folder
        logger.warning("skipping incomplete checkpoint %s: %s", folder, problem)
    return None


def resolve_resume_checkpoint(resume, output_dir: str, expected: tuple[str, ...] = ()) -> str | None:
    """The folder to resume from for ``resume_from_checkpoint`` = ``resume``: ``last``/``True`` is the newest
    complete checkpoint of ``output_dir``; a path must be a complete checkpoint. A ``ValueError`` naming the value and
    what is missing otherwise."""
    if resume is None or resume is False or resume == "":
        return None
    if resume is True or str(resume) in ("last", "True", "true"):
        folder = last_complete_checkpoint(output_dir)
        if folder is None:
            incomplete = [os.path.basename(path) for _, path in checkpoint_folders(output_dir)]
            detail = f" (incomplete, skipped: {', '.join(incomplete)})" if incomplete else ""
            raise ValueError(f"--resume_from_checkpoint {resume}: no complete checkpoint in {output_dir}{detail}")
        return folder
    problem = checkpoint_problem(str(resume), expected)
    if problem is not None:
        raise ValueError(f"--resume_from_checkpoint {resume}: not a complete checkpoint: {problem}")
    return str(resume)


def remove_checkpoint(folder: str) -> None:
    """Delete a checkpoint folder, its marker first: stopped halfway, it is left incomplete, never half-complete."""
    if not os.path.isdir(folder):
        return
    try:
        os.remove(os.path.join(folder, COMPLETE_MARKER))
    except FileNotFoundError:
        pass
    else:
        _fsync(folder)
    shutil.rmtree(folder, ignore_errors=True)


def rotate_checkpoints(output_dir: str, save_total_limit: int | None, keep: list[str | None]) -> None:
    """Delete the oldest checkpoints beyond ``save_total_limit`` (as transformers' rotation), never one of ``keep``
    (the one just written, the best one)."""
    if not save_total_limit or save_total_limit <= 0:
        return
    protected = {os.path.abspath(path) for path in keep if path}
    folders = [path for _, path in checkpoint_folders(output_dir)]
    remaining = len(folders)
    for folder in folders:
        if remaining <= max(save_total_limit, len(protected)):
            break
        if os.path.abspath(folder) not in protected:
            remove_checkpoint(folder)
            remaining -= 1


def _unloadable_reason(path: str) -> str | None:
    """Why ``torch.load(path, weights_only=True)`` fails (``None`` if it loads): torch's message reduced to its
    cause, without its advice to load with ``weights_only=False`` (that runs any code the file holds)."""
    import torch

    try:
        torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as err:
        message = str(err)
        found = re.search(r"WeightsUnpickler error:\s*(.*?)(?: was not an allowed|\n\n|$)", message, re.S)
        if found and found.group(1).strip():
            return " ".join(found.group(1).split())
        lines = [line for line in message.splitlines() if line.strip() and "weights_only" not in line]
        return " ".join(lines[0].split()) if lines else type(err).__name__
    return None


@contextlib.contextmanager
def naming_unloadable_files(folder: str | None, names: Sequence[str]) -> Iterator[None]:
    """Around transformers' loading of a checkpoint's ``.pt``/``.pth`` files (``names``, in ``folder``): a file
    that torch cannot load as plain tensors and numbers (a damaged file, or one holding other objects) becomes one
    ``ValueError`` naming it, instead of torch's unpickling traceback advising ``weights_only=False``."""
    try:
        yield
    except (pickle.UnpicklingError, RuntimeError, EOFError) as err:
        if folder is None:
            raise
        for name in names:  # torch's error does not say which file: the first one that fails again is the culprit
            path = os.path.join(folder, name)
            reason = _unloadable_reason(path) if os.path.isfile(path) else None
            if reason is not None:
                raise ValueError(f"--resume_from_checkpoint {folder}: {path} cannot be loaded safely (as tensors and "
                                 f"plain values only): {reason}. It is damaged or was not written by this training; "
                                 "resume from another checkpoint") from None
        raise err


class CheckpointWriteError(OSError):
    """A checkpoint or model file could not be written (a full disk, a read-only folder, a quota): the message names
    the file and the cause."""


@contextlib.contextmanager
def naming_failed_writes(folder: str) -> Iterator[None]:
    """Around the writing of a checkpoint or model into ``folder``: a failed write (``OSError``, a
    ``SafetensorError``, torch.save's ``RuntimeError`` of a failed file write) becomes one
    :class:`CheckpointWriteError` naming the file and the cause, not a traceback from inside the writer."""
    from safetensors import SafetensorError

    try:
        yield
    except CheckpointWriteError:
        raise
    except (OSError, SafetensorError, RuntimeError) as err:
        if not is_failed_write(err):
            raise  # not a failed write: a bug or a failed collective keeps its traceback
        message = getattr(err, "reason", None) or " ".join(str(err).split()) or type(err).__name__
        path = getattr(err, "filename", None) or newest_file(folder) or folder
        raise CheckpointWriteError(f"could not write {path} (saving {folder}): {message}; free some space or choose "
                                   "another --output_dir (the incomplete checkpoint is skipped when resuming)") from err


@contextlib.contextmanager
def output_dir_lock(output_dir: str, take: bool = True) -> Iterator[None]:
    """Hold an exclusive lock on ``output_dir`` (its :data:`LOCK_FILE`) for the run: a second run on the same folder
    is refused (a ``ValueError`` naming the folder and the holder's process id) instead of deleting the first one's
    checkpoints. The lock belongs to the process (``fcntl.flock``): the system releases it when the process ends,
    so a killed run leaves no stale lock. ``take`` false (the non-main processes of a distributed run): no lock."""
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the run goes on unprotected
        fcntl = None
    if not take or fcntl is None:
        yield
        return
    created = not os.path.isdir(output_dir)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, LOCK_FILE)
    handle = open(path, "a+")
    held = False
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            if err.errno not in (errno.EAGAIN, errno.EACCES):  # e.g. ENOLCK: a file system without locks
                logger.warning("cannot lock %s (%s): nothing stops a second run on this folder", path, err)
                yield
                return
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise ValueError(f"--output_dir {output_dir}: another training run (process {holder}) is using it ({path} "
                             "is locked); it would delete that run's checkpoints: wait for it to end or choose "
                             "another --output_dir") from err
        held = True
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        if held and created and os.listdir(output_dir) == [LOCK_FILE]:
            # a run that stopped before writing anything leaves no folder it made only for its lock
            with contextlib.suppress(OSError):
                os.remove(path)
                os.rmdir(output_dir)
        handle.close()  # releases the lock
