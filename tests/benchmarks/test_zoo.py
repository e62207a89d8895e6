"""benchmarks/zoo.py: the row table is consistent (names, shared budgets, override keys the configs know), the
command line's dry run and errors, and a real smoke-budget run that reports, resumes and refuses mixed budgets."""

import importlib.util
import json
import math
import re
import sys
from pathlib import Path

import pytest

from mlic_hf.configuration_utils import check_config_keys
from mlic_hf.training import resolve_method

REPO = Path(__file__).resolve().parents[2]
ZOO_PATH = REPO / "benchmarks" / "zoo.py"
BUDGET_FLAGS = ("--num_train_epochs", "--image_size", "--per_device_train_batch_size", "--max_train_samples",
                "--max_eval_samples")


def _load_zoo():
    spec = importlib.util.spec_from_file_location("mlic_zoo_benchmark", ZOO_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


zoo = _load_zoo()


def _settings(tmp_path, smoke=False, vit_weights=None):
    weights = Path(vit_weights or tmp_path / "vit.safetensors")
    return zoo.Settings(tmp_path / "runs", tmp_path / "results", [0], smoke, weights, zoo.vit_settings(weights))


def _flag(args, name):
    return args[args.index(name) + 1] if name in args else None


def test_row_table_is_well_formed(tmp_path):
    zoo.check_table()
    names = [row.name for row in zoo.ROWS]
    assert len(names) == len(set(names))
    assert {row.group for row in zoo.ROWS} == set(zoo.GROUPS)
    for smoke in (False, True):
        settings = _settings(tmp_path, smoke)
        budgets = {}
        for row in zoo.ROWS:
            args = zoo.train_args(row, 0, settings)
            budget = tuple(_flag(args, flag) for flag in BUDGET_FLAGS)
            assert None not in budget[:4], (row.name, args)
            budgets.setdefault(row.group, set()).add(budget)
            # every flag the zoo owns appears once: a row cannot change its group's budget
            for flag in zoo.RESERVED_FLAGS:
                assert args.count(flag) <= 1, (row.name, flag)
            config_class, _ = resolve_method(row.method)
            check_config_keys(config_class, zoo.row_overrides(row, settings), source=row.name)
        assert all(len(b) == 1 for b in budgets.values()), budgets
        # M2 and M4 compare with M1: the CNN groups share one budget
        assert budgets["m1"] == budgets["m2"] == budgets["m4"]
    # the M3 rows are the paper's variants and the Figure 4 ablations; the authors' recipe waits for its preset
    m3 = {row.name: row for row in zoo.ROWS if row.group == "m3"}
    assert {r.overrides.get("variant") for r in m3.values()} == {"ml-vpt", "vpt", "linear-probe", "full-finetune"}
    assert m3["ml-vpt-authors"].preset == "m3-authors" and m3["ml-vpt-authors"].skip_unless_preset


def test_docstring_estimates_match_the_table():
    table = dict(re.findall(r"^([a-z0-9-]+)\s+([0-9.]+)\s*$", zoo.__doc__, re.M))
    assert {row.name: row.est_min for row in zoo.ROWS if row.est_min is not None} == \
        {name: float(value) for name, value in table.items()}


def test_dry_run_prints_one_command_per_row(tmp_path, capsys):
    weights = tmp_path / "vit.safetensors"
    weights.write_bytes(b"")
    assert zoo.main(["--dry_run", "--seeds", "0", "--vit_weights", str(weights),
                     "--output_root", str(tmp_path / "runs")]) == 0
    lines = capsys.readouterr().out.splitlines()
    commands = [line for line in lines if not line.startswith("#")]
    presets = zoo.registered_presets()
    runnable = [row for row in zoo.ROWS if zoo.skip_reason(row, presets) is None]
    assert len(commands) == len(runnable)
    for row, command in zip(runnable, commands):
        assert "scripts/train.py" in command and f"{row.name}/seed0" in command and "--seed 0" in command
        assert "--dataset fashion_clutter" in command and "--disable_tqdm true" in command
    for row in zoo.ROWS:
        if row not in runnable:
            assert any(line.startswith(f"# {row.name}: skipped") for line in lines)
    assert not (tmp_path / "runs").exists()


def test_cnn_image_size_changes_only_the_cnn_rows_size_and_where_runs_go(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default output root is relative: outputs/zoo-160px
    assert zoo.main(["--dry_run", "--seeds", "0", "--cnn_image_size", "160", "--rows", "m1", "m4", "ml-vpt"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("#")]
    m1, m4, vpt = lines
    for command, row in ((m1, "m1"), (m4, "m4")):
        assert "--image_size 160" in command and f"outputs/zoo-160px/{row}/seed0" in command
        assert "--num_train_epochs 3" in command and "--max_train_samples 4000" in command  # the rest unchanged
    assert "--image_size 96" in vpt  # the ViT keeps its pretraining size
    settings_row = next(row for row in zoo.ROWS if row.name == "m4")
    settings = zoo.Settings(tmp_path, tmp_path, [0], False, tmp_path / "v.safetensors", {"image_size": 96}, 192)
    assert settings.est_min(settings_row) == pytest.approx(4 * settings_row.est_min)
    assert zoo.main(["--dry_run", "--cnn_image_size", "8"]) == 2
    assert "--cnn_image_size must be between 32 and 1024" in capsys.readouterr().err


def test_authors_row_is_skipped_with_a_note_while_its_preset_is_missing(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setattr(zoo, "registered_presets", lambda: {"demo", "m3"})
    weights = tmp_path / "vit.safetensors"
    weights.write_bytes(b"")
    argv = ["--seeds", "0", "--rows", "ml-vpt-authors", "--vit_weights", str(weights), "--output_root",
            str(tmp_path / "runs"), "--results_dir", str(tmp_path / "results")]
    assert zoo.main(["--dry_run", *argv]) == 0
    out = capsys.readouterr().out
    assert "# ml-vpt-authors: skipped: preset 'm3-authors' is not registered" in out and "train.py" not in out
    with caplog.at_level("INFO", logger="zoo"):
        assert zoo.main(argv) == 0
    assert "ml-vpt-authors: skipped: preset 'm3-authors' is not registered" in caplog.text
    report = json.loads((tmp_path / "results" / "zoo.json").read_text())
    assert report["rows"][0]["status"] == "skipped" and not (tmp_path / "runs").exists()


def test_unknown_row_is_one_line_naming_the_valid_ones(capsys):
    assert zoo.main(["--rows", "bogus", "--dry_run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: unknown row 'bogus'")
    assert all(row.name in err[0] for row in zoo.ROWS)


def test_missing_vit_weights_is_one_line_naming_pretrain_vit(tmp_path, capsys):
    missing = tmp_path / "nope.safetensors"
    assert zoo.main(["--rows", "ml-vpt", "--seeds", "0", "--vit_weights", str(missing),
                     "--output_root", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "scripts/pretrain_vit.py" in err[0] and str(missing) in err[0]
    assert not (tmp_path / "runs").exists()


def _check_numbers(report, names):
    rows = {r["name"]: r for r in report["rows"]}
    for name in names:
        row = rows[name]
        assert row["status"] == "done", row
        for key in ("mAP", "CF1", "OF1"):
            value = row[key]["mean"]
            assert math.isfinite(value) and 0.0 <= value <= 100.0, (name, key, value)
        assert 0 < row["trainable_params"] <= row["total_params"]
        seed = row["seeds"]["0"]
        assert seed["wall_s"] > 0 and seed["num_train_samples"] == zoo.SMOKE_BUDGETS["cnn"].train_samples
    assert 0.0 < report["baseline"]["mAP"] < 100.0


def test_smoke_run_reports_and_resumes(tmp_path):
    runs, results = tmp_path / "runs", tmp_path / "results"
    argv = ["--smoke", "--seeds", "0", "--rows", "m1", "--output_root", str(runs), "--results_dir", str(results)]
    assert zoo.main(argv) == 0
    for name in ("zoo.md", "zoo.json", "zoo.png"):
        assert (results / name).stat().st_size > 0, name
    report = json.loads((results / "zoo.json").read_text())
    _check_numbers(report, ["m1"])
    assert "label-frequency baseline" in (results / "zoo.md").read_text().lower()
    folder = runs / "m1" / "seed0"
    assert (folder / "train.log").is_file() and not list(folder.glob("checkpoint-*"))
    finished = (folder / "mlic_run.json").stat().st_mtime_ns

    # a second invocation finds the run finished: nothing is retrained
    assert zoo.main(argv) == 0
    assert (folder / "mlic_run.json").stat().st_mtime_ns == finished
    assert len(json.loads((folder / "zoo_run.json").read_text())["attempts"]) == 1
    # the full budget into the same folders would mix budgets: refused before anything runs
    assert zoo.main(argv[1:]) == 2
    assert (folder / "mlic_run.json").stat().st_mtime_ns == finished


def test_smoke_run_of_ml_vpt_on_a_freshly_pretrained_tiny_vit(tmp_path):
    import subprocess

    weights = tmp_path / "vit.safetensors"
    pretrain = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "pretrain_vit.py"), "--output", str(weights), "--steps", "2",
         "--batch_size", "4", "--eval_samples", "4", "--image_size", "32", "--model_kwargs", '{"depth": 1}',
         "--no_progress", "--results_dir", ""], capture_output=True, text=True, cwd=REPO)  # no results record
    assert pretrain.returncode == 0, pretrain.stderr[-2000:]
    results = tmp_path / "results"
    assert zoo.main(["--smoke", "--seeds", "0", "--rows", "ml-vpt", "--vit_weights", str(weights),
                     "--output_root", str(tmp_path / "runs"), "--results_dir", str(results)]) == 0
    report = json.loads((results / "zoo.json").read_text())
    _check_numbers(report, ["ml-vpt"])
    row = report["rows"][0]
    # the ViT stays frozen: only prompts, experts and heads train
    assert row["trainable_params"] < row["total_params"] / 5
    args = json.loads((tmp_path / "runs" / "ml-vpt" / "seed0" / "zoo_run.json").read_text())["train_args"]
    assert _flag(args, "--image_size") == "32"  # the ViT's pretraining size, from the .json beside the weights


# --- results: merged, never replaced by a partial run; one commit per row; recorded commits; relative paths -------

COMMIT_A = {"commit": "a" * 40, "dirty": False}
COMMIT_B = {"commit": "b" * 40, "dirty": False}


def _fake_baseline(results, settings):
    # the real one loads the dataset; these tests are about what the report keeps, not the baseline
    return {"mAP": 20.0, "num_test_samples": 2000, "num_train_samples": 4000, "train_frequencies": []}


def _cnn_settings(root, seeds):
    """Settings as main() builds them for CNN rows (their train.py arguments do not involve the ViT)."""
    weights = Path("outputs/vit_fashion_hybrid.safetensors").absolute()
    return zoo.Settings(Path(root).absolute(), Path(root).absolute() / "results", list(seeds), False, weights,
                        zoo.vit_settings(weights))


def _fake_run(settings, name, seed, mAP=0.5, git=COMMIT_A):
    """A finished run as run_one leaves it: mlic_run.json, and zoo_run.json (``git=None``: a run made before the zoo
    recorded commits)."""
    row = next(r for r in zoo.ROWS if r.name == name)
    folder = zoo.run_dir(settings, row, seed)
    folder.mkdir(parents=True, exist_ok=True)
    run = {"test_metrics": {"mAP": mAP, "CF1": 0.4, "OF1": 0.45}, "train_runtime_s": 10.0,
           "num_train_samples": 4000, "num_test_samples": 2000, "used_ema_weights": False}
    (folder / "mlic_run.json").write_text(json.dumps(run))
    record = {"row": name, "seed": seed, "train_args": zoo.train_args(row, seed, settings), "status": "done",
              "wall_s": 12.0, "trainable_params": 10, "total_params": 10}
    if git is not None:
        record["git"] = git
    (folder / "zoo_run.json").write_text(json.dumps(record))
    return folder


def _argv(root, results, rows, seeds):
    return ["--rows", *rows, "--seeds", *map(str, seeds), "--output_root", str(root), "--results_dir", str(results)]


def test_partial_run_merges_into_the_existing_results(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(zoo, "label_frequency_baseline", _fake_baseline)
    results = tmp_path / "results"
    first = _cnn_settings(tmp_path / "first", [0, 1])
    for name in ("m1", "m4"):
        for seed in (0, 1):
            _fake_run(first, name, seed)
    assert zoo.main(["--report_only", *_argv(first.output_root, results, ["m1", "m4"], [0, 1])]) == 0
    # the case: one row, one seed, in another output root
    second = _cnn_settings(tmp_path / "second", [0])
    _fake_run(second, "m1", 0, mAP=0.9)
    with caplog.at_level("INFO", logger="zoo"):
        assert zoo.main(_argv(second.output_root, results, ["m1"], [0])) == 0
    report = json.loads((results / "zoo.json").read_text())
    rows = {r["name"]: r for r in report["rows"]}
    assert set(rows) == {"m1", "m4"} and report["seeds"] == [0, 1]
    assert set(rows["m4"]["seeds"]) == {"0", "1"} and rows["m4"]["status"] == "done"
    assert rows["m1"]["seeds"]["0"]["mAP"] == pytest.approx(90.0) and rows["m1"]["seeds"]["1"]["mAP"] == \
        pytest.approx(50.0)
    assert rows["m1"]["mAP"]["mean"] == pytest.approx(70.0) and rows["m1"]["mAP"]["n"] == 2
    assert report["merged"]["kept"] == {"m1": ["1"], "m4": ["0", "1"]}
    assert "kept from" in caplog.text and "m4 seeds 0, 1" in caplog.text
    assert "Kept from the previous zoo.json" in (results / "zoo.md").read_text()


def test_partial_run_that_cannot_merge_writes_beside_its_runs(tmp_path, monkeypatch):
    """The committed results (older runs, no recorded commit) and a new run of one of their rows would mix commits in
    that row: the committed file stays byte for byte, the report goes to OUTPUT_ROOT/results."""
    monkeypatch.setattr(zoo, "label_frequency_baseline", _fake_baseline)
    results = tmp_path / "results"
    results.mkdir()
    committed = (REPO / "benchmarks" / "results" / "zoo.json").read_bytes()
    (results / "zoo.json").write_bytes(committed)
    runs = _cnn_settings(tmp_path / "runs", [0])
    _fake_run(runs, "m1", 0)
    _fake_run(runs, "m4", 0)  # both finished: nothing trains
    assert zoo.main(_argv(runs.output_root, results, ["m1", "m4"], [0])) == 0
    assert (results / "zoo.json").read_bytes() == committed
    beside = json.loads((runs.output_root / "results" / "zoo.json").read_text())
    assert [r["name"] for r in beside["rows"]] == ["m1", "m4"]
    # --report_only with no run folders keeps the results as they are
    assert zoo.main(["--report_only", *_argv(tmp_path / "none", results, ["m1"], [0])]) == 0
    assert (results / "zoo.json").read_bytes() == committed


def test_mixed_commits_in_a_row_is_one_error_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(zoo, "label_frequency_baseline", _fake_baseline)
    settings = _cnn_settings(tmp_path / "runs", [0, 1, 2])
    _fake_run(settings, "m1", 0, git=COMMIT_A)
    _fake_run(settings, "m1", 1, git=COMMIT_B)
    _fake_run(settings, "m1", 2, git=None)
    argv = _argv(settings.output_root, tmp_path / "results", ["m1"], [0, 1, 2])
    for extra in (["--report_only"], []):
        assert zoo.main([*argv, *extra]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("error: row m1 mixes runs of different commits"), err
        assert "seed 0 at aaaaaaa" in err[0] and "seed 1 at bbbbbbb" in err[0] and "seed 2 at unknown" in err[0]
        assert "m1/seed1" in err[0] and "m1/seed2" in err[0] and "--rerun_mixed" in err[0]
    assert not (tmp_path / "results").exists()
    # a dry run still works: the problem is a note
    assert zoo.main([*argv, "--dry_run"]) == 0
    assert "# row m1 mixes runs of different commits" in capsys.readouterr().out


def test_rerun_mixed_reruns_the_seeds_not_at_the_current_commit(tmp_path, monkeypatch):
    monkeypatch.setattr(zoo, "label_frequency_baseline", _fake_baseline)
    settings = _cnn_settings(tmp_path / "runs", [0, 1])
    current = zoo.git_commit()
    _fake_run(settings, "m1", 0, git=current)
    _fake_run(settings, "m1", 1, git=COMMIT_B)
    reran = []

    def fake_run_one(row, seed, settings_, keep_checkpoints):
        reran.append(seed)
        _fake_run(settings_, row.name, seed, git=current)
        return {"status": "done", "wall_s": 1.0}

    monkeypatch.setattr(zoo, "run_one", fake_run_one)
    argv = _argv(settings.output_root, tmp_path / "results", ["m1"], [0, 1])
    assert zoo.main([*argv, "--rerun_mixed"]) == 0
    assert reran == [1]
    row = json.loads((tmp_path / "results" / "zoo.json").read_text())["rows"][0]
    assert row["commit"] == zoo.commit_label(current) and row["status"] == "done"


def _fake_training(monkeypatch):
    """scripts/train.py replaced by writing its mlic_run.json; every other subprocess (git) runs for real."""
    import subprocess

    real_run = subprocess.run

    def fake_run(command, *args, **kwargs):
        if str(zoo.TRAIN_SCRIPT) not in map(str, command):
            return real_run(command, *args, **kwargs)
        folder = Path(command[command.index("--output_dir") + 1])
        run = {"test_metrics": {"mAP": 0.6, "CF1": 0.5, "OF1": 0.55}, "train_runtime_s": 1.0,
               "num_train_samples": 4000, "num_test_samples": 2000, "used_ema_weights": False}
        (folder / "mlic_run.json").write_text(json.dumps(run))
        return subprocess.CompletedProcess(command, 0)

    monkeypatch.setattr(zoo.subprocess, "run", fake_run)
    monkeypatch.setattr(zoo, "count_parameters", lambda folder: {"trainable_params": 10, "total_params": 10})
    monkeypatch.setattr(zoo, "label_frequency_baseline", _fake_baseline)


def test_a_run_records_its_commit_and_the_report_its_provenance(tmp_path, monkeypatch):
    _fake_training(monkeypatch)
    runs, results = tmp_path / "runs", tmp_path / "results"
    assert zoo.main(_argv(runs, results, ["m1"], [0])) == 0
    expected = zoo.git_commit()
    assert expected["commit"]  # the tests run in the git checkout
    record = json.loads((runs / "m1" / "seed0" / "zoo_run.json").read_text())
    assert record["git"] == expected and record["attempts"][0]["git"] == expected
    report = json.loads((results / "zoo.json").read_text())
    seed = report["rows"][0]["seeds"]["0"]
    assert seed["git"] == expected and report["rows"][0]["commit"] == zoo.commit_label(expected)
    for key in ("date", "machine", "libraries", "git", "command"):
        assert key in report, key
    assert report["git"]["commit"] == expected["commit"] and "torch" in report["libraries"]
    assert {"cpu", "cores", "accelerator", "platform", "python", "torch_threads"} <= set(report["machine"])
    assert report["command"].startswith("python benchmarks/zoo.py --rows m1")
    assert expected["commit"][:7] in (results / "zoo.md").read_text()


def _strings(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)
    elif isinstance(value, str):
        yield value


def test_written_results_hold_no_absolute_path(tmp_path, monkeypatch):
    _fake_training(monkeypatch)
    runs, results = tmp_path / "runs", tmp_path / "results"
    assert zoo.main(_argv(runs, results, ["m1"], [0])) == 0
    for name in ("zoo.json", "zoo.md"):
        text = (results / name).read_text()
        assert str(tmp_path) not in text and str(REPO) not in text, name
    report = json.loads((results / "zoo.json").read_text())
    assert not [s for s in _strings(report) if s.startswith("/")]
    assert report["rows"][0]["seeds"]["0"]["output_dir"] == "seed0"  # outside the repository: its last component


def test_committed_results_hold_no_absolute_path():
    for path in (REPO / "benchmarks" / "results").glob("zoo*/zoo.json"):
        assert not [s for s in _strings(json.loads(path.read_text())) if s.startswith("/")], path
    path = REPO / "benchmarks" / "results" / "zoo.json"
    assert not [s for s in _strings(json.loads(path.read_text())) if s.startswith("/")]
