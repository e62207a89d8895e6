#!/usr/bin/env python
"""Choose per-class decision thresholds for a checkpoint on a validation split and save them in its config.

    python scripts/calibrate_thresholds.py --checkpoint outputs/demo                      # best F1 per class
    python scripts/calibrate_thresholds.py --checkpoint outputs/demo --objective precision --target_precision 0.9
    python scripts/calibrate_thresholds.py --checkpoint user/model --output_dir calibrated  # a Hub checkpoint
    python scripts/calibrate_thresholds.py --checkpoint outputs/run --dataset_name my_saved_dataset --seed 42

The thresholds are stored in ``config.json`` (``thresholds``, ``thresholds_objective``); ``scripts/predict.py``,
``multilabel_pipeline`` and the demo app use them unless a threshold is given, and ``scripts/evaluate.py`` reports
the metrics at 0.5 and at them. ``scripts/train.py`` already calibrates on its eval split after training; use this
for another objective or split, or a checkpoint trained elsewhere. The dataset flags are those of
``scripts/evaluate.py``; the default split is the dataset's validation split (never calibrate on the test split you
report). Prints the thresholds and CF1/OF1 on the calibration split before and after; ``--output`` writes the report
as JSON.
"""

import argparse
import json
import sys

from transformers import HfArgumentParser

import mlic_hf  # noqa: F401
from mlic_hf.data.hf_dataset import HFDatasetArguments
from mlic_hf.training import calibrate_checkpoint, parse_json_object


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser(HFDatasetArguments, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--output_dir", default=None, help="save here (default: into --checkpoint, config only)")
    parser.add_argument("--objective", default="f1", choices=["f1", "precision"],
                        help="f1: best F1 per class; precision: lowest threshold reaching --target_precision")
    parser.add_argument("--target_precision", type=float, default=None, help="with --objective precision, in (0, 1]")
    parser.add_argument("--dataset", default="fashion_mosaic", help="dataset name (see mlic_hf.data.DATASETS)")
    parser.add_argument("--data_dir", default=None, help="dataset root folder")
    parser.add_argument("--dataset_kwargs", default=None, help="JSON object of loader options")
    parser.add_argument("--split", default=None, help="calibration split (default: the dataset's validation split)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42, help=(
        "with --dataset_name: the training run's --seed, which rebuilds the validation split it made from train"))
    parser.add_argument("--output", default=None, help="also write the report as JSON here")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    try:
        source, args = parser.parse_args_into_dataclasses(args=argv)
        if source.dataset_name and parse_json_object(args.dataset_kwargs, "dataset_kwargs"):
            raise ValueError("--dataset_kwargs sets options of a built-in dataset's loader, not of --dataset_name")
        report = calibrate_checkpoint(
            args.checkpoint, output_dir=args.output_dir, objective=args.objective,
            target_precision=args.target_precision, dataset=args.dataset, data_dir=args.data_dir, split=args.split,
            dataset_kwargs=parse_json_object(args.dataset_kwargs, "dataset_kwargs"), batch_size=args.batch_size,
            max_samples=args.max_samples, source=source, seed=args.seed,
        )
    except (ValueError, FileNotFoundError, OSError) as err:  # a flag, file or split the user got wrong
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.output:
        with open(args.output, "w") as handle:
            json.dump(report, handle, indent=2)
            handle.write("\n")
        print(f"wrote {args.output}")
    return 0


def format_report(report: dict) -> str:
    """The thresholds and the metrics before/after, as text."""
    width = max(len(name) for name in report["thresholds"])
    lines = [f"per-class thresholds ({report['objective']}) on {report['dataset']} {report['split']} "
             f"({report['num_samples']} images), saved to {report['saved_to']}:"]
    lines += [f"  {name:<{width}}  {value:.4f}" for name, value in report["thresholds"].items()]
    before, after = report["metrics_at_0.5"], report["metrics_calibrated"]
    lines.append("on the calibration split:  " + "  ".join(
        f"{key} {100 * before[key]:.2f} -> {100 * after[key]:.2f}" for key in ("CP", "CR", "CF1", "OF1")))
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
