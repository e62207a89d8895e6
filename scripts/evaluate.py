#!/usr/bin/env python
"""Metrics of a checkpoint on a dataset split, as JSON.

    python scripts/evaluate.py --checkpoint outputs/demo --dataset fashion_mosaic --split test --output metrics.json
    python scripts/evaluate.py --checkpoint outputs/run --dataset_name my_saved_dataset --split test
    python scripts/evaluate.py --checkpoint outputs/run --dataset_name parquet --data_files '{"test": "test.parquet"}'

With ``--dataset_name`` (any 🤗 Datasets dataset, the flags of ``scripts/train.py``), the labels are read with the
checkpoint's label names; the default split is ``test``, else the validation split. A checkpoint with calibrated
per-class thresholds (``config.thresholds``) also gets CP/CR/CF1/OP/OR/OF1 at them (``*_calibrated``), beside the
metrics at ``--threshold``.
"""

import argparse
import json
import sys

from transformers import HfArgumentParser

import mlic_hf  # noqa: F401
from mlic_hf.data.hf_dataset import HFDatasetArguments
from mlic_hf.training import evaluate_checkpoint, parse_json_object
from mlic_hf.metrics import format_metrics_table


def main(argv=None) -> int:
    parser = HfArgumentParser(HFDatasetArguments, description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory or Hub id")
    parser.add_argument("--dataset", default="fashion_mosaic", help="dataset name (see mlic_hf.data.DATASETS)")
    parser.add_argument("--data_dir", default=None, help="dataset root folder")
    parser.add_argument("--dataset_kwargs", default=None, help="JSON object of loader options")
    parser.add_argument("--split", default=None, help="split to evaluate (default: the dataset's test split)")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--top_k", type=int, default=3)
    parser.add_argument("--ap_mode", default="non_interpolated", choices=["non_interpolated", "interpolated", "11point"])
    parser.add_argument("--max_samples", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42, help=(
        "with --dataset_name: the training run's --seed, which rebuilds the validation split it made from train"))
    parser.add_argument("--output", default=None, help="write the JSON here (default: print it)")
    try:
        source, args = parser.parse_args_into_dataclasses(args=argv)
        if source.dataset_name and parse_json_object(args.dataset_kwargs, "dataset_kwargs"):
            raise ValueError("--dataset_kwargs sets options of a built-in dataset's loader, not of --dataset_name")
        result = evaluate_checkpoint(
            args.checkpoint,
            dataset=args.dataset,
            data_dir=args.data_dir,
            split=args.split,
            dataset_kwargs=parse_json_object(args.dataset_kwargs, "dataset_kwargs"),
            batch_size=args.batch_size,
            threshold=args.threshold,
            top_k=args.top_k,
            ap_mode=args.ap_mode,
            max_samples=args.max_samples,
            source=source,
            seed=args.seed,
        )
    except (ValueError, FileNotFoundError, OSError) as err:  # a flag, file or split the user got wrong
        print(f"error: {' '.join(str(err).split())}", file=sys.stderr)
        return 2
    text = json.dumps(result, indent=2)
    if args.output:
        with open(args.output, "w") as handle:
            handle.write(text + "\n")
        print(format_metrics_table({**result["metrics"], "per_class_AP": result["per_class_AP"]}))
        print(f"wrote {args.output}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
