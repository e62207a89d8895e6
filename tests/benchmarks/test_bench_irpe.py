"""benchmarks/bench_irpe.py: a smoke run (tiny layers and models) times full training steps (the optimizer's
included) interleaved, and writes provenance, ratios and verdicts consistent with the summaries, and a table holding
the JSON's numbers."""

import json

import pytest
import torch

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_irpe")


def test_smoke_run_writes_layer_and_model_comparisons(tmp_path, capsys):
    threads = torch.get_num_threads()
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    assert torch.get_num_threads() == threads  # restored for the tests after
    results = json.loads((tmp_path / "irpe.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["torch"])
    assert list(results["layers"]) == ["4x4 tokens, d_model 32"]
    comparisons = [*results["layers"].values(), results["model"]]
    for c in comparisons:
        check_comparison(c)
        assert c["a"]["repeats"] == bench.SMOKE["repeats"]
    for c in results["layers"].values():
        assert c["goal_met"] == ("met" if c["ratio_high"] <= 1.5 else "missed" if c["ratio_low"] > 1.5
                                 else "within noise")
    assert results["model"]["parameters"]["M2"] > results["model"]["parameters"]["M1"]
    table = (tmp_path / "irpe.md").read_text()
    assert bench.describe(prov) in table and "AdamW step + zero_grad" in table
    for c in comparisons:
        assert f"{c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f}) | {c['verdict']}" in table
        assert f"{1e3 * c['a']['median']:.1f}" in table


def test_a_training_step_runs_the_optimizer():
    layer = torch.nn.Linear(3, 1)
    x = torch.randn(4, 3, requires_grad=True)
    before = layer.weight.detach().clone()
    bench.training_step(layer, lambda: layer(x).pow(2).mean(), (x,))()
    assert not torch.equal(layer.weight, before)  # AdamW stepped
    assert layer.weight.grad is None and x.grad is None  # and the gradients were cleared


@pytest.mark.parametrize("argv, message", [(["--repeats", "0"], "--repeats must be at least 1"),
                                           (["--heads", "3"], "must divide every d_model")])
def test_bad_flags_are_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
