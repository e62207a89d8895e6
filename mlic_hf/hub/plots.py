"""Small, deterministic PNG plots for the generated model cards.

- [`precision_recall_points`]: micro-averaged precision-recall points of a multi-label score matrix (pure NumPy, one
  sort, ``-1`` labels ignored);
- [`plot_precision_recall`]: the micro-averaged PR curve (plus, faintly, the best and worst classes);
- [`plot_per_class_ap`]: a bar chart of the per-class average precision with the mAP as a horizontal line.

matplotlib is imported lazily, inside the plotting functions, and only its object-oriented API with the Agg canvas is
used (``pyplot`` and the global backend are left alone, so calling these functions from a notebook is harmless).
Figures are 6×4 inches at 100 dpi and saved without the (version-dependent) ``Software`` PNG metadata, so the same
inputs give byte-identical files with the same matplotlib version. Titles and label names are drawn as plain text
(`_plain_text`): a ``$`` in a label name is not read as mathtext.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..file_utils import atomic_write


logger = logging.getLogger(__name__)

__all__ = [
    "micro_average_precision",
    "plot_per_class_ap",
    "plot_precision_recall",
    "precision_recall_points",
]

FIGSIZE: tuple[float, float] = (6.0, 4.0)
DPI: int = 100
# Number of best and of worst classes drawn faintly on the precision-recall plot.
NUM_EXTREME_CLASSES: int = 3


def _plain_text(text: Any) -> str:
    """``text`` as matplotlib shows it literally: ``$`` escaped (an unbalanced or invalid ``$...$`` would be parsed as
    mathtext, and fail when the figure is saved), and a leading ``_`` protected (a legend skips such labels)."""
    text = str(text).replace("$", r"\$")
    return "\u200b" + text if text.startswith("_") else text


def _as_float_array(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"`{name}` must contain numbers, got dtype {arr.dtype}.")
    return arr.astype(np.float64, copy=False)


def _check_scores_labels(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validates ``scores`` / ``labels`` (same shape, labels in {-1, 0, 1}, no NaN scores)."""
    scores_arr = _as_float_array(scores, "scores")
    labels_arr = _as_float_array(labels, "labels")
    if scores_arr.shape != labels_arr.shape:
        raise ValueError(
            f"`scores` and `labels` must have the same shape, got {scores_arr.shape} and {labels_arr.shape}."
        )
    bad = (labels_arr != 0) & (labels_arr != 1) & (labels_arr != -1)
    if bad.any():
        raise ValueError(
            f"`labels` must contain only 1 (positive), 0 (negative) and -1 (ignored), got value(s) "
            f"{np.unique(labels_arr[bad])[:5].tolist()}."
        )
    if np.isnan(scores_arr).any():
        raise ValueError("`scores` must not contain NaN.")
    return scores_arr, labels_arr


def precision_recall_points(scores: Any, labels: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Micro-averaged precision-recall curve of multi-label scores.

    Every (image, label) pair whose label is not ``-1`` is one binary decision; all of them are pooled and ranked by
    score (one sort, no Python loop). At each *distinct* score ``t`` (tied scores form one point, the scikit-learn
    convention) the prediction "positive iff score ≥ t" has

    - precision = #positives with score ≥ t / #entries with score ≥ t,
    - recall = #positives with score ≥ t / #positives.

    Args:
        scores (array-like of shape `(N, C)` or `(N,)`):
            Scores (probabilities, or any monotone transform: only the ordering matters).
        labels (array-like, same shape as `scores`):
            1 = positive, 0 = negative, -1 = ignored (left out of the ranking).

    Returns:
        `tuple[np.ndarray, np.ndarray, np.ndarray]`: ``(precision, recall, thresholds)``, one entry per distinct score,
        ordered by *decreasing* threshold (so recall is non-decreasing and ends at 1).

    Raises:
        `ValueError`: if the shapes differ, labels are not in {-1, 0, 1}, scores contain NaN, or no non-ignored
        positive label exists (recall is undefined).

    Example:

    ```python
    >>> import numpy as np
    >>> precision, recall, thresholds = precision_recall_points([0.9, 0.8, 0.7, 0.1], [1, 0, 1, 0])
    >>> precision.tolist(), recall.tolist()
    ([1.0, 0.5, 0.6666666666666666, 0.5], [0.5, 0.5, 1.0, 1.0])
    ```
    """
    scores_arr, labels_arr = _check_scores_labels(scores, labels)
    valid = labels_arr != -1
    values = scores_arr[valid].ravel()
    positive = labels_arr[valid].ravel() == 1
    num_positives = int(np.count_nonzero(positive))
    if num_positives == 0:
        raise ValueError("no positive (label 1) entry: the precision-recall curve is undefined.")
    order = np.argsort(-values, kind="stable")
    values, positive = values[order], positive[order]
    true_positives = np.cumsum(positive)
    # Last index of every block of tied scores (the scores are sorted in decreasing order).
    ends = np.flatnonzero(np.diff(values) != 0)
    ends = np.append(ends, values.size - 1)
    true_positives = true_positives[ends]
    precision = true_positives / (ends + 1.0)
    recall = true_positives / float(num_positives)
    return precision, recall, values[ends]


def micro_average_precision(precision: np.ndarray, recall: np.ndarray) -> float:
    """Area under a step precision-recall curve: ``sum_i (R_i - R_{i-1}) * P_i`` (``R_0 = 0``), the
    scikit-learn ``average_precision_score`` definition, from the output of [`precision_recall_points`]."""
    recall = np.asarray(recall, dtype=np.float64)
    return float(np.sum(np.diff(recall, prepend=0.0) * np.asarray(precision, dtype=np.float64)))


def _new_figure():
    """A matplotlib figure attached to an Agg canvas (no pyplot, no global backend switch)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "mlic_hf's model-card plots need matplotlib: `pip install matplotlib` (or `pip install mlic_hf[hub]`)."
        ) from err
    figure = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _save(figure, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Drop the "Software: matplotlib vX" tag so that the file only depends on the data.
    with atomic_write(path, "wb") as handle:  # a plot killed mid-write keeps the previous one
        figure.savefig(handle, format="png", dpi=DPI, metadata={"Software": None})
    return path


def _finite_or_nan(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        value = float(value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"per-class AP values must be numbers or None, got {value!r}.") from err
    return value if math.isfinite(value) else math.nan


def plot_per_class_ap(
    per_class_ap: Mapping[str, float | None],
    path: str | os.PathLike,
    map_value: float | None = None,
    title: str | None = None,
) -> Path:
    """Bar chart of the per-class average precision (in %), in the given (class-index) order, with the mAP as a
    dashed horizontal line (its value is appended to the title).

    Args:
        per_class_ap (`Mapping[str, float]`):
            ``{label name: AP}`` with APs as fractions in [0, 1], in class order. ``None`` / NaN (a class without
            positive test images) is drawn as a missing bar marked "n/a".
        path (`str` or `os.PathLike`):
            Where to write the PNG (parent folders are created).
        map_value (`float`, *optional*):
            The mAP (fraction) to draw; defaults to the mean of the finite per-class APs.
        title (`str`, *optional*):
            Figure title (default: ``"Per-class average precision"``).

    Returns:
        `Path`: the written file.
    """
    if not per_class_ap:
        raise ValueError("`per_class_ap` is empty: nothing to plot.")
    names = [_plain_text(name) for name in per_class_ap]
    values = np.array([_finite_or_nan(v) for v in per_class_ap.values()], dtype=np.float64)
    finite = np.isfinite(values)
    if map_value is None:
        map_value = float(values[finite].mean()) if finite.any() else math.nan
    num_classes = len(names)

    figure = _new_figure()
    ax = figure.add_subplot()
    positions = np.arange(num_classes)
    heights = np.where(finite, 100.0 * values, 0.0)
    ax.bar(positions, heights, width=0.8, color="#4C72B0", edgecolor="none")
    for index in np.flatnonzero(~finite):
        ax.text(index, 2.0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90, color="#555555")
    title = _plain_text(title or "Per-class average precision")
    if math.isfinite(map_value):
        # The mAP goes in the title rather than in a legend, which would hide bars.
        ax.axhline(100.0 * map_value, color="#C44E52", linestyle="--", linewidth=1.2)
        title = f"{title} (dashed: mAP = {100.0 * map_value:.2f}%)"
    ax.set_xlim(-0.6, num_classes - 0.4)
    ax.set_ylim(0.0, 100.0)
    ax.set_ylabel("AP (%)")
    ax.set_title(title, fontsize=10)
    fontsize = float(np.clip(360.0 / max(num_classes, 1), 4.0, 8.0))
    ax.set_xticks(positions)
    ax.set_xticklabels(names, rotation=90 if num_classes > 6 else 0, fontsize=fontsize)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    return _save(figure, path)


def _step_xy(precision: np.ndarray, recall: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices of the step curve whose area is [`micro_average_precision`] (precision ``P_i`` on ``(R_{i-1}, R_i]``)."""
    x = np.repeat(np.concatenate(([0.0], recall)), 2)[1:-1]
    y = np.repeat(precision, 2)
    return x, y


def plot_precision_recall(
    scores: Any,
    labels: Any,
    path: str | os.PathLike,
    label_names: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Micro-averaged precision-recall curve over all labels (``-1`` entries ignored), with its average precision in
    the legend; the per-class curves of the [`NUM_EXTREME_CLASSES`] best and worst classes (by AP; every class when
    there are at most twice that many) are drawn faintly.

    Args:
        scores (array-like of shape `(N, C)`): predicted probabilities.
        labels (array-like of shape `(N, C)`): 1 / 0 / -1 (ignored).
        path (`str` or `os.PathLike`): where to write the PNG (parent folders are created).
        label_names (sequence of `str`, *optional*): class names for the legend (default: ``"class i"``).
        title (`str`, *optional*): figure title (default: ``"Precision-recall (micro-averaged)"``).

    Returns:
        `Path`: the written file.
    """
    scores_arr, labels_arr = _check_scores_labels(scores, labels)
    if scores_arr.ndim != 2:
        raise ValueError(f"`scores` must have shape (num_samples, num_classes), got {scores_arr.shape}.")
    num_classes = scores_arr.shape[1]
    if label_names is None:
        label_names = [f"class {i}" for i in range(num_classes)]
    elif len(label_names) != num_classes:
        raise ValueError(f"`label_names` must have {num_classes} names (one per column), got {len(label_names)}.")

    precision, recall, _ = precision_recall_points(scores_arr, labels_arr)
    micro_ap = micro_average_precision(precision, recall)

    # Per-class APs (same step definition) to pick the best / worst classes.
    class_curves: list[tuple[float, int, np.ndarray, np.ndarray]] = []
    for index in range(num_classes):
        column_labels = labels_arr[:, index]
        if not np.any(column_labels == 1):
            continue
        class_precision, class_recall, _ = precision_recall_points(scores_arr[:, index], column_labels)
        class_curves.append(
            (micro_average_precision(class_precision, class_recall), index, class_precision, class_recall)
        )
    class_curves.sort(key=lambda item: (-item[0], item[1]))
    if len(class_curves) > 2 * NUM_EXTREME_CLASSES:
        class_curves = class_curves[:NUM_EXTREME_CLASSES] + class_curves[-NUM_EXTREME_CLASSES:]

    figure = _new_figure()
    ax = figure.add_subplot()
    for ap, index, class_precision, class_recall in class_curves:
        x, y = _step_xy(class_precision, class_recall)
        ax.plot(x, y, linewidth=0.8, alpha=0.45, label=f"{_plain_text(label_names[index])} (AP {100.0 * ap:.1f}%)")
    x, y = _step_xy(precision, recall)
    ax.plot(x, y, color="black", linewidth=2.0, label=f"micro-average (AP {100.0 * micro_ap:.1f}%)")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    ax.set_title(_plain_text(title or "Precision-recall (micro-averaged)"), fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=7, framealpha=0.75)
    return _save(figure, path)
