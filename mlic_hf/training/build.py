"""The pieces of a training run, built from its arguments: the model (fresh, or a checkpoint adapted to new
labels), the train / eval / test splits (on disk or streamed), their transforms, and the :class:`MLICTrainer`.

:func:`mlic_hf.training.run.run_training` puts them together; tests and notebooks use them one by one.
"""

from __future__ import annotations

import logging
from typing import Any

from transformers import AutoConfig

from ..auto import AutoModelForMultiLabelImageClassification
from ..cli import parse_json_object
from ..configuration_utils import MLICConfig, check_config_keys
from ..data import label_names_of
from ..data.hf_dataset import parse_data_files
from ..data.selection import check_not_empty
from ..data.streaming import load_streaming_eval_splits, load_streaming_train, resolve_streaming_source
from ..data.transforms import (
    AugmentationConfig,
    BatchTransform,
    EvalTransform,
    TrainTransform,
    collate_fn,
    defer_image_decoding,
    with_index_column,
)
from ..metrics import make_compute_metrics
from .arguments import DataArguments, ModelArguments, resolve_method
from .trainer import EpochSetterCallback, MLICTrainer

__all__ = [
    "attach_transforms",
    "build_config",
    "build_model",
    "checkpoint_config",
    "load_splits",
    "make_trainer",
    "split_names",
]

logger = logging.getLogger(__name__)


def _config_overrides(model_args: ModelArguments, config_class) -> dict[str, Any]:
    """``--config_overrides`` as a dict, every key checked against the method's config fields."""
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
    if model_args.model_name_or_path:
        config, same_labels = checkpoint_config(model_args, label_names)
        if train is not None:
            config.setup_from_training_data(_training_labels(train, config), recompute=not same_labels)
        # new labels: fresh label layers, also where their shapes would fit the old ones (a set of the same size)
        return AutoModelForMultiLabelImageClassification.from_pretrained(
            model_args.model_name_or_path, config=config, ignore_mismatched_sizes=not same_labels,
            reset_label_layers=not same_labels,
        )
    config = build_config(model_args, label_names)
    if train is not None:
        config.setup_from_training_data(_training_labels(train, config))
    return AutoModelForMultiLabelImageClassification.from_config(config)


def _training_labels(train, config):
    """The training split as ``config.setup_from_training_data`` reads it: a streamed split's labels are read
    (without images) only for a method that derives settings from them, such as ML-VPT's label groups."""
    if not hasattr(train, "labels_dataset"):
        return train
    if type(config).setup_from_training_data is MLICConfig.setup_from_training_data:
        return None  # the default hook reads nothing
    return train.labels_dataset()


def split_names(data_args: DataArguments, available=None) -> dict[str, str]:
    """The split used for each role (``train``, ``eval``, ``test``): the flag if given, else the dataset's default.

    A 🤗 Datasets dataset (``dataset_name``) uses ``train``, its validation split (``validation`` when made from
    ``train``) and ``test``; with ``available`` (its split names) and no ``test``, the validation split is reported
    as the test split, as COCO's ``val`` is."""
    given = {"train": data_args.train_split, "eval": data_args.eval_split, "test": data_args.test_split}
    names = data_args.default_splits(available, given["eval"])
    return {role: given[role] or names[role] for role in names}


def load_splits(data_args: DataArguments, seed: int = 0, return_split_names: bool = False):
    """(train, eval, test) datasets and the label names; with ``return_split_names``, also the split names used
    (``{"train": ..., "eval": ..., "test": ...}``: a 🤗 Datasets dataset's depend on the splits it has). With
    ``--streaming`` the training split is a :class:`~mlic_hf.data.streaming.StreamingTrainSet`."""
    load = _load_streaming_splits if data_args.streaming else _load_on_disk_splits
    train, evaluation, test, names = load(data_args, seed)  # train already cut to --max_train_samples
    if data_args.max_eval_samples:
        evaluation = evaluation.select(range(min(data_args.max_eval_samples, len(evaluation))))
        test = test.select(range(min(data_args.max_eval_samples, len(test))))
    for role, split in (("train", train), ("eval", evaluation), ("test", test)):
        check_not_empty(split, names[role], data_args.label, data_args.data_dir)
    if names["test"] == names["eval"] and data_args.dataset_name and data_args.test_split is None:
        logger.info("dataset %s has no test split: the final report is on %r, the model-selection split",
                    data_args.dataset_name, names["eval"])
    if return_split_names:
        return train, evaluation, test, label_names_of(train), names
    return train, evaluation, test, label_names_of(train)


def _load_on_disk_splits(data_args: DataArguments, seed: int):
    """(train, eval, test, split names) of a built-in or 🤗 Datasets dataset loaded to disk."""
    dataset = data_args.load_dataset_dict(seed, make_validation=data_args.eval_split is None)
    names = split_names(data_args, available=list(dataset))
    for role, split in names.items():
        if split not in dataset:
            raise ValueError(f"{role} split {split!r} not in dataset {data_args.label!r} (has {list(dataset)})")
    train, evaluation, test = (dataset[names[r]] for r in ("train", "eval", "test"))
    if data_args.max_train_samples:
        train = train.select(range(min(data_args.max_train_samples, len(train))))
    return train, evaluation, test, names


def _load_streaming_splits(data_args: DataArguments, seed: int):
    """(streamed train, eval, test, split names) of ``--streaming``: the training split is a
    :class:`~mlic_hf.data.streaming.StreamingTrainSet`; the evaluation splits are loaded with its label set."""
    source = resolve_streaming_source(data_args.dataset_name, data_args.dataset_config_name,
                                      parse_data_files(data_args.data_files), data_args.data_dir)
    names = split_names(data_args, available=list(source.files))
    train = load_streaming_train(data_args, source, names["train"], seed, data_args.shuffle_buffer_size)
    if data_args.max_train_samples:
        train = train.truncated(data_args.max_train_samples)
    held_out = load_streaming_eval_splits(data_args, source, [names["eval"], names["test"]], label_names_of(train),
                                          seed)
    return train, held_out[names["eval"]], held_out[names["test"]], names


def attach_transforms(model, data_args: DataArguments, train, evaluation, test, seed: int):
    """(train, eval, test) with their on-the-fly transforms, and the train transform (whose epoch
    :class:`EpochSetterCallback` sets): augmentation seeded per sample for train, the config's deterministic resize
    and normalisation for eval and test."""
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
            crop_scale=tuple(data_args.crop_scale) if data_args.crop_scale else None,
        )
    )
    eval_transform = BatchTransform(EvalTransform(cfg.image_size, cfg.image_mean, cfg.image_std))
    train = train.with_transform(BatchTransform(train_transform))
    return train, evaluation.with_transform(eval_transform), test.with_transform(eval_transform), train_transform


def make_trainer(model, data_args: DataArguments, training_args, train, evaluation, train_transform) -> MLICTrainer:
    """The `MLICTrainer` of a run: datasets with their transforms attached (:func:`attach_transforms`), the
    metrics of ``data_args``, and the callback that tells ``train_transform`` the epoch."""
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
