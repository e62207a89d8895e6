"""Tests of `mlic_hf.metrics` and of the `evaluate` metric script `mlic_hf/evaluate_metric/mlic_metrics.py`.

AP is checked against scikit-learn (`average_precision_score`, per column) and against small cases worked out by hand
in the comments; the interpolated / 11-point modes against straightforward per-class loop implementations written
here; P/R/F1 against hand counts and scikit-learn's `precision_score` / `recall_score`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import types
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, precision_score, recall_score

from mlic_hf.metrics import (
    AP_MODES,
    average_precision,
    evaluate_module_path,
    format_metrics_table,
    make_compute_metrics,
    mean_average_precision,
    multilabel_metrics,
    precision_recall_f1,
    sigmoid,
    threshold_predictions,
    topk_predictions,
)


os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_EVALUATE_OFFLINE", "1")


def _random_problem(seed: int, n: int = 300, c: int = 7, density: float = 0.2, dtype=np.float64):
    rng = np.random.default_rng(seed)
    targets = rng.random((n, c)) < density
    targets[0] = True  # every class has at least one positive
    scores = (rng.normal(size=(n, c)) + 1.5 * targets).astype(dtype)
    return scores, targets


def _sklearn_ap(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    return np.array([average_precision_score(targets[:, j], scores[:, j]) for j in range(scores.shape[1])])


def _reference_pr_points(scores: np.ndarray, targets: np.ndarray) -> tuple[list[Fraction], list[Fraction]]:
    """Precision / recall (exact fractions) at every distinct threshold of one class, by a plain loop."""
    n_pos = int(targets.sum())
    recalls, precisions = [], []
    for threshold in sorted(set(scores.tolist()), reverse=True):
        selected = scores >= threshold
        tp = int((selected & targets).sum())
        recalls.append(Fraction(tp, n_pos))
        precisions.append(Fraction(tp, int(selected.sum())))
    return recalls, precisions


def _reference_interpolated_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """VOC 2010+ all-point interpolated AP: area under the precision envelope, one class, plain loop."""
    recalls, precisions = _reference_pr_points(scores, targets)
    ap, previous_recall = Fraction(0), Fraction(0)
    for k, recall in enumerate(recalls):
        envelope = max(precisions[k:])
        ap += (recall - previous_recall) * envelope
        previous_recall = recall
    return float(ap)


def _reference_11point_ap(scores: np.ndarray, targets: np.ndarray) -> float:
    """VOC 2007 11-point AP, one class, plain loop with exact recall comparisons."""
    recalls, precisions = _reference_pr_points(scores, targets)
    total = Fraction(0)
    for i in range(11):
        t = Fraction(i, 10)
        total += max([p for r, p in zip(recalls, precisions) if r >= t], default=Fraction(0))
    return float(total / 11)


# ---------------------------------------------------------------------------------------------------------------------
# Average precision
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ap_matches_sklearn_random(seed, dtype):
    scores, targets = _random_problem(seed, n=500, c=9, dtype=dtype)
    ap = average_precision(scores, targets)
    np.testing.assert_allclose(ap, _sklearn_ap(scores, targets), rtol=0, atol=1e-6)
    assert mean_average_precision(scores, targets) == pytest.approx(ap.mean(), abs=1e-12)


@pytest.mark.parametrize("decimals", [1, 0])
@pytest.mark.parametrize("seed", [0, 1])
def test_ap_matches_sklearn_with_many_ties(seed, decimals):
    scores, targets = _random_problem(seed, n=400, c=6)
    scores = np.round(scores, decimals)  # many tied scores (and both -0.0 and +0.0)
    ap = average_precision(scores, targets)
    np.testing.assert_allclose(ap, _sklearn_ap(scores, targets), rtol=0, atol=1e-6)
    metrics = multilabel_metrics(scores, targets, top_k=None, scores_are_logits=True)
    np.testing.assert_allclose(metrics["mAP"], ap.mean(), atol=1e-12)


def test_ap_matches_sklearn_realistic_sparse():
    # COCO-like density, float32 probabilities, a few thousand images.
    rng = np.random.default_rng(3)
    targets = rng.random((4000, 20)) < 0.036
    scores = sigmoid((rng.normal(size=targets.shape) + 2.0 * targets - 2.0).astype(np.float32))
    np.testing.assert_allclose(average_precision(scores, targets), _sklearn_ap(scores, targets), atol=1e-6)


def test_ap_hand_computed_simple():
    # Ranking + - + (scores 0.9, 0.5, 0.3):
    #   non-interpolated: precisions at the positives 1/1 and 2/3 -> AP = (1 + 2/3) / 2 = 5/6.
    #   interpolated: envelope at the positives max(1, 2/3) = 1 and 2/3 -> same 5/6.
    #   11-point: points (R=1/2, P=1), (R=1/2, P=1/2), (R=1, P=2/3); t = 0 .. 0.5 (6 values) -> 1,
    #             t = 0.6 .. 1 (5 values) -> 2/3; AP = (6 + 5 * 2/3) / 11 = 28/33.
    scores, targets = [[0.9], [0.5], [0.3]], [[1], [0], [1]]
    assert average_precision(scores, targets)[0] == pytest.approx(5 / 6)
    assert average_precision(scores, targets, mode="interpolated")[0] == pytest.approx(5 / 6)
    assert average_precision(scores, targets, mode="11point")[0] == pytest.approx(28 / 33)


def test_ap_hand_computed_interpolation_matters():
    # Ranking + - - + + (3 positives): precision at the positives 1/1, 2/4, 3/5; recall 1/3, 2/3, 1.
    #   non-interpolated: (1 + 0.5 + 0.6) / 3 = 0.7.
    #   interpolated: envelope 1, max(0.5, 0.6) = 0.6, 0.6 -> (1 + 0.6 + 0.6) / 3 = 2.2 / 3.
    #   11-point: t = 0, .1, .2, .3 (recall 1/3 reachable) -> 1 (4 values); t = .4 .. 1 (7 values) -> 0.6;
    #             AP = (4 + 7 * 0.6) / 11 = 8.2 / 11.
    scores, targets = [[5.0], [4.0], [3.0], [2.0], [1.0]], [[1], [0], [0], [1], [1]]
    assert average_precision(scores, targets)[0] == pytest.approx(0.7)
    assert average_precision(scores, targets, mode="interpolated")[0] == pytest.approx(2.2 / 3)
    assert average_precision(scores, targets, mode="11point")[0] == pytest.approx(8.2 / 11)


def test_ap_hand_computed_ties():
    # Scores 0.9(+), 0.5(+), 0.5(-), 0.1(+): the tied block {0.5, 0.5} is one threshold, so precision is taken at its
    # end: thresholds 0.9 -> P = 1, R = 1/3; 0.5 -> P = 2/3, R = 2/3; 0.1 -> P = 3/4, R = 1.
    #   non-interpolated: (1 + 2/3 + 3/4) / 3 = 29/36.
    #   interpolated: envelope 1, max(2/3, 3/4) = 3/4, 3/4 -> (1 + 3/4 + 3/4) / 3 = 5/6.
    #   11-point: t <= .3 -> 1 (4 values), t >= .4 -> 3/4 (7 values) -> (4 + 21/4) / 11 = 37/44.
    for order in ([0, 1, 2, 3], [0, 2, 1, 3]):  # the order inside the tied block must not matter
        scores = np.array([[0.9], [0.5], [0.5], [0.1]])[order]
        targets = np.array([[1], [1], [0], [1]])[order]
        assert average_precision(scores, targets)[0] == pytest.approx(29 / 36)
        assert average_precision(scores, targets)[0] == pytest.approx(average_precision_score(targets, scores))
        assert average_precision(scores, targets, mode="interpolated")[0] == pytest.approx(5 / 6)
        assert average_precision(scores, targets, mode="11point")[0] == pytest.approx(37 / 44)


def test_11point_recall_threshold_is_exact():
    # 10 positives: 3 at the top (recall exactly 3/10 with precision 1), then 3 negatives, then 7 positives with
    # precision k / (k + 3), k = 4..10, increasing up to 10/13. Recall 0.3 must count for t = 0.3 (a float
    # `np.arange(0, 1.1, 0.1)` threshold 0.30000000000000004 would not), so AP = (4 * 1 + 7 * 10/13) / 11.
    targets = np.array([1, 1, 1, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1])[:, None]
    scores = np.arange(targets.shape[0], 0, -1, dtype=np.float64)[:, None]
    assert average_precision(scores, targets, mode="11point")[0] == pytest.approx((4 + 7 * 10 / 13) / 11)


@pytest.mark.parametrize("mode", ["interpolated", "11point"])
@pytest.mark.parametrize("round_scores", [False, True])
def test_interpolated_modes_match_reference_loops(mode, round_scores):
    scores, targets = _random_problem(4, n=120, c=5, density=0.3)
    if round_scores:
        scores = np.round(scores, 1)
    reference = _reference_interpolated_ap if mode == "interpolated" else _reference_11point_ap
    expected = [reference(scores[:, j], targets[:, j]) for j in range(scores.shape[1])]
    np.testing.assert_allclose(average_precision(scores, targets, mode=mode), expected, atol=1e-9)


def test_mode_ordering_invariants():
    scores, targets = _random_problem(5, n=200, c=6)
    plain = average_precision(scores, targets)
    interpolated = average_precision(scores, targets, mode="interpolated")
    assert np.all(interpolated >= plain - 1e-12)  # the envelope never lowers precision


def test_ap_logits_and_probabilities_agree():
    rng = np.random.default_rng(6)
    logits = rng.normal(size=(100, 4)) * 3
    targets = rng.random((100, 4)) < 0.3
    np.testing.assert_allclose(average_precision(logits, targets), average_precision(sigmoid(logits), targets))


@pytest.mark.parametrize("mode", AP_MODES)
def test_ignore_mask_equals_dropping_rows(mode):
    scores, targets = _random_problem(7, n=150, c=5, density=0.3)
    scores = np.round(scores, 1)  # include ties
    rng = np.random.default_rng(8)
    ignore = rng.random(scores.shape) < 0.25
    ignore[0] = False
    targets_with_difficult = np.where(ignore, -1, targets.astype(int))  # ignored entries may hold any value
    ap = average_precision(scores, targets_with_difficult, ignore_mask=ignore, mode=mode)
    for j in range(scores.shape[1]):
        keep = ~ignore[:, j]
        expected = average_precision(scores[keep, j : j + 1], targets[keep, j : j + 1], mode=mode)[0]
        assert ap[j] == pytest.approx(expected, abs=1e-12)
        if mode == "non_interpolated":
            assert ap[j] == pytest.approx(average_precision_score(targets[keep, j], scores[keep, j]), abs=1e-9)


def test_class_without_positive_is_excluded_from_map():
    scores, targets = _random_problem(9, n=60, c=4)
    targets[:, 2] = False
    ap = average_precision(scores, targets)
    assert np.isnan(ap[2]) and not np.isnan(ap[[0, 1, 3]]).any()
    with pytest.warns(UserWarning, match=r"1 of 4 classes .*excluded from mAP.*\[2\]"):
        value = mean_average_precision(scores, targets)
    assert value == pytest.approx(np.mean(ap[[0, 1, 3]]))
    with pytest.warns(UserWarning, match="excluded"):
        metrics = multilabel_metrics(scores, targets, scores_are_logits=True)
    assert metrics["mAP"] == pytest.approx(value)


def test_positives_that_are_all_ignored_count_as_no_positive():
    scores, targets = _random_problem(10, n=40, c=3)
    ignore = np.zeros_like(targets)
    ignore[:, 1] = targets[:, 1]  # every positive of class 1 is "difficult"
    with pytest.warns(UserWarning, match="excluded"):
        value = mean_average_precision(scores, targets, ignore_mask=ignore)
    assert value == pytest.approx(np.mean(average_precision(scores, targets)[[0, 2]]))


def test_no_positive_at_all_gives_nan_map():
    scores = np.random.default_rng(0).random((10, 3))
    with pytest.warns(UserWarning, match="mAP is NaN"):
        assert np.isnan(mean_average_precision(scores, np.zeros((10, 3))))


def test_accepts_torch_tensors_and_various_target_dtypes():
    scores, targets = _random_problem(11, n=80, c=4, dtype=np.float32)
    expected = average_precision(scores, targets)
    tensor = torch.tensor(scores, requires_grad=True)
    np.testing.assert_allclose(average_precision(tensor, torch.tensor(targets)), expected)
    np.testing.assert_allclose(average_precision(tensor.to(torch.bfloat16), targets).shape, expected.shape)
    for dtype in (np.int64, np.uint8, np.float32, np.float64):
        np.testing.assert_allclose(average_precision(scores, targets.astype(dtype)), expected)
    np.testing.assert_allclose(average_precision(scores.tolist(), targets.tolist()), expected)


# ---------------------------------------------------------------------------------------------------------------------
# Precision / recall / F1 and predictions
# ---------------------------------------------------------------------------------------------------------------------


def test_precision_recall_f1_hand_computed():
    pred = np.array([[1, 0, 1], [1, 1, 0], [0, 0, 1], [1, 0, 0]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]])
    # class 0: TP = 2 (rows 0, 3), FP = 1 (row 1), FN = 0 -> P = 2/3, R = 1
    # class 1: TP = 1 (row 1),     FP = 0,         FN = 1 (row 3) -> P = 1, R = 1/2
    # class 2: TP = 1 (row 2),     FP = 1 (row 0), FN = 0 -> P = 1/2, R = 1
    # CP = (2/3 + 1 + 1/2) / 3 = 13/18, CR = (1 + 1/2 + 1) / 3 = 5/6
    # OP = 4 / (4 + 2) = 2/3, OR = 4 / (4 + 1) = 4/5
    result = precision_recall_f1(pred, targets)
    cp, cr, op, o_r = 13 / 18, 5 / 6, 2 / 3, 4 / 5
    assert result["CP"] == pytest.approx(cp)
    assert result["CR"] == pytest.approx(cr)
    assert result["CF1"] == pytest.approx(2 * cp * cr / (cp + cr))
    assert result["OP"] == pytest.approx(op)
    assert result["OR"] == pytest.approx(o_r)
    assert result["OF1"] == pytest.approx(2 * op * o_r / (op + o_r))


def test_precision_recall_zero_division_convention():
    pred = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 1]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0]])
    # class 0: TP = 1, FP = 1 -> P = 1/2, R = 1; class 1: no prediction -> P = 0, R = 0 (FN = 1);
    # class 2: no positive, 1 FP -> P = 0, R = 0. CP = 1/6, CR = 1/3, OP = 1/3, OR = 1/2.
    result = precision_recall_f1(pred, targets)
    assert result["CP"] == pytest.approx(1 / 6) and result["CR"] == pytest.approx(1 / 3)
    assert result["OP"] == pytest.approx(1 / 3) and result["OR"] == pytest.approx(1 / 2)
    empty = precision_recall_f1(np.zeros((2, 2)), np.zeros((2, 2)))
    assert empty == {"CP": 0.0, "CR": 0.0, "CF1": 0.0, "OP": 0.0, "OR": 0.0, "OF1": 0.0}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_precision_recall_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    targets = rng.random((200, 8)) < 0.15
    pred = rng.random((200, 8)) < 0.1
    pred[:, 3] = False  # a class without predictions
    targets[:, 5] = False  # a class without positives
    result = precision_recall_f1(pred, targets)
    for key, fn, average in [("CP", precision_score, "macro"), ("CR", recall_score, "macro")]:
        assert result[key] == pytest.approx(fn(targets, pred, average=average, zero_division=0))
    for key, fn, average in [("OP", precision_score, "micro"), ("OR", recall_score, "micro")]:
        assert result[key] == pytest.approx(fn(targets, pred, average=average, zero_division=0))


def test_precision_recall_ignore_mask():
    rng = np.random.default_rng(12)
    targets = rng.random((100, 4)) < 0.3
    pred = rng.random((100, 4)) < 0.3
    ignore = rng.random((100, 4)) < 0.2
    result = precision_recall_f1(pred, targets, ignore_mask=ignore)
    keep = ~ignore
    tp = (pred & targets & keep).sum(0)
    n_pred = (pred & keep).sum(0)
    n_pos = (targets & keep).sum(0)
    assert result["CP"] == pytest.approx(np.mean(tp / n_pred))
    assert result["CR"] == pytest.approx(np.mean(tp / n_pos))
    assert result["OP"] == pytest.approx(tp.sum() / n_pred.sum())
    assert result["OR"] == pytest.approx(tp.sum() / n_pos.sum())


def test_threshold_predictions():
    scores = np.array([[0.2, 0.5, 0.7]])
    np.testing.assert_array_equal(threshold_predictions(scores, 0.5), [[False, True, True]])


@pytest.mark.parametrize("k", [1, 3, 5])
def test_topk_predictions_pick_exactly_k_largest(k):
    rng = np.random.default_rng(13)
    scores = rng.random((50, 10))
    scores[:5] = np.round(scores[:5], 1)  # some ties
    scores[5] = 0.5  # a fully tied row
    pred = topk_predictions(scores, k=k)
    assert pred.dtype == bool and pred.shape == scores.shape
    np.testing.assert_array_equal(pred.sum(axis=1), k)
    chosen_min = np.where(pred, scores, np.inf).min(axis=1)
    others_max = np.where(pred, -np.inf, scores).max(axis=1)
    assert np.all(chosen_min >= others_max)
    assert np.array_equal(np.sort(scores, axis=1)[:, -k:].sum(1).round(9), np.where(pred, scores, 0).sum(1).round(9))


def test_topk_predictions_clip_and_threshold():
    scores = np.array([[0.9, 0.1, 0.6], [0.2, 0.3, 0.4]])
    assert topk_predictions(scores, k=10).all()
    np.testing.assert_array_equal(topk_predictions(scores, k=2, threshold=0.5), [[True, False, True], [0, 0, 0]])


def test_multilabel_metrics_keys_and_consistency():
    rng = np.random.default_rng(14)
    targets = rng.random((300, 6)) < 0.2
    targets[0] = True
    logits = rng.normal(size=(300, 6)) + 2 * targets - 1
    probs = sigmoid(logits)
    metrics = multilabel_metrics(probs, targets, top_k=2, label_names=list("abcdef"))
    expected_keys = {"mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "per_class_AP"}
    expected_keys |= {f"{key}_top2" for key in ["CP", "CR", "CF1", "OP", "OR", "OF1"]}
    assert set(metrics) == expected_keys
    assert list(metrics["per_class_AP"]) == list("abcdef")
    assert metrics["mAP"] == pytest.approx(np.mean(_sklearn_ap(probs, targets)), abs=1e-9)
    prf = precision_recall_f1(probs >= 0.5, targets)
    assert all(metrics[key] == pytest.approx(value) for key, value in prf.items())
    prf_top = precision_recall_f1(topk_predictions(probs, 2, threshold=0.5), targets)
    assert all(metrics[f"{key}_top2"] == pytest.approx(value) for key, value in prf_top.items())
    from_logits = multilabel_metrics(logits, targets, top_k=2, scores_are_logits=True)
    assert all(from_logits[k] == pytest.approx(metrics[k]) for k in expected_keys - {"per_class_AP"})
    assert "CP_top3" not in multilabel_metrics(probs, targets, top_k=None)
    with pytest.warns(UserWarning, match="scores_are_logits"):
        multilabel_metrics(logits, targets)


# ---------------------------------------------------------------------------------------------------------------------
# transformers / evaluate integration and reporting
# ---------------------------------------------------------------------------------------------------------------------


def test_make_compute_metrics_matches_multilabel_metrics():
    from transformers import EvalPrediction

    rng = np.random.default_rng(15)
    labels = (rng.random((120, 5)) < 0.3).astype(np.float32)
    labels[0] = 1
    logits = (rng.normal(size=(120, 5)) + 2 * labels - 1).astype(np.float32)
    expected = multilabel_metrics(sigmoid(logits), labels, top_k=3)
    names = ["cat", "dog", "car", "tree", "sky"]
    compute_metrics = make_compute_metrics(label_names=names, per_class=True, prefix="val_")
    for eval_pred in (
        EvalPrediction(predictions=logits, label_ids=labels),
        EvalPrediction(predictions=(logits, np.zeros((120, 7))), label_ids=labels),  # tuple of outputs
        (logits, labels),
        types.SimpleNamespace(predictions=torch.from_numpy(logits), label_ids=torch.from_numpy(labels)),
    ):
        result = compute_metrics(eval_pred)
        assert all(type(value) is float for value in result.values())
        for key in ["mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CP_top3", "OF1_top3"]:
            assert result[f"val_{key}"] == pytest.approx(expected[key], abs=1e-12)
        for name, value in zip(names, expected["per_class_AP"]):
            assert result[f"val_AP/{name}"] == pytest.approx(value)
    plain = make_compute_metrics(top_k=None)(EvalPrediction(predictions=logits, label_ids=labels))
    assert set(plain) == {"mAP", "CP", "CR", "CF1", "OP", "OR", "OF1"}
    indexed = make_compute_metrics(per_class=True)((logits, labels))
    assert indexed["AP/4"] == pytest.approx(expected["per_class_AP"][4])


def test_make_compute_metrics_negative_labels_are_ignored():
    rng = np.random.default_rng(16)
    labels = (rng.random((80, 4)) < 0.3).astype(np.int64)
    labels[0] = 1
    logits = rng.normal(size=(80, 4)) + 2 * labels - 1
    ignore = rng.random((80, 4)) < 0.2
    ignore[0] = False
    labels_with_ignored = np.where(ignore, -100, labels)
    labels_with_ignored[1, 0] = -1
    ignore[1, 0] = True
    result = make_compute_metrics()((logits, labels_with_ignored))
    expected = multilabel_metrics(logits, labels, ignore_mask=ignore, scores_are_logits=True)
    for key in ["mAP", "CP", "CR", "OP", "OR", "CF1_top3"]:
        assert result[key] == pytest.approx(expected[key])


def test_evaluate_load_offline_matches(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_EVALUATE_OFFLINE", "1")
    import evaluate

    path = evaluate_module_path()
    assert Path(path).is_file() and Path(path).is_absolute()
    scores, targets = _random_problem(17, n=64, c=5, dtype=np.float32)
    probs = sigmoid(scores)
    metric = evaluate.load(path)
    result = metric.compute(predictions=probs.tolist(), references=targets.astype(int).tolist(), top_k=2)
    expected = multilabel_metrics(probs, targets, top_k=2)
    assert result["mAP"] == pytest.approx(mean_average_precision(probs, targets), abs=1e-9)
    assert result["mAP"] == pytest.approx(np.mean(_sklearn_ap(probs, targets)), abs=1e-6)
    assert result["CF1_top2"] == pytest.approx(expected["CF1_top2"])
    assert isinstance(result["per_class_AP"], list) and len(result["per_class_AP"]) == 5
    # Batched use through add_batch, with an ignored ("difficult", -1) entry.
    references = targets.astype(int)
    references[3, 1] = -1
    metric.add_batch(predictions=probs[:32].tolist(), references=references[:32].tolist())
    metric.add_batch(predictions=probs[32:].tolist(), references=references[32:].tolist())
    batched = metric.compute(ap_mode="interpolated")
    mask = references < 0
    assert batched["mAP"] == pytest.approx(
        mean_average_precision(probs, np.where(mask, 0, references), ignore_mask=mask, mode="interpolated")
    )


def test_format_metrics_table():
    scores, targets = _random_problem(18, n=50, c=3)
    metrics = multilabel_metrics(sigmoid(scores), targets, label_names=["person", "bicycle", "car"])
    table = format_metrics_table({**metrics, "eval_loss": 0.1234})
    assert f"{100 * metrics['mAP']:.2f}" in table and "CF1_top3" in table and "eval_loss" in table
    lines = table.splitlines()
    assert lines.index(next(line for line in lines if "person" in line)) < lines.index(
        next(line for line in lines if "car" in line)
    )
    names = ["person", "bicycle", "car"]
    compute_metrics = make_compute_metrics(per_class=True, label_names=names, prefix="eval_")
    table_from_trainer = format_metrics_table(compute_metrics((scores, targets)), label_names=names)
    assert "eval_mAP" in table_from_trainer and "bicycle" in table_from_trainer
    assert format_metrics_table({"per_class_AP": np.array([0.5, np.nan])}).count("n/a") == 1


def test_metrics_module_imports_only_numpy():
    # Load the file on its own (not through `mlic_hf/__init__.py`, which imports torch / transformers).
    metrics_file = str(Path(evaluate_module_path()).parents[1] / "metrics.py")
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('mlic_metrics_alone', {metrics_file!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "heavy = ('torch', 'evaluate', 'transformers', 'datasets', 'sklearn')\n"
        "print(','.join(sorted(name for name in heavy if name in sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == ""


# ---------------------------------------------------------------------------------------------------------------------
# Bad inputs
# ---------------------------------------------------------------------------------------------------------------------


def test_bad_inputs_raise_value_error():
    scores, targets = _random_problem(19, n=20, c=3)
    with pytest.raises(ValueError, match=r"`targets` must have the same shape .*\(20, 3\).*\(20, 4\)"):
        average_precision(scores, np.zeros((20, 4)))
    with pytest.raises(ValueError, match=r"2-D .*\(20,\)"):
        average_precision(scores[:, 0], targets[:, 0])
    bad = targets.astype(float)
    bad[4, 1] = 2.0
    with pytest.raises(ValueError, match=r"only 0 and 1, got value\(s\) \[2.0\] \(first at sample 4, class 1\)"):
        average_precision(scores, bad)
    with pytest.raises(ValueError, match=r"Unknown `mode` 'voc'.*'non_interpolated', 'interpolated', '11point'"):
        average_precision(scores, targets, mode="voc")
    with pytest.raises(ValueError, match="ap_mode"):
        multilabel_metrics(scores, targets, ap_mode="bogus")
    with pytest.raises(ValueError, match="ap_mode"):
        make_compute_metrics(ap_mode="bogus")
    nan_scores = scores.copy()
    nan_scores[2, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        average_precision(nan_scores, targets)
    with pytest.raises(ValueError, match=r"`ignore_mask` must have the same shape"):
        average_precision(scores, targets, ignore_mask=np.zeros((3, 20), dtype=bool))
    with pytest.raises(ValueError, match=r"`label_names` must have one name per class \(3\), got 2"):
        multilabel_metrics(scores, targets, label_names=["a", "b"])
    with pytest.raises(ValueError, match=r"`top_k` must be a positive integer, got 0"):
        multilabel_metrics(scores, targets, top_k=0)
    with pytest.raises(ValueError, match=r"`k` must be a positive integer, got 2.5"):
        topk_predictions(scores, k=2.5)
    with pytest.raises(ValueError, match=r"`pred` must contain only 0 and 1, got value\(s\) \[-1\]"):
        precision_recall_f1(np.full((20, 3), -1), targets)
    with pytest.raises(ValueError, match=r"`targets` must have the same shape as `pred`"):
        precision_recall_f1(targets, targets[:10])
    with pytest.raises(ValueError, match="EvalPrediction"):
        make_compute_metrics()(scores)
