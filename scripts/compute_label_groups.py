#!/usr/bin/env python
"""Compute the CO / DC label groups of ML-VPT (method M3) from a dataset's training labels.

    python scripts/compute_label_groups.py --dataset fashion_mosaic --output groups.json
    python scripts/compute_label_groups.py --dataset coco2014 --data_dir /data/coco --num_groups 5 --output coco.json
    python scripts/compute_label_groups.py --dataset folder --data_dir my_images --split train --output groups.json
    python scripts/compute_label_groups.py --dataset_name my_saved_dataset --output groups.json

Spectral clustering of the label co-occurrence graph (CO groups) and of its complement (DC groups), see
``mlic_hf.models.multilabel_vpt.grouping``. The JSON file holds the ``LabelGroups`` fields (``co``, ``dc``,
``num_groups``, ``tau``, ``seed``, ``n_init``; read back with ``LabelGroups.from_dict``), ``config_kwargs`` (the
``co_groups`` / ``dc_groups`` lists of the M3 model config), ``id2label`` and where the labels came from. A summary of
every group is printed.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import numpy as np

from mlic_hf.cli import script_entry
from mlic_hf.file_utils import atomic_write
from mlic_hf.data.label_matrix import label_matrix_from_dataset
from mlic_hf.models.multilabel_vpt.grouping import (
    DEFAULT_NUM_GROUPS,
    DEFAULT_TAU,
    LabelGroups,
    affinity_matrices,
    compute_label_groups,
    conditional_probabilities,
    cooccurrence_counts,
    observed_pair_counts,
)

KIND_TITLES = {
    "co": "CO groups (labels that co-occur; mean M+ = mean co-occurrence affinity of the group's label pairs)",
    "dc": "DC groups (labels that rarely co-occur; a low mean M+ is expected)",
}


def build_parser() -> argparse.ArgumentParser:
    """The dataset flags (:class:`~mlic_hf.data.selection.DatasetArguments`, as ``scripts/train.py``'s) and the
    grouping's own."""
    from transformers import HfArgumentParser

    from mlic_hf.data.selection import DatasetArguments

    parser = HfArgumentParser(DatasetArguments, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default=None, help="split to count labels in (default: the dataset's train split)")
    parser.add_argument("--label_column", default="labels", help="multi-hot (or ClassLabel index) label column")
    parser.add_argument("--num_groups", type=int, default=DEFAULT_NUM_GROUPS, help="N_c, groups of each kind")
    parser.add_argument("--tau", type=float, default=DEFAULT_TAU, help="root of eq. 5 (> 0)")
    parser.add_argument("--seed", type=int, default=0, help="spectral-clustering seed")
    parser.add_argument("--n_init", type=int, default=10, help="k-means initialisations per clustering")
    parser.add_argument("--n_runs", type=int, default=1, help=(
        "seeded clusterings (seeds seed..seed+n_runs-1) to keep the best of by Calinski-Harabasz score (CPSD: 4)"))
    parser.add_argument("--output", default=None, help="write the groups as JSON here (default: only print them)")
    return parser


def check_args(args) -> None:
    """A ``ValueError`` naming the flag for a grouping setting out of range."""
    for name, value in (("num_groups", args.num_groups), ("n_init", args.n_init), ("n_runs", args.n_runs)):
        if value < 1:
            raise ValueError(f"--{name} must be >= 1, got {value}")
    if not args.tau > 0 or not np.isfinite(args.tau):
        raise ValueError(f"--tau must be a finite number > 0, got {args.tau}")
    if not 0 <= args.seed < 2**32:
        raise ValueError(f"--seed must be in [0, 2**32), got {args.seed}")


def label_names(dataset, num_labels: int) -> list[str]:
    """The class names of a split (``label_ids`` ClassLabel names), or the label indices as strings."""
    from mlic_hf.data import label_names_of

    try:
        names = label_names_of(dataset)
    except ValueError:
        return [str(index) for index in range(num_labels)]
    if len(names) != num_labels:
        raise ValueError(f"the dataset has {len(names)} label names but its label matrix has {num_labels} columns")
    return names


def summary(groups: LabelGroups, names: list[str], labels: np.ndarray) -> str:
    """Human-readable description of every CO and DC group (label names and mean within-group co-occurrence)."""
    seen = np.diag(cooccurrence_counts(labels)) > 0
    probabilities = conditional_probabilities(cooccurrence_counts(labels), observed_pair_counts(labels))
    m_plus, _ = affinity_matrices(probabilities, groups.tau)
    lines = []
    for kind in ("co", "dc"):
        lines.append(KIND_TITLES[kind] + ":")
        for group, members in enumerate(groups.partition(kind)):
            if len(members) > 1:
                block = m_plus[np.ix_(members, members)]
                mean = (block.sum() - np.trace(block)) / (len(members) * (len(members) - 1))
                affinity = f"mean M+ {mean:.2f}"
            else:
                affinity = "single label"
            label_text = ", ".join(names[i] + ("" if seen[i] else " (never seen)") for i in members)
            lines.append(f"  {kind.upper()} {group} ({len(members)} labels, {affinity}): {label_text}")
    return "\n".join(lines)


def to_json(result: dict) -> str:
    """JSON with one top-level key per line and each value on a single line (readable group lists)."""
    items = [f"  {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}" for key, value in result.items()]
    return "{\n" + ",\n".join(items) + "\n}\n"


@script_entry(TypeError, ImportError)
def main(argv: list[str] | None = None) -> int:
    data, args = build_parser().parse_args_into_dataclasses(args=argv)
    check_args(args)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.WARNING)
    # the whole train split of a 🤗 Datasets dataset: no validation split taken out
    dataset, split = data.load_split(args.split, role="train", make_validation=False)
    labels = label_matrix_from_dataset(dataset, label_column=args.label_column)
    names = label_names(dataset, labels.shape[1])
    groups = compute_label_groups(
        labels, num_groups=args.num_groups, tau=args.tau, seed=args.seed, n_init=args.n_init, n_runs=args.n_runs
    )
    result = {
        **groups.to_dict(),
        "config_kwargs": groups.to_config_kwargs(),
        "num_labels": groups.num_labels,
        "id2label": {str(index): name for index, name in enumerate(names)},
        "dataset": data.label,
        "split": split,
        "num_samples": int(labels.shape[0]),
    }
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with atomic_write(args.output, "w") as handle:
            handle.write(to_json(result))
    print(
        f"Label groups of {data.label}/{split}: {labels.shape[0]} samples, {groups.num_labels} labels, "
        f"{groups.num_groups} groups of each kind (tau={groups.tau:g}, seed={groups.seed}, n_init={groups.n_init}, "
        f"n_runs={groups.n_runs})"
    )
    print(summary(groups, names, labels))
    if args.output:
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
