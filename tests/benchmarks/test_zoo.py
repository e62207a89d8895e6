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
         "--no_progress"], capture_output=True, text=True, cwd=REPO)
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
