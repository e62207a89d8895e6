"""benchmarks/bench_throughput.py: a smoke run measures every setting in its own process, times each non-fp32 setting
interleaved with fp32 of the same method, and writes provenance, ratios and verdicts consistent with the summaries
and a table holding the JSON's numbers; the kept-activations figure shrinks with activation checkpointing; bad
settings are one line."""

import json

import pytest

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_throughput")


def test_setting_names_parse():
    assert bench.parse_setting("bf16+compile+ckpt") == {"precision": "bf16", "compile": True, "ckpt": True,
                                                        "cl": False}
    assert bench.parse_setting("fp32") == {"precision": "fp32", "compile": False, "ckpt": False, "cl": False}
    assert "fp16" not in bench.default_settings("cpu") and "fp16+compile" in bench.default_settings("cuda")


def test_smoke_run_compares_each_setting_with_fp32(tmp_path, capsys):
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "throughput.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["torch"], command="python benchmarks/bench_throughput.py --smoke")
    settings = results["settings"]
    assert settings["smoke"] and settings["steps"] == bench.SMOKE["steps"] and settings["device"] == "cpu"
    rows = {(r["method"], r["setting"]): r["result"] for r in results["rows"]}
    assert set(rows) == {(m, s) for m in bench.SMOKE["methods"] for s in bench.SMOKE["settings"]}
    assert rows[("mlic-resnet-probabilistic", "fp32+ckpt")] == {"skipped": "no Transformer layers to checkpoint"}
    table = (tmp_path / "throughput.md").read_text()
    assert bench.describe(prov) in table and f"`{prov['command']}`" in table
    assert "| mlic-resnet-probabilistic | fp32+ckpt | skipped: no Transformer layers" in table
    batch = settings["batch_size"]
    for (method, setting), r in rows.items():
        if "skipped" in r:
            continue
        assert "error" not in r, (method, setting, r)
        assert r["image_size"] == 32 and r["backbone"] == "resnet18"
        assert r["train_images_per_s"] == pytest.approx(batch / r["train"]["median"])
        assert r["infer_images_per_s"] == pytest.approx(batch / r["infer"]["median"])
        reference = rows[(method, "fp32")]
        memory = r["peak_memory_mb"] / reference["peak_memory_mb"]
        line = next(line for line in table.splitlines() if line.startswith(f"| {method} | {setting} |"))
        assert line.startswith(f"| {method} | {setting} | {r['train_images_per_s']:.2f} | "
                               f"{r['infer_images_per_s']:.2f} | {r['peak_memory_mb']:.0f} |")
        assert line.endswith(f"| {memory:.2f} |")
        if setting == "fp32":  # the reference, timed alone
            assert "versus_fp32" not in r and r["train"]["repeats"] == bench.SMOKE["steps"]
            assert "| 1 (reference) | 1 (reference) |" in line
            continue
        for kind in ("train", "infer"):
            c = r["versus_fp32"][kind]
            check_comparison(c)
            assert c["a"]["repeats"] == bench.SMOKE["steps"] and c["warmup"] == bench.SMOKE["warmup"]
            assert r[kind] == c["b"]  # the setting's own figures are its side of the interleaved comparison
            verdict = {"A faster": "slower", "B faster": "faster", "within noise": "within noise"}[c["verdict"]]
            assert f"| {c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f}) {verdict} |" in line
    plain, ckpt = rows[("mlic-two-stage-irpe", "fp32")], rows[("mlic-two-stage-irpe", "fp32+ckpt")]
    assert ckpt["activation_mb"] < plain["activation_mb"]  # the encoder/decoder activations are not kept


@pytest.mark.parametrize("argv, message", [(["--settings", "fp64"], "expected a precision"),
                                           (["--settings", "bf16+turbo"], "expected a precision"),
                                           (["--steps", "0"], "--steps must be at least 1"),
                                           (["--warmup", "-1"], "--warmup must be at least 0"),
                                           (["--config_overrides", "[1]"], "must be a JSON object")])
def test_bad_arguments(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
    assert not (tmp_path / "throughput.json").exists()
