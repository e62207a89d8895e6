#!/usr/bin/env python
"""Metrics of a checkpoint on a dataset split, as JSON.

    python scripts/evaluate.py --checkpoint outputs/demo --dataset fashion_mosaic --split test --output metrics.json
    python scripts/evaluate.py --checkpoint outputs/run --dataset_name my_saved_dataset --split test
    python scripts/evaluate.py --checkpoint outputs/run --dataset_name parquet --data_files '{"test": "test.parquet"}'

With ``--dataset_name`` (any 🤗 Datasets dataset, the flags of ``scripts/train.py``), the labels are read with the
checkpoint's label names; the default split is ``test``, else the validation split. A checkpoint with calibrated
per-class thresholds (``config.thresholds``) also gets CP/CR/CF1/OP/OR/OF1 at them (``*_calibrated``), beside the
metrics at ``--threshold``. A bad flag, checkpoint or split is one ``error: ...`` line and exit status 2.
"""

import argparse
import json
import sys

from transformers import HfArgumentParser

import mlic_hf  # noqa: F401
from mlic_hf.cli import script_entry
from mlic_hf.file_utils import atomic_write
from mlic_hf.data.selection import DatasetArguments
from mlic_hf.evaluation import SplitArguments, evaluate_checkpoint
from mlic_hf.metrics import AP_MODES, format_metrics_table


def build_parser() -> HfArgumentParser:
    parser = HfArgumentParser((DatasetArguments, SplitArguments), description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--threshold", type=float, default=0.5, help="probability threshold of CP/CR/CF1/OP/OR/OF1")
    parser.add_argument("--top_k", type=int, default=3, help="k of the top-k metrics")
    parser.add_argument("--ap_mode", default="non_interpolated", choices=AP_MODES)
    parser.add_argument("--output", default=None, help="write the JSON here (default: print it)")
    return parser


@script_entry()
def main(argv=None) -> int:
    data, split, args = build_parser().parse_args_into_dataclasses(args=argv)
    result = evaluate_checkpoint(args.checkpoint, data, split, threshold=args.threshold, top_k=args.top_k,
                                 ap_mode=args.ap_mode)
    text = json.dumps(result, indent=2)
    if args.output:
        with atomic_write(args.output, "w") as handle:
            handle.write(text + "\n")
        print(format_metrics_table({**result["metrics"], "per_class_AP": result["per_class_AP"]}))
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
