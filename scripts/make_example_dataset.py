#!/usr/bin/env python
"""Write an example dataset in the ``folder`` layout (images + ``metadata.jsonl`` per split) with a label set of its
own, for trying the fine-tuning journey (``scripts/train.py --model_name_or_path ... --dataset folder``).

The images are Fashion-MNIST mosaics of the built-in dataset (another seed, so other mosaics); the labels are the
coarse categories top, bottom, dress, footwear and bag instead of the ten garment classes::

    python scripts/make_example_dataset.py --output outputs/fashion-coarse
    python scripts/train.py --preset demo --model_name_or_path outputs/demo --dataset folder \\
        --data_dir outputs/fashion-coarse --num_train_epochs 1 --output_dir outputs/demo-coarse

``--format parquet --shards N`` writes the splits as parquet shards instead (``train-0000K-of-0000N.parquet``, labels
as ``Sequence(ClassLabel)``), for trying ``--streaming``::

    python scripts/make_example_dataset.py --output outputs/fashion-shards --format parquet --shards 8
    python scripts/train.py --preset demo --streaming true --dataset_name parquet --data_files \\
        '{"train": "outputs/fashion-shards/train-*.parquet", "validation": "outputs/fashion-shards/validation-*.parquet",
          "test": "outputs/fashion-shards/test-*.parquet"}' --output_dir outputs/demo-streamed
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mlic_hf.cli import script_entry

#: coarse label of every Fashion-MNIST class
COARSE_LABELS = {
    "T-shirt/top": "top", "Pullover": "top", "Coat": "top", "Shirt": "top",
    "Trouser": "bottom", "Dress": "dress",
    "Sandal": "footwear", "Sneaker": "footwear", "Ankle boot": "footwear",
    "Bag": "bag",
}


def export_coarse_folder(output: Path, num_train: int, num_validation: int, num_test: int, seed: int,
                         overwrite: bool = False, progress: bool = True, shards: int | None = None) -> dict[str, int]:
    """Write the ``train``/``validation``/``test`` splits under ``output`` (a folder per split; with ``shards``,
    parquet files instead: ``shards`` for train, one per other split); returns the number of images per split."""
    from tqdm.auto import tqdm

    from mlic_hf.data import load_fashion_mosaic

    if shards is not None and not 1 <= shards <= num_train:
        raise ValueError(f"--shards must be between 1 and --num_train ({num_train}), got {shards}")
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise FileExistsError(f"{output} exists and is not empty (pass --overwrite to replace its splits)")
    dataset = load_fashion_mosaic(num_train=num_train, num_validation=num_validation, num_test=num_test, seed=seed)
    names = dataset["train"].features["label_ids"].feature.names
    output.mkdir(parents=True, exist_ok=True)
    (output / "labels.txt").write_text("".join(f"{name}\n" for name in sorted(set(COARSE_LABELS.values()))))
    if shards is not None:
        return _write_parquet_shards(dataset, names, output, shards)
    counts = {}
    for split, rows in dataset.items():
        folder = output / split
        folder.mkdir(exist_ok=True)
        lines = []
        for row in tqdm(rows, desc=f"write {split}", unit="image", disable=not progress):
            file_name = f"{row['image_id']}.png"
            row["image"].save(folder / file_name)
            labels = sorted({COARSE_LABELS[names[i]] for i in row["label_ids"]})
            lines.append(json.dumps({"file_name": file_name, "labels": labels}) + "\n")
        (folder / "metadata.jsonl").write_text("".join(lines))
        counts[split] = len(lines)
    return counts


def _write_parquet_shards(dataset, names: list[str], output: Path, shards: int) -> dict[str, int]:
    """Each split as parquet shards (``shards`` for train, one for the others) with the coarse labels."""
    import datasets

    from mlic_hf.data.streaming import write_parquet_shards

    coarse = sorted(set(COARSE_LABELS.values()))
    label_ids = datasets.List(datasets.ClassLabel(names=coarse))

    def relabel(batch):
        return {"label_ids": [sorted({coarse.index(COARSE_LABELS[names[i]]) for i in ids}) for ids in batch["label_ids"]]}

    counts = {}
    for split, rows in dataset.items():
        rows = rows.map(relabel, batched=True).cast_column("label_ids", label_ids)
        write_parquet_shards(rows, output, shards if split == "train" else 1, prefix=split)
        counts[split] = len(rows)
    return counts


@script_entry()
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="folder to write (train/, validation/, test/, labels.txt)")
    parser.add_argument("--num_train", type=int, default=2000)
    parser.add_argument("--num_validation", type=int, default=500)
    parser.add_argument("--num_test", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1, help="mosaic seed (the demo's dataset uses 0)")
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty folder")
    parser.add_argument("--format", choices=("folder", "parquet"), default="folder",
                        help="a folder of images per split, or parquet shards (for --streaming)")
    parser.add_argument("--shards", type=int, default=4, help="with --format parquet: files of the train split")
    args = parser.parse_args(argv)
    counts = export_coarse_folder(Path(args.output), args.num_train, args.num_validation, args.num_test,
                                  args.seed, args.overwrite, shards=args.shards if args.format == "parquet" else None)
    print(f"wrote {', '.join(f'{n} {s}' for s, n in counts.items())} images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
