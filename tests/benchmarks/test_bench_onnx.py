"""benchmarks/bench_onnx.py: a real (tiny) run writes its table, and bad arguments are one line."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

import mlic_hf

from ..models.tiny_configs import tiny_config

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("mlic_bench_onnx", REPO / "benchmarks" / "bench_onnx.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench
spec.loader.exec_module(bench)


def test_tiny_run_times_both_runtimes(tmp_path, capsys):
    torch.manual_seed(0)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(
        tiny_config(mlic_hf.ResNetProbabilisticConfig)).save_pretrained(tmp_path / "ckpt")
    results = tmp_path / "results"
    assert bench.main(["--checkpoints", f"tiny={tmp_path / 'ckpt'}", "--repeats", "2", "--threads", "1",
                       "--work_dir", str(tmp_path / "work"), "--results_dir", str(results)]) == 0
    row = json.loads((results / "onnx.json").read_text())["rows"]["tiny"]
    for batch in (1, 8):
        assert row[f"torch_ms_b{batch}"] > 0 and row[f"onnx_ms_b{batch}"] > 0
        assert row[f"speedup_b{batch}"] == pytest.approx(row[f"torch_ms_b{batch}"] / row[f"onnx_ms_b{batch}"])
    assert (tmp_path / "work" / "tiny" / "model.onnx").is_file() and "| tiny | 64 |" in (results / "onnx.md").read_text()


@pytest.mark.parametrize("argv, message", [(["--checkpoints", "bad"], "NAME=PATH"),
                                           (["--repeats", "0", "--checkpoints", "a=b"], "at least 1")])
def test_bad_arguments(argv, message, capsys):
    assert bench.main(argv) == 2
    assert message in capsys.readouterr().err
