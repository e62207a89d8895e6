"""Your own multi-label images as a :class:`datasets.DatasetDict` (an ``imagefolder``-like layout with a label list).

Layout with splits (every sub-folder of ``root`` that has a ``metadata.jsonl`` is a split)::

    root/
    ├── labels.txt                # optional: the class vocabulary, one name per line, in label-index order
    ├── train/
    │   ├── metadata.jsonl        # {"file_name": "img1.jpg", "labels": ["cat", "dog"]}
    │   ├── img1.jpg              # file_name is relative to the split folder (sub-folders allowed)
    │   └── ...
    ├── validation/
    │   ├── metadata.jsonl
    │   └── ...
    └── test/
        └── ...

or, for a single split (loaded as ``"train"``)::

    root/
    ├── labels.txt                # optional
    ├── metadata.jsonl
    ├── img1.jpg
    └── ...

Each non-blank line of ``metadata.jsonl`` is a JSON object with ``file_name`` (string) and ``labels`` (list of class
names; may be empty), plus an optional ``image_id`` (default: the file stem). Other fields are ignored. A requested
split whose ``metadata.jsonl`` has no line is an error ("has no images").

``file_name`` is relative to the split folder; ``..`` may reach a sibling folder of the dataset (``../common/a.jpg``)
but not leave ``root``: such a line is refused with an error naming the file, the line and the value (see
:func:`~.common.join_inside`; a leading ``/`` is dropped, and symlinks inside ``root`` are followed).

The vocabulary (the same for every split) is, in order of precedence: the ``label_names`` argument, ``root/labels.txt``,
or the sorted union of the labels used in *all* the split folders (not only the requested ones, so that loading a
single split gives the same label indices). With an explicit vocabulary an unknown label is an error.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import datasets

from .common import (
    OnBadImage,
    PathLike,
    build_split,
    check_on_bad_image,
    join_inside,
    make_features,
    normalize_splits,
    read_jsonl,
    read_label_names_file,
)

logger = logging.getLogger(__name__)

METADATA_FILE = "metadata.jsonl"
LABELS_FILE = "labels.txt"
_CANONICAL_ORDER = ("train", "validation", "val", "test")


def _discover_splits(root: str) -> dict[str, str]:
    """``{split: folder}`` of the sub-folders with a metadata file, or ``{"train": root}`` for the flat layout."""
    split_dirs = {
        entry.name: entry.path
        for entry in sorted(os.scandir(root), key=lambda e: e.name)
        if entry.is_dir() and os.path.isfile(os.path.join(entry.path, METADATA_FILE))
    }
    flat = os.path.isfile(os.path.join(root, METADATA_FILE))
    if split_dirs and flat:
        raise ValueError(
            f"{root}: found both {METADATA_FILE} at the top level and in the split folders {sorted(split_dirs)}; "
            "use one layout (top-level metadata = a single 'train' split)"
        )
    if flat:
        return {"train": root}
    if not split_dirs:
        raise FileNotFoundError(
            f"no {METADATA_FILE} found in {root} or its sub-folders: expected root/<split>/{METADATA_FILE} "
            f"or root/{METADATA_FILE}"
        )
    ordered = [s for s in _CANONICAL_ORDER if s in split_dirs] + [s for s in split_dirs if s not in _CANONICAL_ORDER]
    return {split: split_dirs[split] for split in ordered}


def _read_metadata(path: str) -> list[tuple[int, str, list[str], str | None]]:
    rows = []
    for line_number, obj in read_jsonl(path):
        where = f"{path}, line {line_number}"
        for field in ("file_name", "labels"):
            if field not in obj:
                raise ValueError(
                    f"{where}: missing field {field!r} (expected {{\"file_name\": ..., \"labels\": [...]}})"
                )
        file_name, labels = obj["file_name"], obj["labels"]
        if not isinstance(file_name, str) or not file_name:
            raise ValueError(f"{where}: field 'file_name' must be a non-empty string, got {file_name!r}")
        if not isinstance(labels, list) or any(not isinstance(label, str) or not label for label in labels):
            raise ValueError(f"{where}: field 'labels' must be a list of non-empty strings, got {labels!r}")
        image_id = obj.get("image_id")
        rows.append((line_number, file_name, labels, str(image_id) if image_id is not None else None))
    return rows


def load_image_folder(
    root: PathLike,
    splits: str | Sequence[str] | None = None,
    label_names: Sequence[str] | None = None,
    on_bad_image: OnBadImage = "error",
    verify_images: bool = True,
) -> datasets.DatasetDict:
    """Load a folder of images with ``metadata.jsonl`` label files (see the module docstring for the layout).

    Args:
        root: the dataset folder.
        splits: the split folders to load; ``None`` loads every sub-folder with a ``metadata.jsonl`` (or the single
            ``"train"`` split of a flat ``root/metadata.jsonl``).
        label_names: the class vocabulary in label-index order; default ``root/labels.txt`` if present, else the
            sorted union of all labels used.
        on_bad_image: ``"error"`` or ``"skip"`` for missing / unreadable images (see :func:`~.common.check_images`).
        verify_images: open every image with PIL (header check); ``False`` only checks that the files exist.

    Returns:
        A :class:`datasets.DatasetDict` with the columns ``image``, ``labels``, ``label_ids`` and ``image_id``.
    """
    check_on_bad_image(on_bad_image)
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"image folder not found: {root}")
    available = _discover_splits(root)
    if splits is None:
        split_names = list(available)
    else:
        split_names = normalize_splits(splits)
        for split in split_names:
            if split not in available:
                expected = os.path.join(root, split, METADATA_FILE)
                raise FileNotFoundError(
                    f"split {split!r}: {expected} not found (available splits: {sorted(available)})"
                )

    metadata = {split: _read_metadata(os.path.join(folder, METADATA_FILE)) for split, folder in available.items()}

    labels_file = os.path.join(root, LABELS_FILE)
    if label_names is not None:
        vocabulary, source = list(label_names), "the label_names argument"
        make_features(vocabulary)  # validates: non-empty, unique strings
    elif os.path.isfile(labels_file):
        vocabulary, source = read_label_names_file(labels_file), labels_file
    else:
        vocabulary = sorted({label for rows in metadata.values() for _, _, labels, _ in rows for label in labels})
        source = None
        if not vocabulary:
            raise ValueError(
                f"{root}: no labels found in any {METADATA_FILE} and no {LABELS_FILE}; cannot build a vocabulary"
            )
        logger.info("image folder %s: vocabulary of %d labels taken from the metadata files", root, len(vocabulary))
    index_of = {name: index for index, name in enumerate(vocabulary)}

    result = {}
    for split in split_names:
        folder = available[split]
        metadata_path = os.path.join(folder, METADATA_FILE)
        if not metadata[split]:
            raise ValueError(f"{metadata_path}: has no images (expected one JSON object per line, e.g. "
                             '{"file_name": "img1.jpg", "labels": ["cat"]})')
        records = []
        for line_number, file_name, labels, image_id in metadata[split]:
            where = f"{metadata_path}, line {line_number}"
            for label in labels:
                if label not in index_of:
                    raise ValueError(f"{where}: unknown label {label!r} (not in {source})")
            records.append(
                {
                    "path": join_inside(folder, file_name, f"{where}: file_name", root=root),
                    "label_ids": [index_of[label] for label in labels],
                    "image_id": image_id if image_id is not None else os.path.splitext(os.path.basename(file_name))[0],
                }
            )
        result[split] = build_split(
            records,
            vocabulary,
            on_bad_image=on_bad_image,
            verify_images=verify_images,
            split=split,
            description=f"Image folder {split} loaded by mlic_hf.data.load_image_folder.",
            source=metadata_path,
        )
    return datasets.DatasetDict(result)
