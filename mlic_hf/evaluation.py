"""Evaluation and threshold calibration of saved checkpoints, behind ``scripts/evaluate.py`` and
``scripts/calibrate_thresholds.py``; nothing here trains.

- :func:`score_checkpoint_split`: a checkpoint's probabilities on one split of a dataset
  (:class:`~mlic_hf.data.selection.DatasetArguments` and :class:`SplitArguments`);
- :func:`evaluate_checkpoint`: its metrics there (at a threshold, and at its calibrated thresholds if it has them);
- :func:`calibrate_checkpoint`: per-class thresholds chosen on a validation split, saved in its config.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .calibration import (
    calibrate_thresholds,
    check_calibration_args,
    metrics_at_thresholds,
    store_thresholds,
    thresholds_from_config,
)
from .data import label_names_of
from .data.selection import DatasetArguments
from .data.transforms import DecodedImages
from .inference import load_checkpoint, predict_probabilities
from .metrics import check_metric_args, multilabel_metrics

__all__ = ["SplitArguments", "SplitScores", "calibrate_checkpoint", "evaluate_checkpoint", "score_checkpoint_split"]

logger = logging.getLogger(__name__)


@dataclass
class SplitArguments:
    """Which split of the dataset a saved checkpoint is scored on, and how."""

    split: str | None = field(default=None, metadata={"help": (
        "The split (default: the dataset's test split to evaluate, its validation split to calibrate).")})
    max_samples: int | None = field(default=None, metadata={"help": "Score only the first N images of the split."})
    batch_size: int = field(default=64, metadata={"help": "Images per forward pass."})
    seed: int = field(default=42, metadata={"help": (
        "With --dataset_name: the training run's --seed, which rebuilds the validation split it made from train.")})

    def __post_init__(self):
        for name in ("batch_size", "max_samples"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"--{name} must be at least 1, got {value}")


@dataclass
class SplitScores:
    """A checkpoint's probabilities on one dataset split, with the split's labels."""

    model: Any
    processor: Any
    dataset: str
    split: str
    scores: np.ndarray  # (N, C) sigmoid probabilities
    labels: np.ndarray  # (N, C) multi-hot
    ignore_mask: np.ndarray | None  # (N, C) True where a label is unknown
    label_names: list[str]


def score_checkpoint_split(checkpoint: str, data: DatasetArguments, split: SplitArguments | None = None,
                           role: str = "test", progress: bool = True) -> SplitScores:
    """Load ``checkpoint`` and predict one split of ``data``: ``split.split``, else the dataset's ``role`` split
    (``"test"`` or ``"eval"``).

    A 🤗 Datasets dataset's labels are read with the checkpoint's label names; its default test split is ``test``,
    else the validation split, which is made from ``train`` as ``scripts/train.py`` made it when the dataset has
    none (``split.seed``: the training run's). The checkpoint's label names must match the dataset's (same names,
    same order)."""
    split = split or SplitArguments()
    model, processor = load_checkpoint(checkpoint)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    subset, name = data.load_split(split.split, role, seed=split.seed, label_names=names,
                                   max_samples=split.max_samples)
    dataset_names = label_names_of(subset)
    if names != dataset_names:
        raise ValueError(f"{checkpoint} was trained for labels {names[:8]}... but dataset {data.label!r} has "
                         f"{dataset_names[:8]}...")
    scores = predict_probabilities(model, DecodedImages(subset), batch_size=split.batch_size, progress=progress,
                                   desc=f"predict {name}", processor=processor)
    labels = np.asarray(subset["labels"], dtype=np.float32)
    mask = np.asarray(subset["ignore_mask"], dtype=bool) if "ignore_mask" in subset.column_names else None
    return SplitScores(model, processor, data.label, name, scores, labels, mask, names)


def evaluate_checkpoint(checkpoint: str, data: DatasetArguments, split: SplitArguments | None = None,
                        threshold: float = 0.5, top_k: int | None = 3, ap_mode: str = "non_interpolated",
                        progress: bool = True) -> dict[str, Any]:
    """Metrics of a saved checkpoint on one split of a dataset (mAP, CP/CR/CF1, OP/OR/OF1, top-k, per-class AP;
    with calibrated ``config.thresholds``, also CP/CR/CF1/OP/OR/OF1 at them, as ``*_calibrated``). The dataset and
    split are those of :func:`score_checkpoint_split`."""
    check_metric_args(threshold, top_k, ap_mode)
    run = score_checkpoint_split(checkpoint, data, split, progress=progress)
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


def calibrate_checkpoint(checkpoint: str, data: DatasetArguments, split: SplitArguments | None = None,
                         output_dir: str | None = None, objective: str = "f1",
                         target_precision: float | None = None, progress: bool = True) -> dict[str, Any]:
    """Choose per-class thresholds for ``checkpoint`` on a split and save them in its config.

    Args:
        checkpoint: a checkpoint directory or Hub id.
        data, split: the dataset and split of :func:`score_checkpoint_split`; the default split is the dataset's
            validation split (never calibrate on the test split you report).
        output_dir: where to save. Default: ``checkpoint`` itself (only ``config.json`` is rewritten); a Hub id
            needs one (the model, its config and its image processor are saved there).
        objective, target_precision: see :func:`mlic_hf.calibration.calibrate_thresholds`.

    Returns a report: the objective, split, per-class thresholds by label name, and CP/CR/CF1/OP/OR/OF1 on the
    calibration split at 0.5 and at the new thresholds.
    """
    check_calibration_args(objective, target_precision, allow_none=False, flag="--objective")
    target = output_dir or checkpoint
    if output_dir is None and not os.path.isdir(checkpoint):
        raise ValueError(f"{checkpoint} is not a local folder: pass --output_dir to save the calibrated model")
    run = score_checkpoint_split(checkpoint, data, split, role="eval", progress=progress)
    thresholds = calibrate_thresholds(run.scores, run.labels, run.ignore_mask, objective, target_precision)
    config = run.model.config
    store_thresholds(config, thresholds, objective, target_precision)
    if os.path.abspath(target) == os.path.abspath(checkpoint):
        # the checkpoint's only config.json: rewritten in place, a kill mid-write would leave it unloadable
        config.save_pretrained(target)  # atomic: MLICConfig.to_json_file
    else:
        run.model.save_pretrained(target)
        run.processor.save_pretrained(target)
    logger.info("saved %d calibrated thresholds (%s, on %s %s) to %s", len(thresholds), config.thresholds_objective,
                run.dataset, run.split, target)
    fixed = np.full_like(thresholds, 0.5)
    return {
        "checkpoint": checkpoint,
        "saved_to": target,
        "objective": config.thresholds_objective,
        "dataset": run.dataset,
        "split": run.split,
        "num_samples": len(run.scores),
        "thresholds": dict(zip(run.label_names, config.thresholds)),
        "metrics_at_0.5": metrics_at_thresholds(run.scores, run.labels, fixed, run.ignore_mask, suffix=""),
        "metrics_calibrated": metrics_at_thresholds(run.scores, run.labels, thresholds, run.ignore_mask, suffix=""),
    }
