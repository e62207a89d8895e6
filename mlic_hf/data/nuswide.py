"""NUS-WIDE (81 concepts) as a multi-label classification :class:`datasets.DatasetDict`.

Official release layout (the NUS-WIDE ``ImageList``, ``Groundtruth`` and ``ConceptsList`` archives plus the Flickr
images, which are no longer distributed by NUS and circulate as ``Flickr.zip``)::

    root/
    ├── Concepts81.txt                    # or ConceptsList/Concepts81.txt; 81 concept names, one per line
    ├── ImageList/
    │   ├── TrainImagelist.txt            # one image per line, Windows separators: actor\\0001_2124494179.jpg
    │   └── TestImagelist.txt
    ├── Groundtruth/
    │   └── TrainTestLabels/
    │       ├── Labels_airport_Train.txt  # one 0/1 per line, aligned with TrainImagelist.txt
    │       ├── Labels_airport_Test.txt   # aligned with TestImagelist.txt
    │       └── ...                       # 81 x 2 files
    └── Flickr/
        ├── actor/
        │   ├── 0001_2124494179.jpg
        │   └── ...
        └── ...

Image-list lines may use ``\\`` or ``/``; a prefix up to a ``Flickr`` component (as in ``Imagelist.txt``'s
``C:\\ImageData\\Flickr\\actor\\...``) is dropped. ``image_id`` is the file stem (``<index>_<flickr id>``). A line
whose ``..`` components lead out of the image folder is refused with an error naming the list, the line and the value
(see :func:`~.common.join_inside`).

Sizes: 161,789 train / 107,859 test images in the lists. Many images have none of the 81 concepts; a large part of the
images is also no longer available from Flickr, so published MLIC numbers use fewer images (e.g. 125,449 / 83,898 in
the survey's table). ``drop_unlabeled=True`` removes images without any positive concept (as most works do);
``on_bad_image="skip"`` removes the missing ones.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import datasets
import numpy as np

from .common import (
    OnBadImage,
    PathLike,
    build_split,
    check_on_bad_image,
    join_inside,
    normalize_splits,
    read_label_names_file,
    read_text_lines,
)

logger = logging.getLogger(__name__)

NUS_WIDE_SPLITS = ("train", "test")
_SPLIT_FILE_TAG = {"train": "Train", "test": "Test"}


def _concepts_file(root: str) -> str:
    candidates = [os.path.join(root, "Concepts81.txt"), os.path.join(root, "ConceptsList", "Concepts81.txt")]
    for candidate in candidates:
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"NUS-WIDE concept list not found: expected {candidates[0]} or {candidates[1]}")


def _relative_image_path(line: str) -> list[str]:
    parts = [part for part in line.replace("\\", "/").split("/") if part]
    for position in range(len(parts) - 1, -1, -1):
        if parts[position].lower() == "flickr":
            return parts[position + 1 :]
    return parts


def _read_label_column(path: str, expected: int, image_list: str) -> np.ndarray:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"NUS-WIDE label file not found: {path}")
    lines = read_text_lines(path)
    if len(lines) != expected:
        raise ValueError(
            f"{path}: has {len(lines)} label lines but {image_list} lists {expected} images; "
            "the files must be aligned line by line"
        )
    column = np.zeros(expected, dtype=bool)
    for line_number, value in enumerate(lines, start=1):
        if value == "1":
            column[line_number - 1] = True
        elif value != "0":
            raise ValueError(f"{path}, line {line_number}: expected 0 or 1, got {value!r}")
    return column


def load_nus_wide(
    root: PathLike,
    splits: str | Sequence[str] = ("train", "test"),
    on_bad_image: OnBadImage = "error",
    verify_images: bool = True,
    drop_unlabeled: bool = False,
    images_dir: str = "Flickr",
) -> datasets.DatasetDict:
    """Load NUS-WIDE (81 concepts, official train / test split) for multi-label classification.

    Args:
        root: the NUS-WIDE folder (see the module docstring for the layout).
        splits: ``"train"`` and / or ``"test"``.
        on_bad_image: ``"error"`` or ``"skip"`` for missing / unreadable images (see :func:`~.common.check_images`).
            Many Flickr images of the lists are not in circulating copies of the dataset: use ``"skip"`` for those.
        verify_images: open every image with PIL (header check); ``False`` only checks that the files exist.
        drop_unlabeled: drop images with none of the 81 concepts (most MLIC works do; default keeps them).
        images_dir: the image folder under ``root`` (official: ``"Flickr"``).

    Returns:
        A :class:`datasets.DatasetDict` with the columns ``image``, ``labels``, ``label_ids`` (the concepts in
        ``Concepts81.txt`` order) and ``image_id`` (file stem).
    """
    split_names = normalize_splits(splits, NUS_WIDE_SPLITS)
    check_on_bad_image(on_bad_image)
    root = os.path.abspath(os.fspath(root))
    concepts = read_label_names_file(_concepts_file(root))
    image_root = os.path.join(root, images_dir)

    result = {}
    for split in split_names:
        tag = _SPLIT_FILE_TAG[split]
        image_list = os.path.join(root, "ImageList", f"{tag}Imagelist.txt")
        if not os.path.isfile(image_list):
            raise FileNotFoundError(f"NUS-WIDE image list not found: {image_list}")
        entries = read_text_lines(image_list)
        if not entries:
            raise ValueError(f"{image_list}: the image list is empty")

        matrix = np.zeros((len(entries), len(concepts)), dtype=bool)
        for index, concept in enumerate(concepts):
            label_file = os.path.join(root, "Groundtruth", "TrainTestLabels", f"Labels_{concept}_{tag}.txt")
            matrix[:, index] = _read_label_column(label_file, len(entries), image_list)

        records = []
        dropped = 0
        for row, entry in enumerate(entries):
            parts = _relative_image_path(entry)
            if not parts:
                raise ValueError(f"{image_list}, line {row + 1}: cannot parse an image path from {entry!r}")
            label_ids = np.flatnonzero(matrix[row]).tolist()
            if drop_unlabeled and not label_ids:
                dropped += 1
                continue
            records.append(
                {
                    "path": join_inside(image_root, "/".join(parts), f"{image_list}, line {row + 1}: image path"),
                    "label_ids": label_ids,
                    "image_id": os.path.splitext(parts[-1])[0],
                }
            )
        if dropped:
            logger.info("%s: dropped %d of %d images without any concept", image_list, dropped, len(entries))
        result[split] = build_split(
            records,
            concepts,
            on_bad_image=on_bad_image,
            verify_images=verify_images,
            split=split,
            description=f"NUS-WIDE {split} (drop_unlabeled={drop_unlabeled}) loaded by mlic_hf.data.load_nus_wide.",
            source=image_list + (f", {dropped} images without a concept dropped (drop_unlabeled)" if dropped else ""),
        )
    return datasets.DatasetDict(result)
