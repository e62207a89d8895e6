"""benchmarks/diagnose_label_queries.py: on tiny M2 and M4 checkpoints and tiny fashion_clutter data, the recorded
spreads are those recomputed here with numpy from the models' label maps, the ratios follow from them, and the table
holds them; methods without label queries are refused in one line."""

import json

import numpy as np
import pytest
import torch

from mlic_hf import MLICImageProcessor
from mlic_hf.data import load_mlic_dataset
from mlic_hf.inference import load_checkpoint

from ..models.tiny_configs import tiny_model
from .bench_checks import check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("diagnose_label_queries")
M2, M4 = "mlic-two-stage-irpe", "mlic-multiscale-three-branch"
DATA = {"num_train": 48, "num_validation": 16, "num_test": 16}  # the size other smoke tests build (cached)
DATA_FLAGS = ["--dataset", "fashion_clutter", "--dataset_kwargs", json.dumps(DATA)]


def _checkpoint(path, model_type, **overrides):
    model = tiny_model(model_type, **overrides)
    model.save_pretrained(path)
    MLICImageProcessor.from_model_config(model.config).save_pretrained(path)  # as training saves it
    return path


def _numpy_spreads(maps: np.ndarray) -> tuple[float, float]:
    """(images, K, h, w) maps → (mean std across labels, mean std across positions), written out per image."""
    across_labels, across_positions = [], []
    for image in maps:
        a = image.reshape(image.shape[0], -1)  # (K, P)
        across_labels.append(np.mean([np.std(a[:, p]) for p in range(a.shape[1])]))
        across_positions.append(np.mean([np.std(a[k]) for k in range(a.shape[0])]))
    return float(np.mean(across_labels)), float(np.mean(across_positions))


def _maps(checkpoint, num_images):
    model, processor = load_checkpoint(str(checkpoint))
    images = [im.convert("RGB") for im in load_mlic_dataset("fashion_clutter", **DATA)["test"]["image"][:num_images]]
    with torch.no_grad():
        out = model.label_maps(processor(images=images, return_tensors="pt")["pixel_values"])
    branches = (out.extras or {}).get("branch_label_maps", ())
    return out.label_maps.numpy(), [b.numpy() for b in branches]


def test_spreads_match_numpy_on_the_label_maps_and_the_table(tmp_path):
    m2, m4 = _checkpoint(tmp_path / "m2", M2), _checkpoint(tmp_path / "m4", M4)
    out = tmp_path / "results"
    assert bench.main(["--checkpoint", f"tiny M2={m2}", "--checkpoint", str(m4), *DATA_FLAGS, "--num_images", "3",
                       "--batch_size", "2", "--output_dir", str(out)]) == 0
    results = json.loads((out / "label_queries.json").read_text())
    check_provenance(results["provenance"], ["torch"], command="python benchmarks/diagnose_label_queries.py")
    assert results["settings"]["num_images"] == 3 and list(results["rows"]) == ["tiny M2", "m4"]  # m4: its folder
    table = (out / "label_queries.md").read_text()
    assert bench.describe(results["provenance"]) in table
    for name, checkpoint, method in (("tiny M2", m2, "M2"), ("m4", m4, "M4")):
        row = results["rows"][name]
        assert row["method"] == method and row["labels"] == 4
        maps, branches = _maps(checkpoint, 3)
        np.testing.assert_allclose(maps.sum(axis=(2, 3)), 1, atol=1e-4)  # attention maps: each sums to 1
        across_labels, across_positions = _numpy_spreads(maps)
        assert row["across_labels"] == pytest.approx(across_labels, rel=1e-4)
        assert row["across_positions"] == pytest.approx(across_positions, rel=1e-4)
        assert row["grid"] == list(maps.shape[-2:]) and row["positions"] == maps.shape[-2] * maps.shape[-1]
        assert row["ratio"] == pytest.approx(row["across_labels"] / row["across_positions"])
        assert row["one_in"] == pytest.approx(1 / row["ratio"]) and row["ratio"] > 0
        cells = (f"{row['across_labels']:.4g} | {row['across_positions']:.4g} | {row['ratio']:.4g} | "
                 f"{row['one_in']:.4g} |")
        assert f"| {name} | {method} | label maps | {row['grid'][0]}×{row['grid'][1]} | {cells}" in table
        if method == "M2":
            assert "branches" not in row
            continue
        assert list(row["branches"]) == ["branch 1", "branch 2", "branch 3"] and len(branches) == 3
        for (key, branch_row), branch_maps in zip(row["branches"].items(), branches):
            assert branch_row["grid"] == list(branch_maps.shape[-2:])
            assert branch_row["across_labels"] == pytest.approx(_numpy_spreads(branch_maps)[0], rel=1e-4)
            if branch_row["positions"] == 1:  # the tiny model's coarsest branch: one token, attention 1, no spread
                assert branch_row["across_positions"] == branch_row["across_labels"] == 0
                assert branch_row["ratio"] is None and branch_row["one_in"] is None
                assert f"| {name} | M4 | {key} | 1×1 | 0 | 0 | — | — |" in table
                continue
            assert branch_row["ratio"] == pytest.approx(branch_row["across_labels"] / branch_row["across_positions"])
            assert f"| {name} | M4 | {key} |" in table


def test_methods_without_label_queries_are_refused(tmp_path, capsys):
    m1 = _checkpoint(tmp_path / "m1", "mlic-resnet-probabilistic")
    assert bench.main(["--checkpoint", str(m1), "--output_dir", str(tmp_path / "out")]) == 2
    check_one_error_line(capsys, "is a 'mlic-resnet-probabilistic' checkpoint, which has no label queries")
    no_queries = _checkpoint(tmp_path / "m4", M4, region_selection=False)
    assert bench.main(["--checkpoint", str(no_queries), "--output_dir", str(tmp_path / "out")]) == 2
    check_one_error_line(capsys, "region_selection=False")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("argv, message", [([], "--checkpoint"),
                                           (["--checkpoint", "a=x", "--checkpoint", "a=y"], "'a' is given twice"),
                                           (["--checkpoint", "=x"], "DIR or NAME=DIR"),
                                           (["--checkpoint", "x", "--batch_size", "0"],
                                            "--batch_size must be at least 1")])
def test_bad_input_is_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
