"""Crash safety of training checkpoints: a real ``scripts/train.py`` process is SIGKILLed at each point of writing
checkpoint-4 (inside every file, between files, before and after the completion marker, while an old checkpoint is
deleted), then resumed with ``--resume_from_checkpoint last``; its final weights must equal an uninterrupted run's
bit for bit. Also: an explicit path to an incomplete checkpoint, and a folder without a complete checkpoint, are
one clear error."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mlic_hf.training.checkpoints import COMPLETE_MARKER, checkpoint_problem, last_complete_checkpoint
from mlic_hf.training import parse_args, run_training

from ..models.tiny_configs import TINY_CONFIGS

REPO = Path(__file__).resolve().parents[2]
TINY_DATA = {"num_train": 32, "num_validation": 8, "num_test": 8, "seed": 0}
METHOD = "mlic-resnet-probabilistic"

# The driver runs scripts/train.py's main() in a process that SIGKILLs itself at one point of saving checkpoint-4:
# MLIC_KILL_AT = "<file>:<phase>", phase "before" (the writer is entered), "half" (the file is written, then cut to
# half its size, as a kill in mid-write leaves it) or "after" (the file is complete). "rotation" is the deletion of
# checkpoint-2 that follows checkpoint-4 (save_total_limit 1): "half" deletes one file of it, then dies.
DRIVER = '''
import importlib.util, os, shutil, signal, sys

import safetensors.torch
import torch
import transformers.modeling_utils
from transformers.trainer_callback import TrainerState

from mlic_hf.training.checkpoints import COMPLETE_MARKER

TARGET, _, PHASE = os.environ["MLIC_KILL_AT"].partition(":")


def die():
    os.kill(os.getpid(), signal.SIGKILL)


def in_checkpoint(path, folder, name):
    path = os.path.abspath(os.fspath(path))
    parent = os.path.dirname(path)
    if os.path.basename(parent).startswith(".mlic_staging."):  # save_pretrained writes there, then renames
        parent = os.path.dirname(parent)
    return os.path.basename(parent) == folder and os.path.basename(path) == name


def cut_in_half(path):
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) // 2)


def killing(write):
    def wrapper(obj, path, *args, **kwargs):
        hit = isinstance(path, (str, os.PathLike)) and in_checkpoint(path, "checkpoint-4", TARGET)
        if hit and PHASE == "before":
            die()
        result = write(obj, path, *args, **kwargs)
        if hit and PHASE == "half":
            cut_in_half(path)
        if hit:
            die()
        return result
    return wrapper


safetensors.torch.save_file = killing(safetensors.torch.save_file)
transformers.modeling_utils.safe_save_file = killing(transformers.modeling_utils.safe_save_file)
torch.save = killing(torch.save)
TrainerState.save_to_json = killing(TrainerState.save_to_json)

real_replace, real_rmtree = os.replace, shutil.rmtree


def replace(src, dst, *args, **kwargs):
    hit = TARGET == "marker" and in_checkpoint(dst, "checkpoint-4", COMPLETE_MARKER)
    if hit and PHASE == "half":
        cut_in_half(src)
        die()
    real_replace(src, dst, *args, **kwargs)
    if hit:
        die()


def rmtree(path, *args, **kwargs):
    if TARGET == "rotation" and os.path.basename(os.path.abspath(path)) == "checkpoint-2":
        os.remove(os.path.join(path, "model.safetensors"))
        die()
    real_rmtree(path, *args, **kwargs)


os.replace, shutil.rmtree = replace, rmtree
spec = importlib.util.spec_from_file_location("_train_script", sys.argv[1])
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)
sys.exit(script.main(sys.argv[2:]))
'''

# (kill point, the checkpoint `last` must resume from): a checkpoint counts once its marker is in place
KILL_POINTS = [
    ("ema.safetensors:before", "checkpoint-2"),
    ("ema.safetensors:half", "checkpoint-2"),
    ("model.safetensors:half", "checkpoint-2"),
    ("optimizer.pt:half", "checkpoint-2"),
    ("scheduler.pt:half", "checkpoint-2"),
    ("rng_state.pth:half", "checkpoint-2"),
    ("trainer_state.json:half", "checkpoint-2"),
    ("trainer_state.json:after", "checkpoint-2"),
    ("marker:half", "checkpoint-2"),
    ("marker:after", "checkpoint-4"),
    ("rotation:half", "checkpoint-4"),
]


@pytest.fixture(scope="module")
def data_cache(tmp_path_factory):
    from mlic_hf.data import load_fashion_mosaic

    cache = tmp_path_factory.mktemp("mosaic-cache")
    load_fashion_mosaic(**TINY_DATA, cache_dir=cache)
    return cache


def _argv(output_dir, data_cache, **extra) -> list[str]:
    """A tiny resnet18 run at 32 px: 6 steps over two epochs, a checkpoint every 2 steps of which only the newest
    is kept, augmentation on (its per-sample seeds must resume too)."""
    values = {
        "method": METHOD, "backbone": TINY_CONFIGS[METHOD]["backbone"], "image_size": 32,
        "dataset_kwargs": json.dumps({**TINY_DATA, "cache_dir": str(data_cache)}), "output_dir": str(output_dir),
        "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8, "learning_rate": 1e-3,
        "logging_steps": 1, "ema_decay": 0.9, "use_cpu": "true", "dataloader_num_workers": 0,
        "disable_tqdm": "true", "max_steps": 6, "save_strategy": "steps", "save_steps": 2, "save_total_limit": 1,
        "eval_strategy": "no", "metric_for_best_model": "loss", "greater_is_better": "false", "seed": 0,
        **extra,
    }
    return [item for key, value in values.items() for item in (f"--{key}", str(value))]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_cache):
    """The uninterrupted run."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run_training(*parse_args(_argv(out, data_cache)))
    return out


def _kill_while_saving(out: Path, kill_at: str, data_cache, tmp_path: Path) -> None:
    driver = tmp_path / "kill_driver.py"
    driver.write_text(textwrap.dedent(DRIVER))
    # the same thread count as this process: float sums (and so the weights) depend on it
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads()),
           "PYTHONPATH": str(REPO), "MLIC_KILL_AT": kill_at}
    process = subprocess.run([sys.executable, str(driver), str(REPO / "scripts" / "train.py"),
                              *_argv(out, data_cache)], env=env, capture_output=True, text=True, timeout=600)
    assert process.returncode == -signal.SIGKILL, process.stderr[-3000:]
    assert not (out / "model.safetensors").exists()  # it really died while saving checkpoint-4


def _assert_same_weights(first: Path, second: Path) -> None:
    one, two = load_file(first / "model.safetensors"), load_file(second / "model.safetensors")
    assert one.keys() == two.keys()
    different = [name for name in one if not torch.equal(one[name], two[name])]
    assert not different, different[:5]


@pytest.mark.parametrize("kill_at,resumes_from", KILL_POINTS, ids=[point for point, _ in KILL_POINTS])
def test_killed_while_saving_resumes_to_identical_weights(kill_at, resumes_from, reference, data_cache, tmp_path):
    out = tmp_path / "run"
    _kill_while_saving(out, kill_at, data_cache, tmp_path)
    assert last_complete_checkpoint(str(out)) == str(out / resumes_from)
    if resumes_from == "checkpoint-2":  # the checkpoint being written is refused, naming what it lacks
        assert COMPLETE_MARKER in checkpoint_problem(str(out / "checkpoint-4"))
    run_training(*parse_args(_argv(out, data_cache, resume_from_checkpoint="last")))
    _assert_same_weights(out, reference)
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-6"]  # leftovers rotated away
    assert checkpoint_problem(str(out / "checkpoint-6")) is None
    if kill_at.startswith("rotation"):  # the deletion removes the marker first: never a half-deleted "complete"
        assert not (out / "checkpoint-2" / COMPLETE_MARKER).exists()


def _load_train_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("_crash_train_script", REPO / "scripts" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    return lines[0]


@pytest.mark.parametrize("damage,named", [
    ("no marker", COMPLETE_MARKER),
    ("no optimizer.pt", "missing optimizer.pt"),
    ("no ema.safetensors", "missing ema.safetensors"),
    ("optimizer.pt truncated", "optimizer.pt has"),
])
def test_explicit_path_to_an_incomplete_checkpoint_is_one_clear_error(damage, named, reference, data_cache,
                                                                      tmp_path, capsys):
    checkpoint = tmp_path / "run" / "checkpoint-6"
    shutil.copytree(reference / "checkpoint-6", checkpoint)
    what, _, how = damage.partition(" ")
    if damage == "no marker":
        (checkpoint / COMPLETE_MARKER).unlink()
    elif how == "truncated":
        (checkpoint / what).write_bytes((checkpoint / what).read_bytes()[:100])
    else:
        (checkpoint / how).unlink()
    code = _load_train_script().main(_argv(tmp_path / "run", data_cache, resume_from_checkpoint=checkpoint))
    assert code == 2
    line = _one_error_line(capsys)
    assert str(checkpoint) in line and named in line
    assert not (tmp_path / "run" / "model.safetensors").exists()


def test_resume_last_without_a_complete_checkpoint_is_one_clear_error(reference, data_cache, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference / "checkpoint-6", out / "checkpoint-6")
    (out / "checkpoint-6" / COMPLETE_MARKER).unlink()  # the only checkpoint was being written when the run died
    code = _load_train_script().main(_argv(out, data_cache, resume_from_checkpoint="last"))
    assert code == 2
    line = _one_error_line(capsys)
    assert "--resume_from_checkpoint last: no complete checkpoint" in line and "checkpoint-6" in line
    assert not (out / "model.safetensors").exists()


def test_a_half_deleted_folder_that_kept_its_marker_is_skipped(reference, tmp_path, caplog):
    """A deletion by other means (a plain ``rm -r``, transformers' own rotation) may stop with the marker still in
    place: the files it lists are checked, so the folder is not taken for complete."""
    out = tmp_path / "run"
    shutil.copytree(reference / "checkpoint-6", out / "checkpoint-6")
    shutil.copytree(reference / "checkpoint-6", out / "checkpoint-8")
    (out / "checkpoint-8" / "model.safetensors").unlink()
    with caplog.at_level("WARNING", logger="mlic_hf"):
        assert last_complete_checkpoint(str(out)) == str(out / "checkpoint-6")
    assert any("checkpoint-8" in r.getMessage() and "model.safetensors" in r.getMessage() for r in caplog.records)


def test_marker_lists_every_file_of_the_checkpoint(reference):
    folder = reference / "checkpoint-6"
    marker = json.loads((folder / COMPLETE_MARKER).read_text())
    files = {p.name: p.stat().st_size for p in folder.iterdir() if p.name != COMPLETE_MARKER}
    assert marker["files"] == files and marker["global_step"] == 6
    for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json",
                 "ema.safetensors"):
        assert name in files


def test_trainer_refuses_an_incomplete_checkpoint_before_loading_it(reference, data_cache, tmp_path):
    """The check is in ``MLICTrainer.train`` too, for code that drives the trainer without ``run_training``."""
    from mlic_hf.data.transforms import collate_fn
    from mlic_hf.training import attach_transforms, build_model, load_splits
    from mlic_hf.training.trainer import MLICTrainer

    checkpoint = tmp_path / "run" / "checkpoint-6"
    shutil.copytree(reference / "checkpoint-6", checkpoint)
    (checkpoint / "scheduler.pt").unlink()
    model_args, data_args, training_args = parse_args(_argv(tmp_path / "run", data_cache))
    train, evaluation, test, names = load_splits(data_args)
    model = build_model(model_args, names)
    train, evaluation, _, _ = attach_transforms(model, data_args, train, evaluation, test, 0)
    trainer = MLICTrainer(model=model, args=training_args, train_dataset=train, eval_dataset=evaluation,
                          data_collator=collate_fn)
    with pytest.raises(ValueError, match="missing scheduler.pt"):
        trainer.train(resume_from_checkpoint=str(checkpoint))
    assert trainer.state.global_step == 0
