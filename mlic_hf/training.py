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
import weakref
from dataclasses import dataclass, field

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import (
    PREFIX_CHECKPOINT_DIR,
    EvalLoopOutput,
    IntervalStrategy,
    SaveStrategy,
    SchedulerType,
)

logger = logging.getLogger(__name__)

EMA_WEIGHTS_NAME = "ema.safetensors"


@dataclass
class MLICTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the MLIC recipe's extras and defaults (AdamW, one-cycle, EMA, mAP model selection).

    Extra fields:
        ema_decay: decay of the exponential moving average of the weights (ASL/ML-Decoder: 0.9997); 0 disables.
        ema_warmup: ramp the decay up as min(decay, (1 + t) / (10 + t)) over the first updates (timm's
            ModelEmaV3 warm-up), so short runs get a useful EMA too.
        one_cycle: use PyTorch's ``OneCycleLR`` (max lr = ``learning_rate``, warm-up ``one_cycle_pct_start``), as
            ASL, Query2Label and ML-Decoder do. It replaces transformers' schedulers, so with ``one_cycle`` true
            (the default) setting ``lr_scheduler_type`` (other than its default ``linear``), ``lr_scheduler_kwargs``
            or ``warmup_steps`` is an error rather than silently ignored; pass ``one_cycle=False`` to use them.
        one_cycle_pct_start: fraction of the steps spent increasing the learning rate (0.2 in those codes).
        channels_last: convert the model to ``torch.channels_last`` memory format before training.
        early_stopping_patience: stop after this many evaluations without a better ``metric_for_best_model``
            (``None`` disables).
    """

    ema_decay: float = field(default=0.9997, metadata={"help": "EMA decay of the weights (0 disables)."})
    ema_warmup: bool = field(default=True, metadata={"help": "Warm the EMA decay up over the first updates."})
    one_cycle: bool = field(default=True, metadata={"help": (
        "OneCycleLR schedule (max lr = learning_rate, warm-up one_cycle_pct_start). It replaces transformers' "
        "schedulers: set it to false to use --lr_scheduler_type, --lr_scheduler_kwargs or --warmup_steps, which "
        "are an error while it is true.")})
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
        ignored = self._ignored_by_one_cycle()
        if ignored:
            raise ValueError(
                f"{' and '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with --one_cycle true "
                "(the default: OneCycleLR with max lr --learning_rate and warm-up --one_cycle_pct_start); pass "
                "--one_cycle false to use transformers' schedulers"
            )

    def _ignored_by_one_cycle(self) -> list[str]:
        """The transformers scheduler settings that ``create_scheduler`` would silently ignore for OneCycleLR."""
        if not self.one_cycle:
            return []
        ignored = []
        scheduler = SchedulerType(self.lr_scheduler_type)
        if scheduler != SchedulerType.LINEAR:
            ignored.append(f"--lr_scheduler_type {scheduler.value}")
        if self.lr_scheduler_kwargs:
            ignored.append(f"--lr_scheduler_kwargs {self.lr_scheduler_kwargs}")
        if self.warmup_steps > 0:  # transformers 5 has no warmup_ratio: a warmup_steps below 1 is the ratio
            ignored.append(f"--warmup_steps {self.warmup_steps:g}")
        return ignored


# Where a live tensor sits: its module's ``_parameters`` or ``_buffers`` dict and its attribute name there.
_Slot = tuple[dict, str]


def _state_dict_slots(model: nn.Module) -> dict[str, tuple[_Slot, bool]]:
    """Every ``state_dict`` entry of ``model`` that is a module's parameter or buffer, by ``state_dict`` name:
    (its slot, whether it is a parameter). Tied tensors appear under each of their names."""
    owners: dict[int, tuple[_Slot, bool]] = {}
    for module in model.modules():
        for store, is_parameter in ((module._parameters, True), (module._buffers, False)):
            for attr, tensor in store.items():
                if tensor is not None:
                    owners.setdefault(id(tensor), ((store, attr), is_parameter))
    state = model.state_dict(keep_vars=True)  # keep_vars: the Parameter objects, whose identity finds the owner
    return {name: owners[id(tensor)] for name, tensor in state.items() if id(tensor) in owners}


def _averaged_names(slots: dict[str, tuple[_Slot, bool]]) -> list[str]:
    """Names of the tensors worth averaging: trainable parameters and floating-point buffers, each tensor once
    (under its first name when tied)."""
    names, seen = [], set()
    for name, ((store, attr), is_parameter) in slots.items():
        tensor = store[attr]
        keep = tensor.requires_grad if is_parameter else tensor.is_floating_point()
        if keep and id(tensor) not in seen:
            seen.add(id(tensor))
            names.append(name)
    return names


class ModelEMA:
    """Exponential moving average of a model's trainable parameters and floating-point buffers (float32 shadows).

    What is averaged, keyed by ``state_dict`` names: every parameter with ``requires_grad=True`` and every
    floating-point buffer of the ``state_dict`` (BatchNorm running statistics move in train mode even in a frozen
    backbone; buffers are small). Frozen parameters are left out because their average is themselves: with
    ``--preset m3`` (prompt tuning of a frozen ViT-B/16) they are ~86 M of ~87 M weights that would otherwise be
    lerped at every step and cloned at every evaluation. ``swapped_into`` and ``copy_to`` therefore leave frozen
    parameters (and integer buffers such as ``num_batches_tracked``) as they are. The set is fixed when the EMA is
    built: freeze or unfreeze before. A parameter tied under several names is averaged once, under its first name.

    ``shadow`` maps those ``state_dict`` names to the float32 averages; ``save``/``load`` write and read them (with
    ``num_updates``) as safetensors, the ``ema.safetensors`` of checkpoints.
    """

    def __init__(self, model: nn.Module, decay: float = 0.9997, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        slots = _state_dict_slots(model)
        names = _averaged_names(slots)
        self._bind(model, slots, names)
        self.shadow: dict[str, torch.Tensor] = {
            name: tensor.detach().to(torch.float32, copy=True) for name, tensor in zip(names, self._live(model))
        }

    def current_decay(self) -> float:
        """``decay``, or during warm-up min(decay, (1 + t) / (10 + t)) after t updates."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    # --- live tensors -------------------------------------------------------------------------------------------
    def _bind(self, model: nn.Module, slots: dict[str, tuple[_Slot, bool]], names: list[str]) -> None:
        missing = [name for name in names if name not in slots]
        if missing:
            raise ValueError(f"the model lacks {len(missing)} of the EMA's tensors: {_short_list(missing)}")
        self._model = weakref.ref(model)
        self._slots = [slots[name][0] for name in names]

    def _live(self, model: nn.Module) -> list[torch.Tensor]:
        """The model's current tensors, in ``shadow`` order.

        The slots (the owning modules' parameter/buffer dicts) are resolved once per model object; reading the
        tensor from its slot at every call follows ``.to()``, which may put new tensors into those dicts (always for
        buffers), at the cost of one dict lookup per tensor."""
        if self._model() is not model:
            self._bind(model, _state_dict_slots(model), list(self.shadow))
        return [store[attr] for store, attr in self._slots]

    def _live_as_shadows(self, model: nn.Module) -> list[torch.Tensor]:
        """The live tensors as float32 on the shadows' devices (foreach ops need matching tensors; no copy when
        they already match, the usual case)."""
        pairs = zip(self._live(model), self.shadow.values())
        return [t if t.dtype == s.dtype and t.device == s.device else t.to(s.device, s.dtype) for t, s in pairs]

    # --- averaging and swapping ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step toward ``model``'s current weights (a single foreach lerp over all averaged tensors)."""
        weight = 1.0 - self.current_decay()
        if self.shadow:  # foreach ops reject empty lists (a model with nothing to average)
            torch._foreach_lerp_(list(self.shadow.values()), self._live_as_shadows(model), weight)
        self.num_updates += 1

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module):
        """Temporarily load the EMA weights into ``model`` (restored afterwards); only the averaged tensors are
        backed up and swapped."""
        live = self._live(model)
        backup = [tensor.detach().clone() for tensor in live]
        self.copy_to(model)
        try:
            yield model
        finally:
            if live:
                with torch.no_grad():
                    torch._foreach_copy_(live, backup)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s averaged tensors with the EMA (cast to their dtype and device)."""
        if self.shadow:
            torch._foreach_copy_(self._live(model), list(self.shadow.values()))

    # --- files --------------------------------------------------------------------------------------------------
    def save(self, path: str) -> None:
        from safetensors.torch import save_file

        tensors = {k: v.contiguous().cpu() for k, v in self.shadow.items()}
        tensors["__num_updates__"] = torch.tensor([self.num_updates], dtype=torch.int64)
        save_file(tensors, path)

    def load(self, path: str) -> None:
        """Load a file written by :meth:`save`. Extra tensors are ignored (files of older versions, which averaged
        every floating tensor of the ``state_dict``, hold the frozen parameters too)."""
        from safetensors.torch import load_file

        tensors = load_file(path)
        missing = sorted({*self.shadow, "__num_updates__"} - set(tensors))
        if missing:
            raise ValueError(f"{path}: the EMA state lacks {len(missing)} needed tensors: {_short_list(missing)}")
        wrong = [k for k, v in self.shadow.items() if tensors[k].shape != v.shape]
        if wrong:
            raise ValueError(f"{path}: EMA tensors of the wrong shape: {_short_list(wrong)}")
        for key, shadow in self.shadow.items():
            shadow.copy_(tensors[key])
        self.num_updates = int(tensors["__num_updates__"].item())


def _short_list(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


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
        """OneCycleLR when ``args.one_cycle`` (whose arguments reject transformers' scheduler settings), else
        transformers' ``lr_scheduler_type`` schedule."""
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
        # The EMA goes in first: Trainer writes trainer_state.json after everything else, so a checkpoint folder
        # that has it is complete (what `--resume_from_checkpoint last` looks for after a killed run).
        if self.ema is not None and self.args.should_save:
            folder = os.path.join(self._get_output_dir(trial=trial), f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
            os.makedirs(folder, exist_ok=True)
            self.ema.save(os.path.join(folder, EMA_WEIGHTS_NAME))
        super()._save_checkpoint(model, trial)

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
