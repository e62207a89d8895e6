"""benchmarks/bench_metrics.py: a smoke run writes provenance, both comparisons with consistent ratios and
verdicts, and a table holding the JSON's numbers; bad flags are one error line."""

import json

import pytest

from .bench_checks import check_comparison, check_one_error_line, check_provenance, load_benchmark

bench = load_benchmark("bench_metrics")


def test_smoke_run_writes_comparisons_and_table(tmp_path, capsys):
    assert bench.main(["--smoke", "--output_dir", str(tmp_path)]) == 0
    results = json.loads((tmp_path / "metrics.json").read_text())
    prov = results["provenance"]
    check_provenance(prov, ["numpy"], command="python benchmarks/bench_metrics.py --smoke")
    assert results["data"]["n"] == bench.SMOKE["n"] and results["settings"]["repeats"] == bench.SMOKE["repeats"]
    comparisons = results["comparisons"]
    assert len(comparisons) == 2
    for c in comparisons.values():
        check_comparison(c)
        low, high = c["ratio_low"], c["ratio_high"]
        if c["goal"] == "A / B >= 5":
            assert c["goal_met"] == ("met" if low >= 5 else "missed" if high < 5 else "within noise")
        else:
            assert c["goal_met"] == ("met" if high <= 2 else "missed" if low > 2 else "within noise")
    # the same average precision as scikit-learn, to rounding
    assert results["max_ap_difference"] <= 1e-6 and results["ap_goal_met"] == "met"
    assert results["mAP"]["ours"] == pytest.approx(results["mAP"]["sklearn"])
    table = (tmp_path / "metrics.md").read_text()
    assert bench.describe(prov) in table
    for name, c in comparisons.items():
        assert f"| {name} |" in table and f"{c['ratio']:.2f} ({c['ratio_low']:.2f}–{c['ratio_high']:.2f})" in table
        assert f"{1e3 * c['a']['median']:.2f}" in table and c["verdict"] in table


@pytest.mark.parametrize("argv, message", [(["--n", "1"], "--n must be at least 2"),
                                           (["--density", "1.5"], "--density in (0, 1)"),
                                           (["--repeats", "0"], "--repeats must be at least 1")])
def test_bad_flags_are_one_error_line(argv, message, tmp_path, capsys):
    assert bench.main([*argv, "--output_dir", str(tmp_path)]) == 2
    check_one_error_line(capsys, message)
    assert not (tmp_path / "metrics.json").exists()
