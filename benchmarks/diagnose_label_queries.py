"""Do the label queries of M2 and M4 attend to different places for different labels? Their spread across labels
against their spread across positions.

The maps are those ``benchmarks/bench_label_maps.py`` scores: ``model.label_maps(pixel_values).label_maps``
(``forward(..., output_class_maps=True)``), on the model's feature grid (bench_label_maps then resizes them to the
image; here they are used as the model gives them). For M2 (``mlic-two-stage-irpe``) a label's map is the last
decoder layer's cross-attention of its query over the h·w image tokens (averaged over heads); for M4
(``mlic-multiscale-three-branch``) it is the mean of the three branches' maps resized to the largest branch grid,
and each branch's own map (``extras["branch_label_maps"]``) is measured too. Every map sums to 1 over its positions.

For one image, with A[k, p] the attention of label k's query to position p (K labels, P positions):

* spread across labels at position p: ``std_k A[k, p]`` (population std over the K labels); ``across_labels`` is
  its mean over the P positions, then over the images;
* spread across positions of label k: ``std_p A[k, p]`` (population std over the P positions); ``across_positions``
  is its mean over the K labels, then over the images;
* ``ratio = across_labels / across_positions``, and ``one_in = 1 / ratio`` (``one_in = 32``: a ratio of 1/32);
  both null for a one-position grid (e.g. M4's coarsest branch at a small image size), where both spreads are 0.

A ratio near 0 means every label's query reads nearly the same places (the map shows where the decoder reads, not
where each label is); a ratio near 1 means a position's attention varies as much from label to label as a label's
attention varies over the image.

    python benchmarks/diagnose_label_queries.py --checkpoint outputs/zoo/m2-irpe/seed0 [--num_images 20]
    python benchmarks/diagnose_label_queries.py --checkpoint M2=outputs/zoo/m2-irpe/seed0 \\
        --checkpoint M4=outputs/zoo/m4/seed0        # several rows in one file

A checkpoint without label queries (M1, ML-VPT, an M4 without region selection, ...) is refused with one
``error:`` line (exit status 2). Writes ``<output_dir>/label_queries.json`` (provenance, settings, one row per
checkpoint) and ``label_queries.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _common.py beside this script, also when a test loads it
from _common import RESULTS, check_minimum, describe, load_images, provenance, publish, repo_relative  # noqa: E402

from mlic_hf.cli import parse_json_object, script_entry  # noqa: E402

NAME = "label_queries"
#: the methods whose label maps are label queries' decoder cross-attention, and their README names
QUERY_METHODS = {"mlic-two-stage-irpe": "M2", "mlic-multiscale-three-branch": "M4"}


class _Parser(argparse.ArgumentParser):
    """A flag error is a ``ValueError``: one ``error:`` line and exit status 2 through ``script_entry``."""

    def error(self, message: str):
        raise ValueError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", action="append", required=True, metavar="[NAME=]DIR",
                        help="an M2 or M4 checkpoint folder, optionally named (repeat for several rows)")
    parser.add_argument("--dataset", default="fashion_clutter", help="a name scripts/train.py --dataset accepts")
    parser.add_argument("--data_dir", default=None, help="the dataset's root folder (generated datasets: optional)")
    parser.add_argument("--dataset_kwargs", default=None, help="JSON object of loader keywords (sizes, seed, ...)")
    parser.add_argument("--split", default=None, help="split to read (default: the dataset's test split)")
    parser.add_argument("--num_images", type=int, default=20, help="the first N images of the split")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    check_minimum(args, ("num_images", "batch_size"), 1)
    args.dataset_kwargs = parse_json_object(args.dataset_kwargs, "dataset_kwargs")
    args.checkpoints = {}
    for item in args.checkpoint:
        name, sep, path = item.partition("=")
        if not sep:
            name, path = Path(item).name or item, item
        if not name or not path:
            raise ValueError(f"--checkpoint takes DIR or NAME=DIR, got {item!r}")
        if name in args.checkpoints:
            raise ValueError(f"--checkpoint: the name {name!r} is given twice")
        args.checkpoints[name] = path
    return args


def load_query_model(checkpoint: str):
    """``(model, processor, method)`` of a checkpoint whose label maps are label queries' cross-attention; a
    ``ValueError`` for any other."""
    from transformers import AutoConfig

    from mlic_hf.configuration_utils import load_config
    from mlic_hf.inference import load_model, load_processor
    from mlic_hf.modeling_utils import check_checkpoint_path

    config = load_config(AutoConfig.from_pretrained, check_checkpoint_path(checkpoint))  # refused before loading
    model_type = config.model_type
    if model_type not in QUERY_METHODS:
        methods = ", ".join(f"{method} ({key!r})" for key, method in QUERY_METHODS.items())
        raise ValueError(f"{checkpoint} is a {model_type!r} checkpoint, which has no label queries with decoder "
                         f"cross-attention: this diagnosis is for {methods}")
    if not getattr(config, "region_selection", True):
        raise ValueError(f"{checkpoint} is an M4 checkpoint with region_selection=False: it has no label queries")
    model = load_model(checkpoint)
    return model, load_processor(checkpoint, model.config), QUERY_METHODS[model_type]


def spreads(maps) -> tuple[Any, Any]:
    """Per image of ``(B, K, h, w)`` maps: the mean over positions of the std across labels, and the mean over
    labels of the std across positions (population stds), each ``(B,)`` float64."""
    flat = maps.flatten(2).double()  # (B, K, P)
    across_labels = flat.std(dim=1, unbiased=False).mean(dim=1)
    across_positions = flat.std(dim=2, unbiased=False).mean(dim=1)
    return across_labels, across_positions


def summarise(per_image: dict[str, list[float]], grid: list[int], labels: int) -> dict[str, Any]:
    import numpy as np

    across_labels = float(np.mean(per_image["across_labels"]))
    across_positions = float(np.mean(per_image["across_positions"]))
    # a one-position grid (an attention map of 1 everywhere) has no spread: no ratio (null), rather than NaN
    ratio = across_labels / across_positions if across_positions > 0 else None
    return {"across_labels": across_labels, "across_positions": across_positions, "ratio": ratio,
            "one_in": 1 / ratio if ratio else None, "grid": grid, "labels": labels,
            "positions": grid[0] * grid[1]}


def measure(model, processor, images, batch_size: int) -> dict[str, Any]:
    """The spreads of the label maps (and, for M4, of each branch's maps) over ``images``."""
    import torch

    sums: dict[str, dict[str, list[float]]] = {}
    grids: dict[str, list[int]] = {}
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = processor(images=images[start:start + batch_size], return_tensors="pt")["pixel_values"]
            out = model.label_maps(pixels)
            named = {"label_maps": out.label_maps}
            branches = (out.extras or {}).get("branch_label_maps") or ()
            named.update({f"branch {i + 1}": maps for i, maps in enumerate(branches)})
            for key, maps in named.items():
                across_labels, across_positions = spreads(maps)
                entry = sums.setdefault(key, {"across_labels": [], "across_positions": []})
                entry["across_labels"] += across_labels.tolist()
                entry["across_positions"] += across_positions.tolist()
                grids[key] = list(maps.shape[-2:])
    labels = model.config.num_labels
    row = summarise(sums.pop("label_maps"), grids.pop("label_maps"), labels)
    if sums:
        row["branches"] = {key: summarise(value, grids[key], labels) for key, value in sums.items()}
    return row


def markdown(results: dict[str, Any]) -> str:
    s = results["settings"]
    lines = [f"# Label queries: spread across labels vs across positions ({describe(results['provenance'])})", "",
             f"The first {s['num_images']} images of {s['dataset']} {s['split']}; maps as model.label_maps gives them "
             "(feature grid). Across labels: std over the labels at a position, mean over positions and images; "
             "across positions: std over the positions of a label's map, mean over labels and images.", "",
             "| checkpoint | method | maps | grid | across labels | across positions | ratio | 1 / ratio |",
             "|---|---|---|---|---:|---:|---:|---:|"]
    for name, row in results["rows"].items():
        parts = [("label maps", row), *row.get("branches", {}).items()]
        for maps, r in parts:
            ratio, one_in = (("—", "—") if r["ratio"] is None else (f"{r['ratio']:.4g}", f"{r['one_in']:.4g}"))
            lines.append(f"| {name} | {row['method']} | {maps} | {r['grid'][0]}×{r['grid'][1]} | "
                         f"{r['across_labels']:.4g} | {r['across_positions']:.4g} | {ratio} | {one_in} |")
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    models = {name: load_query_model(path) for name, path in args.checkpoints.items()}  # refuse before measuring
    images, split = load_images(args)
    if not images:
        raise ValueError(f"split {split!r} of {args.dataset!r} has no images")
    rows = {}
    for name, (model, processor, method) in models.items():
        start = time.perf_counter()
        row = measure(model, processor, images, args.batch_size)
        rows[name] = {"method": method, "model_type": model.config.model_type,
                      "checkpoint": repo_relative(str(Path(args.checkpoints[name]).resolve())),
                      "image_size": model.config.image_size, **row, "seconds": time.perf_counter() - start}
    results = {"provenance": provenance(argv, __file__),
               "settings": {"dataset": args.dataset, "dataset_kwargs": args.dataset_kwargs, "split": split,
                            "num_images": len(images), "batch_size": args.batch_size},
               "rows": rows}
    publish(NAME, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
