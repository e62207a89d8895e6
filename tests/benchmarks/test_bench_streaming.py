"""benchmarks/bench_streaming.py: a smoke run reads every image through both pipelines, timed interleaved, and writes
provenance, ratios, verdicts and goals consistent with the summaries, and a table holding the JSON's numbers; an
epoch that loses images and bad flags are errors (one line from ``main``)."""

import json

import pytest
import torch

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_streaming")


def test_smoke_run_writes_interleaved_comparisons_and_table(tmp_path, capsys):
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "streaming.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["datasets", "torch"], command="python benchmarks/bench_streaming.py --smoke")
    assert results["settings"]["num_images"] == bench.SMOKE["num_images"] and results["settings"]["smoke"]
    assert set(results["throughput"]) == {"0 workers"}
    table = (tmp_path / "streaming.md").read_text()
    assert bench.describe(prov) in table
    n = bench.SMOKE["num_images"]
    for c in [results["startup"], *results["throughput"].values()]:
        check_comparison(c)
        assert c["a"]["repeats"] == c["b"]["repeats"] == bench.SMOKE["repeats"]
        assert c["warmup"] == bench.SMOKE["warmup"]
        assert f"{c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f}) | {bench.VERDICTS[c['verdict']]} |" \
            in table
        assert f"{c['a']['median']:.3f} ({c['a']['min']:.3f}–{c['a']['max']:.3f})" in table
    c = results["throughput"]["0 workers"]
    low, high = c["ratio_low"], c["ratio_high"]
    assert c["goal_met"] == ("met" if low >= 0.9 else "missed" if high < 0.9 else "within noise")
    assert c["images_per_s"]["on disk"] == pytest.approx(n / c["a"]["median"])
    assert c["images_per_s"]["streamed"] == pytest.approx(n / c["b"]["median"])
    assert (f"| 0 | {c['a']['median']:.3f}" in table
            and f"{c['images_per_s']['on disk']:.0f} → {c['images_per_s']['streamed']:.0f} | ratio >= 0.9 | "
                f"{c['goal_met']} |" in table)
    assert "40 Fashion-MNIST mosaics in 3 parquet shards" in table


def test_an_epoch_that_loses_images_is_an_error():
    args = bench.parse_args(["--smoke"])
    dataset = [{"pixel_values": torch.zeros(3), "labels": torch.zeros(2)}] * (args.num_images - 1)
    epochs = []
    run = bench.epoch(dataset, epochs.append, 0, False, args)
    with pytest.raises(RuntimeError, match=f"gave {args.num_images - 1} images, expected {args.num_images}"):
        run()
    assert epochs == [1]  # each epoch moves the augmentation on first


@pytest.mark.parametrize("argv, message", [(["--num_images", "0"], "--num_images must be at least 1"),
                                           (["--workers", "0", "-1"], "--workers must be at least 0"),
                                           (["--warmup", "-1"], "--warmup must be at least 0"),
                                           (["--shards", "9", "--num_images", "4"], "--shards must be at most")])
def test_bad_flags_are_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
    assert not (tmp_path / "streaming.json").exists()
