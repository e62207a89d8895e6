"""benchmarks/bench_msff.py: a smoke run (tiny M4) writes provenance, the whole-model and interpolation comparisons
with consistent ratios and verdicts, per-stage summaries whose shares add up, and a table holding the JSON's
numbers; the torch thread count is restored after the run."""

import json

import pytest
import torch

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_msff")


def test_smoke_run_writes_comparisons_stages_and_table(tmp_path, capsys):
    threads = torch.get_num_threads()
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    assert torch.get_num_threads() == threads
    results = json.loads((tmp_path / "msff.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["timm"])
    assert results["model"]["threads"] == bench.SMOKE["threads"]
    assert set(results["whole_model"]) == {"training step", "inference"}
    assert set(results["interpolation"]) == {"nearest (A) vs bilinear (B)", "bicubic (A) vs bilinear (B)",
                                             "area (A) vs bilinear (B)"}
    comparisons = {**results["whole_model"], **results["interpolation"]}
    for c in comparisons.values():
        check_comparison(c)
        assert c["a"]["repeats"] == bench.SMOKE["repeats"]
    stages = results["stages"]
    assert list(stages) == ["backbone", "stem convs (eq. 1)", "scale attention", "position + encoder", "decoder",
                            "head + loss"]
    assert sum(row["share"] for row in stages.values()) == pytest.approx(1.0)
    total = sum(row["training_step"]["median"] for row in stages.values())
    for row in stages.values():
        assert row["share"] == pytest.approx(row["training_step"]["median"] / total)
        assert 0 < row["forward"]["min"] <= row["forward"]["median"] <= row["forward"]["max"]
    assert stages["backbone"]["parameters"] == results["model"]["backbone_parameters"]
    assert stages["scale attention"]["parameters"] == 0  # parameter-free fusion: no optimizer step to time
    table = (tmp_path / "msff.md").read_text()
    assert bench.describe(prov) in table
    for name, c in comparisons.items():
        assert f"| {name} |" in table
        assert f"{c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f}) | {c['verdict']}" in table
    for name, row in stages.items():
        assert f"| {name} | {1e3 * row['forward']['median']:.1f}" in table and f"{100 * row['share']:.1f}%" in table


@pytest.mark.parametrize("argv, message", [(["--image_size", "100"], "multiple of 32"),
                                           (["--threads", "0"], "--threads must be at least 1")])
def test_bad_flags_are_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
