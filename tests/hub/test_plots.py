"""The card's plots (valid, deterministic PNGs) and the precision-recall computation behind them."""

import shutil

import numpy as np
import pytest
from PIL import Image

from mlic_hf.hub import write_model_card
from mlic_hf.hub.plots import micro_average_precision, plot_per_class_ap, plot_precision_recall, precision_recall_points

from .fixtures import LABELS, REPO_ID, predictions


def test_plots_are_valid_deterministic_pngs(checkpoint, tmp_path):
    write_model_card(checkpoint, repo_id=REPO_ID)
    other = tmp_path / "again"
    shutil.copytree(checkpoint, other)
    write_model_card(other, repo_id=REPO_ID)
    for plot in ("plots/per_class_ap.png", "plots/precision_recall.png"):
        with Image.open(checkpoint / plot) as image:
            image.load()
            assert image.format == "PNG" and image.size == (600, 400)
            pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 5  # something was drawn
        assert (checkpoint / plot).read_bytes() == (other / plot).read_bytes()


def test_per_class_ap_plot_depends_on_the_values(tmp_path):
    first = plot_per_class_ap({"a": 0.2, "b": 0.9}, tmp_path / "one.png")
    second = plot_per_class_ap({"a": 0.9, "b": 0.2}, tmp_path / "two.png")
    assert first.read_bytes() != second.read_bytes()
    scores, labels = predictions()
    pr = plot_precision_recall(scores, labels, tmp_path / "sub" / "pr.png", label_names=list(LABELS.values()))
    assert pr.is_file() and pr.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="label_names"):
        plot_precision_recall(scores, labels, tmp_path / "x.png", label_names=["cat"])


def test_precision_recall_points_by_hand():
    # Non-ignored entries by decreasing score: 0.9(+), 0.8(-) and 0.8(+) tied, 0.6(+), 0.5(+), 0.3(-), 0.1(-); the
    # 0.2 entry is ignored (-1). 4 positives.
    scores = np.array([[0.9, 0.3], [0.8, 0.8], [0.6, 0.2], [0.1, 0.5]])
    labels = np.array([[1, 0], [0, 1], [1, -1], [0, 1]])
    precision, recall, thresholds = precision_recall_points(scores, labels)
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.6, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(precision, [1 / 1, 2 / 3, 3 / 4, 4 / 5, 4 / 6, 4 / 7])
    np.testing.assert_allclose(recall, [1 / 4, 2 / 4, 3 / 4, 4 / 4, 4 / 4, 4 / 4])
    assert micro_average_precision(precision, recall) == pytest.approx(0.25 * (1 + 2 / 3 + 3 / 4 + 4 / 5))


def test_precision_recall_points_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    scores = np.round(rng.random((50, 4)), 1)  # many ties
    labels = (rng.random((50, 4)) > 0.6).astype(int)
    labels[rng.random((50, 4)) > 0.9] = -1
    precision, recall, thresholds = precision_recall_points(scores, labels)
    keep = labels != -1
    ref_precision, ref_recall, ref_thresholds = metrics.precision_recall_curve(labels[keep], scores[keep])
    # scikit-learn: increasing thresholds, plus a final (precision 1, recall 0) point; it may also drop the points
    # after full recall is reached.
    n = ref_thresholds.size
    np.testing.assert_allclose(thresholds[:n][::-1], ref_thresholds)
    np.testing.assert_allclose(precision[:n][::-1], ref_precision[:-1])
    np.testing.assert_allclose(recall[:n][::-1], ref_recall[:-1])
    assert micro_average_precision(precision, recall) == pytest.approx(
        metrics.average_precision_score(labels[keep], scores[keep])
    )


def test_precision_recall_points_reject_bad_input():
    with pytest.raises(ValueError, match="no positive"):
        precision_recall_points([[0.1, 0.2]], [[0, -1]])
    with pytest.raises(ValueError, match="only 1"):
        precision_recall_points([[0.1, 0.2]], [[2, 1]])
    with pytest.raises(ValueError, match="same shape"):
        precision_recall_points([[0.1, 0.2]], [[1]])


def test_dollar_signs_in_names_and_titles_are_plain_text(tmp_path):
    # `$...$` would be parsed as mathtext: an invalid expression failed when saving (and so writing the card)
    names = ["cost $\\undefinedcommand$", "$\\frac$", "_leading underscore"]
    plot_per_class_ap(dict(zip(names, (0.2, 0.5, 0.9))), tmp_path / "ap.png", title="on $\\bad$ data")
    scores, labels = predictions()
    plot_precision_recall(scores, labels, tmp_path / "pr.png", label_names=names, title="PR on $ data")
    for name in ("ap.png", "pr.png"):
        with Image.open(tmp_path / name) as image:
            assert image.format == "PNG" and image.size == (600, 400)
