"""Datasets as `datasets.DatasetDict`s with ``image``, multi-hot float32 ``labels``, ``label_ids`` (a
``Sequence(ClassLabel)`` holding the label names), ``image_id`` and, where the dataset has one, ``ignore_mask``.

:func:`load_mlic_dataset` loads any of them by name (the names ``scripts/train.py --dataset`` accepts)."""

from __future__ import annotations

import importlib
from typing import Any

from .common import label_names_of, make_features
from .fashion_mosaic import FASHION_MNIST_CLASSES, build_fashion_mosaic, load_fashion_mosaic

#: dataset name -> (module, loader function, fixed keyword arguments)
DATASETS: dict[str, tuple[str, str, dict[str, Any]]] = {
    "fashion_mosaic": (".fashion_mosaic", "load_fashion_mosaic", {}),
    "voc2007": (".voc", "load_voc", {"year": "2007"}),
    "voc2012": (".voc", "load_voc", {"year": "2012", "splits": ("train", "val")}),
    "coco2014": (".coco", "load_coco", {"year": "2014"}),
    "coco2017": (".coco", "load_coco", {"year": "2017"}),
    "nus_wide": (".nuswide", "load_nus_wide", {}),
    "vg256": (".visual_genome", "load_visual_genome", {"num_labels": 256}),
    "vg500": (".visual_genome", "load_visual_genome", {"num_labels": 500}),
    "folder": (".folder", "load_image_folder", {}),
}

#: dataset name -> default (train, eval, test) split names
DATASET_SPLITS: dict[str, tuple[str, str, str]] = {
    "fashion_mosaic": ("train", "validation", "test"),
    "voc2007": ("trainval", "test", "test"),
    "voc2012": ("train", "val", "val"),
    "coco2014": ("train", "val", "val"),
    "coco2017": ("train", "val", "val"),
    "nus_wide": ("train", "test", "test"),
    "vg256": ("train", "test", "test"),
    "vg500": ("train", "test", "test"),
    "folder": ("train", "validation", "test"),
}


def default_splits(name: str) -> dict[str, str]:
    """The (train, eval, test) split names a dataset uses by default, as ``{"train": ..., "eval": ..., "test": ...}``
    (``train``/``validation``/``test`` for datasets not listed in :data:`DATASET_SPLITS`)."""
    train, evaluation, test = DATASET_SPLITS.get(name, ("train", "validation", "test"))
    return {"train": train, "eval": evaluation, "test": test}


def load_mlic_dataset(name: str, data_dir: str | None = None, **kwargs):
    """Load a dataset by name (see :data:`DATASETS`). ``data_dir`` is the dataset's root folder (unused by the
    built-in ``fashion_mosaic``); further keyword arguments go to the loader."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {sorted(DATASETS)}")
    module_name, function_name, fixed = DATASETS[name]
    loader = getattr(importlib.import_module(module_name, __name__), function_name)
    options = {**fixed, **kwargs}
    if name == "fashion_mosaic":
        if data_dir is not None:
            options.setdefault("source_dir", data_dir)
        return loader(**options)
    if data_dir is None:
        raise ValueError(f"dataset {name!r} needs --data_dir (the dataset's root folder)")
    return loader(data_dir, **options)


__all__ = [
    "DATASETS",
    "DATASET_SPLITS",
    "FASHION_MNIST_CLASSES",
    "build_fashion_mosaic",
    "default_splits",
    "label_names_of",
    "load_fashion_mosaic",
    "load_mlic_dataset",
    "make_features",
]
