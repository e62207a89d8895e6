"""`MLICTrainer`: `transformers.Trainer` with a one-cycle schedule, the weight EMA evaluated beside the raw model,
early stopping on mAP and crash-safe checkpoints that resume exactly; and the callbacks it trains with."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable

import torch
from transformers import Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, EvalLoopOutput

from ..file_utils import atomic_write_text
from .checkpoints import (
    mark_checkpoint_complete,
    naming_failed_writes,
    naming_unloadable_files,
    remove_checkpoint,
    resolve_resume_checkpoint,
    rotate_checkpoints,
)
from .cpu_bf16 import guard_cpu_bf16_convolutions
from .ema import EMA_WEIGHTS_NAME, ModelEMA

logger = logging.getLogger(__name__)


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


def fsdp_fallback(environ, distributed_type: str) -> str | None:
    """The warning for an FSDP launch (``accelerate launch --config_file configs/accelerate/fsdp.yaml``) that accelerate
    turned into another kind of training: it enables FSDP on accelerators only, and on CPUs runs DDP instead."""
    if str(environ.get("ACCELERATE_USE_FSDP", "false")).lower() != "true" or distributed_type == "FSDP":
        return None
    return (f"FSDP was requested (ACCELERATE_USE_FSDP=true) but accelerate trains with {distributed_type}: it enables "
            "FSDP on GPUs and other accelerators only. Every process holds the whole model (data parallel).")


def step_schedule(warmup_steps: int, step_size: int, gamma: float) -> Callable[[int], float]:
    """The learning-rate factor at optimiser step ``step`` of a linear warm-up over ``warmup_steps`` (0 at step 0,
    as transformers' and CSRA's warm-ups) followed by ``gamma ** (step // step_size)``: PyTorch's ``StepLR`` stepped
    every ``step_size`` steps, counted from the start of training (CSRA steps it once per epoch from the first, its
    warm-up overriding the first epochs). A ``LambdaLR`` of it saves and resumes with the trainer state."""
    step_size = max(int(step_size), 1)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / warmup_steps
        return gamma ** (step // step_size)

    return factor


def one_cycle_pct_start(pct_start: float, total_steps: int) -> float:
    """The ``pct_start`` to give ``OneCycleLR`` for ``total_steps`` so that its warm-up is never an empty phase.

    OneCycleLR's warm-up ends (the peak) at step ``pct_start * total_steps - 1`` and it divides by the warm-up's
    length: a peak at step 0 exactly (0.2 of 5 steps, 0.1 of 10) is a ZeroDivisionError before the first step. Such a
    run gets its peak half a step before step 0 instead, so that all its steps anneal, as every run too short for a
    warm-up step already does (0.2 of 4 steps: peak at step -0.2). Every other run keeps its schedule unchanged."""
    if abs(pct_start * total_steps - 1.0) > 1e-9:
        return pct_start
    return 0.5 / total_steps  # peak at step -0.5


class MLICTrainer(Trainer):
    """`Trainer` with OneCycleLR, a weight EMA evaluated beside the raw model, and early stopping.

    Every evaluation reports the raw model's metrics (``eval_mAP``, ...), the EMA model's (``eval_ema_mAP``, ...)
    and ``eval_best_mAP`` = the better of the two, which selects the best checkpoint by default. Checkpoints hold
    the EMA state (``ema.safetensors``) so that ``resume_from_checkpoint`` continues exactly, and end with a
    completion marker: ``resume_from_checkpoint="last"`` takes the newest complete one (:mod:`.checkpoints`).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        targs = self.args
        self._check_scale_options()
        if targs.world_size > 1:
            kind = self.accelerator.distributed_type.value
            logger.info("distributed training: %s over %d processes (%s)", kind, targs.world_size,
                        self.accelerator.device.type)
            fallback = fsdp_fallback(os.environ, kind)
            if fallback:
                logger.warning("%s", fallback)
        if getattr(targs, "channels_last", False):
            self.model.to(memory_format=torch.channels_last)
        if targs.bf16 and self.accelerator.device.type == "cpu":
            guarded = guard_cpu_bf16_convolutions(self.model)
            logger.info("bf16 on CPU: %d strided convolutions compute in float32 on inputs narrower than their stride "
                        "(wrong weight gradients in bf16; see mlic_hf.training.cpu_bf16)", guarded)
        self.ema = ModelEMA(self.model, targs.ema_decay, targs.ema_warmup) if getattr(targs, "ema_decay", 0) else None
        if self.ema is not None:
            self.add_callback(_EMAUpdateCallback(self))
        patience = getattr(targs, "early_stopping_patience", None)
        if patience:
            from transformers import EarlyStoppingCallback

            self.add_callback(EarlyStoppingCallback(early_stopping_patience=patience))

    def _check_scale_options(self) -> None:
        """Options transformers accepts but would fail on late, or ignore silently: one error each, before training."""
        model = self.accelerator.unwrap_model(self.model)
        if self.args.activation_checkpointing and not getattr(model, "supports_gradient_checkpointing", False):
            # transformers would only find out inside train(), after the data and model are loaded
            name = getattr(model.config, "model_type", type(model).__name__)
            raise ValueError(f"--activation_checkpointing (--gradient_checkpointing): {name} has no Transformer "
                             "layers to checkpoint (the methods with encoder, decoder or ViT blocks have); leave the "
                             "flag out for it")
        if self.args.fp16 and self.accelerator.device.type == "cpu":
            # accelerate enables fp16 autocast only on accelerators: on CPU the run would silently be float32
            raise ValueError("--fp16 needs a GPU (or another accelerator): on CPU accelerate would train in float32 "
                             "without saying so; use --bf16 on CPU")
        if self.args.dataloader_persistent_workers and self.args.dataloader_num_workers > 0:
            # a persistent worker keeps the copy of the training transform it started with: every epoch would get
            # epoch 0's augmentation seeds (EpochSetterCallback and set_epoch reach the main process's copy only)
            raise ValueError("--dataloader_persistent_workers would repeat the first epoch's augmentations in every "
                             "epoch (the workers keep the transform they started with); leave it out")

    # --- data -----------------------------------------------------------------------------------------------
    def get_train_dataloader(self):
        """transformers' training DataLoader; for a streamed split (:mod:`mlic_hf.data.streaming`), one that reads
        this process's planned rows: accelerate only places its batches on the device and does not shard it again
        (it would slice every batch, or give whole shard files to processes that then run out at different steps)."""
        dataset = self.train_dataset
        if not hasattr(dataset, "for_process"):
            return super().get_train_dataloader()
        from accelerate.data_loader import prepare_data_loader
        from torch.utils.data import DataLoader

        args = self.args
        shard = dataset.for_process(args.process_index, args.world_size, self._train_batch_size,
                                    args.dataloader_drop_last)
        options = {"num_workers": args.dataloader_num_workers, "pin_memory": args.dataloader_pin_memory,
                   "drop_last": args.dataloader_drop_last}
        if args.dataloader_num_workers > 0 and args.dataloader_prefetch_factor is not None:
            options["prefetch_factor"] = args.dataloader_prefetch_factor
        loader = DataLoader(shard, batch_size=self._train_batch_size, collate_fn=self.data_collator, **options)
        return prepare_data_loader(loader, device=args.device, num_processes=1, process_index=0,
                                   put_on_device=True, dispatch_batches=False)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """``Trainer.training_step``; BatchNorm's refusal of a batch of one image (torch: "Expected more than 1 value
        per channel") becomes an error naming the settings that made the batch."""
        try:
            return super().training_step(model, inputs, num_items_in_batch)
        except ValueError as err:
            if "Expected more than 1 value per channel" not in str(err):
                raise
            raise ValueError(self._single_image_batch_message(inputs)) from err

    def _single_image_batch_message(self, inputs) -> str:
        """Why a training batch held one image, with the flags that change it."""
        pixels = inputs.get("pixel_values") if isinstance(inputs, dict) else None
        size = len(pixels) if pixels is not None else 1
        args = self.args
        try:
            count = f"{len(self.train_dataset)} training image(s)"
        except TypeError:  # a streamed split without a length
            count = "the training images"
        return (f"a training batch of {size} image (from {count}, --per_device_train_batch_size "
                f"{args.per_device_train_batch_size}, --dataloader_drop_last {args.dataloader_drop_last}): the "
                "model's BatchNorm layers need at least 2 images per batch in training. Use more images "
                "(--max_train_samples), a batch size that leaves no last batch of 1, or --dataloader_drop_last true")

    # --- optimiser and schedule -----------------------------------------------------------------------------
    def create_optimizer(self, model=None):
        """transformers' AdamW groups (weight decay or not), each split into backbone and head parameters when
        ``args.backbone_learning_rate`` is set, the backbone's at that rate (every group records its ``peak_lr``)."""
        optimizer = super().create_optimizer(model)
        backbone_lr = getattr(self.args, "backbone_learning_rate", None)
        if backbone_lr is None or any("peak_lr" in group for group in optimizer.param_groups):
            return optimizer
        backbone = self.accelerator.unwrap_model(model if model is not None else self.model).get_backbone()
        in_backbone = {id(p) for p in backbone.parameters()} if backbone is not None else set()
        groups = []
        for group in optimizer.param_groups:
            for is_backbone in (True, False):
                params = [p for p in group["params"] if (id(p) in in_backbone) is is_backbone]
                if params:
                    lr = backbone_lr if is_backbone else group["lr"]
                    groups.append({**group, "params": params, "lr": lr, "peak_lr": lr})
        # before the first step the optimiser holds no state, so its groups can be replaced
        optimizer.param_groups[:] = groups
        trained = sum(1 for group in groups for p in group["params"] if id(p) in in_backbone)
        logger.info("learning rates: %g for the backbone (%d tensors), %g for the rest", backbone_lr, trained,
                    self.args.learning_rate)
        return optimizer

    def _peak_learning_rates(self, optimizer) -> list[float]:
        """Each parameter group's peak learning rate (``args.learning_rate`` unless a backbone rate split it)."""
        return [group.get("peak_lr", self.args.learning_rate) for group in optimizer.param_groups]

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """OneCycleLR when ``args.one_cycle`` (whose arguments reject transformers' scheduler settings), the step
        schedule of ``args.step_lr_epochs`` (:func:`step_schedule`), else transformers' ``lr_scheduler_type``
        schedule."""
        step_lr = getattr(self.args, "step_lr_epochs", None)
        if self.lr_scheduler is not None or not (step_lr or getattr(self.args, "one_cycle", False)):
            return super().create_scheduler(num_training_steps, optimizer)
        optimizer = optimizer if optimizer is not None else self.optimizer
        if step_lr:
            steps_per_epoch = num_training_steps / self.args.num_train_epochs
            self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, step_schedule(
                self.args.get_warmup_steps(num_training_steps), round(step_lr * steps_per_epoch),
                self.args.step_lr_gamma))
        else:
            self.lr_scheduler = self._one_cycle_scheduler(num_training_steps, optimizer)
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def _one_cycle_scheduler(self, num_training_steps: int, optimizer) -> torch.optim.lr_scheduler.OneCycleLR:
        total = max(num_training_steps, 2)
        pct_start = one_cycle_pct_start(self.args.one_cycle_pct_start, total)
        if pct_start != self.args.one_cycle_pct_start:
            logger.info("one-cycle schedule of %d steps: --one_cycle_pct_start %g would end the warm-up at step 0 "
                        "(an empty phase); %g puts the peak before step 0: every step anneals", total,
                        self.args.one_cycle_pct_start, pct_start)
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer,
            max_lr=self._peak_learning_rates(optimizer),
            total_steps=total,
            pct_start=pct_start,
        )

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
    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        """``Trainer.train``; ``resume_from_checkpoint`` ``"last"`` or ``True`` is the newest *complete* checkpoint
        of ``output_dir``, and a path to an incomplete one is a ``ValueError`` naming what it lacks (not a crash
        inside torch)."""
        expected = (EMA_WEIGHTS_NAME,) if self.ema is not None else ()
        folder = resolve_resume_checkpoint(resume_from_checkpoint, self.args.output_dir, expected)
        self._warn_of_a_last_batch_of_one()
        return super().train(folder, *args, **kwargs)

    def _warn_of_a_last_batch_of_one(self) -> None:
        """A warning when every epoch ends with a batch of one image and the model has BatchNorm layers. Not an
        error: whether one image fails depends on where the BatchNorm sits (on 1x1 maps or features it does, on
        larger maps it does not); if it fails, :meth:`training_step` names these settings, but only at the end of
        the first epoch."""
        try:
            count = len(self.train_dataset)
        except TypeError:  # a streamed split without a length
            return
        batch = self._train_batch_size * self.args.world_size
        model = self.accelerator.unwrap_model(self.model)
        has_batchnorm = any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
        if has_batchnorm and not self.args.dataloader_drop_last and count % batch == 1:
            logger.warning("%d training images in batches of %d leave a last batch of 1 image in every epoch, which "
                           "BatchNorm may refuse in training: change --max_train_samples or "
                           "--per_device_train_batch_size, or pass --dataloader_drop_last true", count, batch)

    def _save_checkpoint(self, model, trial):
        """Trainer's checkpoint with the EMA, made crash-safe: the completion marker is written after every file
        and before old checkpoints are deleted (see :mod:`.checkpoints`)."""
        run_dir = self._get_output_dir(trial=trial)
        folder = os.path.join(run_dir, f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}")
        if self.args.should_save:
            # a folder of the same step left by a stopped (or earlier) run: its marker must not vouch for the new
            # files while they are being written, and none of its files may be mixed with them
            remove_checkpoint(folder)
        self._wait_for_everyone()  # the other processes write their RNG state into this folder
        limit, self.args.save_total_limit = self.args.save_total_limit, None  # rotated below, after the marker
        try:
            with naming_failed_writes(folder):  # a full disk names the file, not a safetensors traceback
                if self.ema is not None:
                    if self.args.should_save:
                        os.makedirs(folder, exist_ok=True)
                    # every process: sharded (FSDP) averages are gathered collectively; the main process writes
                    self.ema.save(os.path.join(folder, EMA_WEIGHTS_NAME), write=self.args.should_save)
                super()._save_checkpoint(model, trial)
        finally:
            self.args.save_total_limit = limit
        self._wait_for_everyone()
        if self.args.should_save:
            mark_checkpoint_complete(folder, self.state.global_step)
            rotate_checkpoints(run_dir, limit, keep=[folder, self.state.best_model_checkpoint])

    def save_model(self, output_dir: str | None = None, _internal_call: bool = False):
        """``Trainer.save_model``; a failed write (a full disk) is one error naming the file and the cause."""
        with naming_failed_writes(output_dir or self.args.output_dir):
            return super().save_model(output_dir, _internal_call)

    def save_metrics(self, split: str, metrics: dict, combined: bool = True) -> None:
        """``Trainer.save_metrics`` (``<split>_results.json``, and ``all_results.json`` updated), each file replaced
        atomically: transformers rewrites them in place, and a kill mid-write would leave half a file."""
        if not self.is_world_process_zero():
            return
        atomic_write_text(os.path.join(self.args.output_dir, f"{split}_results.json"),
                          json.dumps(metrics, indent=4, sort_keys=True))
        if combined:
            path = os.path.join(self.args.output_dir, "all_results.json")
            combined_metrics = {}
            if os.path.exists(path):
                with open(path, encoding="utf-8") as handle:
                    combined_metrics = json.load(handle)
            combined_metrics.update(metrics)
            atomic_write_text(path, json.dumps(combined_metrics, indent=4, sort_keys=True))

    def save_state(self) -> None:
        """``Trainer.save_state`` (``trainer_state.json`` in ``output_dir``: the loss curve and evaluations of the
        whole run), replaced atomically (see :meth:`save_metrics`)."""
        if not self.is_world_process_zero():
            return
        # the text of TrainerState.save_to_json, which writes in place
        atomic_write_text(os.path.join(self.args.output_dir, "trainer_state.json"),
                          json.dumps(dataclasses.asdict(self.state), indent=2, sort_keys=True) + "\n")

    def _wait_for_everyone(self) -> None:
        if self.args.world_size > 1:
            self.accelerator.wait_for_everyone()

    def _load_rng_state(self, checkpoint):
        names = ("rng_state.pth", f"rng_state_{self.args.process_index}.pth")
        with naming_unloadable_files(checkpoint, names):
            super()._load_rng_state(checkpoint)

    def _load_optimizer_and_scheduler(self, checkpoint):
        with naming_unloadable_files(checkpoint, ("optimizer.pt", "scheduler.pt")):
            super()._load_optimizer_and_scheduler(checkpoint)

    def _load_scaler(self, checkpoint):
        with naming_unloadable_files(checkpoint, ("scaler.pt",)):
            super()._load_scaler(checkpoint)

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
