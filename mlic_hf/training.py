"""Training with `transformers.Trainer`: one-cycle schedule, EMA of the weights evaluated beside the raw model,
early stopping on mAP, exact resume, and the paper presets.

Used by ``scripts/train.py``; importable for notebooks and tests::

    from mlic_hf.training import MLICTrainer, MLICTrainingArguments
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, EvalLoopOutput, IntervalStrategy, SaveStrategy

logger = logging.getLogger(__name__)

EMA_WEIGHTS_NAME = "ema.safetensors"


@dataclass
class MLICTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the MLIC recipe's extras and defaults (AdamW, one-cycle, EMA, mAP model selection).

    Extra fields:
        ema_decay: decay of the exponential moving average of the weights (ASL/ML-Decoder: 0.9997); 0 disables.
        ema_warmup: ramp the decay up as min(decay, (1 + t) / (10 + t)) over the first updates (timm's
            ModelEmaV3 warm-up), so short runs get a useful EMA too.
        one_cycle: use PyTorch's ``OneCycleLR`` (max lr = ``learning_rate``) instead of ``lr_scheduler_type``,
            as ASL, Query2Label and ML-Decoder do.
        one_cycle_pct_start: fraction of the steps spent increasing the learning rate (0.2 in those codes).
        channels_last: convert the model to ``torch.channels_last`` memory format before training.
        early_stopping_patience: stop after this many evaluations without a better ``metric_for_best_model``
            (``None`` disables).
    """

    ema_decay: float = field(default=0.9997, metadata={"help": "EMA decay of the weights (0 disables)."})
    ema_warmup: bool = field(default=True, metadata={"help": "Warm the EMA decay up over the first updates."})
    one_cycle: bool = field(default=True, metadata={"help": "OneCycleLR schedule (max lr = learning_rate)."})
    one_cycle_pct_start: float = field(default=0.2, metadata={"help": "OneCycleLR warm-up fraction."})
    channels_last: bool = field(
        default=False, metadata={"help": "Keep conv weights/activations channels-last (faster on CPU, AMP GPUs)."}
    )
    early_stopping_patience: int | None = field(
        default=None, metadata={"help": "Evaluations without improvement before stopping (None: never)."}
    )
    # defaults of the MLIC recipe
    learning_rate: float = field(default=1e-4, metadata={"help": "Peak learning rate (AdamW)."})
    weight_decay: float = field(default=1e-4, metadata={"help": "AdamW weight decay."})
    eval_strategy: IntervalStrategy | str = field(default="epoch", metadata={"help": "When to evaluate: no, steps, epoch."})
    save_strategy: SaveStrategy | str = field(default="epoch", metadata={"help": "When to checkpoint: no, steps, epoch, best."})
    metric_for_best_model: str | None = field(
        default="best_mAP", metadata={"help": "Model selection metric (best of raw and EMA mAP)."}
    )
    greater_is_better: bool | None = field(default=True, metadata={"help": "Larger metric is better."})
    report_to: None | str | list[str] = field(default="none", metadata={"help": "Experiment trackers."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Keep the image column for the on-the-fly transforms."}
    )
    save_total_limit: int | None = field(default=2, metadata={"help": "Checkpoints to keep."})
    logging_steps: float = field(default=10, metadata={"help": "Log every N steps."})

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not 0.0 < self.one_cycle_pct_start < 1.0:
            raise ValueError(f"one_cycle_pct_start must be in (0, 1), got {self.one_cycle_pct_start}")


class ModelEMA:
    """Exponential moving average of a model's floating-point parameters and buffers (kept in float32)."""

    def __init__(self, model: nn.Module, decay: float = 0.9997, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items() if v.is_floating_point()}

    def current_decay(self) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        decay = self.current_decay()
        state = model.state_dict()
        for key, shadow in self.shadow.items():
            shadow.lerp_(state[key].detach().float(), 1.0 - decay)
        self.num_updates += 1

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module):
        """Temporarily load the EMA weights into ``model`` (restored afterwards)."""
        state = model.state_dict()
        backup = {k: state[k].detach().clone() for k in self.shadow}
        self.copy_to(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for key, value in backup.items():
                    state[key].copy_(value)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        state = model.state_dict()
        for key, shadow in self.shadow.items():
            state[key].copy_(shadow.to(dtype=state[key].dtype, device=state[key].device))

    def save(self, path: str) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.contiguous().cpu() for k, v in self.shadow.items()}
        tensors["__num_updates__"] = torch.tensor([self.num_updates], dtype=torch.int64)
        save_file(tensors, path)

    def load(self, path: str) -> None:
        from safetensors.torch import load_file

        tensors = load_file(path)
        self.num_updates = int(tensors.pop("__num_updates__").item())
        missing = set(self.shadow) - set(tensors)
        if missing:
            raise ValueError(f"{path}: EMA state lacks {sorted(missing)[:5]}")
        for key in self.shadow:
            self.shadow[key].copy_(tensors[key])


class _EMAUpdateCallback(TrainerCallback):
    def __init__(self, trainer: MLICTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        if self.trainer.ema is not None:
            self.trainer.ema.update(self.trainer.accelerator.unwrap_model(self.trainer.model))


class EpochSetterCallback(TrainerCallback):
    """Tells the training transform the current epoch (per-sample augmentation seeds depend on it)."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.transform.epoch = int(math.floor((state.epoch or 0.0) + 1e-6))


class MLICTrainer(Trainer):
    """`Trainer` with OneCycleLR, a weight EMA evaluated beside the raw model, and early stopping.

    Every evaluation reports the raw model's metrics (``eval_mAP``, ...), the EMA model's (``eval_ema_mAP``, ...)
    and ``eval_best_mAP`` = the better of the two, which selects the best checkpoint by default. Checkpoints hold
    the EMA state (``ema.safetensors``) so that ``resume_from_checkpoint`` continues exactly.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        targs = self.args
        if getattr(targs, "channels_last", False):
            self.model.to(memory_format=torch.channels_last)
        self.ema = ModelEMA(self.model, targs.ema_decay, targs.ema_warmup) if getattr(targs, "ema_decay", 0) else None
        if self.ema is not None:
            self.add_callback(_EMAUpdateCallback(self))
        patience = getattr(targs, "early_stopping_patience", None)
        if patience:
            from transformers import EarlyStoppingCallback

            self.add_callback(EarlyStoppingCallback(early_stopping_patience=patience))

    # --- schedule -------------------------------------------------------------------------------------------
    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if not getattr(self.args, "one_cycle", False) or self.lr_scheduler is not None:
            return super().create_scheduler(num_training_steps, optimizer)
        optimizer = optimizer if optimizer is not None else self.optimizer
        self.lr_scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self.args.learning_rate,
            total_steps=max(num_training_steps, 2),
            pct_start=self.args.one_cycle_pct_start,
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    # --- evaluation of raw and EMA weights ------------------------------------------------------------------
    def evaluation_loop(self, dataloader, description, prediction_loss_only=None, ignore_keys=None,
                        metric_key_prefix="eval") -> EvalLoopOutput:
        output = super().evaluation_loop(dataloader, description, prediction_loss_only, ignore_keys,
                                         metric_key_prefix)
        if self.ema is None:
            if f"{metric_key_prefix}_mAP" in output.metrics:  # keep `best_mAP` (the default selection metric)
                output.metrics[f"{metric_key_prefix}_best_mAP"] = output.metrics[f"{metric_key_prefix}_mAP"]
                output.metrics[f"{metric_key_prefix}_best_is_ema"] = 0.0
            return output
        model = self.accelerator.unwrap_model(self.model)
        with self.ema.swapped_into(model):
            ema_output = super().evaluation_loop(dataloader, f"{description} (EMA)", prediction_loss_only,
                                                 ignore_keys, f"{metric_key_prefix}_ema")
        metrics = dict(output.metrics)
        metrics.update(ema_output.metrics)
        raw, ema = metrics.get(f"{metric_key_prefix}_mAP"), metrics.get(f"{metric_key_prefix}_ema_mAP")
        if raw is not None and ema is not None:
            metrics[f"{metric_key_prefix}_best_mAP"] = max(raw, ema)
            metrics[f"{metric_key_prefix}_best_is_ema"] = float(ema > raw)
        return EvalLoopOutput(output.predictions, output.label_ids, metrics, output.num_samples)

    # --- checkpoints ----------------------------------------------------------------------------------------
    def _save_checkpoint(self, model, trial):
        super()._save_checkpoint(model, trial)
        if self.ema is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            if os.path.isdir(folder):
                self.ema.save(os.path.join(folder, EMA_WEIGHTS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        self._load_ema(resume_from_checkpoint)

    def _load_best_model(self):
        super()._load_best_model()
        if self.state.best_model_checkpoint:
            self._load_ema(self.state.best_model_checkpoint)

    def _load_ema(self, folder: str) -> None:
        path = os.path.join(folder, EMA_WEIGHTS_NAME)
        if self.ema is not None and os.path.isfile(path):
            self.ema.load(path)
        elif self.ema is not None:
            logger.warning("%s has no %s: the EMA restarts from the current weights", folder, EMA_WEIGHTS_NAME)

    def use_best_weights(self, metrics: dict, prefix: str = "eval") -> bool:
        """Load the EMA weights into the model if they scored better in ``metrics``; returns True if it did."""
        if self.ema is not None and metrics.get(f"{prefix}_best_is_ema", 0.0) > 0.5:
            self.ema.copy_to(self.accelerator.unwrap_model(self.model))
            return True
        return False
