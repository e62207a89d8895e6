"""benchmarks/bench_ema.py: a smoke run (tiny ViT) writes provenance, the old-vs-new EMA comparisons with consistent
ratios and verdicts, the training step's summary and a table holding the JSON's numbers; bad flags are one line."""

import json

import pytest
import torch

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_ema")


def test_smoke_run_writes_comparisons_step_and_table(tmp_path, capsys):
    threads = torch.get_num_threads()
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    assert torch.get_num_threads() == threads  # restored for the tests after
    results = json.loads((tmp_path / "ema.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["torch"])
    assert results["model"]["backbone"] == bench.SMOKE["backbone"]
    assert set(results["comparisons"]) == {"EMA update, old (A) vs ModelEMA (B)",
                                           "swapped_into, old (A) vs ModelEMA (B)"}
    for c in results["comparisons"].values():
        check_comparison(c)
        assert c["a"]["repeats"] == bench.SMOKE["repeats"] and c["warmup"] == bench.SMOKE["warmup"]
    # ModelEMA keeps fewer shadows than the old scheme's every floating state_dict tensor (the ViT is frozen)
    shadows = results["shadows"]
    assert 0 < shadows["new"]["tensors"] < shadows["old"]["tensors"]
    assert shadows["new"]["megabytes"] < shadows["old"]["megabytes"]
    step = results["training_step"]
    assert step["repeats"] == bench.SMOKE["steps"] and 0 < step["min"] <= step["median"] <= step["max"]
    update = results["comparisons"]["EMA update, old (A) vs ModelEMA (B)"]
    for name, side in (("old", "a"), ("new", "b")):
        expected = update[side]["median"] / (step["median"] + update[side]["median"])
        assert results["update_share_of_step"][name] == pytest.approx(expected)
    table = (tmp_path / "ema.md").read_text()
    assert bench.describe(prov) in table
    for name, c in results["comparisons"].items():
        assert f"| {name} |" in table and f"{c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f})" in table
        assert f"{1e3 * c['b']['median']:.3f}" in table and c["verdict"] in table
    assert f"median {step['median']:.3f} s" in table and f"{shadows['old']['tensors']} tensors" in table


@pytest.mark.parametrize("argv, message", [(["--batch", "0"], "--batch must be at least 1"),
                                           (["--warmup", "-1"], "--warmup must be at least 0")])
def test_bad_flags_are_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
