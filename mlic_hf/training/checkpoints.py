"""Crash-safe training checkpoints: which ``checkpoint-N`` folder counts as complete, which one ``last`` resumes
from, and how old ones are deleted.

A checkpoint is complete once its marker ``mlic_checkpoint_complete.json`` exists: written last (after the model,
optimizer, scheduler, RNG states, ``trainer_state.json`` and the EMA), atomically (a temporary file renamed), after
every file was flushed to disk, and listing every file of the folder with its size. A run killed while saving leaves a
folder without the marker; a file truncated afterwards (or by a disk-full error that went unnoticed) no longer has
its listed size. Either way the folder is skipped by ``last`` and refused as an explicit resume path. Deleting a
checkpoint removes its marker first, so a deletion stopped halfway leaves an incomplete folder too.
"""

from __future__ import annotations

import json
import logging
import os
import shutil

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .ema import EMA_WEIGHTS_NAME

__all__ = [
    "COMPLETE_MARKER",
    "mark_checkpoint_complete",
    "checkpoint_problem",
    "checkpoint_folders",
    "last_complete_checkpoint",
    "resolve_resume_checkpoint",
    "remove_checkpoint",
    "rotate_checkpoints",
]

logger = logging.getLogger(__name__)

COMPLETE_MARKER = "mlic_checkpoint_complete.json"
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
