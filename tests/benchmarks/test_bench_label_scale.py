"""benchmarks/bench_label_scale.py: a smoke run (tiny heads, 4 and 40 labels) writes provenance, for every head and
label count both comparisons against GAP + linear with the head's size, and a table holding the JSON's numbers."""

import json

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_label_scale")


def test_smoke_run_compares_every_head_with_linear_at_every_label_count(tmp_path):
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "label_scale.json").read_text())
    check_provenance(results["provenance"], ["timm"])
    assert list(results["results"]) == ["4", "40"]
    table = (tmp_path / "label_scale.md").read_text()
    for num_labels, row in results["results"].items():
        assert set(row) == {"linear", "ml-decoder", "q2l", "m2", "csra"}
        # linear's head grows by (channels + 1) per label: 512 channels of ResNet-18; only the heads are measured
        assert row["linear"]["head_parameters"] == 513 * int(num_labels)
        assert 0 < row["linear"]["activation_mb"] < row["q2l"]["activation_mb"]
        for head in ("ml-decoder", "q2l", "m2", "csra"):
            for kind in ("training step", "inference"):
                check_comparison(row[head][kind])
                assert row[head][kind]["a"]["repeats"] == bench.SMOKE["repeats"]
                assert f"{row[head][kind]['ratio']:.2f}" in table
    csra = [results["results"][n]["csra"]["head_parameters"] for n in ("4", "40")]
    assert csra == [4 * 512 * 4, 4 * 512 * 40]  # 4 heads of bias-free 1x1 classifiers


def test_bad_label_counts_are_one_error_line(capsys):
    assert bench.main(["--labels", "0"]) == 2
    check_one_error_line(capsys, "--labels must be label counts of at least 1")
