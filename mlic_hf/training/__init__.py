"""Training of the mlic_hf methods with `transformers.Trainer`, behind ``scripts/train.py``; importable for notebooks
and tests::

    from mlic_hf.training import MLICTrainer, MLICTrainingArguments, parse_args, run_training

- :mod:`.arguments`: the command line, one dataclass per concern (:class:`MLICTrainingArguments`,
  :class:`ModelArguments`, :class:`DataArguments`) and :func:`parse_args` with presets;
- :mod:`.build`: the pieces of a run (model, splits, transforms, trainer);
- :mod:`.run`: :func:`run_training`, the run itself;
- :mod:`.run_files`: what a finished run leaves (``mlic_run.json``, predictions, the card's label maps, the upload);
- :mod:`.trainer`: :class:`MLICTrainer` (one-cycle schedule, EMA, early stopping on mAP, exact resume) and its
  callbacks;
- :mod:`.ema`: :class:`ModelEMA`, the weight average evaluated beside the raw model;
- :mod:`.checkpoints`: crash-safe checkpoints (the completion marker written last, what ``last`` resumes from);
- :mod:`.cpu_bf16`: the work-around for torch's wrong CPU bf16 weight gradients of convolutions on maps narrower
  than their stride (applied by the trainer under ``--bf16`` on a CPU).

Evaluating or calibrating a saved checkpoint trains nothing: that is :mod:`mlic_hf.evaluation`.
"""

from .arguments import DataArguments, MLICTrainingArguments, ModelArguments, parse_args, resolve_method
from .build import attach_transforms, build_config, build_model, checkpoint_config, load_splits, make_trainer, split_names
from .checkpoints import COMPLETE_MARKER, last_complete_checkpoint
from .cpu_bf16 import guard_cpu_bf16_convolutions
from .ema import EMA_WEIGHTS_NAME, ModelEMA
from .run import run_training
from .run_files import HubPushError, write_run_files
from .trainer import EpochSetterCallback, MLICTrainer

__all__ = [
    "COMPLETE_MARKER",
    "DataArguments",
    "EMA_WEIGHTS_NAME",
    "EpochSetterCallback",
    "HubPushError",
    "MLICTrainer",
    "MLICTrainingArguments",
    "ModelArguments",
    "ModelEMA",
    "attach_transforms",
    "build_config",
    "build_model",
    "checkpoint_config",
    "guard_cpu_bf16_convolutions",
    "last_complete_checkpoint",
    "load_splits",
    "make_trainer",
    "parse_args",
    "resolve_method",
    "run_training",
    "split_names",
    "write_run_files",
]
