"""benchmarks/bench_data.py: a smoke run times both loaders interleaved, every epoch delivering every image, and
writes provenance, a ratio and verdict consistent with the summaries, and a table holding the JSON's numbers."""

import json

import pytest
import torch

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_data")


def test_smoke_run_writes_interleaved_comparison_and_table(tmp_path, capsys):
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "data.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["datasets"])
    c = results["comparison"]
    check_comparison(c)
    assert c["a"]["repeats"] == c["b"]["repeats"] == bench.SMOKE["repeats"] and c["warmup"] == bench.SMOKE["warmup"]
    low, high = c["ratio_low"], c["ratio_high"]
    assert c["goal_met"] == ("met" if low >= 1 else "missed" if high < 1 else "within noise")
    n = results["settings"]["num_images"]
    assert results["images_per_s"]["plain"] == pytest.approx(n / c["a"]["median"])
    assert results["images_per_s"]["mlic_hf"] == pytest.approx(n / c["b"]["median"])
    table = (tmp_path / "data.md").read_text()
    assert bench.describe(prov) in table
    assert f"Ratio {c['ratio']:.3f} ({low:.3f}–{high:.3f}): {c['verdict']}" in table
    assert f"{c['a']['median']:.3f} ({c['a']['min']:.3f}–{c['a']['max']:.3f})" in table
    assert f"{results['images_per_s']['mlic_hf']:.1f}" in table


def test_an_epoch_that_loses_images_is_an_error(tmp_path):
    args = bench.parse_args(["--smoke"])
    dataset = [{"pixel_values": torch.zeros(3)}] * (args.num_images - 1)
    run = bench.epoch(dataset, lambda rows: {"pixel_values": torch.stack([r["pixel_values"] for r in rows])}, args)
    with pytest.raises(RuntimeError, match=f"expected {args.num_images}"):
        run()


@pytest.mark.parametrize("argv, message", [(["--num_images", "0"], "--num_images must be at least 1"),
                                           (["--workers", "-1"], "--workers and --warmup must be at least 0")])
def test_bad_flags_are_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
