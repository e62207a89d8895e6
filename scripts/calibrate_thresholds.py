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
from mlic_hf.cli import script_entry
from mlic_hf.file_utils import atomic_write
from mlic_hf.data.selection import DatasetArguments
from mlic_hf.evaluation import SplitArguments, calibrate_checkpoint


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser((DatasetArguments, SplitArguments), description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--output_dir", default=None, help="save here (default: into --checkpoint, config only)")
    parser.add_argument("--objective", default="f1", choices=["f1", "precision"],
                        help="f1: best F1 per class; precision: lowest threshold reaching --target_precision")
    parser.add_argument("--target_precision", type=float, default=None, help="with --objective precision, in (0, 1]")
    parser.add_argument("--output", default=None, help="also write the report as JSON here")
    return parser


@script_entry()
def main(argv=None) -> int:
    data, split, args = build_parser().parse_args_into_dataclasses(args=argv)
    report = calibrate_checkpoint(args.checkpoint, data, split, output_dir=args.output_dir,
                                  objective=args.objective, target_precision=args.target_precision)
    print(format_report(report))
    if args.output:
        with atomic_write(args.output, "w") as handle:
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
