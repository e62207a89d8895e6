"""benchmarks/bench_vpt.py: a smoke run (tiny ViT) measures ML-VPT and VPT in their own processes and compares them
interleaved, writing provenance, summaries, a ratio and verdicts consistent with each other, and a table holding the
JSON's numbers; every other method's step runs (in this process, to stay fast); bad flags are one line."""

import json

import pytest
import torch

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_vpt")


def test_smoke_run_measures_both_methods_and_compares_them(tmp_path, capsys):
    threads = torch.get_num_threads()
    assert bench.main(["--smoke", "--methods", "ml-vpt", "vpt", "--output_dir", str(tmp_path)]) == 0
    assert torch.get_num_threads() == threads
    results = json.loads((tmp_path / "vpt.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["peft"])
    assert results["settings"]["backbone_kwargs"] == json.loads(bench.SMOKE["backbone_kwargs"])
    methods = results["methods"]
    assert list(methods) == ["ml-vpt", "vpt"]
    for r in methods.values():
        t = r["step_s"]
        assert t["repeats"] == bench.SMOKE["steps"] and 0 < t["min"] <= t["median"] <= t["max"]
        assert r["peak_mib"] > 0 and 0 < r["trainable"] < r["parameters"]  # the ViT is frozen
    assert methods["ml-vpt"]["trainable"] > methods["vpt"]["trainable"]  # group prompts + experts on top of VPT's
    c = results["comparison"]
    check_comparison(c)
    assert c["a"]["repeats"] == bench.SMOKE["repeats"]
    step_goal = results["goals"]["step_time"]
    assert step_goal["ratio"] == c["ratio"]
    assert step_goal["met"] == ("met" if c["ratio_high"] <= 1.15 else "missed" if c["ratio_low"] > 1.15
                                else "within noise")
    assert "peak_memory" not in results["goals"]  # full fine-tuning was not run
    table = (tmp_path / "vpt.md").read_text()
    assert bench.describe(prov) in table
    assert f"ratio {c['ratio']:.3f} ({c['ratio_low']:.3f}–{c['ratio_high']:.3f}): {c['verdict']}" in table
    assert f"A {c['a']['median']:.3f} ({c['a']['min']:.3f}–{c['a']['max']:.3f}) s" in table
    for method, r in methods.items():
        assert f"| {method} |" in table and f"{r['step_s']['median']:.3f}" in table and f"{r['peak_mib']:.0f}" in table


@pytest.mark.parametrize("method", ["lora", "linear-probe", "full-finetune"])
def test_every_other_method_trains(method):
    threads = torch.get_num_threads()
    args = bench.parse_args(["--smoke", "--child", method])
    result = bench.child(args)  # in this process: the code a child runs, without a process's start-up
    assert torch.get_num_threads() == threads
    assert result["step_s"]["repeats"] == bench.SMOKE["steps"] and result["step_s"]["min"] > 0
    if method == "full-finetune":
        assert result["trainable"] == result["parameters"]
    else:
        assert 0 < result["trainable"] < result["parameters"] / 4


def test_memory_goal_is_the_ratio_of_peaks():
    methods = {"ml-vpt": {"peak_mib": 30.0}, "full-finetune": {"peak_mib": 100.0}}
    assert bench.goals(methods, None) == {"peak_memory": {"goal": "ML-VPT / full fine-tuning <= 0.6",
                                                          "ratio": 0.3, "met": "met"}}
    methods["full-finetune"]["peak_mib"] = 40.0
    assert bench.goals(methods, None)["peak_memory"]["met"] == "missed"


@pytest.mark.parametrize("argv, message", [(["--backbone_kwargs", "[1]"], "--backbone_kwargs must be a JSON object"),
                                           (["--steps", "0"], "--steps must be at least 1")])
def test_bad_flags_are_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
