"""Per-class decision thresholds chosen on held-out data.

A multi-label model's scores are compared with a threshold to name labels; one global 0.5 is rarely right for every
class (rare classes score low, frequent ones high). :func:`calibrate_thresholds` picks, for every class, the
threshold that maximises that class's F1 on a validation split, or the lowest one that reaches a target precision.
The thresholds are saved in the model config (``config.thresholds``) and used by default by ``predict.py``, the
pipeline and the demo.

Written by hand, vectorised over classes with numpy: scikit-learn's ``precision_recall_curve`` does one class at a
time and is not a dependency of the library.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CALIBRATION_OBJECTIVES = ("f1", "precision")
#: The thresholded metrics reported again at calibrated thresholds, with this suffix.
CALIBRATED_SUFFIX = "_calibrated"


def check_calibration_args(objective: str, target_precision: float | None, allow_none: bool = True,
                           flag: str = "--calibrate_thresholds") -> None:
    """``ValueError`` naming the flag (``flag`` for the objective) for an unknown objective or a target precision
    outside (0, 1]."""
    choices = CALIBRATION_OBJECTIVES + (("none",) if allow_none else ())
    if objective not in choices:
        raise ValueError(f"{flag} must be one of {', '.join(choices)}, got {objective!r}")
    if objective == "precision" and (target_precision is None or not 0 < target_precision <= 1):
        raise ValueError(f"{flag} precision needs --target_precision in (0, 1], got {target_precision}")
    if objective != "precision" and target_precision is not None:
        raise ValueError(f"--target_precision is used only with {flag} precision")


def objective_name(objective: str, target_precision: float | None = None) -> str:
    """How thresholds were chosen, as stored in ``config.thresholds_objective``: ``"f1"`` or ``"precision>=0.9"``."""
    return f"precision>={target_precision:g}" if objective == "precision" else objective


def _check_inputs(scores: Any, targets: Any, ignore_mask: Any | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"scores and targets must be (N, C) arrays of one shape, got {scores.shape} and "
                         f"{targets.shape}")
    if not np.isfinite(scores).all():
        raise ValueError("scores contain NaN or infinite values")
    if not np.isin(targets, (0, 1)).all():
        raise ValueError("targets must be 0/1 (multi-hot)")
    weights = np.ones_like(scores) if ignore_mask is None else 1.0 - np.asarray(ignore_mask, dtype=np.float64)
    if weights.shape != scores.shape:
        raise ValueError(f"ignore_mask must have the scores' shape {scores.shape}, got {weights.shape}")
    return scores, targets.astype(np.float64), weights


def threshold_curves(scores: Any, targets: Any, ignore_mask: Any | None = None) -> dict[str, np.ndarray]:
    """Every class's operating points, one per distinct score, from the highest score down.

    Returns ``(N, C)`` arrays sorted per class by decreasing score: ``score`` (predicting ``>= score`` is the
    operating point), ``tp``, ``fp``, ``precision``, ``recall``, ``f1``, ``next_score`` (the next lower score, or
    ``-inf``) and ``valid`` (False where a tied score continues below, so that a cut never splits ties); and
    ``positives`` ``(C,)``. Entries marked in ``ignore_mask`` count neither as positives nor as negatives.
    """
    scores, targets, weights = _check_inputs(scores, targets, ignore_mask)
    order = np.argsort(-scores, axis=0, kind="stable")
    s = np.take_along_axis(scores, order, axis=0)
    y = np.take_along_axis(targets, order, axis=0)
    w = np.take_along_axis(weights, order, axis=0)
    tp = np.cumsum(y * w, axis=0)
    fp = np.cumsum((1.0 - y) * w, axis=0)
    positives = tp[-1] if len(tp) else np.zeros(scores.shape[1])
    next_score = np.concatenate([s[1:], np.full((1, s.shape[1]), -np.inf)], axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(positives > 0, tp / positives, 0.0)
        f1 = np.where(tp + fp + positives > 0, 2 * tp / (tp + fp + positives), 0.0)
    return {"score": s, "tp": tp, "fp": fp, "precision": precision, "recall": recall, "f1": f1,
            "next_score": next_score, "valid": s != next_score, "positives": positives}


def _between(score: np.ndarray, next_score: np.ndarray) -> np.ndarray:
    """A threshold between a cut's score and the next lower one (the midpoint; the score itself at the bottom):
    the same decisions on the calibration data, less sensitive to a score just below the cut elsewhere."""
    return np.where(np.isfinite(next_score), (score + next_score) / 2, score)


def calibrate_thresholds(
    scores: Any,
    targets: Any,
    ignore_mask: Any | None = None,
    objective: str = "f1",
    target_precision: float | None = None,
    default: float = 0.5,
) -> np.ndarray:
    """Per-class thresholds (``(C,)`` float array) chosen on validation scores and labels.

    Args:
        scores: ``(N, C)`` probabilities (or any scores; thresholds are on the same scale).
        targets: ``(N, C)`` multi-hot labels.
        ignore_mask: optional ``(N, C)``, 1 where a label is unknown (skipped).
        objective: ``"f1"``: the threshold maximising the class's F1 (of several, the highest: fewest positives);
            ``"precision"``: the lowest threshold whose precision is at least ``target_precision`` (most recall).
        target_precision: required for ``objective="precision"``, in (0, 1].
        default: the threshold of a class without a positive example (F1 is 0 at every threshold), and, for
            ``"precision"``, of a class that never reaches the target: then above its highest score (predict none).

    Predicting ``score >= threshold`` on the calibration data reproduces the chosen operating point exactly.
    """
    if objective not in CALIBRATION_OBJECTIVES:
        raise ValueError(f"objective must be one of {CALIBRATION_OBJECTIVES}, got {objective!r}")
    if objective == "precision" and (target_precision is None or not 0 < target_precision <= 1):
        raise ValueError(f"objective='precision' needs target_precision in (0, 1], got {target_precision!r}")
    curves = threshold_curves(scores, targets, ignore_mask)
    n_classes = curves["score"].shape[1]
    if curves["score"].shape[0] == 0:
        raise ValueError("no calibration samples: the split is empty")
    valid = curves["valid"]
    thresholds = np.full(n_classes, float(default))
    columns = np.arange(n_classes)
    if objective == "f1":
        f1 = np.where(valid, curves["f1"], -1.0)
        best = np.argmax(f1, axis=0)  # first maximum = highest threshold
        chosen = _between(curves["score"][best, columns], curves["next_score"][best, columns])
        has_positive = curves["positives"] > 0
        thresholds = np.where(has_positive, chosen, thresholds)
    else:
        ok = valid & (curves["precision"] >= target_precision - 1e-12) & (curves["tp"] > 0)
        last = curves["score"].shape[0] - 1 - np.argmax(ok[::-1], axis=0)  # lowest qualifying cut
        chosen = _between(curves["score"][last, columns], curves["next_score"][last, columns])
        never = np.nextafter(curves["score"][0], np.inf)  # above the highest score: predict nothing
        thresholds = np.where(ok.any(axis=0), chosen, never)
    missing = np.flatnonzero(curves["positives"] == 0)
    if len(missing):
        logger.warning("%d class(es) without a positive calibration example keep threshold %g (first: index %d)",
                       len(missing), default, missing[0])
    return thresholds


def metrics_at_thresholds(scores: Any, targets: Any, thresholds: Any, ignore_mask: Any | None = None,
                          suffix: str = CALIBRATED_SUFFIX) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 with per-class ``thresholds``, keys ending in ``suffix`` (``CF1_calibrated``...)."""
    from .metrics import multilabel_metrics

    metrics = multilabel_metrics(scores, targets, threshold=thresholds, top_k=None, ignore_mask=ignore_mask)
    return {f"{key}{suffix}": float(metrics[key]) for key in ("CP", "CR", "CF1", "OP", "OR", "OF1")}


def thresholds_from_config(config, num_labels: int | None = None) -> np.ndarray | None:
    """``config.thresholds`` as a ``(C,)`` array, or None when the model has none (use the global threshold)."""
    values = getattr(config, "thresholds", None)
    if values is None:
        return None
    values = np.asarray(values, dtype=np.float64)
    expected = num_labels if num_labels is not None else config.num_labels
    if values.shape != (expected,):
        raise ValueError(f"config.thresholds has {values.size} values, the model has {expected} labels")
    return values


#: Largest threshold a config may hold: just above 1, the "never" that :func:`calibrate_thresholds` gives a class that
#: never reaches the target precision when its highest score is exactly 1.0 (sigmoid saturates in float32).
MAX_THRESHOLD = float(np.nextafter(1.0, np.inf))


def check_thresholds(values: Sequence[float], num_labels: int) -> list[float]:
    """Validate per-class thresholds for a config: ``num_labels`` numbers in [0, 1] (thresholds are on the sigmoid
    probabilities: one above 1 would never predict its label, one below 0 always would; 1 + 1 ulp,
    :data:`MAX_THRESHOLD`, is accepted as calibration's "never")."""
    values = [float(v) for v in values]
    if len(values) != num_labels:
        raise ValueError(f"thresholds needs one value per label ({num_labels}), got {len(values)}")
    if not all(np.isfinite(values)):
        raise ValueError("thresholds must be finite numbers")
    outside = [(index, value) for index, value in enumerate(values) if not 0.0 <= value <= MAX_THRESHOLD]
    if outside:
        shown = ", ".join(f"label {index}: {value:g}" for index, value in outside[:5])
        raise ValueError(f"thresholds must be probabilities in [0, 1], got {shown}"
                         f"{', ...' if len(outside) > 5 else ''}")
    return values


def resolve_thresholds(config, threshold: float | None = None, default: float = 0.5) -> np.ndarray:
    """The decision threshold of every label, ``(C,)``: ``threshold`` for all if given, else the checkpoint's
    calibrated ``config.thresholds``, else ``default``. The one rule that predict, explain and the pipelines follow
    (the pipeline's ``default`` is 0: every label, as transformers' image-classification pipeline)."""
    if threshold is not None:
        return np.full(config.num_labels, float(threshold))
    calibrated = thresholds_from_config(config)
    return calibrated if calibrated is not None else np.full(config.num_labels, float(default))


def store_thresholds(config, thresholds: Any, objective: str, target_precision: float | None = None) -> list[float]:
    """Write calibrated per-class ``thresholds`` and how they were chosen (:func:`objective_name` of ``objective``
    and ``target_precision``) into ``config`` (saved with it as ``thresholds`` / ``thresholds_objective``); returns
    the thresholds as stored."""
    config.thresholds = check_thresholds(np.asarray(thresholds).tolist(), config.num_labels)
    config.thresholds_objective = objective_name(objective, target_precision)
    return config.thresholds
