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
from mlic_hf.training import HubPushError, parse_args, run_training


def main(argv=None) -> int:
    """Exit status 0; 2 with one ``error: ...`` line on stderr for a user's mistake (a flag, config field, file,
    an empty split, a resume without a complete checkpoint) or a failed Hub push after the model was saved."""
    try:
        model_args, data_args, training_args = parse_args(argv)
        logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
        transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
        run_training(model_args, data_args, training_args)
    except (ValueError, FileNotFoundError, HubPushError) as err:
        print(f"error: {_one_line(err)}", file=sys.stderr)
        return 2
    return 0


def _one_line(err: BaseException) -> str:
    # some messages (HfArgumentParser's, JSON decoding's) span lines: the rule is one line per error
    return " ".join(str(err).split()) or type(err).__name__


if __name__ == "__main__":
    sys.exit(main())
