"""benchmarks/bench_streaming.py: a real (tiny) run reads every image through both pipelines and writes its table."""

import json

from .bench_checks import load_benchmark

bench = load_benchmark("bench_streaming")


def test_tiny_run_writes_both_pipelines(tmp_path):
    output = tmp_path / "streaming.md"
    argv = ["--num_images", "40", "--shards", "3", "--image_size", "32", "--batch_size", "8", "--workers", "0",
            "--output", str(output)]
    assert bench.main(argv) == 0
    results = json.loads(output.with_suffix(".json").read_text())
    assert set(results["startup_s"]) == {"on disk", "streamed"}
    rates = results["images_per_s"]["0 workers"]
    assert rates["on disk"] > 0 and rates["streamed"] > 0
    table = output.read_text()
    assert "| 0 workers: images/s |" in table and "40 Fashion-MNIST mosaics in 3 parquet shards" in table
