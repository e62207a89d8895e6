"""Do the label maps point at the labelled objects? The pointing game on ``fashion_clutter``, whose garment boxes
are known.

For every test image and every label present in it, the peak of the label's map (resized to the 128-px image) is a
hit when it falls inside a box of a garment of that label. The chance level of a peak drawn uniformly at random is
the fraction of the image those boxes cover, averaged the same way; a map that is no better than a constant scores
about that. Checkpoints are the model zoo's (``benchmarks/zoo.py``, seed 0) unless ``--checkpoints`` names others.

    python benchmarks/bench_label_maps.py                       # the zoo's M1, M2, M4, ML-VPT and linear probe
    python benchmarks/bench_label_maps.py --checkpoints mine=outputs/run --num_images 200
    python benchmarks/bench_label_maps.py --smoke --output_dir /tmp/results   # a tiny random M1: a test of the script

Not a timing comparison (the seconds per checkpoint are for orientation only). Prints a table and writes
``<output_dir>/label_maps.json`` (provenance, settings, one row per checkpoint: pointing accuracy, chance, pairs,
seconds and the checkpoint's repo-relative path) and ``label_maps.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import REPO, RESULTS, check_minimum, describe, provenance, publish, repo_relative  # noqa: E402

from mlic_hf.cli import script_entry  # noqa: E402

NAME = "label_maps"
SMOKE = {"num_images": 4}
ZOO_ROWS = {
    "M1 (CAM)": "m1",
    "M2 (query cross-attention)": "m2-irpe",
    "M4 (mean of branch cross-attention)": "m4",
    "ML-VPT (gated group-prompt attention)": "ml-vpt",
    "linear probe (head over patch tokens)": "linear-probe",
}


def pointing_game(model, images, objects, processor) -> dict[str, float]:
    """Hit rate of the label-map peaks and its chance level over every (image, present label)."""
    from mlic_hf.explain import explain_images

    hits, chance = [], []
    for image, records in zip(images, objects):
        (explanation,) = explain_images(model, [image], processor)
        height, width = explanation.maps.shape[1:]
        for label in sorted({r["label"] for r in records}):
            inside = np.zeros((height, width), dtype=bool)
            for record in records:
                if record["label"] == label:
                    x, y, w, h = record["box"]
                    inside[max(0, y):y + h, max(0, x):x + w] = True
            peak = np.unravel_index(np.argmax(explanation.maps[label]), (height, width))
            hits.append(bool(inside[peak]))
            chance.append(float(inside.mean()))
    return {"pointing_accuracy": float(np.mean(hits)), "chance": float(np.mean(chance)), "pairs": len(hits)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", nargs="*", default=None, metavar="NAME=PATH",
                        help="checkpoints to score (default: the model zoo's seed-0 runs that exist)")
    parser.add_argument("--zoo_root", type=Path, default=REPO / "outputs" / "zoo")
    parser.add_argument("--num_images", type=int, default=500, help="first N test images of fashion_clutter")
    parser.add_argument("--work_dir", type=Path, default=REPO / "outputs" / "label-maps-bench",
                        help="where --smoke saves its tiny checkpoint")
    parser.add_argument("--smoke", action="store_true",
                        help=f"a tiny random-init M1 checkpoint (resnet18, 64 px) built in --work_dir; {SMOKE}")
    parser.add_argument("--output_dir", "--results_dir", dest="output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.smoke:
        vars(args).update(SMOKE)
    check_minimum(args, ("num_images",), 1)
    return args


def resolve_checkpoints(args: argparse.Namespace) -> dict[str, Path]:
    if args.smoke and not args.checkpoints:
        return {"tiny-M1": tiny_checkpoint(args.work_dir / "tiny-m1-checkpoint")}
    if args.checkpoints:
        pairs = {}
        for item in args.checkpoints:
            name, sep, path = item.partition("=")
            if not sep or not name or not path:
                raise ValueError(f"--checkpoints takes NAME=PATH items, got {item!r}")
            pairs[name] = Path(path)
    else:
        pairs = {name: args.zoo_root / row / "seed0" for name, row in ZOO_ROWS.items()}
        pairs = {name: path for name, path in pairs.items() if (path / "config.json").is_file()}
        if not pairs:
            raise ValueError(f"no zoo checkpoints under {args.zoo_root}: run benchmarks/zoo.py --seeds 0 first, or "
                             "pass --checkpoints NAME=PATH")
    for name, path in pairs.items():
        if not (path / "config.json").is_file():
            raise ValueError(f"{name}: {path} is not a checkpoint folder (no config.json)")
    return pairs


def tiny_checkpoint(folder: Path) -> Path:
    """A random-init M1 (ResNet-18, 64 px, fashion_clutter's labels) saved in ``folder``: every step in seconds."""
    import torch

    import mlic_hf
    from mlic_hf.data import FASHION_MNIST_CLASSES

    torch.manual_seed(0)
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=64,
                                               num_labels=len(FASHION_MNIST_CLASSES),
                                               id2label=dict(enumerate(FASHION_MNIST_CLASSES)))
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(folder)
    return folder


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Label-map pointing game on fashion_clutter ({results['num_images']} test images; "
             f"{describe(results['provenance'])})", "",
             "A hit: the peak of a present label's map lies in a box of that label; chance: a uniformly random peak. "
             "Seconds (loading + every map) for orientation only: not a timing comparison.", "",
             "| model | checkpoint | pointing accuracy (%) | chance (%) | (image, label) pairs | seconds |",
             "|---|---|---:|---:|---:|---:|"]
    for name, row in results["rows"].items():
        lines.append(f"| {name} | `{row['checkpoint']}` | {100 * row['pointing_accuracy']:.1f} | "
                     f"{100 * row['chance']:.1f} | {row['pairs']} | {row['seconds']:.0f} |")
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    checkpoints = resolve_checkpoints(args)
    from mlic_hf.data import load_mlic_dataset
    from mlic_hf.inference import load_checkpoint

    test = load_mlic_dataset("fashion_clutter")["test"]
    test = test.select(range(min(args.num_images, len(test))))
    images, objects = list(test["image"]), list(test["objects"])
    results: dict[str, Any] = {"provenance": provenance(argv, __file__),
                               "settings": {"num_images": args.num_images, "smoke": args.smoke},
                               "num_images": len(images), "rows": {}}
    for name, path in checkpoints.items():
        start = time.perf_counter()
        model, processor = load_checkpoint(str(path))
        row = pointing_game(model, images, objects, processor)
        row["seconds"] = time.perf_counter() - start
        row["checkpoint"] = repo_relative(path.resolve())  # outside the repository: its folder's name only
        results["rows"][name] = row
        print(f"{name:<42} pointing {100 * row['pointing_accuracy']:5.1f}%  chance {100 * row['chance']:5.1f}%  "
              f"({row['pairs']} pairs)")
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
