"""Do the label maps point at the labelled objects? The pointing game on ``fashion_clutter``, whose garment boxes
are known.

For every test image and every label present in it, the peak of the label's map (resized to the 128-px image) is a
hit when it falls inside a box of a garment of that label. The chance level of a peak drawn uniformly at random is
the fraction of the image those boxes cover, averaged the same way; a map that is no better than a constant scores
about that. Checkpoints are the model zoo's (``benchmarks/zoo.py``, seed 0) unless ``--checkpoints`` names others.

    python benchmarks/bench_label_maps.py                       # the zoo's M1, M2, M4, ML-VPT and linear probe
    python benchmarks/bench_label_maps.py --checkpoints mine=outputs/run --num_images 200

Prints a table and writes ``benchmarks/results/label_maps.md`` and ``label_maps.json`` (``--results_dir``).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
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


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", nargs="*", default=None, metavar="NAME=PATH",
                        help="checkpoints to score (default: the model zoo's seed-0 runs that exist)")
    parser.add_argument("--zoo_root", type=Path, default=REPO / "outputs" / "zoo")
    parser.add_argument("--num_images", type=int, default=500, help="first N test images of fashion_clutter")
    parser.add_argument("--results_dir", type=Path, default=REPO / "benchmarks" / "results")
    return parser.parse_args(argv)


def resolve_checkpoints(args) -> dict[str, Path]:
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


def write_results(results: dict, args) -> None:
    args.results_dir.mkdir(parents=True, exist_ok=True)
    (args.results_dir / "label_maps.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [f"# Label-map pointing game on fashion_clutter ({results['num_images']} test images)", "",
             f"{results['date']}, {results['machine']}. A hit: the peak of a present label's map lies in a box of "
             "that label; chance: a uniformly random peak.", "",
             "| model | pointing accuracy (%) | chance (%) | (image, label) pairs | seconds |",
             "|---|---:|---:|---:|---:|"]
    for name, row in results["rows"].items():
        lines.append(f"| {name} | {100 * row['pointing_accuracy']:.1f} | {100 * row['chance']:.1f} | "
                     f"{row['pairs']} | {row['seconds']:.0f} |")
    (args.results_dir / "label_maps.md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        if args.num_images < 1:
            raise ValueError(f"--num_images must be at least 1, got {args.num_images}")
        checkpoints = resolve_checkpoints(args)
        from mlic_hf.data import load_mlic_dataset
        from mlic_hf.inference import load_checkpoint

        test = load_mlic_dataset("fashion_clutter")["test"]
        test = test.select(range(min(args.num_images, len(test))))
        images, objects = list(test["image"]), list(test["objects"])
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = {}
    for name, path in checkpoints.items():
        start = time.perf_counter()
        model, processor = load_checkpoint(str(path))
        rows[name] = pointing_game(model, images, objects, processor)
        rows[name]["seconds"] = time.perf_counter() - start
        rows[name]["checkpoint"] = str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)
        print(f"{name:<42} pointing {100 * rows[name]['pointing_accuracy']:5.1f}%  chance "
              f"{100 * rows[name]['chance']:5.1f}%  ({rows[name]['pairs']} pairs)")
    results = {"date": date.today().isoformat(), "machine": f"{platform.processor() or platform.machine()}, "
               f"{platform.system()}", "num_images": len(images), "rows": rows}
    write_results(results, args)
    print(f"wrote {args.results_dir / 'label_maps.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
