"""Datasets as `datasets.DatasetDict`s with ``image``, multi-hot float32 ``labels``, ``label_ids`` (a
``Sequence(ClassLabel)`` holding the label names), ``image_id`` and, where the dataset has one, ``ignore_mask``.

:func:`load_mlic_dataset` loads any of them by name (the names ``scripts/train.py --dataset`` accepts)."""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from .common import label_names_of, make_features
from .fashion_mosaic import FASHION_MNIST_CLASSES, build_fashion_mosaic, load_fashion_mosaic


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a built-in dataset: the loader (``module.function``, imported on first use), the keyword arguments
    fixed for this name, and the splits used by default for training, model selection and the final test."""

    module: str
    loader: str
    fixed: dict[str, Any] = field(default_factory=dict)
    train_split: str = "train"
    eval_split: str = "validation"
    test_split: str = "test"
    #: generated datasets (no root folder of their own): ``data_dir`` is optional and passed as this keyword
    data_dir_keyword: str | None = None

    @property
    def splits(self) -> dict[str, str]:
        return {"train": self.train_split, "eval": self.eval_split, "test": self.test_split}


#: every built-in dataset (the names ``scripts/train.py --dataset`` accepts), one record each
DATASETS: dict[str, DatasetSpec] = {
    "fashion_mosaic": DatasetSpec(".fashion_mosaic", "load_fashion_mosaic", data_dir_keyword="source_dir"),
    "fashion_clutter": DatasetSpec(".fashion_clutter", "load_fashion_clutter", data_dir_keyword="source_dir"),
    "voc2007": DatasetSpec(".voc", "load_voc", {"year": "2007"}, "trainval", "test", "test"),
    "voc2012": DatasetSpec(".voc", "load_voc", {"year": "2012", "splits": ("train", "val")}, "train", "val", "val"),
    "coco2014": DatasetSpec(".coco", "load_coco", {"year": "2014"}, "train", "val", "val"),
    "coco2017": DatasetSpec(".coco", "load_coco", {"year": "2017"}, "train", "val", "val"),
    "nus_wide": DatasetSpec(".nuswide", "load_nus_wide", {}, "train", "test", "test"),
    "vg256": DatasetSpec(".visual_genome", "load_visual_genome", {"num_labels": 256}, "train", "test", "test"),
    "vg500": DatasetSpec(".visual_genome", "load_visual_genome", {"num_labels": 500}, "train", "test", "test"),
    "folder": DatasetSpec(".folder", "load_image_folder"),
}


def default_splits(name: str) -> dict[str, str]:
    """The split names a dataset uses by default, ``{"train": ..., "eval": ..., "test": ...}`` (``train`` /
    ``validation`` / ``test`` for a name that is not built in). The one place split defaults are resolved."""
    spec = DATASETS.get(name)
    return spec.splits if spec is not None else DatasetSpec("", "").splits


def load_mlic_dataset(name: str, data_dir: str | None = None, **kwargs):
    """Load a dataset by name (see :data:`DATASETS`). ``data_dir`` is the dataset's root folder; for the generated
    ``fashion_mosaic`` / ``fashion_clutter`` it is optional and names the Fashion-MNIST folder (``source_dir``).
    Further keyword arguments go to the loader."""
    if name not in DATASETS:
        import difflib

        close = difflib.get_close_matches(name, DATASETS, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; available: {sorted(DATASETS)}")
    spec = DATASETS[name]
    loader = getattr(importlib.import_module(spec.module, __name__), spec.loader)
    options = {**spec.fixed, **kwargs}
    if spec.data_dir_keyword is not None:
        if data_dir is not None:
            options.setdefault(spec.data_dir_keyword, data_dir)
        return loader(**options)
    if data_dir is None:
        raise ValueError(f"dataset {name!r} needs --data_dir (the dataset's root folder)")
    return loader(data_dir, **options)


__all__ = [
    "DATASETS",
    "DatasetSpec",
    "FASHION_MNIST_CLASSES",
    "build_fashion_mosaic",
    "default_splits",
    "label_names_of",
    "load_fashion_mosaic",
    "load_mlic_dataset",
    "make_features",
]
