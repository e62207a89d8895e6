"""What M4's hierarchical scale attention does to the features of a trained checkpoint: the size of the shared term.

M4 (``mlic-multiscale-three-branch``, :mod:`mlic_hf.models.multiscale_three_branch.multiscale`) fuses its
three convolution outputs x1 (2H), x2 (H), x3 (H/2) by eqs. 2-5: x2, x3 are interpolated to x1's grid (eq. 2: x2′,
x3′, the checkpoint's own interpolation mode), multiplied element-wise into the shared term
``m = x1 ⊙ x2′ ⊙ x3′`` (eq. 3), and ``m`` is added to every map (eq. 4: ``x_i + m``). Over the first
``--num_images`` images of the dataset's test split, preprocessed by the checkpoint's own image processor, this
measures on the model's own outputs
(``output_hidden_states=True``: ``extras["scales"]`` are x1, x2, x3 as the convolutions gave them,
``extras["scales_after_attention"][0]`` is x1 + m), the model code unchanged:

* ``rms[x]`` for x in x1, x2′, x3′, m: sqrt of the mean of x² over every element (image, channel, row, column) of
  the maps on x1's grid, all images pooled;
* ``m_rms_over_x1_rms`` = rms[m] / rms[x1];
* ``max_abs_m``: the largest |m| over every element;
* ``fraction_m_exceeds_x1``: the fraction of those elements where |m| > |x1| (a "position" is one element: image,
  channel, row, column);
* ``rms_native[x2]``, ``rms_native[x3]``: the RMS of x2, x3 on their own grids (before eq. 2), for reference;
* ``consistency``: max |(x1 + m)_model − x1 − m| / max |m|, m recomputed here from x1, x2, x3 against the model's
  own eq. 4 output (float32 rounding only: a check that the measured m is the model's).

    python benchmarks/diagnose_m4_scale.py --checkpoint outputs/zoo/m4/seed0 [--num_images 64]
    python benchmarks/diagnose_m4_scale.py --checkpoint DIR --dataset fashion_clutter \\
        --dataset_kwargs '{"num_train": 48, "num_validation": 16, "num_test": 16}' --num_images 4   # a quick run

A checkpoint of another method, or an M4 checkpoint without the scale attention (``scale_attention=False``), is
refused with one ``error:`` line (exit status 2). Writes ``<output_dir>/m4_scale.json`` (provenance, settings,
statistics) and ``m4_scale.md`` (``--name`` renames both, e.g. to keep the 96-px and 192-px runs apart).
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

NAME = "m4_scale"
M4_TYPE = "mlic-multiscale-three-branch"
MAPS = ("x1", "x2'", "x3'", "m")


class _Parser(argparse.ArgumentParser):
    """A flag error is a ``ValueError``: one ``error:`` line and exit status 2 through ``script_entry``."""

    def error(self, message: str):
        raise ValueError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = _Parser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="a trained M4 checkpoint folder")
    parser.add_argument("--dataset", default="fashion_clutter", help="a name scripts/train.py --dataset accepts")
    parser.add_argument("--data_dir", default=None, help="the dataset's root folder (generated datasets: optional)")
    parser.add_argument("--dataset_kwargs", default=None, help="JSON object of loader keywords (sizes, seed, ...)")
    parser.add_argument("--split", default=None, help="split to read (default: the dataset's test split)")
    parser.add_argument("--num_images", type=int, default=64, help="the first N images of the split")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--name", default=NAME, help="results file name (without extension)")
    parser.add_argument("--output_dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    check_minimum(args, ("num_images", "batch_size"), 1)
    args.dataset_kwargs = parse_json_object(args.dataset_kwargs, "dataset_kwargs")
    return args


def load_m4(checkpoint: str):
    """``(model, processor)`` of an M4 checkpoint with the scale attention; a ``ValueError`` for anything else."""
    from mlic_hf.inference import load_model, load_processor

    config = load_config_only(checkpoint)  # refused before any weights are loaded
    if config.model_type != M4_TYPE:
        raise ValueError(f"{checkpoint} is a {config.model_type!r} checkpoint: this diagnosis measures M4's "
                         f"hierarchical scale attention and needs a {M4_TYPE!r} (M4) checkpoint")
    if not config.scale_attention:
        raise ValueError(f"{checkpoint} is an M4 checkpoint with scale_attention=False: it has no shared term m "
                         "to measure")
    model = load_model(checkpoint)
    return model, load_processor(checkpoint, model.config)


def load_config_only(checkpoint: str):
    """The checkpoint's config (its ``model_type`` tells the method), the path checked as inference checks it."""
    from transformers import AutoConfig

    from mlic_hf.configuration_utils import load_config
    from mlic_hf.modeling_utils import check_checkpoint_path

    return load_config(AutoConfig.from_pretrained, check_checkpoint_path(checkpoint))


class ScaleStatistics:
    """Running sums of the statistics over batches (float64), fed the model's own x1, x2, x3 and eq. 4 output."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.squares = dict.fromkeys(MAPS, 0.0)
        self.native_squares = {"x2": 0.0, "x3": 0.0}
        self.native_count = {"x2": 0, "x3": 0}
        self.count = 0
        self.exceeds = 0
        self.max_abs_m = 0.0
        self.max_deviation = 0.0
        self.grids: list[list[int]] | None = None

    def terms(self, scales, fused_x1):
        """``{"x1", "x2'", "x3'", "m"}`` of one batch (eqs. 2-3, the module's own interpolation) and the deviation
        of the model's eq. 4 output from x1 + m."""
        from mlic_hf.models.multiscale_three_branch.multiscale import interpolate

        x1, x2, x3 = scales
        size = tuple(x1.shape[-2:])
        x2a, x3a = interpolate(x2, size, self.mode), interpolate(x3, size, self.mode)
        m = x1 * x2a * x3a
        return {"x1": x1, "x2'": x2a, "x3'": x3a, "m": m}, float((fused_x1 - x1 - m).abs().max())

    def add(self, scales, fused_x1) -> None:
        terms, deviation = self.terms(scales, fused_x1)
        self.grids = [list(x.shape[-2:]) for x in scales]
        for key, value in terms.items():
            self.squares[key] += float(value.double().pow(2).sum())
        for key, value in zip(("x2", "x3"), scales[1:]):
            self.native_squares[key] += float(value.double().pow(2).sum())
            self.native_count[key] += value.numel()
        m, x1 = terms["m"], terms["x1"]
        self.count += m.numel()
        self.exceeds += int((m.abs() > x1.abs()).sum())
        self.max_abs_m = max(self.max_abs_m, float(m.abs().max()))
        self.max_deviation = max(self.max_deviation, deviation)

    def result(self) -> dict[str, Any]:
        rms = {key: (value / self.count) ** 0.5 for key, value in self.squares.items()}
        return {"rms": rms, "m_rms_over_x1_rms": rms["m"] / rms["x1"] if rms["x1"] > 0 else float("inf"),
                "max_abs_m": self.max_abs_m, "fraction_m_exceeds_x1": self.exceeds / self.count,
                "elements": self.count,
                "rms_native": {key: (value / self.native_count[key]) ** 0.5
                               for key, value in self.native_squares.items()},
                "grids": self.grids,
                "consistency": self.max_deviation / self.max_abs_m if self.max_abs_m > 0 else 0.0}


def measure(model, processor, images, batch_size: int) -> dict[str, Any]:
    import torch

    stats = ScaleStatistics(model.scale_attention.mode)
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            pixels = processor(images=images[start:start + batch_size], return_tensors="pt")["pixel_values"]
            out = model(pixel_values=pixels, output_hidden_states=True, return_dict=True)
            stats.add(out.extras["scales"], out.extras["scales_after_attention"][0])
    return stats.result()


def markdown(results: dict[str, Any]) -> str:
    s, r = results["settings"], results["statistics"]
    grids = " / ".join("×".join(map(str, g)) for g in r["grids"])
    lines = [f"# M4 hierarchical scale attention: size of the shared term ({describe(results['provenance'])})", "",
             f"Checkpoint `{s['checkpoint']}` ({s['image_size']} px, interpolation {s['interpolation']}, grids "
             f"{grids}); the first {s['num_images']} images of {s['dataset']} {s['split']}. m = x1 ⊙ x2′ ⊙ x3′ "
             "(eq. 3) on x1's grid, added to every map (eq. 4). RMS and |m| > |x1| over every element (image, "
             "channel, row, column).", "",
             "| map | RMS |", "|---|---:|"]
    lines += [f"| {key} | {r['rms'][key]:.4g} |" for key in MAPS]
    lines += ["", "| statistic | value |", "|---|---:|",
              f"| RMS(m) / RMS(x1) | {r['m_rms_over_x1_rms']:.4g} |",
              f"| largest \\|m\\| | {r['max_abs_m']:.4g} |",
              f"| fraction of elements with \\|m\\| > \\|x1\\| | {r['fraction_m_exceeds_x1']:.4g} |",
              f"| RMS of x2, x3 on their own grids | {r['rms_native']['x2']:.4g}, {r['rms_native']['x3']:.4g} |",
              f"| elements | {r['elements']} |",
              f"| check: max \\|model's x1 + m − recomputed\\| / largest \\|m\\| | {r['consistency']:.2g} |"]
    return "\n".join(lines) + "\n"


@script_entry()
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    model, processor = load_m4(args.checkpoint)
    images, split = load_images(args)
    if not images:
        raise ValueError(f"split {split!r} of {args.dataset!r} has no images")
    start = time.perf_counter()
    statistics = measure(model, processor, images, args.batch_size)
    results = {"provenance": provenance(argv, __file__),
               "settings": {"checkpoint": repo_relative(str(Path(args.checkpoint).resolve())),
                            "model_type": model.config.model_type, "image_size": model.config.image_size,
                            "interpolation": model.scale_attention.mode, "dataset": args.dataset,
                            "dataset_kwargs": args.dataset_kwargs, "split": split, "num_images": len(images),
                            "batch_size": args.batch_size},
               "statistics": statistics, "seconds": time.perf_counter() - start}
    publish(args.name, results, markdown(results), folder=args.output_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
