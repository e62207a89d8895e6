"""benchmarks/bench_label_maps.py: the pointing game's scoring against oracle and constant maps, and a real run."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import mlic_hf
from mlic_hf.data import FASHION_MNIST_CLASSES
from mlic_hf.explain import Explanation

from ..models.tiny_configs import tiny_config

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("mlic_bench_label_maps", REPO / "benchmarks" / "bench_label_maps.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench
spec.loader.exec_module(bench)

OBJECTS = [[{"label": 0, "box": [10, 20, 30, 30]}, {"label": 2, "box": [60, 60, 20, 20]}],
           [{"label": 1, "box": [0, 0, 16, 16]}]]


def _fake_explain(make_maps):
    def explain_images(model, images, processor=None):
        (index,) = images
        return [Explanation(None, np.zeros(3), make_maps(OBJECTS[index]), ["a", "b", "c"])]
    return explain_images


def test_oracle_maps_always_hit_and_constant_maps_only_at_the_corner(monkeypatch):
    def oracle(records):
        maps = np.zeros((3, 100, 100))
        for r in records:
            x, y, w, h = r["box"]
            maps[r["label"], y + h // 2, x + w // 2] = 1.0
        return maps

    monkeypatch.setattr("mlic_hf.explain.explain_images", _fake_explain(oracle))
    result = bench.pointing_game(None, [0, 1], OBJECTS, None)
    assert result == {"pointing_accuracy": 1.0, "chance": pytest.approx((0.09 + 0.04 + 0.0256) / 3), "pairs": 3}
    # a constant map peaks at (0, 0): only label 1's box covers that corner
    monkeypatch.setattr("mlic_hf.explain.explain_images", _fake_explain(lambda records: np.ones((3, 100, 100))))
    assert bench.pointing_game(None, [0, 1], OBJECTS, None)["pointing_accuracy"] == pytest.approx(1 / 3)


def test_real_run_on_a_tiny_checkpoint(tmp_path, capsys):
    torch.manual_seed(0)
    config = tiny_config(mlic_hf.ResNetProbabilisticConfig, id2label=dict(enumerate(FASHION_MNIST_CLASSES)))
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(tmp_path / "ckpt")
    results = tmp_path / "results"
    assert bench.main(["--checkpoints", f"tiny={tmp_path / 'ckpt'}", "--num_images", "3",
                       "--results_dir", str(results)]) == 0
    data = json.loads((results / "label_maps.json").read_text())
    row = data["rows"]["tiny"]
    assert data["num_images"] == 3 and row["pairs"] >= 3 and 0 <= row["pointing_accuracy"] <= 1
    assert 0 < row["chance"] < 1 and "| tiny |" in (results / "label_maps.md").read_text()


@pytest.mark.parametrize("argv, message", [(["--checkpoints", "nothing"], "NAME=PATH"),
                                           (["--checkpoints", "x=/no/such/dir"], "not a checkpoint folder"),
                                           (["--num_images", "0"], "--num_images must be at least 1")])
def test_bad_arguments_are_one_line(argv, message, capsys):
    assert bench.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
