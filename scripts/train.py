#!/usr/bin/env python
"""Train any registered mlic_hf method.

    python scripts/train.py --preset demo                      # the README's main job
    python scripts/train.py --preset m1 --dataset coco2014 --data_dir /data/coco
    accelerate launch scripts/train.py --preset demo
    torchrun --nproc_per_node 2 scripts/train.py --preset demo

All flags: ``python scripts/train.py --help`` (model, data and transformers TrainingArguments). A user's mistake (a
flag, config field, file, an empty split, a resume without a complete checkpoint) or a failed Hub push after the
model was saved is one ``error: ...`` line on stderr and exit status 2.
"""

import logging
import os
import sys

import transformers

import mlic_hf  # noqa: F401  (registers the methods)
from mlic_hf.cli import script_entry
from mlic_hf.training import HubPushError, parse_args, run_training


@script_entry(HubPushError)
def main(argv=None) -> int:
    model_args, data_args, training_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    transformers.utils.logging.set_verbosity(training_args.get_process_log_level())
    outcome = run_training(model_args, data_args, training_args)
    if outcome["report"] is not None:  # the main process
        print(f"\n{outcome['report']}")
        print(f"Saved model to {os.path.abspath(training_args.output_dir)}")
        if outcome["hub_url"]:
            print(f"Pushed to {outcome['hub_url']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
