"""Training of the mlic_hf methods with `transformers.Trainer`, behind ``scripts/train.py`` and
``scripts/evaluate.py``; importable for notebooks and tests::

    from mlic_hf.training import MLICTrainer, MLICTrainingArguments, parse_args, run_training

- :mod:`.arguments`: :class:`MLICTrainingArguments` (the recipe's extras and defaults);
- :mod:`.ema`: :class:`ModelEMA`, the weight average evaluated beside the raw model;
- :mod:`.trainer`: :class:`MLICTrainer` (one-cycle schedule, EMA, early stopping on mAP, exact resume) and its
  callbacks;
- :mod:`.experiment`: the command-line experiment (arguments, model and splits, the run with its test report and
  run files, evaluation of a saved checkpoint).
"""

from .arguments import MLICTrainingArguments
from .ema import EMA_WEIGHTS_NAME, ModelEMA
from .experiment import (
    DataArguments,
    ModelArguments,
    attach_transforms,
    build_config,
    build_model,
    checkpoint_config,
    evaluate_checkpoint,
    last_complete_checkpoint,
    load_splits,
    make_trainer,
    parse_args,
    parse_json_object,
    resolve_method,
    run_training,
    split_names,
    write_run_files,
)
from .trainer import EpochSetterCallback, MLICTrainer

__all__ = [
    "MLICTrainingArguments",
    "EMA_WEIGHTS_NAME",
    "ModelEMA",
    "EpochSetterCallback",
    "MLICTrainer",
    "ModelArguments",
    "DataArguments",
    "resolve_method",
    "parse_json_object",
    "parse_args",
    "build_config",
    "checkpoint_config",
    "build_model",
    "split_names",
    "load_splits",
    "attach_transforms",
    "make_trainer",
    "run_training",
    "last_complete_checkpoint",
    "write_run_files",
    "evaluate_checkpoint",
]
