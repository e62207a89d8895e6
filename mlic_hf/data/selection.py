"""Which dataset a script works on: one dataclass of flags, parsed by every script that selects a dataset
(``train``, ``evaluate``, ``calibrate_thresholds``, ``compute_label_groups``, ``dataset_stats``).

A built-in dataset by name (``--dataset voc2007 --data_dir /data/VOCdevkit``, options in ``--dataset_kwargs``) or any
🤗 Datasets dataset (``--dataset_name`` and the flags of :class:`~mlic_hf.data.hf_dataset.HFDatasetArguments`). The
conflict checks between the two live here, once; :meth:`DatasetArguments.load_split` gives one split of either
kind, with each role's default split (``train``, ``eval``, ``test``) resolved in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..cli import parse_json_object
from . import default_splits, load_mlic_dataset
from .hf_dataset import HFDatasetArguments, default_split_roles

__all__ = ["DEFAULT_DATASET", "DatasetArguments", "check_not_empty"]

#: the built-in dataset used when neither ``--dataset`` nor ``--dataset_name`` is given
DEFAULT_DATASET = "fashion_mosaic"


@dataclass
class DatasetArguments(HFDatasetArguments):
    """A built-in dataset (``dataset``) or a 🤗 Datasets dataset (``dataset_name``), never both."""

    dataset: str | None = field(default=None, metadata={"help": (
        f"One of the built-in dataset names (mlic_hf.data.DATASETS); default {DEFAULT_DATASET} unless "
        "--dataset_name is given.")})
    data_dir: str | None = field(default=None, metadata={"help": (
        "Root folder of the dataset on disk (with --dataset_name: load_dataset's data_dir).")})
    dataset_kwargs: str | None = field(default=None, metadata={"help": (
        "JSON object of options of the built-in dataset's loader.")})

    def __post_init__(self):
        super().__post_init__()
        if self.dataset and self.dataset_name:
            raise ValueError("give either --dataset (a built-in dataset) or --dataset_name (a 🤗 Datasets dataset), "
                             "not both")
        if self.dataset_name and self.loader_kwargs():
            raise ValueError("--dataset_kwargs sets options of a built-in dataset's loader; with --dataset_name use "
                             "--dataset_config_name, --data_files and the column flags")
        if not self.dataset_name and not self.dataset:
            self.dataset = DEFAULT_DATASET

    @property
    def label(self) -> str:
        """The dataset as messages and reports name it: ``--dataset_name`` if given, else ``--dataset``."""
        return self.dataset_name or self.dataset

    def loader_kwargs(self) -> dict[str, Any]:
        """``--dataset_kwargs`` as a dict (``{}`` when unset)."""
        return parse_json_object(self.dataset_kwargs, "dataset_kwargs")

    def default_splits(self, available: Sequence[str] | None = None, eval_split: str | None = None) -> dict[str, str]:
        """The split of each role (``train``, ``eval``, ``test``) by default: the built-in dataset's own, or, for a
        🤗 Datasets dataset with splits ``available``, ``train``, its validation split (``eval_split`` if named) and
        ``test`` (else the validation split, reported on like COCO's ``val``)."""
        if self.dataset_name:
            return default_split_roles(available, eval_split)
        return default_splits(self.dataset)

    def load_dataset_dict(self, seed: int = 0, label_names: Sequence[str] | None = None,
                          make_validation: bool = True):
        """The whole dataset as an ``mlic_hf`` DatasetDict: a built-in one by name, or a 🤗 Datasets dataset
        converted (its labels read with ``label_names`` if given, e.g. a checkpoint's), with a validation split made
        from train (seeded by ``seed``) when it has none and ``make_validation``."""
        if self.dataset_name:
            return self.load(self.data_dir, seed=seed, label_names=label_names, make_validation=make_validation)
        return load_mlic_dataset(self.dataset, self.data_dir, **self.loader_kwargs())

    def load_split(self, split: str | None = None, role: str = "test", seed: int = 0,
                   label_names: Sequence[str] | None = None, max_samples: int | None = None,
                   make_validation: bool = True):
        """``(split, its name)``: the split ``split``, else the dataset's default ``role`` split, its first
        ``max_samples`` rows if given; a ``ValueError`` names a missing or empty split."""
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"--max_samples must be at least 1, got {max_samples}")
        data = self.load_dataset_dict(seed, label_names, make_validation)
        name = split or self.default_splits(list(data))[role]
        if name not in data:
            raise ValueError(f"split {name!r} not in dataset {self.label!r} (has {list(data)})")
        subset = data[name]
        if max_samples:
            subset = subset.select(range(min(max_samples, len(subset))))
        check_not_empty(subset, name, self.label, self.data_dir)
        return subset, name


def check_not_empty(split, name: str, dataset: str, data_dir: str | None) -> None:
    """A ``ValueError`` naming the split and dataset if ``split`` has no examples (training would crash on
    ``num_samples=0``, metrics on an empty label matrix)."""
    if len(split) == 0:
        where = f" in {data_dir}" if data_dir else ""
        raise ValueError(f"split {name!r} of dataset {dataset!r}{where} is empty")
