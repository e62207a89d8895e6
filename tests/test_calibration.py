"""``mlic_hf.calibration``: per-class thresholds against a brute-force search, and where they are used."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from mlic_hf.calibration import (
    calibrate_thresholds,
    check_calibration_args,
    metrics_at_thresholds,
    objective_name,
    threshold_curves,
)
from mlic_hf.metrics import multilabel_metrics


def _data(seed=0, n=60, c=5, ties=True):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < 0.3).astype(int)
    targets[0] = 1  # every class has a positive
    scores = np.clip(0.35 * targets + rng.random((n, c)) * 0.7, 0, 1)
    if ties:  # coarse scores: many ties, which a cut must never split
        scores = np.round(scores, 1)
    return scores, targets


def _f1_precision_recall(pred, y):
    tp = int((pred & (y == 1)).sum())
    fp = int((pred & (y == 0)).sum())
    pos = int((y == 1).sum())
    f1 = 2 * tp / (tp + fp + pos) if tp + fp + pos else 0.0
    return f1, (tp / (tp + fp) if tp + fp else 0.0), (tp / pos if pos else 0.0)


def _candidates(column):
    """Every distinct decision of `score >= t`: t at each distinct score, and above the highest (predict none)."""
    return sorted(set(column.tolist())) + [np.inf]


@pytest.mark.parametrize("seed, ties", [(0, True), (1, False), (2, True)])
def test_f1_thresholds_match_brute_force(seed, ties):
    scores, targets = _data(seed, ties=ties)
    chosen = calibrate_thresholds(scores, targets)
    for c in range(scores.shape[1]):
        best = max(_f1_precision_recall(scores[:, c] >= t, targets[:, c])[0] for t in _candidates(scores[:, c]))
        got = _f1_precision_recall(scores[:, c] >= chosen[c], targets[:, c])[0]
        assert got == pytest.approx(best, abs=1e-12), c
        # of the thresholds with the best F1, the highest (fewest positives)
        highest = max(t for t in _candidates(scores[:, c])
                      if _f1_precision_recall(scores[:, c] >= t, targets[:, c])[0] == pytest.approx(best, abs=1e-12))
        assert np.array_equal(scores[:, c] >= chosen[c], scores[:, c] >= highest)
        # strictly between the cut's score and the next lower one: the same decisions, a margin on both sides
        below = scores[:, c][scores[:, c] < chosen[c]]
        assert chosen[c] > (below.max() if len(below) else -np.inf)


@pytest.mark.parametrize("target", [0.5, 0.8, 1.0])
def test_precision_thresholds_match_brute_force(target):
    scores, targets = _data(3, n=80, c=6)
    chosen = calibrate_thresholds(scores, targets, objective="precision", target_precision=target)
    for c in range(scores.shape[1]):
        options = [(recall, t) for t in _candidates(scores[:, c])
                   for _, precision, recall in [_f1_precision_recall(scores[:, c] >= t, targets[:, c])]
                   if precision >= target and (scores[:, c] >= t).any()]
        f1, precision, recall = _f1_precision_recall(scores[:, c] >= chosen[c], targets[:, c])
        if options:
            assert precision >= target and recall == pytest.approx(max(r for r, _ in options))
        else:  # the target is out of reach: predict nothing for this class
            assert not (scores[:, c] >= chosen[c]).any()


def test_ignored_entries_count_as_nothing():
    scores, targets = _data(4, n=50, c=3)
    mask = np.zeros_like(targets, dtype=bool)
    mask[::4, 1] = True
    chosen = calibrate_thresholds(scores, targets, ignore_mask=mask)
    keep = ~mask[:, 1]
    alone = calibrate_thresholds(scores[keep][:, [1]], targets[keep][:, [1]])
    f1 = _f1_precision_recall(scores[keep, 1] >= chosen[1], targets[keep, 1])[0]
    assert f1 == pytest.approx(_f1_precision_recall(scores[keep, 1] >= alone[0], targets[keep, 1])[0])


def test_class_without_positives_keeps_the_default(caplog):
    scores, targets = _data(5, c=3)
    targets[:, 2] = 0
    with caplog.at_level(logging.WARNING, logger="mlic_hf.calibration"):
        chosen = calibrate_thresholds(scores, targets, default=0.5)
    assert chosen[2] == 0.5 and "without a positive" in caplog.text


def test_curves_are_the_per_class_operating_points():
    scores = np.array([[0.9], [0.8], [0.8], [0.1]])
    targets = np.array([[1], [0], [1], [1]])
    curves = threshold_curves(scores, targets)
    assert curves["score"][:, 0].tolist() == [0.9, 0.8, 0.8, 0.1]
    assert curves["valid"][:, 0].tolist() == [True, False, True, True]  # the tie at 0.8 is one cut
    assert curves["tp"][:, 0].tolist() == [1, 1, 2, 3] and curves["fp"][:, 0].tolist() == [0, 1, 1, 1]
    # best F1 (0.857 at >= 0.1, vs 0.8 at >= 0.8): every image; the threshold is the lowest score itself
    assert calibrate_thresholds(scores, targets)[0] == pytest.approx(0.1)


def test_metrics_at_thresholds_agree_with_a_global_threshold():
    scores, targets = _data(6)
    per_class = metrics_at_thresholds(scores, targets, np.full(scores.shape[1], 0.45))
    fixed = multilabel_metrics(scores, targets, threshold=0.45)
    assert per_class["CF1_calibrated"] == pytest.approx(fixed["CF1"])
    assert per_class["OP_calibrated"] == pytest.approx(fixed["OP"])
    with pytest.raises(ValueError, match="one value per class"):
        multilabel_metrics(scores, targets, threshold=[0.5, 0.5])


@pytest.mark.parametrize(
    "objective, target, message",
    [("best", None, "must be one of f1, precision, none"), ("precision", None, "needs --target_precision"),
     ("precision", 1.5, "needs --target_precision"), ("f1", 0.9, "only with --calibrate_thresholds precision")],
)
def test_bad_calibration_arguments(objective, target, message):
    with pytest.raises(ValueError, match=message):
        check_calibration_args(objective, target)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="one shape"):
        calibrate_thresholds(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError, match="NaN"):
        calibrate_thresholds(np.full((3, 2), np.nan), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="0/1"):
        calibrate_thresholds(np.zeros((3, 2)), np.full((3, 2), 2))
    assert objective_name("precision", 0.9) == "precision>=0.9" and objective_name("f1") == "f1"


def test_config_keeps_valid_thresholds_and_drops_another_label_sets(caplog):
    import mlic_hf

    config = mlic_hf.ResNetProbabilisticConfig(num_labels=3, thresholds=[0.2, 0.5, 0.7], thresholds_objective="f1")
    again = mlic_hf.ResNetProbabilisticConfig.from_dict(config.to_dict())
    assert again.thresholds == [0.2, 0.5, 0.7] and again.thresholds_objective == "f1"
    with caplog.at_level(logging.WARNING):
        other = mlic_hf.ResNetProbabilisticConfig(num_labels=4, thresholds=[0.2, 0.5, 0.7])
    assert other.thresholds is None and "dropping them" in caplog.text
    with pytest.raises(ValueError, match="finite"):
        mlic_hf.ResNetProbabilisticConfig(num_labels=2, thresholds=[0.5, float("nan")])


def test_one_thresholds_rule_for_predict_explain_and_the_pipelines():
    """resolve_thresholds: the given threshold, else the calibrated config.thresholds, else the default; and
    store_thresholds writes both fields, checked, as the config saves them."""
    import mlic_hf
    from mlic_hf.calibration import resolve_thresholds, store_thresholds

    config = mlic_hf.ResNetProbabilisticConfig(num_labels=3)
    np.testing.assert_array_equal(resolve_thresholds(config), [0.5, 0.5, 0.5])
    np.testing.assert_array_equal(resolve_thresholds(config, default=-np.inf), [-np.inf] * 3)
    assert store_thresholds(config, np.array([0.2, 0.4, 0.9]), "precision", 0.9) == [0.2, 0.4, 0.9]
    assert config.thresholds_objective == "precision>=0.9"
    np.testing.assert_array_equal(resolve_thresholds(config), [0.2, 0.4, 0.9])
    np.testing.assert_array_equal(resolve_thresholds(config, threshold=0.3), [0.3, 0.3, 0.3])
    again = mlic_hf.ResNetProbabilisticConfig.from_dict(config.to_dict())
    assert again.thresholds == [0.2, 0.4, 0.9] and again.thresholds_objective == "precision>=0.9"
    with pytest.raises(ValueError, match="one value per label"):
        store_thresholds(config, [0.5], "f1")
