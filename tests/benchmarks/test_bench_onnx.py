"""benchmarks/bench_onnx.py: a real (tiny) run times both runtimes interleaved and writes provenance, ratios and
verdicts consistent with the summaries, and a table holding the JSON's numbers; bad arguments are one line."""

import json

import pytest
import torch

import mlic_hf

from ..models.tiny_configs import tiny_config
from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_onnx")


def test_smoke_run_times_both_runtimes_interleaved(tmp_path, capsys):
    threads = torch.get_num_threads()
    assert bench.main(["--smoke", "--work_dir", str(tmp_path / "work"), "--output_dir", str(tmp_path)]) == 0
    assert torch.get_num_threads() == threads
    results = json.loads((tmp_path / "onnx.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["onnxruntime"])
    assert results["settings"]["threads"] == 1 and (tmp_path / "work" / "tiny-M1" / "model.onnx").is_file()
    row = results["rows"]["tiny-M1"]
    assert row["image_size"] == 64 and set(row["batches"]) == {"1", "8"}
    table = (tmp_path / "onnx.md").read_text()
    assert bench.describe(prov) in table
    for batch, c in row["batches"].items():
        check_comparison(c)
        assert c["a"]["repeats"] == bench.SMOKE["repeats"] and c["warmup"] == bench.SMOKE["warmup"]
        assert (f"| tiny-M1 | 64 | {batch} | {1e3 * c['a']['median']:.2f} ({1e3 * c['a']['min']:.2f}–"
                f"{1e3 * c['a']['max']:.2f}) | {1e3 * c['b']['median']:.2f}") in table
        verdict = bench.VERDICTS[c["verdict"]]
        assert f"{c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f}) | {verdict} |" in table


def test_named_checkpoint_and_legacy_results_dir_flag(tmp_path, capsys):
    torch.manual_seed(0)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(
        tiny_config(mlic_hf.ResNetProbabilisticConfig)).save_pretrained(tmp_path / "ckpt")
    results = tmp_path / "results"
    assert bench.main(["--checkpoints", f"tiny={tmp_path / 'ckpt'}", "--repeats", "1", "--warmup", "0",
                       "--threads", "1", "--work_dir", str(tmp_path / "work"), "--results_dir", str(results)]) == 0
    row = json.loads((results / "onnx.json").read_text())["rows"]["tiny"]
    for c in row["batches"].values():
        check_comparison(c)
    assert (tmp_path / "work" / "tiny" / "model.onnx").is_file()
    assert "| tiny | 64 | 1 |" in (results / "onnx.md").read_text()


@pytest.mark.parametrize("argv, message", [(["--checkpoints", "bad"], "NAME=PATH"),
                                           (["--repeats", "0", "--checkpoints", "a=b"], "at least 1"),
                                           (["--checkpoints", "x=/no/such/dir"], "not a checkpoint folder")])
def test_bad_arguments(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
