"""The training arguments of the MLIC recipe: `transformers.TrainingArguments` with the EMA, one-cycle and
early-stopping fields and the recipe's defaults (AdamW, evaluation and checkpoints every epoch, mAP selection)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from transformers import TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType

logger = logging.getLogger(__name__)


def _has_accelerator() -> bool:
    """Whether torch sees a GPU or another accelerator (CUDA, XPU, MPS, ...)."""
    import torch

    accelerator = getattr(torch, "accelerator", None)
    if accelerator is not None and hasattr(accelerator, "is_available"):
        return bool(accelerator.is_available())
    return torch.cuda.is_available()


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
        backbone_learning_rate: peak learning rate of the pretrained backbone (``model.get_backbone()``); the
            layers the method adds on top keep ``learning_rate``. ``None`` (default): one rate for the whole model.
            A pretrained CNN adapting to new images often wants a higher rate than freshly initialised Transformer
            heads tolerate (see the model zoo in the README).

    ``label_names`` (transformers: the input keys holding the labels) is not an argument here: every mlic_hf model
    takes its targets as ``labels``, and ``--label_names`` on the command line names the classes of a dataset
    (:class:`~mlic_hf.data.hf_dataset.HFDatasetArguments`), as multi-label datasets need.
    """

    label_names: list[str] | None = field(default=None, init=False, repr=False)

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
    backbone_learning_rate: float | None = field(default=None, metadata={"help": (
        "Peak learning rate of the pretrained backbone (default: --learning_rate, one rate for the whole model).")})
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
        if not self.use_cpu and not _has_accelerator():
            # on a machine that has only a CPU, the CPU is the device: said explicitly, because transformers otherwise
            # refuses --bf16 ("Your setup doesn't support bf16/gpu") and, under torchrun, does not set up data-parallel
            # training on the CPU's processes (each process silently trains alone on all the data)
            logger.info("no GPU: training on the CPU (--use_cpu true)")
            self.use_cpu = True
        super().__post_init__()
        problem = self._out_of_range()
        if problem:
            raise ValueError(problem)
        ignored = self._ignored_by_one_cycle()
        if ignored:
            raise ValueError(
                f"{' and '.join(ignored)} {'has' if len(ignored) == 1 else 'have'} no effect with --one_cycle true "
                "(the default: OneCycleLR with max lr --learning_rate and warm-up --one_cycle_pct_start); pass "
                "--one_cycle false to use transformers' schedulers"
            )

    def _out_of_range(self) -> str | None:
        """The first field with a value training cannot use (transformers accepts them and then crashes, or trains
        silently wrong: a negative learning rate ascends the loss), as the one-line message naming it."""
        checks = (
            ("learning_rate", self.learning_rate > 0, "a positive number"),
            ("backbone_learning_rate", self.backbone_learning_rate is None or self.backbone_learning_rate > 0,
             "a positive number (leave it unset for --learning_rate)"),
            ("per_device_train_batch_size", self.per_device_train_batch_size >= 1, "at least 1"),
            ("per_device_eval_batch_size", self.per_device_eval_batch_size >= 1, "at least 1"),
            ("gradient_accumulation_steps", self.gradient_accumulation_steps >= 1, "at least 1"),
            ("num_train_epochs", self.max_steps > 0 or self.num_train_epochs > 0, "positive (or --max_steps set)"),
            ("weight_decay", self.weight_decay >= 0, "0 or more"),
            ("max_grad_norm", self.max_grad_norm is None or self.max_grad_norm >= 0, "0 (off) or more"),
            ("adam_beta1", 0 <= self.adam_beta1 < 1, "in [0, 1)"),
            ("adam_beta2", 0 <= self.adam_beta2 < 1, "in [0, 1)"),
            ("adam_epsilon", self.adam_epsilon >= 0, "0 or more"),
            ("ema_decay", 0.0 <= self.ema_decay < 1.0, "in [0, 1) (0: no EMA)"),
            ("one_cycle_pct_start", 0.0 < self.one_cycle_pct_start < 1.0, "in (0, 1)"),
            ("early_stopping_patience", self.early_stopping_patience is None or self.early_stopping_patience >= 1,
             "at least 1 (leave it unset for no early stopping)"),
            ("save_steps", self.save_strategy != SaveStrategy.STEPS or self.save_steps > 0,
             "positive with --save_strategy steps"),
            ("dataloader_num_workers", self.dataloader_num_workers >= 0, "0 or more"),
        )
        for name, ok, expected in checks:
            if not ok:
                return f"--{name} must be {expected}, got {getattr(self, name)}"
        return None

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
