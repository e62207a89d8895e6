"""Visual Genome multi-label subsets (VG500, VG256, ...) as a :class:`datasets.DatasetDict`.

Visual Genome (108,077 images) has no official multi-label classification release: VG500 and VG256 are label subsets
built by MLIC papers from the object annotations (``objects.json``). Three on-disk formats are read; ``layout="auto"``
picks the first one whose files are present, in this order.

1. ``"jsonl"`` -- the simple format documented by ``mlic_hf`` (convert any other source to it)::

       root/
       ├── vg500_labels.txt              # the N class names, one per line, in label-index order
       │                                 # (vg256_labels.txt for num_labels=256; vg<N>_labels.txt in general)
       ├── train.jsonl                   # one JSON object per line, for example
       │                                 #   {"file_name": "2345.jpg", "labels": ["man", "shirt"]}   (class names)
       │                                 #   {"file_name": "2346.jpg", "label_ids": [3, 17]}         (0-based indices)
       ├── test.jsonl                    # (<split>.jsonl for every requested split)
       └── images/
           ├── 2345.jpg                  # file_name is relative to images/ (sub-folders allowed)
           └── ...

   Each line has ``file_name`` and exactly one of ``labels`` (names from the label file) / ``label_ids`` (indices in
   ``[0, N)``); an empty list is allowed (no positive class). An optional ``image_id`` field is used as the image id
   (default: the file stem). Blank lines are ignored.

2. ``"ssgrl"`` -- the VG500 files distributed with SSGRL (HCPLab-SYSU/SSGRL ``data/VG/``) and reused by C-Tran,
   Query2Label, SADCL and others (train 82,904 / test 10,000 images)::

       root/
       ├── train_list_500.txt            # one image file name per line ("2345.jpg")
       ├── test_list_500.txt
       ├── vg_category_500_labels_index.json   # {"2345.jpg": [3, 17, ...], ...}: 0-based class indices
       ├── vg500_labels.txt              # optional: class names (the release has none; without this file the
       │                                 # classes are named vg500_000 ... vg500_499 and a warning is logged)
       └── VG_100K/                      # the Visual Genome images (VG_100K_2/ and images/ are searched too)

   ``<N>`` in the file names follows ``num_labels`` (e.g. KGGR-style ``*_200`` files for VG200).

3. ``"mlc_pat"`` -- the VG256 files produced by MLC-PAT's ``format_vg256.py`` (xiemk/MLC-PAT ``data/vg256/``; a
   seeded 70 / 30 split of the images that have at least one of the 256 classes)::

       root/
       ├── vg256.json                    # {"person": ["person", "man", ...], ...}: class names = keys, in order
       ├── formatted_train_images.npy    # image paths relative to root ("VG_100K/2345.jpg")
       ├── formatted_train_labels.npy    # (n, 256) multi-hot
       ├── formatted_val_images.npy      # the held-out split; requested as "test" (or "val")
       ├── formatted_val_labels.npy
       └── VG_100K/

``image_id`` is the file stem (the Visual Genome image id) unless the jsonl line gives one. An image path whose ``..``
components lead out of ``root`` is refused with an error naming the annotation file, the line (or entry) and the value
(see :func:`~.common.join_inside`); a split without images is an error naming its file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any, Literal

import datasets
import numpy as np

from .common import (
    OnBadImage,
    PathLike,
    build_split,
    check_on_bad_image,
    join_inside,
    load_json,
    normalize_splits,
    read_jsonl,
    read_label_names_file,
    read_text_lines,
)

logger = logging.getLogger(__name__)

VG_LAYOUTS = ("auto", "jsonl", "ssgrl", "mlc_pat")
_SSGRL_IMAGE_DIRS = ("VG_100K", "VG_100K_2", "images")


# ----------------------------------------------------------------------------------------------------------------------
# Format detection
# ----------------------------------------------------------------------------------------------------------------------


def _jsonl_files(root: str, num_labels: int, splits: list[str]) -> tuple[str, list[str]]:
    return os.path.join(root, f"vg{num_labels}_labels.txt"), [os.path.join(root, f"{s}.jsonl") for s in splits]


def _ssgrl_files(root: str, num_labels: int, splits: list[str]) -> tuple[str, list[str]]:
    return (
        os.path.join(root, f"vg_category_{num_labels}_labels_index.json"),
        [os.path.join(root, f"{s}_list_{num_labels}.txt") for s in splits],
    )


def _pat_split(split: str) -> str:
    return "val" if split == "test" else split


def _pat_files(root: str, num_labels: int, splits: list[str]) -> tuple[str, list[str]]:
    files = []
    for split in splits:
        files += [
            os.path.join(root, f"formatted_{_pat_split(split)}_images.npy"),
            os.path.join(root, f"formatted_{_pat_split(split)}_labels.npy"),
        ]
    return os.path.join(root, f"vg{num_labels}.json"), files


_LAYOUT_FILES = {"jsonl": _jsonl_files, "ssgrl": _ssgrl_files, "mlc_pat": _pat_files}


def _detect_layout(root: str, num_labels: int, splits: list[str]) -> str:
    for layout in ("jsonl", "ssgrl", "mlc_pat"):
        main_file, split_files = _LAYOUT_FILES[layout](root, num_labels, splits)
        if layout == "ssgrl":
            present = os.path.isfile(main_file)  # the class-name file is optional for this layout
        else:
            present = os.path.isfile(main_file) and any(os.path.isfile(path) for path in split_files)
        if present:
            return layout
    lines = []
    for layout, files_of in _LAYOUT_FILES.items():
        main_file, split_files = files_of(root, num_labels, splits)
        lines.append(f"  {layout}: {', '.join(os.path.relpath(p, root) for p in [main_file, *split_files])}")
    raise FileNotFoundError(
        f"no Visual Genome {num_labels}-label files found in {root}; expected one of these layouts "
        "(see the mlic_hf.data.visual_genome docstring):\n" + "\n".join(lines)
    )


def _require(path: str, what: str) -> str:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Visual Genome {what} not found: {path}")
    return path


# ----------------------------------------------------------------------------------------------------------------------
# Readers: each returns (label_names, {split: records})
# ----------------------------------------------------------------------------------------------------------------------


def _checked_names(path: str, num_labels: int) -> list[str]:
    names = read_label_names_file(_require(path, "label-name file"))
    if len(names) != num_labels:
        raise ValueError(f"{path}: has {len(names)} class names, expected num_labels={num_labels}")
    return names


def _read_jsonl_layout(root: str, num_labels: int, splits: list[str]) -> tuple[list[str], dict[str, list[dict]]]:
    names_file, split_files = _jsonl_files(root, num_labels, splits)
    names = _checked_names(names_file, num_labels)
    index_of = {name: index for index, name in enumerate(names)}
    image_root = os.path.join(root, "images")
    out: dict[str, list[dict]] = {}
    for split, path in zip(splits, split_files):
        _require(path, f"{split} annotation file")
        records = []
        for line_number, obj in read_jsonl(path):
            where = f"{path}, line {line_number}"
            file_name = obj.get("file_name")
            if not isinstance(file_name, str) or not file_name:
                raise ValueError(f"{where}: missing or empty field 'file_name' (the image path relative to images/)")
            has_names, has_ids = "labels" in obj, "label_ids" in obj
            if has_names == has_ids:
                raise ValueError(
                    f"{where}: expected exactly one of the fields 'labels' (class names) or 'label_ids' (indices), "
                    f"got {'both' if has_names else 'neither'}"
                )
            values = obj["labels"] if has_names else obj["label_ids"]
            if not isinstance(values, list):
                field = "labels" if has_names else "label_ids"
                raise ValueError(f"{where}: field {field!r} must be a list, got {values!r}")
            label_ids = []
            for value in values:
                if has_names:
                    if value not in index_of:
                        raise ValueError(f"{where}: unknown label {value!r} (not in {names_file})")
                    label_ids.append(index_of[value])
                else:
                    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < num_labels:
                        raise ValueError(f"{where}: label id {value!r} is not an integer in [0, {num_labels})")
                    label_ids.append(value)
            image_id = obj.get("image_id")
            if image_id is None:
                image_id = os.path.splitext(os.path.basename(file_name))[0]
            records.append(
                {
                    "path": join_inside(image_root, file_name, f"{where}: file_name", root),
                    "label_ids": label_ids,
                    "image_id": str(image_id),
                }
            )
        out[split] = records
    return names, out


def _read_ssgrl_layout(root: str, num_labels: int, splits: list[str]) -> tuple[list[str], dict[str, list[dict]]]:
    index_file, list_files = _ssgrl_files(root, num_labels, splits)
    labels_by_name = load_json(_require(index_file, "label index file"))
    if not isinstance(labels_by_name, dict):
        raise ValueError(f"{index_file}: expected a JSON object mapping image file names to lists of class indices")
    names_file = os.path.join(root, f"vg{num_labels}_labels.txt")
    if os.path.isfile(names_file):
        names = _checked_names(names_file, num_labels)
    else:
        width = len(str(num_labels - 1))
        names = [f"vg{num_labels}_{index:0{width}d}" for index in range(num_labels)]
        logger.warning(
            "%s not found: the SSGRL release has no class names, using placeholders %s ... %s",
            names_file,
            names[0],
            names[-1],
        )
    image_dirs = [os.path.join(root, d) for d in _SSGRL_IMAGE_DIRS if os.path.isdir(os.path.join(root, d))]
    location: dict[str, str] = {}
    for image_dir in reversed(image_dirs):  # the first folder wins
        with os.scandir(image_dir) as entries:
            location.update((entry.name, image_dir) for entry in entries)
    default_dir = image_dirs[0] if image_dirs else os.path.join(root, _SSGRL_IMAGE_DIRS[0])

    out: dict[str, list[dict]] = {}
    for split, list_file in zip(splits, list_files):
        records = []
        lines = read_text_lines(_require(list_file, f"{split} image list"), skip_blank=False)
        for line_number, file_name in enumerate(lines, start=1):
            if not file_name:
                continue
            if file_name not in labels_by_name:
                raise ValueError(f"{list_file}: image {file_name!r} has no entry in {index_file}")
            indices = labels_by_name[file_name]
            if not isinstance(indices, list) or any(
                isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < num_labels for i in indices
            ):
                raise ValueError(
                    f"{index_file}: entry {file_name!r} must be a list of integers in [0, {num_labels}), "
                    f"got {indices!r}"
                )
            records.append(
                {
                    "path": join_inside(location.get(file_name, default_dir), file_name,
                                        f"{list_file}, line {line_number}: image", root),
                    "label_ids": indices,
                    "image_id": os.path.splitext(file_name)[0],
                }
            )
        out[split] = records
    return names, out


def _read_pat_layout(root: str, num_labels: int, splits: list[str]) -> tuple[list[str], dict[str, list[dict]]]:
    category_file, _ = _pat_files(root, num_labels, splits)
    categories = load_json(_require(category_file, "category file"))
    if not isinstance(categories, dict):
        raise ValueError(f"{category_file}: expected a JSON object mapping class names to lists of object names")
    names = list(categories)
    if len(names) != num_labels:
        raise ValueError(f"{category_file}: has {len(names)} classes, expected num_labels={num_labels}")
    out: dict[str, list[dict]] = {}
    for split in splits:
        images_file = _require(os.path.join(root, f"formatted_{_pat_split(split)}_images.npy"), f"{split} image array")
        labels_file = _require(os.path.join(root, f"formatted_{_pat_split(split)}_labels.npy"), f"{split} label array")
        images: Any = np.load(images_file, allow_pickle=False)
        labels: Any = np.load(labels_file, allow_pickle=False)
        if images.ndim != 1 or images.dtype.kind not in "US":
            raise ValueError(f"{images_file}: expected a 1-D array of image paths, got {images.dtype} {images.shape}")
        if labels.ndim != 2 or labels.shape[1] != num_labels:
            raise ValueError(f"{labels_file}: expected shape (n, {num_labels}), got {labels.shape}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(
                f"{labels_file}: has {labels.shape[0]} rows but {images_file} has {images.shape[0]} image paths"
            )
        if not np.isin(labels, (0, 1)).all():
            raise ValueError(f"{labels_file}: expected a multi-hot array of 0 / 1 values")
        records = []
        for position, (relative, row) in enumerate(zip(images.tolist(), labels)):
            relative = relative.decode() if isinstance(relative, bytes) else relative
            records.append(
                {
                    "path": join_inside(root, relative, f"{images_file}: entry {position}, image path"),
                    "label_ids": np.flatnonzero(row).tolist(),
                    "image_id": os.path.splitext(os.path.basename(relative))[0],
                }
            )
        out[split] = records
    return names, out


_READERS = {"jsonl": _read_jsonl_layout, "ssgrl": _read_ssgrl_layout, "mlc_pat": _read_pat_layout}


def load_visual_genome(
    root: PathLike,
    num_labels: int = 500,
    splits: str | Sequence[str] = ("train", "test"),
    on_bad_image: OnBadImage = "error",
    verify_images: bool = True,
    layout: Literal["auto", "jsonl", "ssgrl", "mlc_pat"] = "auto",
) -> datasets.DatasetDict:
    """Load a Visual Genome multi-label subset (VG500, VG256, ...) for multi-label classification.

    Args:
        root: the folder holding the label files (see the module docstring for the three supported layouts).
        num_labels: the number of classes ``N`` (500 for VG500, 256 for VG256); selects the ``*<N>*`` files.
        splits: split names (``"train"``, ``"test"``, ...; for ``"mlc_pat"``, ``"test"`` reads the ``val`` arrays).
        on_bad_image: ``"error"`` or ``"skip"`` for missing / unreadable images (see :func:`~.common.check_images`).
        verify_images: open every image with PIL (header check); ``False`` only checks that the files exist.
        layout: ``"auto"`` (default), ``"jsonl"``, ``"ssgrl"`` or ``"mlc_pat"``.

    Returns:
        A :class:`datasets.DatasetDict` with the columns ``image``, ``labels``, ``label_ids`` and ``image_id``.
    """
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
        raise ValueError(f"num_labels: expected a positive integer (500 or 256), got {num_labels!r}")
    if layout not in VG_LAYOUTS:
        raise ValueError(f"layout: expected one of {VG_LAYOUTS}, got {layout!r}")
    split_names = normalize_splits(splits)
    check_on_bad_image(on_bad_image)
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        raise FileNotFoundError(f"Visual Genome root folder not found: {root}")
    if layout == "auto":
        layout = _detect_layout(root, num_labels, split_names)
        logger.info("Visual Genome: using the %r layout in %s", layout, root)
    names, records_by_split = _READERS[layout](root, num_labels, split_names)
    result = {}
    for split in split_names:
        _, split_files = _LAYOUT_FILES[layout](root, num_labels, [split])
        result[split] = build_split(
            records_by_split[split],
            names,
            on_bad_image=on_bad_image,
            verify_images=verify_images,
            split=split,
            description=f"Visual Genome VG{num_labels} {split} ({layout} layout) loaded by "
            "mlic_hf.data.load_visual_genome.",
            source=split_files[0],
        )
    return datasets.DatasetDict(result)
