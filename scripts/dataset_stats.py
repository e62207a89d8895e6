#!/usr/bin/env python
"""Print the label statistics of a dataset split (and its object statistics when it records objects).

    python scripts/dataset_stats.py --dataset fashion_clutter
    python scripts/dataset_stats.py --dataset fashion_mosaic --split test
    python scripts/dataset_stats.py --dataset voc2007 --data_dir /data/VOCdevkit --split trainval
    python scripts/dataset_stats.py --dataset_name parquet --data_files '{"train": "shards/train-*.parquet"}'

Labels: images, labels per image (mean, min, max, histogram), per-label frequency, the pairs that co-occur most
(with their lift over independence) and the pairs of seen labels that never co-occur. Ignored entries
(``ignore_mask``) count as neither positive nor negative. With an ``objects`` column (``fashion_clutter``): objects
per image, object scales (box side in pixels) and the visible fraction of each object. No image is decoded.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from mlic_hf.cli import script_entry

SCALE_BINS = (0, 16, 20, 24, 32, 48, 10**6)


def build_parser():
    """The dataset flags (:class:`~mlic_hf.data.selection.DatasetArguments`, as ``scripts/train.py``'s), ``--split``
    and ``--top``."""
    from transformers import HfArgumentParser

    from mlic_hf.data.selection import DatasetArguments

    parser = HfArgumentParser(DatasetArguments, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", default=None, help="split to describe (default: the dataset's train split)")
    parser.add_argument("--top", type=int, default=10, help="how many co-occurring / never co-occurring pairs to list")
    return parser


def label_lines(labels: np.ndarray, names: list[str], top: int) -> list[str]:
    """The label statistics of an (N, K) matrix with 1 = positive (other values: not positive)."""
    positive = (labels == 1).astype(np.int64)
    per_image = positive.sum(1)
    counts = np.bincount(per_image)
    lines = [
        f"images: {len(positive)}",
        f"labels per image: mean {per_image.mean():.3f}, min {per_image.min()}, max {per_image.max()}",
        "  histogram: " + ", ".join(f"{k}: {c}" for k, c in enumerate(counts) if c),
        "per-label frequency (images, % of images):",
    ]
    frequency = positive.sum(0)
    for index in np.argsort(-frequency, kind="stable"):
        lines.append(f"  {names[index]:<20} {frequency[index]:>7}  {100 * frequency[index] / len(positive):6.2f}%")
    together = positive.T @ positive
    expected = np.outer(frequency, frequency) / max(len(positive), 1)
    pairs = [(int(together[i, j]), i, j) for i in range(len(names)) for j in range(i + 1, len(names))]
    lines.append(f"most co-occurring pairs (images, lift = observed / expected under independence), top {top}:")
    for count, i, j in sorted(pairs, key=lambda p: -p[0])[:top]:
        lift = count / expected[i, j] if expected[i, j] else float("nan")
        lines.append(f"  {names[i]} + {names[j]}: {count} (lift {lift:.2f})")
    never = [(i, j) for _, i, j in pairs if together[i, j] == 0 and frequency[i] and frequency[j]]
    lines.append(f"never co-occurring pairs of seen labels: {len(never)}")
    lines.extend(f"  {names[i]} + {names[j]}" for i, j in never[:top])
    if len(never) > top:
        lines.append(f"  ... and {len(never) - top} more")
    return lines


def object_lines(objects: list[list[dict]]) -> list[str]:
    """Objects per image, scale histogram (box side) and visible fractions of an ``objects`` column."""
    per_image = np.array([len(row) for row in objects])
    sides = np.array([max(o["box"][2], o["box"][3]) for row in objects for o in row])
    visible = np.array([o["visible"] for row in objects for o in row if "visible" in o])
    lines = [f"objects per image: mean {per_image.mean():.3f}, min {per_image.min()}, max {per_image.max()}"]
    if len(sides):
        histogram, _ = np.histogram(sides, bins=SCALE_BINS)
        bins = [f"{lo}-{hi - 1}" if hi < 10**6 else f">={lo}" for lo, hi in zip(SCALE_BINS, SCALE_BINS[1:])]
        lines.append(
            f"object scale (box side, px): min {sides.min()}, median {np.median(sides):g}, max {sides.max()}, "
            f"< 20 px: {100 * np.mean(sides < 20):.1f}%"
        )
        lines.append("  histogram: " + ", ".join(f"{b}: {c}" for b, c in zip(bins, histogram)))
    if len(visible):
        lines.append(
            f"visible fraction: mean {visible.mean():.3f}, min {visible.min():.3f}, "
            f"occluded (< 1): {100 * np.mean(visible < 1):.1f}%, < 0.8: {100 * np.mean(visible < 0.8):.1f}%"
        )
    return lines


@script_entry(TypeError, ImportError)
def main(argv: list[str] | None = None) -> int:
    from mlic_hf.data import label_names_of
    from mlic_hf.data.label_matrix import label_matrix_from_dataset

    data_args, args = build_parser().parse_args_into_dataclasses(args=argv)
    if args.top < 0:
        raise ValueError(f"--top must be >= 0, got {args.top}")
    data, split = data_args.load_split(args.split, role="train", make_validation=False)
    labels = label_matrix_from_dataset(data)
    names = label_names_of(data)
    print(f"{data_args.label}/{split}")
    print("\n".join(label_lines(labels, names, args.top)))
    if "objects" in data.column_names:
        print("\n".join(object_lines(data["objects"])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
