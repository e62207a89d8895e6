#!/usr/bin/env python
"""Images/second through mlic_hf's training input pipeline (🤗 Datasets rows decoded late, ``TrainTransform`` via
``BatchTransform``: resize, flip, RandAugment, Cutout, to-tensor, normalise; as ``mlic_hf.training.build`` sets it
up) against a plain PIL + torchvision folder loader doing the same transforms on the same images saved as PNG files.

    python benchmarks/bench_data.py [--num_images 2000] [--image_size 96] [--workers 0] [--batch_size 32]
    python benchmarks/bench_data.py --smoke --output_dir /tmp/results   # seconds: a test of the script

One epoch of each loader is one call; ``_common.compare`` times them: warm-up epochs, then interleaved repetitions
(plain first in even rounds, mlic_hf first in odd ones, so neither always runs second), min/median/spread. The ratio
is plain epoch time / mlic_hf epoch time (= mlic_hf images/s over plain images/s; above 1: mlic_hf is faster), and it
is a win only when its whole range (``ratio_low`` .. ``ratio_high``) is above 1. Goal: ratio >= 1.0, "met" only when
``ratio_low`` >= 1. Every epoch must deliver every image once. Writes ``<output_dir>/data.json`` and ``data.md``.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import (RESULTS, check_minimum, compare, describe, judge_goal, provenance, publish,  # noqa: E402
                     ratio_range, spread)

from mlic_hf.cli import script_entry  # noqa: E402

NAME = "data"
SMOKE = {"num_images": 48, "image_size": 32, "batch_size": 16, "workers": 0, "repeats": 3, "warmup": 1}
MEAN = STD = (0.5, 0.5, 0.5)
RAND_AUGMENT = "rand-m9-mstd0.5"


class PlainFolder(Dataset):
    """A plain folder dataset: PIL opens each PNG, a torchvision ``Compose`` transforms it."""

    def __init__(self, files: list[tuple[str, np.ndarray]], transform: Callable) -> None:
        self.files, self.transform = files, transform

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        path, labels = self.files[index]
        with Image.open(path) as image:
            image = image.convert("RGB")
        return {"pixel_values": self.transform(image), "labels": torch.from_numpy(labels)}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_images", type=int, default=2000)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers of both loaders")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved timed epochs of each loader")
    parser.add_argument("--warmup", type=int, default=1, help="untimed epochs of each loader first")
    parser.add_argument("--smoke", action="store_true", help=f"a tiny run for tests: {SMOKE}")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    check_minimum(args, ("num_images", "image_size", "batch_size", "repeats"), 1)
    if args.workers < 0 or args.warmup < 0:
        raise ValueError(f"--workers and --warmup must be at least 0, got {args.workers} and {args.warmup}")
    return args


def write_pngs(data: Any, folder: Path) -> list[tuple[str, np.ndarray]]:
    """The dataset's images as PNG files (their stored bytes, not re-encoded) and their multi-hot labels."""
    folder.mkdir(parents=True)
    raw = data.cast_column("image", data.features["image"].__class__(decode=False))
    files = []
    for i, row in enumerate(raw):
        path = folder / f"{i:06d}.png"
        path.write_bytes(row["image"]["bytes"])
        files.append((str(path), np.asarray(row["labels"], dtype=np.float32)))
    return files


def plain_transform(image_size: int) -> Callable:
    """The same augmentation as ``TrainTransform`` built from torchvision and timm pieces, without mlic_hf's
    per-sample seeding."""
    from timm.data.auto_augment import rand_augment_transform
    from torchvision import transforms as T

    from mlic_hf.data.transforms import Cutout

    fill = tuple(int(round(255 * m)) for m in MEAN)  # TrainTransform's RandAugment fill
    rand_augment = rand_augment_transform(RAND_AUGMENT, {"translate_const": int(image_size * 0.45), "img_mean": fill})
    cutout = Cutout(0.5)
    return T.Compose([T.Resize((image_size, image_size), interpolation=T.InterpolationMode.BILINEAR),
                      T.RandomHorizontalFlip(), rand_augment, lambda im: cutout(im, random), T.ToTensor(),
                      T.Normalize(MEAN, STD)])


def epoch(dataset: Any, collate: Callable | None, args: argparse.Namespace,
          batch_transform: Any = None) -> Callable[[], None]:
    """One shuffled epoch through a fresh DataLoader (as each training epoch builds its iterator); it must deliver
    every image once, or the two sides would not be doing the same work. ``batch_transform`` (mlic_hf's) is moved to
    the next epoch first, so each epoch draws new augmentations, as the plain loader's global RNG does."""
    epochs = iter(range(1, 1 << 30))

    def run() -> None:
        if batch_transform is not None:
            batch_transform.set_epoch(next(epochs))
        loader = DataLoader(dataset, batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                            collate_fn=collate)
        count = sum(batch["pixel_values"].shape[0] for batch in loader)
        if count != args.num_images:
            raise RuntimeError(f"an epoch gave {count} images, expected {args.num_images}")

    return run


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from mlic_hf.data import load_fashion_mosaic
    from mlic_hf.data.transforms import (AugmentationConfig, BatchTransform, TrainTransform, collate_fn,
                                         defer_image_decoding, with_index_column)

    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        data = load_fashion_mosaic(num_train=args.num_images, num_validation=1, num_test=1, cache_dir=tmp)["train"]
        config = AugmentationConfig(image_size=args.image_size, mean=MEAN, std=STD, rand_augment=RAND_AUGMENT,
                                    cutout=0.5, hflip=0.5)
        batch_transform = BatchTransform(TrainTransform(config))
        ours = with_index_column(defer_image_decoding(data)).with_transform(batch_transform)
        plain = PlainFolder(write_pngs(data, Path(tmp) / "folder"), plain_transform(args.image_size))
        comparison = compare(epoch(plain, None, args), epoch(ours, collate_fn, args, batch_transform),
                             repeats=args.repeats, warmup=args.warmup)
    comparison["goal"] = "ratio >= 1.0"
    comparison["goal_met"] = judge_goal(comparison, at_least=1.0)
    images_per_s = {"plain": args.num_images / comparison["a"]["median"],
                    "mlic_hf": args.num_images / comparison["b"]["median"]}
    return {"comparison": comparison, "images_per_s": images_per_s}


def markdown(results: dict[str, Any]) -> str:
    s, c, rates = results["settings"], results["comparison"], results["images_per_s"]
    a, b = c["a"], c["b"]
    lines = [f"# Input pipeline: mlic_hf vs a plain folder loader ({describe(results['provenance'])})", "",
             f"{s['num_images']} Fashion-MNIST mosaics, {s['image_size']} px, RandAugment + Cutout + flip, batches of "
             f"{s['batch_size']}, {s['workers']} workers; {a['repeats']} interleaved epochs of each after "
             f"{c['warmup']} warm-up. Ratio = plain epoch time / mlic_hf epoch time (above 1: mlic_hf faster), "
             "range from the spread.", "",
             "| loader | epoch s, median (min–max) | images/s (median) |", "|---|---:|---:|",
             f"| plain PIL + torchvision (A) | {spread(a, 3, 1)} | {rates['plain']:.1f} |",
             f"| mlic_hf (B) | {spread(b, 3, 1)} | {rates['mlic_hf']:.1f} |", "",
             f"Ratio {ratio_range(c, 3)}: {c['verdict']}; goal {c['goal']}: {c['goal_met']}."]
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.manual_seed(0)
    random.seed(0)
    results = {"provenance": provenance(argv, __file__),
               "settings": {k: getattr(args, k) for k in ("num_images", "image_size", "batch_size", "workers",
                                                          "repeats", "warmup", "smoke")}}
    results.update(measure(args))
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
