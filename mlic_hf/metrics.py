"""Vectorised NumPy metrics for multi-label image classification (MLIC).

All functions take a score matrix ``scores`` of shape ``(N, C)`` (``N`` images, ``C`` classes) and a binary target
matrix ``targets`` of the same shape, plus an optional boolean ``ignore_mask`` (``True`` = ignore this entry, e.g. the
"difficult" labels of PASCAL VOC). Ignored entries are removed from the ranking of their class (average precision) and
from the TP / FP / FN counts (precision / recall / F1). NumPy arrays, nested lists and ``torch.Tensor`` objects are
accepted (tensors are detached and moved to the CPU; ``torch`` is never imported by this module).

Ranking metrics (average precision) only use the *ordering* of the scores, so probabilities and logits give the same
result. Thresholded metrics (precision, recall, F1) compare scores with a probability threshold, so they need
probabilities: pass ``scores_are_logits=True`` to [`multilabel_metrics`] when you have logits.

The main entry points are:

- [`average_precision`] / [`mean_average_precision`]: per-class AP and mAP (scikit-learn / ASL convention by default,
  VOC 2010+ all-point interpolated and VOC 2007 11-point AP on request);
- [`precision_recall_f1`]: per-class (``CP``, ``CR``, ``CF1``) and overall (``OP``, ``OR``, ``OF1``) scores with the
  ML-GCN / ASL conventions;
- [`multilabel_metrics`]: everything at once, sharing a single sort of the score matrix;
- [`make_compute_metrics`]: a ``compute_metrics`` callable for [`transformers.Trainer`];
- [`format_metrics_table`]: a plain-text report;
- [`evaluate_module_path`]: the path of the matching [`evaluate`] metric script (``evaluate.load(path)``).

Example:

```python
>>> import numpy as np
>>> from mlic_hf.metrics import multilabel_metrics, format_metrics_table
>>> scores = np.array([[0.9, 0.2], [0.4, 0.7], [0.8, 0.1]])
>>> targets = np.array([[1, 0], [0, 1], [1, 1]])
>>> metrics = multilabel_metrics(scores, targets, top_k=1)
>>> round(metrics["mAP"], 4)
0.9167
>>> print(format_metrics_table(metrics))  # doctest: +SKIP
```
"""

from __future__ import annotations

import logging
import numbers
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np


logger = logging.getLogger(__name__)

__all__ = [
    "AP_MODES",
    "average_precision",
    "check_metric_args",
    "evaluate_module_path",
    "format_metrics_table",
    "make_compute_metrics",
    "mean_average_precision",
    "multilabel_metrics",
    "precision_recall_f1",
    "sigmoid",
    "threshold_predictions",
    "topk_predictions",
]

AP_MODES: tuple[str, ...] = ("non_interpolated", "interpolated", "11point")
"""Supported values of the ``mode`` / ``ap_mode`` arguments."""

_PRF_KEYS: tuple[str, ...] = ("CP", "CR", "CF1", "OP", "OR", "OF1")
# Metric names (optionally prefixed, e.g. "eval_mAP", and optionally suffixed "_top3") reported as percentages.
_PERCENT_METRIC = re.compile(r"(?:^|[_/])(?:mAP|[CO]P|[CO]R|[CO]F1)(?:_top\d+)?$")
# At most this many class indices are listed in warnings.
_MAX_LISTED = 10


# ---------------------------------------------------------------------------------------------------------------------
# Input conversion / validation
# ---------------------------------------------------------------------------------------------------------------------


def _to_numpy(x: Any) -> np.ndarray:
    """Converts ``x`` (array-like or ``torch.Tensor``) to a NumPy array without importing torch."""
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.split(".")[0] == "torch" and hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):  # bfloat16 has no NumPy equivalent
            x = x.float()
        return np.asarray(x)
    return np.asarray(x)


def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = _to_numpy(x)
    if arr.ndim != 2:
        raise ValueError(f"`{name}` must be a 2-D array of shape (num_samples, num_classes), got shape {arr.shape}.")
    return arr


def _check_same_shape(arr: np.ndarray, name: str, shape: tuple[int, ...], ref_name: str = "scores") -> None:
    if arr.shape != shape:
        raise ValueError(
            f"`{name}` must have the same shape as `{ref_name}` {shape} (num_samples, num_classes), got {arr.shape}."
        )


def _as_scores(scores: Any, name: str = "scores") -> np.ndarray:
    """Returns ``scores`` as a 2-D float32/float64 array without NaN (no copy when possible)."""
    arr = _as_2d(scores, name)
    if arr.dtype == np.bool_ or np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float64)
    elif arr.dtype == np.float16:
        arr = arr.astype(np.float32)
    elif arr.dtype not in (np.float32, np.float64):
        if np.issubdtype(arr.dtype, np.floating):  # e.g. longdouble
            arr = arr.astype(np.float64)
        else:
            raise ValueError(f"`{name}` must contain real numbers, got dtype {arr.dtype}.")
    if np.isnan(arr).any():
        rows, cols = np.nonzero(np.isnan(arr))
        raise ValueError(
            f"`{name}` must not contain NaN, got {rows.size} NaN value(s), first at sample {rows[0]}, class "
            f"{cols[0]}."
        )
    return arr


def _as_ignore_mask(ignore_mask: Any, shape: tuple[int, ...], ref_name: str = "scores") -> np.ndarray | None:
    """Returns the ignore mask as a boolean array, or ``None`` if nothing is ignored."""
    if ignore_mask is None:
        return None
    mask = _as_2d(ignore_mask, "ignore_mask")
    _check_same_shape(mask, "ignore_mask", shape, ref_name)
    if mask.dtype != np.bool_:
        bad = (mask != 0) & (mask != 1)
        if bad.any():
            raise ValueError(
                f"`ignore_mask` must be boolean (True = ignore) or contain only 0/1, got value(s) "
                f"{_first_values(mask[bad])}."
            )
        mask = mask.astype(bool)
    return mask if mask.any() else None


def _first_values(values: np.ndarray, limit: int = 5) -> str:
    uniq = np.unique(values)
    listed = ", ".join(repr(v.item()) for v in uniq[:limit])
    return f"[{listed}{', ...' if uniq.size > limit else ''}]"


def _as_binary(
    x: Any, name: str, shape: tuple[int, ...] | None, ignore_mask: np.ndarray | None, ref_name: str = "scores"
) -> np.ndarray:
    """Validates a {0, 1} matrix (bool, int or float) and returns it as a boolean array.

    Entries flagged by ``ignore_mask`` are not validated (they may hold any value, e.g. ``-1`` for "difficult").
    """
    arr = _as_2d(x, name)
    if shape is not None:
        _check_same_shape(arr, name, shape, ref_name)
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.number)):
        raise ValueError(f"`{name}` must contain 0/1 values (bool, int or float), got dtype {arr.dtype}.")
    is_one = arr == 1
    bad = ~is_one & (arr != 0)
    if ignore_mask is not None:
        bad &= ~ignore_mask
    if bad.any():
        rows, cols = np.nonzero(bad)
        raise ValueError(
            f"`{name}` must contain only 0 and 1, got value(s) {_first_values(arr[bad])} "
            f"(first at sample {rows[0]}, class {cols[0]}). Use `ignore_mask` to exclude entries."
        )
    return is_one


def _check_mode(mode: str, name: str = "mode") -> None:
    if mode not in AP_MODES:
        raise ValueError(f"Unknown `{name}` {mode!r}; expected one of {list(AP_MODES)}.")


def _check_threshold(threshold: float) -> float:
    if not isinstance(threshold, numbers.Real) or isinstance(threshold, bool) or not np.isfinite(threshold):
        raise ValueError(f"`threshold` must be a finite real number, got {threshold!r}.")
    return float(threshold)


def _check_class_thresholds(threshold: Any, num_classes: int) -> float | np.ndarray:
    """A global threshold (float) or one per class (``(C,)`` array, e.g. calibrated ``config.thresholds``)."""
    if np.ndim(threshold) == 0:
        return _check_threshold(threshold)
    values = np.asarray(threshold, dtype=np.float64)
    if values.shape != (num_classes,):
        raise ValueError(f"`threshold` must be a number or one value per class ({num_classes}), got shape "
                         f"{values.shape}.")
    if not np.isfinite(values).all():
        raise ValueError("`threshold` values must be finite.")
    return values


def _check_label_names(label_names: Sequence[str] | None, num_classes: int) -> list[str] | None:
    if label_names is None:
        return None
    names = [str(name) for name in label_names]
    if len(names) != num_classes:
        raise ValueError(f"`label_names` must have one name per class ({num_classes}), got {len(names)} names.")
    return names


# ---------------------------------------------------------------------------------------------------------------------
# Average precision
# ---------------------------------------------------------------------------------------------------------------------


def _ranked_positives(
    scores: np.ndarray, positive_index: np.ndarray, ignore_mask: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Ranks every positive entry within its class, exactly and tie-aware, for all classes at once.

    For each (non-ignored) positive entry with score ``s`` in class ``c`` this computes

    - ``all_ge``: the number of non-ignored entries of class ``c`` with score ``>= s`` (the rank of the *end* of the
      block of tied scores that contains ``s``),
    - ``tp_ge``: the number of those entries that are positive,

    so ``tp_ge / all_ge`` is the precision at the distinct threshold ``s`` (scikit-learn's tie convention) and
    ``tp_ge / n_pos[c]`` the recall there. ``positive_index`` holds the flat (C-order) indices of the positive,
    non-ignored entries of ``scores`` (``np.flatnonzero(positives)``).

    Algorithm (no Python loop over classes or samples, no ``argsort`` / gather of N x C arrays): the positives are
    sorted by ``(class, score)``; one value-only sort of the transposed ``(C, N)`` score matrix; then a vectorised
    branch-free binary search of every positive in the sorted row of its class (``log2(N)`` NumPy passes over the
    positives only; sorted queries keep the memory accesses local).

    Returns:
        ``(cls, tp_ge, all_ge, n_pos)``: the first three have one entry per positive, ordered by class and then by
        *increasing* score; ``n_pos`` (shape ``(C,)``) is the number of positives per class.
    """
    num_samples, num_classes = scores.shape
    rows, cls = np.divmod(positive_index, num_classes)
    n_pos = np.bincount(cls, minlength=num_classes)
    if cls.size == 0:
        empty = np.zeros(0, dtype=np.intp)
        return empty, empty, empty, n_pos

    # Sort the positives by (class, score): argsort by score, then a stable (radix for int16) sort by class.
    values = scores[rows, cls]
    del rows
    order = np.argsort(values)
    cls_dtype = np.int16 if num_classes <= np.iinfo(np.int16).max else np.int64
    order = order[np.argsort(cls[order].astype(cls_dtype), kind="stable")]
    values, cls = values[order], cls[order]
    del order

    # (C, N) copy, sorted ascending in place. Ignored entries become NaN, which sorts last and never compares "<".
    sorted_rows = scores.T.copy()
    if ignore_mask is not None:
        sorted_rows[ignore_mask.T] = np.nan
        n_valid = num_samples - np.count_nonzero(ignore_mask, axis=0)
    else:
        n_valid = np.full(num_classes, num_samples, dtype=np.intp)
    sorted_rows.sort(axis=1)

    # Branch-free lower bound: number of entries of row `cls` strictly smaller than `values`.
    flat = sorted_rows.ravel()
    row_start = cls * num_samples
    base = row_start.copy()
    probe = np.empty_like(base)
    probed = np.empty_like(values)
    smaller = np.empty(values.shape, dtype=bool)
    length = num_samples
    while length > 1:
        half = length // 2
        np.add(base, half, out=probe)
        np.take(flat, probe, out=probed)
        np.less(probed, values, out=smaller)
        np.copyto(base, probe, where=smaller)
        length -= half
    np.take(flat, base, out=probed)
    n_less = base - row_start
    n_less += probed < values
    del sorted_rows, flat, probe, probed, smaller, base, row_start

    all_ge = n_valid[cls] - n_less
    # tp_ge = positives of the same class at or after the first member of this tie group (increasing-score order).
    index = np.arange(cls.size)
    new_group = np.ones(cls.size, dtype=bool)
    new_group[1:] = (values[1:] != values[:-1]) | (cls[1:] != cls[:-1])
    group_first = np.maximum.accumulate(np.where(new_group, index, 0))
    seg_end = np.cumsum(n_pos)
    tp_ge = seg_end[cls] - group_first
    return cls, tp_ge, all_ge, n_pos


def _ap_from_ranked(
    cls: np.ndarray, tp_ge: np.ndarray, all_ge: np.ndarray, n_pos: np.ndarray, mode: str
) -> np.ndarray:
    """AP of every class from the output of `_ranked_positives` (positives sorted by class, increasing score)."""
    num_classes = n_pos.size
    ap = np.full(num_classes, np.nan, dtype=np.float64)
    has_pos = n_pos > 0
    if cls.size == 0:
        return ap
    precision = tp_ge / all_ge
    if mode == "non_interpolated":
        total = np.bincount(cls, weights=precision, minlength=num_classes)
        ap[has_pos] = total[has_pos] / n_pos[has_pos]
        return ap

    # Precision envelope: max precision at this or any lower score (= at this or any higher recall), i.e. a running
    # maximum in increasing-score order, restarted at each class. Offsetting class c by 2c (precision is in [0, 1])
    # makes one global running maximum never carry a value over into the next class.
    offset = 2.0 * cls
    envelope = np.maximum.accumulate(precision + offset) - offset
    if mode == "interpolated":
        # Every positive raises the recall by 1 / n_pos: area under the interpolated (envelope) step curve.
        total = np.bincount(cls, weights=envelope, minlength=num_classes)
        ap[has_pos] = total[has_pos] / n_pos[has_pos]
        return ap

    # "11point": mean over t in {0, 0.1, ..., 1} of the max precision at recall >= t. Recall >= t is tested exactly in
    # integers (10 * tp >= i * n_pos), so that e.g. recall 3/10 counts for t = 0.3. The positives reaching recall t
    # are the first m of the class segment (lowest scores); the envelope at the m-th is the max precision over them.
    seg_start = np.concatenate(([0], np.cumsum(n_pos)[:-1]))
    tp10 = 10 * tp_ge
    n_pos_of = n_pos[cls]
    valid_classes = np.flatnonzero(has_pos)
    total = np.zeros(valid_classes.size, dtype=np.float64)
    for i in range(11):
        reached = np.bincount(cls, weights=tp10 >= i * n_pos_of, minlength=num_classes)[valid_classes]
        total += envelope[seg_start[valid_classes] + np.rint(reached).astype(np.intp) - 1]
    ap[valid_classes] = total / 11.0
    return ap


def average_precision(
    scores: Any,
    targets: Any,
    ignore_mask: Any | None = None,
    mode: str = "non_interpolated",
) -> np.ndarray:
    r"""Per-class average precision (AP) of a multi-label score matrix.

    Only the ordering of the scores within each class matters, so probabilities and logits give the same AP.

    Args:
        scores (array-like or `torch.Tensor` of shape `(N, C)`):
            Prediction scores (probabilities or logits). NaN is not allowed; ties are handled exactly.
        targets (array-like or `torch.Tensor` of shape `(N, C)`):
            Ground truth in {0, 1} (bool, int or float). Other values raise a `ValueError` unless the entry is ignored.
        ignore_mask (array-like of shape `(N, C)`, *optional*):
            Boolean mask, `True` = ignore this entry (e.g. PASCAL VOC "difficult" labels). Ignored entries are removed
            from the ranking of their class, as if the sample did not exist for that class.
        mode (`str`, *optional*, defaults to `"non_interpolated"`):
            - `"non_interpolated"`: AP = \\(\sum_k (R_k - R_{k-1}) P_k\\) over the distinct score thresholds, i.e. the
              mean, over the positives, of the precision at the end of the block of tied scores that contains them.
              This is the convention of ASL / ML-Decoder and is identical to
              `sklearn.metrics.average_precision_score` (including ties).
            - `"interpolated"`: PASCAL VOC 2010+ all-point interpolated AP (area under the monotone precision
              envelope \\(\max_{k' \ge k} P_{k'}\\)), the convention of Query2Label / SSGRL (`voc_ap`). Ties are
              handled like above (those implementations break ties by sort order instead; without ties both agree).
            - `"11point"`: PASCAL VOC 2007 11-point AP, the mean over \\(t \in \{0, 0.1, \dots, 1\}\\) of the maximum
              precision at recall \\(\ge t\\) (recall compared exactly, as a fraction).

    Returns:
        `np.ndarray` of shape `(C,)` (float64): the AP of every class, in [0, 1], NaN for a class without positive
        (non-ignored) targets.

    Raises:
        ValueError: on shape mismatch, non-binary targets, NaN scores or an unknown `mode`.

    Example:

    ```python
    >>> average_precision([[0.9], [0.5], [0.3]], [[1], [0], [1]])  # ranking +, -, +: (1 + 2/3) / 2
    array([0.83333333])
    ```
    """
    _check_mode(mode)
    scores = _as_scores(scores)
    mask = _as_ignore_mask(ignore_mask, scores.shape)
    positives = _as_binary(targets, "targets", scores.shape, mask)
    if mask is not None:
        positives = positives & ~mask
    return _ap_from_ranked(*_ranked_positives(scores, np.flatnonzero(positives), mask), mode=mode)


def _mean_of_valid_ap(ap: np.ndarray, label_names: Sequence[str] | None = None) -> float:
    """Mean AP over classes with at least one positive; warns about the excluded classes."""
    missing = np.flatnonzero(np.isnan(ap))
    if missing.size:
        listed = missing[:_MAX_LISTED].tolist()
        if label_names is not None:
            listed = [f"{i} ({label_names[i]})" for i in listed]
        more = f" and {missing.size - _MAX_LISTED} more" if missing.size > _MAX_LISTED else ""
        if missing.size == ap.size:
            warnings.warn(
                f"None of the {ap.size} classes has a positive (non-ignored) target; mAP is NaN.",
                UserWarning,
                stacklevel=3,
            )
            return float("nan")
        warnings.warn(
            f"{missing.size} of {ap.size} classes have no positive (non-ignored) target and are excluded from mAP: "
            f"class indices {listed}{more}.",
            UserWarning,
            stacklevel=3,
        )
    return float(np.nanmean(ap)) if ap.size else float("nan")


def mean_average_precision(
    scores: Any,
    targets: Any,
    ignore_mask: Any | None = None,
    mode: str = "non_interpolated",
) -> float:
    """Mean average precision (mAP) over the classes that have at least one positive target.

    Classes without a positive (after applying `ignore_mask`) have an undefined AP; they are excluded from the mean and
    a `UserWarning` lists them. If no class has a positive the result is NaN (with a warning).

    Args:
        scores, targets, ignore_mask, mode: see [`average_precision`].

    Returns:
        `float`: the mAP, in [0, 1] (not a percentage).
    """
    return _mean_of_valid_ap(average_precision(scores, targets, ignore_mask=ignore_mask, mode=mode))


# ---------------------------------------------------------------------------------------------------------------------
# Thresholded metrics
# ---------------------------------------------------------------------------------------------------------------------


def sigmoid(x: Any) -> np.ndarray:
    """Numerically stable logistic sigmoid (no overflow for large negative logits), keeping float32 as float32."""
    x = _to_numpy(x)
    if not np.issubdtype(x.dtype, np.floating):
        x = x.astype(np.float64)
    e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
    out = np.where(x >= 0, np.ones_like(e), e)
    e += 1.0
    out /= e
    return out


def threshold_predictions(scores: Any, threshold: float = 0.5) -> np.ndarray:
    """Binary predictions `scores >= threshold` (a boolean `(N, C)` array).

    `threshold` is compared with the scores as they are: use probabilities with a probability threshold (or logits
    with a logit threshold, e.g. `0.0` for probability 0.5).
    """
    threshold = _check_threshold(threshold)
    return _as_scores(scores) >= threshold


def _topk_mask(scores: np.ndarray, k: int) -> np.ndarray:
    """Boolean mask of the ``k`` largest scores of every row (exactly ``min(k, C)`` per row)."""
    num_samples, num_classes = scores.shape
    if k >= num_classes:
        return np.ones(scores.shape, dtype=bool)
    if num_samples == 0:
        return np.zeros(scores.shape, dtype=bool)
    # Fast path: the k-th largest value of each row by a value-only partition, then one comparison. A row has more
    # than k entries >= its k-th largest value only when that value is tied; such rows are redone with argpartition.
    kth_largest = np.partition(scores, num_classes - k, axis=1)[:, num_classes - k]
    pred = scores >= kth_largest[:, None]
    tied_rows = np.flatnonzero(pred.view(np.uint8).sum(axis=1, dtype=np.int64) != k)
    if tied_rows.size:
        top = np.argpartition(scores[tied_rows], num_classes - k, axis=1)[:, num_classes - k :]
        fixed = np.zeros((tied_rows.size, num_classes), dtype=bool)
        np.put_along_axis(fixed, top, True, axis=1)
        pred[tied_rows] = fixed
    return pred


def _check_k(k: int, name: str = "k") -> int:
    if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
        raise ValueError(f"`{name}` must be a positive integer, got {k!r}.")
    return int(k)


def topk_predictions(scores: Any, k: int = 3, threshold: float | None = None) -> np.ndarray:
    """Binary predictions selecting the `k` highest-scoring classes of every sample.

    Args:
        scores (array-like of shape `(N, C)`): prediction scores.
        k (`int`, *optional*, defaults to 3): labels per sample; clipped to `C`.
        threshold (`float`, *optional*):
            If given, a top-`k` label is kept only if its score is also `>= threshold` (the ML-GCN "top-3" convention),
            so a row may then have fewer than `k` predictions.

    Returns:
        Boolean `np.ndarray` of shape `(N, C)` with exactly `min(k, C)` `True` per row (when `threshold` is None).
        Ties at the `k`-th score are broken arbitrarily (by `np.argpartition`), so exactly `k` labels are still chosen.
    """
    k = _check_k(k)
    scores = _as_scores(scores)
    pred = _topk_mask(scores, k)
    if threshold is not None:
        pred &= scores >= _check_threshold(threshold)
    return pred


def _prf_from_counts(tp: np.ndarray, n_pred: np.ndarray, n_pos: np.ndarray) -> dict[str, float]:
    tp = tp.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_class_p = np.where(n_pred > 0, tp / n_pred, 0.0)
        per_class_r = np.where(n_pos > 0, tp / n_pos, 0.0)
    cp = float(per_class_p.mean()) if per_class_p.size else 0.0
    cr = float(per_class_r.mean()) if per_class_r.size else 0.0
    total_tp, total_pred, total_pos = float(tp.sum()), float(n_pred.sum()), float(n_pos.sum())
    op = total_tp / total_pred if total_pred > 0 else 0.0
    o_r = total_tp / total_pos if total_pos > 0 else 0.0

    def f1(p: float, r: float) -> float:
        return 2.0 * p * r / (p + r) if p + r > 0 else 0.0

    return {"CP": cp, "CR": cr, "CF1": f1(cp, cr), "OP": op, "OR": o_r, "OF1": f1(op, o_r)}


def _column_counts(mask: np.ndarray) -> np.ndarray:
    """Number of True entries per column of a boolean matrix (faster than ``np.count_nonzero(axis=0)``)."""
    return mask.view(np.uint8).sum(axis=0, dtype=np.int64)


def _prf(pred: np.ndarray, positive_index: np.ndarray, n_pos: np.ndarray) -> dict[str, float]:
    """P/R/F1 of boolean predictions (ignored entries already cleared) given the flat indices of the positives."""
    num_classes = pred.shape[1]
    hit = pred.ravel()[positive_index]
    tp = np.bincount(positive_index[hit] % num_classes, minlength=num_classes)
    return _prf_from_counts(tp, _column_counts(pred), n_pos)


def precision_recall_f1(pred: Any, targets: Any, ignore_mask: Any | None = None) -> dict[str, float]:
    r"""Per-class and overall precision, recall and F1 of binary predictions (ML-GCN / ASL conventions).

    With \\(TP_c, FP_c, FN_c\\) counted over the non-ignored entries of class \\(c\\):

    - per-class \\(P_c = TP_c / (TP_c + FP_c)\\), \\(R_c = TP_c / (TP_c + FN_c)\\);
    - `CP` = mean of \\(P_c\\) over all classes, `CR` = mean of \\(R_c\\), `CF1` = 2 CP CR / (CP + CR)
      (F1 of the averages, as in ML-GCN, not the mean of per-class F1);
    - `OP` = \\(\sum TP / \sum (TP + FP)\\), `OR` = \\(\sum TP / \sum (TP + FN)\\), `OF1` = 2 OP OR / (OP + OR).

    Zero-division convention (scikit-learn's `zero_division=0`): a class with no predicted positive has
    \\(P_c = 0\\), a class with no positive target has \\(R_c = 0\\) (both still count in the class means), and an F1
    whose precision and recall are both 0 is 0. So `CP` / `CR` equal `precision_score` / `recall_score` with
    `average="macro", zero_division=0`, and `OP` / `OR` the `average="micro"` ones.

    Args:
        pred (array-like of shape `(N, C)`): binary predictions (bool or 0/1), e.g. from [`threshold_predictions`].
        targets (array-like of shape `(N, C)`): ground truth in {0, 1}.
        ignore_mask (array-like of shape `(N, C)`, *optional*): `True` = entry excluded from all counts.

    Returns:
        `dict` with float values in [0, 1] (fractions, not percentages) for keys `"CP"`, `"CR"`, `"CF1"`, `"OP"`,
        `"OR"`, `"OF1"`.
    """
    pred_arr = _as_binary(pred, "pred", None, None)
    mask = _as_ignore_mask(ignore_mask, pred_arr.shape, ref_name="pred")
    positives = _as_binary(targets, "targets", pred_arr.shape, mask, ref_name="pred")
    if mask is not None:
        positives = positives & ~mask
        pred_arr = pred_arr & ~mask
    return _prf(pred_arr, np.flatnonzero(positives), _column_counts(positives))


# ---------------------------------------------------------------------------------------------------------------------
# All metrics at once
# ---------------------------------------------------------------------------------------------------------------------


def multilabel_metrics(
    scores: Any,
    targets: Any,
    *,
    threshold: float | Sequence[float] = 0.5,
    top_k: int | None = 3,
    ignore_mask: Any | None = None,
    ap_mode: str = "non_interpolated",
    label_names: Sequence[str] | None = None,
    scores_are_logits: bool = False,
) -> dict[str, Any]:
    """Computes the standard multi-label classification metrics in one pass.

    Args:
        scores (array-like or `torch.Tensor` of shape `(N, C)`):
            Probabilities (default) or logits (`scores_are_logits=True`).
        targets (array-like or `torch.Tensor` of shape `(N, C)`): ground truth in {0, 1}.
        threshold (`float` or sequence of `float`, *optional*, defaults to 0.5):
            Probability threshold of the thresholded metrics (a label is predicted when its probability is
            `>= threshold`): one for every class, or one per class (e.g. calibrated, [`mlic_hf.calibration`]).
        top_k (`int`, *optional*, defaults to 3):
            Also report the `*_top{k}` metrics, where a label is predicted when it is among the `k` highest-scoring
            labels of the image **and** its probability is `>= threshold` (the ML-GCN convention). `None` skips them.
        ignore_mask (array-like of shape `(N, C)`, *optional*):
            `True` = ignore the entry (excluded from AP and from the TP/FP/FN counts).
        ap_mode (`str`, *optional*, defaults to `"non_interpolated"`): see [`average_precision`].
        label_names (sequence of `str`, *optional*): if given, `"per_class_AP"` is a `{name: AP}` dict.
        scores_are_logits (`bool`, *optional*, defaults to `False`):
            Apply a (numerically stable) sigmoid before thresholding. AP and the top-k ranking use the raw scores
            either way (same ordering, and no ties created by sigmoid saturation).

    Returns:
        `dict` with float values in [0, 1] (fractions): `"mAP"` (mean over classes with a positive, see
        [`mean_average_precision`]); `"CP"`, `"CR"`, `"CF1"`, `"OP"`, `"OR"`, `"OF1"` (see
        [`precision_recall_f1`]); the same six with suffix `_top{k}` unless `top_k` is None; and `"per_class_AP"`
        (`np.ndarray` of shape `(C,)`, NaN for classes without positives, or a `{name: AP}` dict).

    Raises:
        ValueError: on shape mismatch, non-binary targets, NaN scores, wrong `label_names` length, bad `top_k` or an
            unknown `ap_mode`.
    """
    _check_mode(ap_mode, "ap_mode")
    if top_k is not None:
        top_k = _check_k(top_k, "top_k")
    scores = _as_scores(scores)
    threshold = _check_class_thresholds(threshold, scores.shape[1])
    names = _check_label_names(label_names, scores.shape[1])
    mask = _as_ignore_mask(ignore_mask, scores.shape)
    positives = _as_binary(targets, "targets", scores.shape, mask)
    if mask is not None:
        positives = positives & ~mask

    positive_index = np.flatnonzero(positives)
    del positives
    cls, tp_ge, all_ge, n_pos = _ranked_positives(scores, positive_index, mask)
    ap = _ap_from_ranked(cls, tp_ge, all_ge, n_pos, mode=ap_mode)
    results: dict[str, Any] = {"mAP": _mean_of_valid_ap(ap, names)}

    if scores_are_logits:
        probs = sigmoid(scores)
    else:
        probs = scores
        if scores.size and (scores.min() < 0.0 or scores.max() > 1.0):
            warnings.warn(
                "`scores` has values outside [0, 1] but `scores_are_logits=False`: the thresholded metrics compare "
                "them with a probability threshold. Pass `scores_are_logits=True` for logits.",
                UserWarning,
                stacklevel=2,
            )
    pred = probs >= threshold
    del probs
    if mask is not None:
        pred &= ~mask
    results.update(_prf(pred, positive_index, n_pos))
    if top_k is not None:
        pred &= _topk_mask(scores, top_k)
        results.update({f"{key}_top{top_k}": value for key, value in _prf(pred, positive_index, n_pos).items()})

    results["per_class_AP"] = dict(zip(names, ap.tolist())) if names is not None else ap
    return results


# ---------------------------------------------------------------------------------------------------------------------
# transformers.Trainer integration
# ---------------------------------------------------------------------------------------------------------------------


def _unpack_eval_prediction(eval_pred: Any) -> tuple[Any, Any]:
    if hasattr(eval_pred, "predictions") and hasattr(eval_pred, "label_ids"):
        predictions, labels = eval_pred.predictions, eval_pred.label_ids
    elif isinstance(eval_pred, (tuple, list)) and len(eval_pred) >= 2:
        predictions, labels = eval_pred[0], eval_pred[1]
    else:
        raise ValueError(
            "`eval_pred` must be a `transformers.EvalPrediction` (with `.predictions` and `.label_ids`) or a "
            f"(predictions, labels) tuple, got {type(eval_pred).__name__}."
        )
    # Models that return extra outputs (e.g. attention maps) give a tuple of arrays: logits come first.
    while isinstance(predictions, (tuple, list)):
        predictions = predictions[0]
    while isinstance(labels, (tuple, list)):
        labels = labels[0]
    if labels is None:
        raise ValueError("`eval_pred.label_ids` is None: the evaluation dataset must provide labels.")
    return predictions, labels


def make_compute_metrics(
    threshold: float = 0.5,
    top_k: int | None = 3,
    ap_mode: str = "non_interpolated",
    label_names: Sequence[str] | None = None,
    prefix: str = "",
    per_class: bool = False,
    scores_are_logits: bool = True,
) -> Callable[[Any], dict[str, float]]:
    """Builds a `compute_metrics` function for [`transformers.Trainer`].

    The returned callable takes an `EvalPrediction` (anything with `.predictions` and `.label_ids`, or a
    `(predictions, labels)` tuple) and returns [`multilabel_metrics`] as a flat `dict[str, float]`. `predictions` are
    logits by default (a tuple of arrays is allowed: its first element is used). Labels that are negative (e.g. the
    `-100` padding value, or `-1` for "difficult"/unknown) are treated as ignored entries (`ignore_mask`).

    Args:
        threshold (`float`, *optional*, defaults to 0.5): probability threshold of the thresholded metrics.
        top_k (`int`, *optional*, defaults to 3): see [`multilabel_metrics`]; `None` skips the top-k metrics.
        ap_mode (`str`, *optional*, defaults to `"non_interpolated"`): see [`average_precision`].
        label_names (sequence of `str`, *optional*): names used for the per-class keys.
        prefix (`str`, *optional*, defaults to `""`): prepended to every key (`Trainer` adds `"eval_"` itself).
        per_class (`bool`, *optional*, defaults to `False`):
            Add one `"AP/<label_name>"` key per class (`"AP/<index>"` without `label_names`); NaN for classes without
            positives.
        scores_are_logits (`bool`, *optional*, defaults to `True`): set to `False` if the model outputs probabilities.

    Returns:
        `Callable[[EvalPrediction], dict[str, float]]`.

    Example:

    ```python
    >>> from mlic_hf.metrics import make_compute_metrics
    >>> compute_metrics = make_compute_metrics(label_names=model.config.id2label.values())  # doctest: +SKIP
    >>> trainer = Trainer(model=model, args=args, compute_metrics=compute_metrics, ...)  # doctest: +SKIP
    ```
    """
    _check_mode(ap_mode, "ap_mode")
    threshold = _check_threshold(threshold)
    if top_k is not None:
        top_k = _check_k(top_k, "top_k")
    names = None if label_names is None else [str(name) for name in label_names]

    def compute_metrics(eval_pred: Any) -> dict[str, float]:
        predictions, labels = _unpack_eval_prediction(eval_pred)
        labels = _as_2d(labels, "label_ids")
        ignore = labels < 0
        if ignore.any():
            labels = np.where(ignore, 0, labels)
        else:
            ignore = None
        results = multilabel_metrics(
            predictions,
            labels,
            threshold=threshold,
            top_k=top_k,
            ignore_mask=ignore,
            ap_mode=ap_mode,
            label_names=names,
            scores_are_logits=scores_are_logits,
        )
        per_class_ap = results.pop("per_class_AP")
        out = {f"{prefix}{key}": float(value) for key, value in results.items()}
        if per_class:
            items = per_class_ap.items() if isinstance(per_class_ap, dict) else enumerate(per_class_ap.tolist())
            out.update({f"{prefix}AP/{name}": float(value) for name, value in items})
        return out

    return compute_metrics


# ---------------------------------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------------------------------


def _format_value(key: str, value: float) -> str:
    if isinstance(value, float) and np.isnan(value):
        return "n/a"
    if _PERCENT_METRIC.search(key):
        return f"{100.0 * value:.2f}"
    return f"{value:.4g}"


def _table(header: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    width = max([len(header[0])] + [len(name) for name, _ in rows])
    value_width = max([len(header[1])] + [len(value) for _, value in rows])
    lines = [f"{header[0]:<{width}}  {header[1]:>{value_width}}", f"{'-' * width}  {'-' * value_width}"]
    lines += [f"{name:<{width}}  {value:>{value_width}}" for name, value in rows]
    return lines


def format_metrics_table(metrics: Mapping[str, Any], label_names: Sequence[str] | None = None) -> str:
    """Formats metrics as a plain-text table (for scripts' final reports).

    Scalar metrics come first (`mAP`, `CP`, ..., also with a prefix such as `eval_mAP` or a `_top3` suffix, shown in
    %), then other scalars such as `eval_loss` (shown as is), then a per-class AP table (in %) in class-index order.
    Per-class APs are read from `metrics["per_class_AP"]` (array or `{name: AP}` dict, as returned by
    [`multilabel_metrics`]) or from `"AP/<name>"` keys (as returned by [`make_compute_metrics`] with
    `per_class=True`).

    Args:
        metrics (`Mapping[str, Any]`): the metrics.
        label_names (sequence of `str`, *optional*):
            Class names, used to label an array of per-class APs and to order `"AP/<name>"` keys.

    Returns:
        `str`: the table (no trailing newline).
    """
    scalar_rows: list[tuple[str, str, bool]] = []
    per_class: list[tuple[str, float]] = []
    ap_keys: list[tuple[str, float]] = []
    for key, value in metrics.items():
        if key.endswith("per_class_AP"):
            if isinstance(value, Mapping):
                per_class = [(str(name), float(ap)) for name, ap in value.items()]
            else:
                values = np.asarray(value, dtype=np.float64).ravel().tolist()
                names = list(label_names) if label_names is not None and len(label_names) == len(values) else None
                per_class = [(str(names[i]) if names else str(i), ap) for i, ap in enumerate(values)]
        elif "AP/" in key:
            ap_keys.append((key.split("AP/", 1)[1], float(value)))
        elif isinstance(value, (numbers.Real, np.generic)) and not isinstance(value, bool):
            scalar_rows.append((key, _format_value(key, float(value)), bool(_PERCENT_METRIC.search(key))))

    if not per_class and ap_keys:
        if label_names is not None:
            order = {str(name): i for i, name in enumerate(label_names)}
            ap_keys.sort(key=lambda item: order.get(item[0], len(order)))
        elif all(name.isdigit() for name, _ in ap_keys):
            ap_keys.sort(key=lambda item: int(item[0]))
        per_class = ap_keys

    percent_rows = [(key, value) for key, value, is_percent in scalar_rows if is_percent]
    other_rows = [(key, value) for key, value, is_percent in scalar_rows if not is_percent]
    lines = _table(("Metric", "Value (%)"), percent_rows)
    if other_rows:
        lines += ["", *_table(("Other", "Value"), other_rows)]
    if per_class:
        rows = [
            (f"{i:>3}" if name == str(i) else f"{i:>3}  {name}", _format_value("mAP", ap))
            for i, (name, ap) in enumerate(per_class)
        ]
        lines += ["", *_table(("Class", "AP (%)"), rows)]
    return "\n".join(lines)


def evaluate_module_path() -> str:
    """Absolute path of the `evaluate` metric script of this package (works offline).

    Example:

    ```python
    >>> import evaluate
    >>> from mlic_hf.metrics import evaluate_module_path
    >>> metric = evaluate.load(evaluate_module_path())  # doctest: +SKIP
    >>> metric.compute(predictions=probabilities, references=labels)  # doctest: +SKIP
    ```
    """
    return str(Path(__file__).resolve().parent / "evaluate_metric" / "mlic_metrics.py")


def check_metric_args(threshold: float, top_k: int | None, ap_mode: str) -> None:
    """A ``ValueError`` naming the flag if a metric setting is out of range: a threshold of 0 or 1 (or beyond) makes
    every label positive or none, so CP/CR/CF1 and OP/OR/OF1 would be meaningless rather than wrong-looking."""
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"--threshold must be a probability strictly between 0 and 1, got {threshold}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"--top_k must be at least 1, got {top_k}")
    if ap_mode not in AP_MODES:
        raise ValueError(f"--ap_mode must be one of {', '.join(AP_MODES)}, got {ap_mode!r}")
