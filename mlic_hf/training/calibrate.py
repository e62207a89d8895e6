"""Per-class thresholds of a saved checkpoint, chosen on a validation split (``scripts/calibrate_thresholds.py``).

``scripts/train.py`` calibrates at the end of training by itself (``--calibrate_thresholds``); this calibrates any
checkpoint afterwards: another objective, another split, or a model trained elsewhere.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from ..calibration import (
    calibrate_thresholds,
    check_calibration_args,
    metrics_at_thresholds,
    objective_name,
)
from .experiment import score_checkpoint_split

logger = logging.getLogger(__name__)


def calibrate_checkpoint(
    checkpoint: str,
    output_dir: str | None = None,
    objective: str = "f1",
    target_precision: float | None = None,
    **split_kwargs: Any,
) -> dict[str, Any]:
    """Choose per-class thresholds for ``checkpoint`` on a split and save them in its config.

    Args:
        checkpoint: a checkpoint directory or Hub id.
        output_dir: where to save. Default: ``checkpoint`` itself (only ``config.json`` is rewritten); a Hub id
            needs one (the model, its config and its image processor are saved there).
        objective, target_precision: see :func:`mlic_hf.calibration.calibrate_thresholds`.
        **split_kwargs: the dataset and split of :func:`~mlic_hf.training.score_checkpoint_split` (``dataset``,
            ``data_dir``, ``split``, ``source``, ``seed``, ...); the default split is the dataset's validation split.

    Returns a report: the objective, split, per-class thresholds by label name, and CP/CR/CF1/OP/OR/OF1 on the
    calibration split at 0.5 and at the new thresholds.
    """
    check_calibration_args(objective, target_precision, allow_none=False, flag="--objective")
    target = output_dir or checkpoint
    if output_dir is None and not os.path.isdir(checkpoint):
        raise ValueError(f"{checkpoint} is not a local folder: pass --output_dir to save the calibrated model")
    run = score_checkpoint_split(checkpoint, role="eval", **split_kwargs)
    thresholds = calibrate_thresholds(run.scores, run.labels, run.ignore_mask, objective, target_precision)
    config = run.model.config
    config.thresholds = [float(t) for t in thresholds]
    config.thresholds_objective = objective_name(objective, target_precision)
    if os.path.abspath(target) == os.path.abspath(checkpoint):
        config.save_pretrained(target)
    else:
        from ..inference import load_processor

        run.model.save_pretrained(target)
        load_processor(checkpoint, config).save_pretrained(target)
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
