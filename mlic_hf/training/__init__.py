"""Training of the mlic_hf methods with `transformers.Trainer`, behind ``scripts/train.py`` and
``scripts/evaluate.py``; importable for notebooks and tests::

    from mlic_hf.training import MLICTrainer, MLICTrainingArguments, parse_args, run_training

- :mod:`.arguments`: :class:`MLICTrainingArguments` (the recipe's extras and defaults);
- :mod:`.ema`: :class:`ModelEMA`, the weight average evaluated beside the raw model;
- :mod:`.trainer`: :class:`MLICTrainer` (one-cycle schedule, EMA, early stopping on mAP, exact resume) and its
  callbacks;
- :mod:`.checkpoints`: crash-safe checkpoints (the completion marker written last, what ``last`` resumes from);
- :mod:`.experiment`: the command-line experiment (arguments, model and splits, the run with its test report and
  run files, evaluation of a saved checkpoint);
- :mod:`.calibrate`: per-class thresholds of a saved checkpoint chosen on a validation split;
- :mod:`.cpu_bf16`: the work-around for torch's wrong CPU bf16 weight gradients of convolutions on maps narrower
  than their stride (applied by the trainer under ``--bf16`` on a CPU).
"""

from . import experiment as _experiment
from .arguments import MLICTrainingArguments
from .calibrate import calibrate_checkpoint
from .checkpoints import COMPLETE_MARKER
from .cpu_bf16 import guard_cpu_bf16_convolutions
from .ema import EMA_WEIGHTS_NAME, ModelEMA
from .experiment import *  # noqa: F403  (the command-line experiment: see experiment.__all__)
from .trainer import EpochSetterCallback, MLICTrainer

__all__ = ["COMPLETE_MARKER", "calibrate_checkpoint", "EMA_WEIGHTS_NAME", "EpochSetterCallback", "MLICTrainer", "MLICTrainingArguments",
           "ModelEMA", "guard_cpu_bf16_convolutions", *_experiment.__all__]
