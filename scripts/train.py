#!/usr/bin/env python
"""Train any registered mlic_hf method.

    python scripts/train.py --preset demo                      # the README's main job
    python scripts/train.py --preset m1 --dataset coco2014 --data_dir /data/coco
    accelerate launch scripts/train.py --preset demo
    torchrun --nproc_per_node 2 scripts/train.py --preset demo

All flags: ``python scripts/train.py --help`` (model, data and transformers TrainingArguments).
"""

import logging
import sys

import transformers

import mlic_hf  # noqa: F401  (registers the methods)
from mlic_hf.training import parse_args, run_training


def main(argv=None) -> int:
    try:
        model_args, data_args, training_args = parse_args(argv)
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
        transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
        run_training(model_args, data_args, training_args)
    except (ValueError, FileNotFoundError) as err:  # a user's mistake (flag, config field, file): one line
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
