"""benchmarks/demo_runs.py: real (smoke-sized) train.py runs write the single-run figures of the README and
docs/results.md with where they came from, and a partial invocation merges into the results instead of replacing
them."""

import json
import re

import pytest

from .bench_checks import load_benchmark

demo_runs = load_benchmark("demo_runs")


def test_smoke_runs_write_metrics_provenance_and_merge(tmp_path):
    work, results = tmp_path / "work", tmp_path / "results"
    assert demo_runs.main(["--smoke", "--runs", "demo", "finetune", "--work_dir", str(work),
                           "--output_dir", str(results)]) == 0
    written = json.loads((results / "demo_runs.json").read_text())["runs"]
    assert list(written) == ["demo", "finetune"]
    for name, record in written.items():
        run = json.loads((work / name / "mlic_run.json").read_text())
        assert record["test_metrics"]["mAP"] == pytest.approx(100 * run["test_metrics"]["mAP"])
        assert record["per_class_AP"] == pytest.approx({k: 100 * v for k, v in run["per_class_AP"].items()}, nan_ok=True)
        assert re.fullmatch(r"[0-9a-f]{40}", record["git"]["commit"]) and isinstance(record["git"]["dirty"], bool)
        assert record["machine"]["cores"] >= 1 and record["libraries"]["torch"] and record["smoke"] is True
        assert record["wall_s"] > 0 and record["train_command"].startswith("python scripts/train.py --preset demo")
        assert record["command"].startswith("python benchmarks/demo_runs.py --smoke")
        assert str(tmp_path) not in json.dumps(record) and "WORK_DIR/" in record["train_command"]
    assert "--dataset folder" in written["finetune"]["train_command"]
    assert len(written["finetune"]["per_class_AP"]) == 5  # the coarse labels
    table = (results / "demo_runs.md").read_text()
    assert f"| demo | {written['demo']['test_metrics']['mAP']:.2f} |" in table
    # a later partial invocation keeps the runs it did not redo
    assert demo_runs.main(["--smoke", "--runs", "clutter", "--work_dir", str(work), "--output_dir", str(results)]) == 0
    merged = json.loads((results / "demo_runs.json").read_text())["runs"]
    assert list(merged) == ["demo", "finetune", "clutter"] and merged["demo"] == written["demo"]


def test_finetune_without_the_demo_checkpoint_is_one_clear_error(tmp_path, capsys):
    assert demo_runs.main(["--smoke", "--runs", "finetune", "--work_dir", str(tmp_path / "w"),
                           "--output_dir", str(tmp_path / "r")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "needs the demo checkpoint" in error[0]
    assert not (tmp_path / "r" / "demo_runs.json").exists()
