"""MS-COCO 2014 / 2017 (80 object categories) as a multi-label classification :class:`datasets.DatasetDict`.

Official layout (``annotations_trainval2014.zip``, ``train2014.zip``, ``val2014.zip``; the same with 2017)::

    root/
    ├── annotations/
    │   ├── instances_train2014.json      # {"images": [...], "annotations": [...], "categories": [...]}
    │   └── instances_val2014.json
    ├── train2014/                        # or images/train2014/
    │   ├── COCO_train2014_000000000009.jpg
    │   └── ...
    └── val2014/                          # or images/val2014/
        └── ...

Classes: the ``categories`` of the instances file sorted by ``id`` (ids 1..90 with gaps; 80 categories), names taken
from the JSON. All requested splits must list the same categories.

Labels: a category is positive when the image has at least one annotation with that ``category_id``. Crowd
annotations (``iscrowd=1``) are kept: they mark real instances of the category, and the usual MLIC preprocessing
(pycocotools ``getAnnIds(imgIds=...)``, which does not filter crowds) keeps them too.

Images without any annotation are kept with an all-zero label vector when ``keep_empty=True`` (val2014: 40,504
images) and dropped when ``keep_empty=False`` (val2014: 40,137 images; train2014: 82,783 -> 82,081, the split sizes
most MLIC papers report). ``image_id`` is the COCO image id (as a string). Splits follow the image order of the JSON.
A split left without images (an empty ``images`` list, or every image dropped by ``keep_empty=False``) is an error.

An image's ``file_name`` is relative to its image folder; one whose ``..`` components lead out of ``root`` is refused
with an error naming the instances file, the ``images`` entry and the value (see :func:`~.common.join_inside`).

Sizes: 2014 train 82,783 / val 40,504 images; 2017 train 118,287 / val 5,000 images. The test splits have no public
instance annotations (``image_info_test*.json`` lists images only), so only ``"train"`` and ``"val"`` are accepted.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any

import datasets

from .common import (
    OnBadImage,
    PathLike,
    build_split,
    check_on_bad_image,
    join_inside,
    load_json,
    normalize_splits,
    require_file,
)

logger = logging.getLogger(__name__)

COCO_YEARS = ("2014", "2017")
COCO_SPLITS = ("train", "val")


def _categories(instances: dict[str, Any], path: str) -> list[tuple[int, str]]:
    categories = instances.get("categories")
    if not isinstance(categories, list) or not categories:
        raise ValueError(f"{path}: expected a non-empty 'categories' list")
    out = []
    for position, category in enumerate(categories):
        if not isinstance(category, dict) or not isinstance(category.get("id"), int) or "name" not in category:
            raise ValueError(f"{path}: categories[{position}] must have an integer 'id' and a 'name', got {category!r}")
        out.append((category["id"], str(category["name"])))
    ids = [category_id for category_id, _ in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{path}: duplicate category ids in 'categories'")
    return sorted(out)


def _image_dir(root: str, split: str, year: str) -> str:
    folder = f"{split}{year}"
    candidates = [os.path.join(root, folder), os.path.join(root, "images", folder)]
    for candidate in candidates:
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(f"COCO image folder not found: expected {candidates[0]} or {candidates[1]}")


def load_coco(
    root: PathLike,
    year: str = "2014",
    splits: str | Sequence[str] = ("train", "val"),
    keep_empty: bool = True,
    on_bad_image: OnBadImage = "error",
    verify_images: bool = True,
) -> datasets.DatasetDict:
    """Load MS-COCO 2014 or 2017 for multi-label classification (80 categories in category-id order).

    Args:
        root: the COCO folder holding ``annotations/`` and the image folders (see the module docstring).
        year: ``"2014"`` or ``"2017"``.
        splits: ``"train"`` and / or ``"val"``.
        keep_empty: keep images that have no annotation (all-zero labels); ``False`` drops them.
        on_bad_image: ``"error"`` or ``"skip"`` for missing / unreadable images (see :func:`~.common.check_images`).
        verify_images: open every image with PIL (header check); ``False`` only checks that the files exist.

    Returns:
        A :class:`datasets.DatasetDict` with the columns ``image``, ``labels``, ``label_ids`` and ``image_id``.
    """
    year = str(year)
    if year not in COCO_YEARS:
        raise ValueError(f"year: expected one of {COCO_YEARS}, got {year!r}")
    if isinstance(splits, str) and splits == "test" or not isinstance(splits, str) and "test" in splits:
        raise ValueError(
            "splits: COCO test images have no public instance annotations (image_info_test*.json lists images only); "
            "use 'train' and / or 'val'"
        )
    split_names = normalize_splits(splits, COCO_SPLITS)
    check_on_bad_image(on_bad_image)
    root = os.path.abspath(os.fspath(root))

    label_names: list[str] | None = None
    reference: tuple[str, list[tuple[int, str]]] | None = None
    result = {}
    for split in split_names:
        ann_path = require_file(
            os.path.join(root, "annotations", f"instances_{split}{year}.json"),
            "COCO instances file",
            f"from annotations_trainval{year}.zip",
        )
        image_dir = _image_dir(root, split, year)
        logger.info("reading %s", ann_path)
        instances = load_json(ann_path)
        if not isinstance(instances, dict):
            raise ValueError(f"{ann_path}: expected a JSON object with 'images', 'annotations' and 'categories'")
        categories = _categories(instances, ann_path)
        if reference is None:
            reference = (ann_path, categories)
            label_names = [name for _, name in categories]
        elif categories != reference[1]:
            raise ValueError(f"{ann_path}: its categories differ from those of {reference[0]}")
        index_of = {category_id: index for index, (category_id, _) in enumerate(categories)}

        images = instances.get("images")
        annotations = instances.get("annotations")
        if not isinstance(images, list):
            raise ValueError(f"{ann_path}: expected an 'images' list")
        if not isinstance(annotations, list):
            raise ValueError(f"{ann_path}: expected an 'annotations' list")

        positives: dict[Any, set[int]] = {}
        for position, image in enumerate(images):
            if not isinstance(image, dict) or "id" not in image or "file_name" not in image:
                raise ValueError(f"{ann_path}: images[{position}] must have 'id' and 'file_name', got {image!r}")
            if image["id"] in positives:
                raise ValueError(f"{ann_path}: duplicate image id {image['id']!r} in 'images'")
            positives[image["id"]] = set()
        for position, annotation in enumerate(annotations):
            try:
                image_id, category_id = annotation["image_id"], annotation["category_id"]
            except (KeyError, TypeError):
                raise ValueError(
                    f"{ann_path}: annotations[{position}] must have 'image_id' and 'category_id'"
                ) from None
            if category_id not in index_of:
                raise ValueError(
                    f"{ann_path}: annotations[{position}] has category_id {category_id!r}, which is not in "
                    f"'categories' (ids {sorted(index_of)})"
                )
            if image_id not in positives:
                raise ValueError(
                    f"{ann_path}: annotations[{position}] refers to image_id {image_id!r}, which is not in 'images'"
                )
            positives[image_id].add(index_of[category_id])

        records = []
        dropped = 0
        for position, image in enumerate(images):
            where = f"{ann_path}: images[{position}].file_name"
            label_ids = positives[image["id"]]
            if not label_ids and not keep_empty:
                dropped += 1
                continue
            records.append(
                {
                    "path": join_inside(image_dir, image["file_name"], where, root),
                    "label_ids": sorted(label_ids),
                    "image_id": str(image["id"]),
                }
            )
        if dropped:
            logger.info(
                "%s: dropped %d of %d images without annotations (keep_empty=False)", ann_path, dropped, len(images)
            )
        del instances, images, annotations
        result[split] = build_split(
            records,
            label_names,
            on_bad_image=on_bad_image,
            verify_images=verify_images,
            split=split,
            description=f"MS-COCO {split}{year} (keep_empty={keep_empty}) loaded by mlic_hf.data.load_coco.",
            source=ann_path + (f", {dropped} images without annotations dropped (keep_empty=False)" if dropped else ""),
        )
    return datasets.DatasetDict(result)
