"""benchmarks/bench_throughput.py: a real (tiny) run measures every setting in its own process and writes its table;
the kept-activations figure shrinks with activation checkpointing; bad settings are one line."""

import importlib.util
import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("mlic_bench_throughput", REPO / "benchmarks" / "bench_throughput.py")
bench = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = bench
spec.loader.exec_module(bench)


def test_setting_names_parse():
    assert bench.parse_setting("bf16+compile+ckpt") == {"precision": "bf16", "compile": True, "ckpt": True,
                                                        "cl": False}
    assert bench.parse_setting("fp32") == {"precision": "fp32", "compile": False, "ckpt": False, "cl": False}
    assert "fp16" not in bench.default_settings("cpu") and "fp16+compile" in bench.default_settings("cuda")


def test_tiny_run_measures_each_setting(tmp_path):
    results = tmp_path / "results"
    argv = ["--methods", "mlic-resnet-probabilistic", "mlic-two-stage-irpe", "--settings", "fp32", "fp32+ckpt",
            "--image_size", "32", "--backbone", "resnet18", "--batch_size", "2", "--steps", "1", "--warmup", "0",
            "--device", "cpu", "--config_overrides", '{"hidden_size": 32, "intermediate_size": 64}',
            "--results_dir", str(results)]
    assert bench.main(argv) == 0
    rows = {(r["method"], r["setting"]): r["result"] for r in json.loads((results / "throughput.json").read_text())
            ["results"]}
    for key, result in rows.items():
        if key == ("mlic-resnet-probabilistic", "fp32+ckpt"):
            assert result == {"skipped": "no Transformer layers to checkpoint"}
            continue
        assert "error" not in result, (key, result)
        assert result["train_images_per_s"] > 0 and result["infer_images_per_s"] > 0 and result["image_size"] == 32
    plain, ckpt = rows[("mlic-two-stage-irpe", "fp32")], rows[("mlic-two-stage-irpe", "fp32+ckpt")]
    assert ckpt["activation_mb"] < plain["activation_mb"]  # the encoder/decoder activations are not kept
    table = (results / "throughput.md").read_text()
    assert "| mlic-two-stage-irpe | fp32+ckpt |" in table and "skipped: no Transformer layers" in table


@pytest.mark.parametrize("argv, message", [(["--settings", "fp64"], "expected a precision"),
                                           (["--settings", "bf16+turbo"], "expected a precision"),
                                           (["--steps", "0"], "--steps must be at least 1"),
                                           (["--config_overrides", "[1]"], "must be a JSON object")])
def test_bad_arguments(argv, message, capsys):
    assert bench.main(argv) == 2
    assert message in capsys.readouterr().err
