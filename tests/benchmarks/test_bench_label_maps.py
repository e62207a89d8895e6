"""benchmarks/bench_label_maps.py: the pointing game's scoring against oracle and constant maps; a smoke run and a
named checkpoint write provenance, repo-relative checkpoint paths, the chance level and pair count recomputed from
the boxes, and a table holding the JSON's numbers; bad arguments are one error line."""

import json
import sys

import numpy as np
import pytest
import torch

import mlic_hf
from mlic_hf.data import FASHION_MNIST_CLASSES
from mlic_hf.explain import Explanation

from ..models.tiny_configs import tiny_config
from .bench_checks import check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_label_maps")

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


def _expected_chance_and_pairs(num_images):
    """Chance level and pair count of the first test images, from their boxes alone (no model)."""
    from mlic_hf.data import load_mlic_dataset

    test = load_mlic_dataset("fashion_clutter")["test"].select(range(num_images))
    chance = []
    for image, records in zip(test["image"], test["objects"]):
        width, height = image.size
        for label in {r["label"] for r in records}:
            covered = np.zeros((height, width), dtype=bool)
            for r in records:
                if r["label"] == label:
                    x, y, w, h = r["box"]
                    covered[max(0, y):y + h, max(0, x):x + w] = True
            chance.append(covered.mean())
    return float(np.mean(chance)), len(chance)


def test_smoke_run_writes_provenance_rows_and_table(tmp_path, capsys):
    assert bench.main(["--smoke", "--work_dir", str(tmp_path / "work"), "--output_dir", str(tmp_path)]) == 0
    assert (tmp_path / "work" / "tiny-m1-checkpoint" / "config.json").is_file()
    data = json.loads((tmp_path / "label_maps.json").read_text())
    check_provenance(data["provenance"], ["torch"], command="python benchmarks/bench_label_maps.py --smoke")
    assert data["settings"] == {"num_images": bench.SMOKE["num_images"], "smoke": True}
    row = data["rows"]["tiny-M1"]
    chance, pairs = _expected_chance_and_pairs(bench.SMOKE["num_images"])
    assert data["num_images"] == bench.SMOKE["num_images"] and row["pairs"] == pairs
    assert row["chance"] == pytest.approx(chance) and 0 <= row["pointing_accuracy"] <= 1
    assert row["checkpoint"] == "tiny-m1-checkpoint"  # outside the repository: no absolute path of this machine
    table = (tmp_path / "label_maps.md").read_text()
    assert bench.describe(data["provenance"]) in table
    assert (f"| tiny-M1 | `tiny-m1-checkpoint` | {100 * row['pointing_accuracy']:.1f} | {100 * chance:.1f} | "
            f"{pairs} | {row['seconds']:.0f} |") in table


def test_named_checkpoint_inside_the_repository_is_recorded_relative(tmp_path, monkeypatch, capsys):
    # tmp_path stands in for the repository root, so that the test writes nothing into the real one
    monkeypatch.setattr(sys.modules["_common"], "REPO", tmp_path.resolve())
    torch.manual_seed(0)
    config = tiny_config(mlic_hf.ResNetProbabilisticConfig, id2label=dict(enumerate(FASHION_MNIST_CLASSES)))
    folder = tmp_path / "outputs" / "run"
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(folder)
    assert bench.main(["--checkpoints", f"tiny={folder}", "--num_images", "3",
                       "--results_dir", str(tmp_path / "results")]) == 0
    data = json.loads((tmp_path / "results" / "label_maps.json").read_text())
    row = data["rows"]["tiny"]
    chance, pairs = _expected_chance_and_pairs(3)
    assert row["checkpoint"] == "outputs/run" and row["pairs"] == pairs
    assert row["chance"] == pytest.approx(chance)
    assert "| tiny | `outputs/run` |" in (tmp_path / "results" / "label_maps.md").read_text()


@pytest.mark.parametrize("argv, message", [(["--checkpoints", "nothing"], "NAME=PATH"),
                                           (["--checkpoints", "x=/no/such/dir"], "not a checkpoint folder"),
                                           (["--num_images", "0"], "--num_images must be at least 1"),
                                           (["--zoo_root", "/no/such/zoo"], "no zoo checkpoints under")])
def test_bad_arguments_are_one_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
    assert not (tmp_path / "label_maps.json").exists()
