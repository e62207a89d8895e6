"""PASCAL VOC 2007 / 2012 as a multi-label classification :class:`datasets.DatasetDict`.

Official layout (the ``VOCtrainval_06-Nov-2007.tar`` / ``VOCtest_06-Nov-2007.tar`` / ``VOCtrainval_11-May-2012.tar``
archives all extract to it)::

    root/
    └── VOCdevkit/
        └── VOC2007/                      # or VOC2012
            ├── Annotations/
            │   ├── 000005.xml            # <object><name>chair</name>...<difficult>0</difficult></object> ...
            │   └── ...
            ├── ImageSets/
            │   └── Main/
            │       ├── train.txt         # one image id per line
            │       ├── val.txt
            │       ├── trainval.txt
            │       └── test.txt          # VOC2007 only (VOC2012 test labels are not public)
            └── JPEGImages/
                ├── 000005.jpg
                └── ...

``root`` may also point directly at ``VOCdevkit/`` or at ``VOC2007/``. Both test and trainval archives of VOC2007
extract into the same ``VOCdevkit/VOC2007`` folder.

Sizes: VOC2007 trainval 5,011 / test 4,952 images; VOC2012 trainval 11,540 images (its 10,991 test images have no
public annotations: results are computed by the evaluation server, so ``year="2012"`` with ``"test"`` is refused).

Labels come from the XML ``<object><name>`` of each annotation: a class is positive when the image has at least one
non-difficult object of it. A class present *only* through ``<difficult>1</difficult>`` objects is handled by
``difficult``:

- ``"ignore"`` (default, the VOC evaluation convention): label 0 and ``ignore_mask`` True, so the class is left out of
  the loss and of AP / precision / recall for that image;
- ``"positive"``: label 1 (no ``ignore_mask`` column);
- ``"negative"``: label 0 (no ``ignore_mask`` column).

The ``ignore_mask`` column exists only with ``difficult="ignore"``. ``image_id`` is the VOC id (e.g. ``"000005"``).
An id whose ``..`` components would lead the annotation or image path out of ``VOC<year>/`` is refused with an error
naming the split file, the line and the id (see :func:`~.common.join_inside`).
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Literal

import datasets
from datasets.utils.tqdm import tqdm

from .common import (
    OnBadImage,
    PathLike,
    build_split,
    check_on_bad_image,
    join_inside,
    normalize_splits,
    read_text_lines,
)

logger = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
)
VOC_YEARS = ("2007", "2012")
VOC_SPLITS = ("train", "val", "trainval", "test")
DIFFICULT_MODES = ("ignore", "positive", "negative")

_NO_PUBLIC_TEST = (
    "VOC2012 test has no public annotations (its labels are only on the PASCAL evaluation server); "
    "use splits such as ('train', 'val') or ('trainval',) for VOC2012"
)


def resolve_voc_dir(root: PathLike, year: str) -> str:
    """Find ``VOC<year>`` from ``root`` = the folder holding ``VOCdevkit``, ``VOCdevkit`` itself, or ``VOC<year>``."""
    root = os.path.abspath(os.fspath(root))
    name = f"VOC{year}"
    candidates = [os.path.join(root, "VOCdevkit", name), os.path.join(root, name), root]
    for candidate in candidates:
        if os.path.isdir(os.path.join(candidate, "ImageSets", "Main")) or os.path.isdir(
            os.path.join(candidate, "Annotations")
        ):
            if candidate == root and os.path.basename(root).startswith("VOC20") and os.path.basename(root) != name:
                raise ValueError(f"root {root} is a {os.path.basename(root)} folder but year={year!r} was requested")
            return candidate
    raise FileNotFoundError(
        f"no PASCAL VOC {year} folder found from root {root}: expected one of "
        + ", ".join(candidates)
        + " to contain ImageSets/Main/ and Annotations/ (root may be the folder holding VOCdevkit/, "
        "VOCdevkit/ itself or VOC" + year + "/)"
    )


def parse_voc_annotation(xml_path: str) -> list[tuple[str, bool]]:
    """``(class name, difficult)`` for every ``<object>`` of a VOC annotation file."""
    try:
        tree = ET.parse(xml_path)
    except ET.ParseError as exc:
        raise ValueError(f"{xml_path}: invalid XML ({exc})") from None
    objects = []
    for position, obj in enumerate(tree.getroot().iter("object")):
        name_node = obj.find("name")
        if name_node is None or not (name_node.text or "").strip():
            raise ValueError(f"{xml_path}: <object> #{position} has no <name>")
        difficult_node = obj.find("difficult")
        difficult_text = (difficult_node.text or "0").strip() if difficult_node is not None else "0"
        if difficult_text not in ("0", "1"):
            raise ValueError(
                f"{xml_path}: <object> #{position} ({name_node.text.strip()!r}) has <difficult>{difficult_text}"
                "</difficult>, expected 0 or 1"
            )
        objects.append((name_node.text.strip(), difficult_text == "1"))
    return objects


def _numbered_ids(split_file: str) -> list[tuple[int, str]]:
    """``(line number, image id)`` of a split file's non-blank lines (the line numbers go into error messages)."""
    lines = read_text_lines(split_file, skip_blank=False)
    numbered = [(number, line.split()[0]) for number, line in enumerate(lines, start=1) if line]
    if not numbered:
        raise ValueError(f"{split_file}: the split file lists no image ids")
    return numbered


def load_voc(
    root: PathLike,
    year: str = "2007",
    splits: str | Sequence[str] = ("trainval", "test"),
    difficult: Literal["ignore", "positive", "negative"] = "ignore",
    on_bad_image: OnBadImage = "error",
    verify_images: bool = True,
) -> datasets.DatasetDict:
    """Load PASCAL VOC 2007 or 2012 (20 classes) for multi-label classification.

    Args:
        root: the folder holding ``VOCdevkit/``, or ``VOCdevkit/`` itself, or ``VOC<year>/`` (see the module
            docstring for the layout).
        year: ``"2007"`` or ``"2012"``.
        splits: any of ``"train"``, ``"val"``, ``"trainval"``, ``"test"`` (``"test"``: VOC2007 only).
        difficult: how a class present only through difficult objects is labelled: ``"ignore"`` (label 0 with
            ``ignore_mask`` True; default), ``"positive"`` or ``"negative"``.
        on_bad_image: ``"error"`` or ``"skip"`` for missing / unreadable JPEGs (see :func:`~.common.check_images`).
        verify_images: open every image with PIL (header check); ``False`` only checks that the files exist.

    Returns:
        A :class:`datasets.DatasetDict` with one split per requested name and the columns ``image``, ``labels``,
        ``label_ids`` (class names :data:`VOC_CLASSES`), ``ignore_mask`` (only with ``difficult="ignore"``) and
        ``image_id`` (the VOC id).
    """
    year = str(year)
    if year not in VOC_YEARS:
        raise ValueError(f"year: expected one of {VOC_YEARS}, got {year!r}")
    split_names = normalize_splits(splits, VOC_SPLITS)
    if difficult not in DIFFICULT_MODES:
        raise ValueError(f"difficult: expected one of {DIFFICULT_MODES}, got {difficult!r}")
    check_on_bad_image(on_bad_image)
    if year == "2012" and "test" in split_names:
        raise ValueError(f"splits={tuple(split_names)!r}: {_NO_PUBLIC_TEST}")

    voc_dir = resolve_voc_dir(root, year)
    class_index = {name: index for index, name in enumerate(VOC_CLASSES)}
    with_ignore_mask = difficult == "ignore"

    result = {}
    for split in split_names:
        split_file = os.path.join(voc_dir, "ImageSets", "Main", f"{split}.txt")
        if not os.path.isfile(split_file):
            hint = (
                "the VOC2007 test set ships in the separate VOCtest_06-Nov-2007.tar archive"
                if split == "test"
                else f"expected the VOC{year} trainval archive to provide it"
            )
            raise FileNotFoundError(f"VOC split file not found: {split_file} ({hint})")
        numbered = _numbered_ids(split_file)

        records = []
        progress = tqdm(
            numbered, desc=f"Reading VOC{year} {split} annotations", disable=True if len(numbered) < 2000 else None
        )
        for line_number, image_id in progress:
            where = f"{split_file}, line {line_number}: image id {image_id!r}, path"
            xml_path = join_inside(os.path.join(voc_dir, "Annotations"), f"{image_id}.xml", where, voc_dir)
            image_path = join_inside(os.path.join(voc_dir, "JPEGImages"), f"{image_id}.jpg", where, voc_dir)
            if not os.path.isfile(xml_path):
                raise FileNotFoundError(
                    f"VOC annotation not found: {xml_path} (image id {image_id!r} listed in {split_file})"
                )
            positives: set[int] = set()
            difficult_only: set[int] = set()
            for name, is_difficult in parse_voc_annotation(xml_path):
                if name not in class_index:
                    raise ValueError(
                        f"{xml_path}: unknown class name {name!r}, expected one of the 20 VOC classes {VOC_CLASSES}"
                    )
                (difficult_only if is_difficult else positives).add(class_index[name])
            difficult_only -= positives
            ignore_ids: list[int] = []
            if difficult == "positive":
                positives |= difficult_only
            elif difficult == "ignore":
                ignore_ids = sorted(difficult_only)
            records.append(
                {
                    "path": image_path,
                    "label_ids": sorted(positives),
                    "ignore_ids": ignore_ids,
                    "image_id": image_id,
                }
            )
        result[split] = build_split(
            records,
            VOC_CLASSES,
            with_ignore_mask,
            on_bad_image=on_bad_image,
            verify_images=verify_images,
            split=split,
            description=f"PASCAL VOC{year} {split} (difficult={difficult}) loaded by mlic_hf.data.load_voc.",
            source=split_file,
        )
    return datasets.DatasetDict(result)
