"""Reliability of training and of rewriting a user's files: atomic rewrites (config.json of a calibrated checkpoint,
mlic_run.json, test_predictions.npz), one-cycle schedules of any small length, unloadable resume files, a full
disk while saving, two runs on one output folder, and a batch of one image with BatchNorm: each one clear error
(or no error), never a traceback from inside torch or safetensors."""

from __future__ import annotations

import argparse
import fcntl
import json
import math
import os
import shutil

import numpy as np
import pytest
import torch

import mlic_hf
from mlic_hf.data.selection import DatasetArguments
from mlic_hf.training import parse_args, run_training
from mlic_hf.training.checkpoints import LOCK_FILE, mark_checkpoint_complete

from .test_train_errors import _error_line
from .test_training import TINY_DATA, _argv, _load_script, data_cache, saved_checkpoint  # noqa: F401  (fixtures)


def _quick(out, data_cache, **extra):  # noqa: F811
    """A tiny run's flags: no evaluation, no checkpoint unless ``extra`` asks."""
    flags = dict(eval_strategy="no", save_strategy="no", metric_for_best_model="loss", greater_is_better="false")
    return _argv(out, data_cache, **{**flags, **extra})


# --- 1. atomic rewrites ------------------------------------------------------------------------------------------
class Killed(BaseException):
    """The process dies here (a SIGKILL runs no handler: nothing after it may be written)."""


def _killed(*args, **kwargs):
    raise Killed
def _mosaic(data_cache) -> DatasetArguments:  # noqa: F811
    return DatasetArguments(dataset="fashion_mosaic",
                            dataset_kwargs=json.dumps({**TINY_DATA, "cache_dir": str(data_cache)}))


@pytest.mark.parametrize("crash", ["while serialising", "before the rename"])
def test_calibrate_killed_mid_write_keeps_the_old_config(crash, saved_checkpoint, data_cache, tmp_path,  # noqa: F811
                                                         monkeypatch):
    import mlic_hf.evaluation as evaluation
    import mlic_hf.file_utils as file_utils

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(saved_checkpoint, checkpoint)
    before = (checkpoint / "config.json").read_bytes()
    store = evaluation.store_thresholds

    def store_then_crash_on_write(config, *args, **kwargs):
        store(config, *args, **kwargs)  # armed only now: the config was loaded (and maybe logged) already
        if crash == "while serialising":
            serialise = type(config).to_json_string

            def killed_once(self, *a, **k):  # the first serialisation is the write; later ones (reprs) work
                monkeypatch.setattr(type(config), "to_json_string", serialise)
                raise Killed

            monkeypatch.setattr(type(config), "to_json_string", killed_once)
        else:
            monkeypatch.setattr(file_utils.os, "replace", _killed)

    monkeypatch.setattr(evaluation, "store_thresholds", store_then_crash_on_write)
    with pytest.raises(Killed):
        evaluation.calibrate_checkpoint(str(checkpoint), _mosaic(data_cache), progress=False)
    assert (checkpoint / "config.json").read_bytes() == before
    assert sorted(p.name for p in checkpoint.iterdir()) == sorted(p.name for p in saved_checkpoint.iterdir())
    mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(checkpoint)  # still loads


def test_calibrate_rewrites_config_like_save_pretrained(saved_checkpoint, data_cache, tmp_path):  # noqa: F811
    from mlic_hf.evaluation import calibrate_checkpoint

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(saved_checkpoint, checkpoint)
    report = calibrate_checkpoint(str(checkpoint), _mosaic(data_cache), progress=False)
    loaded = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(checkpoint)
    assert loaded.config.thresholds == pytest.approx(list(report["thresholds"].values()))
    assert not [p for p in checkpoint.iterdir() if p.name.endswith(".tmp")]


def test_run_files_are_replaced_atomically(tmp_path, data_cache, monkeypatch):  # noqa: F811
    import mlic_hf.file_utils as file_utils
    from mlic_hf.training.run_files import write_run_files

    model_args, data_args, training_args = parse_args(_quick(tmp_path / "out", data_cache, max_steps=1))
    metrics = {"mAP": 0.5, "per_class_AP": {"a": 0.5}}
    write_run_files(tmp_path / "out", model_args, data_args, training_args, metrics, False,
                    scores=np.zeros((2, 1)), labels=np.zeros((2, 1)))
    before = {name: (tmp_path / "out" / name).read_bytes() for name in ("mlic_run.json", "test_predictions.npz")}
    monkeypatch.setattr(file_utils.os, "replace", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "disk full")))
    with pytest.raises(OSError, match="mlic_run.json"):
        write_run_files(tmp_path / "out", model_args, data_args, training_args, {**metrics, "mAP": 0.9}, True,
                        scores=np.ones((2, 1)), labels=np.ones((2, 1)))
    for name, content in before.items():
        assert (tmp_path / "out" / name).read_bytes() == content, name
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(before)


@pytest.mark.parametrize("crash", ["weights", "image processor", "replacing"])
def test_save_pretrained_over_a_checkpoint_killed_at_any_point_leaves_whole_files(
        crash, saved_checkpoint, tmp_path, monkeypatch):  # noqa: F811
    import transformers.modeling_utils

    import mlic_hf.file_utils as file_utils
    from mlic_hf.image_processing import MLICImageProcessor

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(saved_checkpoint, checkpoint)
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    model = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(checkpoint)
    with torch.no_grad():
        model.classifier.bias.add_(1.0) if hasattr(model, "classifier") else next(model.parameters()).add_(1.0)
    model.config.label_smoothing_note = "changed"  # config.json changes too
    if crash == "weights":
        def partial_then_killed(tensors, filename, *args, **kwargs):
            with open(filename, "wb") as handle:
                handle.write(b"partial")
            raise Killed
        monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", partial_then_killed)
    elif crash == "image processor":
        monkeypatch.setattr(MLICImageProcessor, "to_json_string", _killed)
    else:
        replace = os.replace
        calls = []

        def killed_on_the_second(source, target, *args, **kwargs):  # one file replaced, then the process dies
            if os.path.dirname(target) == str(checkpoint):  # not the atomic writes inside the staging folder
                calls.append(target)
                if len(calls) == 2:
                    raise Killed
            return replace(source, target, *args, **kwargs)
        monkeypatch.setattr(file_utils.os, "replace", killed_on_the_second)
    with pytest.raises(Killed):
        model.save_pretrained(checkpoint)
    monkeypatch.undo()
    after = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    assert sorted(after) == sorted(before)  # no staging folder or partial file left
    changed = [name for name in after if after[name] != before[name]]
    assert changed == ([] if crash != "replacing" else ["model.safetensors"])  # weights first, config.json last
    mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(checkpoint)  # every file whole: it loads


def test_save_pretrained_on_a_full_disk_names_the_file_and_keeps_the_checkpoint(saved_checkpoint, tmp_path,  # noqa: F811
                                                                                monkeypatch):
    import transformers.modeling_utils
    from safetensors import SafetensorError

    checkpoint = tmp_path / "ckpt"
    shutil.copytree(saved_checkpoint, checkpoint)
    before = {p.name: p.read_bytes() for p in checkpoint.iterdir()}
    model = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(checkpoint)

    def full_disk(tensors, filename, *args, **kwargs):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    with pytest.raises(OSError) as raised:
        model.save_pretrained(checkpoint)
    assert str(raised.value).startswith(f"could not write {checkpoint / 'model.safetensors'}: ")
    assert "No space left on device" in str(raised.value)
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == before


def test_save_pretrained_removes_the_shards_of_an_earlier_sharded_save(saved_checkpoint, tmp_path):  # noqa: F811
    model = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(saved_checkpoint)
    size = (saved_checkpoint / "model.safetensors").stat().st_size
    model.save_pretrained(tmp_path / "out", max_shard_size=size // 3)
    assert (tmp_path / "out" / "model.safetensors.index.json").exists()
    model.save_pretrained(tmp_path / "out")  # one file now: the old index and shards would shadow it
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["config.json", "model.safetensors", "preprocessor_config.json"]


def test_trainer_metrics_and_state_files_are_replaced_atomically(tmp_path, monkeypatch):
    import types

    import mlic_hf.file_utils as file_utils
    from mlic_hf.training import MLICTrainer
    from transformers import TrainerState

    trainer = types.SimpleNamespace(args=types.SimpleNamespace(output_dir=str(tmp_path)),
                                    is_world_process_zero=lambda: True, state=TrainerState(global_step=7))
    MLICTrainer.save_metrics(trainer, "train", {"loss": 0.5})
    MLICTrainer.save_metrics(trainer, "test", {"mAP": 0.9})
    MLICTrainer.save_state(trainer)
    assert json.loads((tmp_path / "all_results.json").read_text()) == {"loss": 0.5, "mAP": 0.9}
    assert json.loads((tmp_path / "trainer_state.json").read_text())["global_step"] == 7
    # the text transformers writes
    reference = tmp_path / "reference.json"
    trainer.state.save_to_json(str(reference))
    assert (tmp_path / "trainer_state.json").read_text() == reference.read_text()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    monkeypatch.setattr(file_utils.os, "replace", _killed)
    trainer.state.global_step = 8
    for save in (lambda: MLICTrainer.save_metrics(trainer, "test", {"mAP": 0.1}), lambda: MLICTrainer.save_state(trainer)):
        with pytest.raises(Killed):
            save()
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


# --- 2. one-cycle schedules of a few steps -----------------------------------------------------------------------
def test_one_cycle_schedule_of_every_small_length(tmp_path):
    from mlic_hf.training import MLICTrainer, MLICTrainingArguments

    from ..models.tiny_configs import tiny_model

    args = MLICTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to=[], ema_decay=0.0,
                                 eval_strategy="no", save_strategy="no", metric_for_best_model="loss",
                                 greater_is_better=False, learning_rate=1e-3)
    trainer = MLICTrainer(model=tiny_model("mlic-resnet-probabilistic"), args=args)
    optimizer = trainer.create_optimizer()
    for pct_start in (0.2, 0.25, 0.5, 0.1):
        trainer.args.one_cycle_pct_start = pct_start
        for steps in range(1, 13):
            trainer.lr_scheduler = None
            scheduler = trainer.create_scheduler(steps, optimizer)
            rates = []
            for _ in range(steps):
                rates.append(optimizer.param_groups[0]["lr"])
                optimizer.step()
                scheduler.step()
            assert all(math.isfinite(r) and 0 < r <= 1e-3 * (1 + 1e-9) for r in rates), (pct_start, steps, rates)
            if pct_start * steps - 1 >= 1:  # room for a warm-up step: the schedule is OneCycleLR's own, unchanged
                assert scheduler.total_steps == steps and rates[0] < max(rates), (pct_start, steps, rates)
                expected = torch.optim.lr_scheduler.OneCycleLR(
                    torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1e-3), max_lr=1e-3,
                    total_steps=steps, pct_start=pct_start)
                assert scheduler._schedule_phases == expected._schedule_phases


def test_a_run_of_exactly_five_steps_trains(tmp_path, data_cache):  # noqa: F811
    # 20 images, batch 4, 1 epoch: 0.2 * 5 steps put the peak at step 0 (OneCycleLR divided by zero)
    argv = _quick(tmp_path / "out", data_cache, max_train_samples=20, per_device_train_batch_size=4,
                  num_train_epochs=1)
    trainer = run_training(*parse_args(argv))["trainer"]
    assert trainer.state.global_step == 5


# --- 3. unloadable resume files ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checkpointed(tmp_path_factory, data_cache):  # noqa: F811
    out = tmp_path_factory.mktemp("checkpointed") / "run"
    run_training(*parse_args(_quick(out, data_cache, max_steps=2, save_strategy="steps", save_steps=2)))
    return out / "checkpoint-2"


@pytest.mark.parametrize("name", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
def test_resume_file_that_is_not_plain_tensors_is_one_error_naming_it(name, checkpointed, data_cache, tmp_path,
                                                                      capsys):
    folder = tmp_path / "out" / "checkpoint-2"
    shutil.copytree(checkpointed, folder)
    torch.save({"state": argparse.Namespace(step=2)}, folder / name)  # loads only with weights_only=False
    mark_checkpoint_complete(str(folder), 2)  # complete and intact, as a checkpoint of another version would be
    argv = _quick(tmp_path / "out", data_cache, max_steps=4, resume_from_checkpoint=folder)
    assert _load_script("train").main(argv) == 2
    line = _error_line(capsys)
    assert str(folder / name) in line and "argparse.Namespace" in line
    assert "weights_only" not in line


# --- 4. a full disk while saving ---------------------------------------------------------------------------------
def test_full_disk_while_saving_a_checkpoint_names_the_file(tmp_path, data_cache, capsys, monkeypatch):  # noqa: F811
    import transformers.modeling_utils
    from safetensors import SafetensorError

    def full_disk(tensors, filename, *args, **kwargs):
        with open(filename, "wb") as handle:
            handle.write(b"partial")
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full_disk)
    argv = _quick(tmp_path / "out", data_cache, max_steps=2, save_strategy="steps", save_steps=2)
    assert _load_script("train").main(argv) == 2
    line = _error_line(capsys)
    assert str(tmp_path / "out" / "checkpoint-2" / "model.safetensors") in line
    assert "No space left on device" in line


def test_full_disk_while_saving_the_optimizer_names_the_file(tmp_path, data_cache, capsys,  # noqa: F811
                                                             monkeypatch):
    import transformers.trainer

    save = torch.save

    def full_disk(obj, path, *args, **kwargs):
        if str(path).endswith("optimizer.pt"):
            with open(path, "wb") as handle:
                handle.write(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0: "
                               "PytorchStreamWriter failed writing file data/0: file write failed")
        return save(obj, path, *args, **kwargs)

    monkeypatch.setattr(transformers.trainer.torch, "save", full_disk)
    argv = _quick(tmp_path / "out", data_cache, max_steps=2, save_strategy="steps", save_steps=2)
    assert _load_script("train").main(argv) == 2
    line = _error_line(capsys)
    assert str(tmp_path / "out" / "checkpoint-2" / "optimizer.pt") in line and "file write failed" in line


# --- 5. two runs on one output folder ----------------------------------------------------------------------------
def test_a_second_run_on_a_busy_output_dir_is_refused(tmp_path, data_cache, capsys):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    with open(out / LOCK_FILE, "a+") as other_run:  # another process training into out (flock is per open file)
        fcntl.flock(other_run.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert _load_script("train").main(_quick(out, data_cache, max_steps=1)) == 2
        line = _error_line(capsys)
        assert f"--output_dir {out}: another training run" in line
    assert not list(out.rglob("*.safetensors"))


def test_the_lock_is_released_after_a_run_and_a_stale_one_does_not_block(tmp_path, data_cache):  # noqa: F811
    out = tmp_path / "out"
    out.mkdir()
    (out / LOCK_FILE).write_text("999999")  # left by a killed run: nobody holds it
    run_training(*parse_args(_quick(out, data_cache, max_steps=1)))
    assert (out / LOCK_FILE).read_text() == str(os.getpid())
    with open(out / LOCK_FILE, "a+") as handle:  # released: another run may take it now
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    from mlic_hf.hub.upload import files_to_upload

    assert LOCK_FILE not in files_to_upload(out)


# --- 6. a batch of one image with BatchNorm ----------------------------------------------------------------------
def test_one_training_image_with_batchnorm_names_the_settings(tmp_path, data_cache, capsys):  # noqa: F811
    argv = _quick(tmp_path / "out", data_cache, max_steps=1, max_train_samples=1)
    assert _load_script("train").main(argv) == 2
    line = _error_line(capsys)
    assert "a training batch of 1 image (from 1 training image(s)" in line
    assert "--max_train_samples" in line and "--per_device_train_batch_size 8" in line
    assert "Expected more than 1 value per channel" not in line


def test_a_last_batch_of_one_image_is_announced_and_named(tmp_path, data_cache, capsys, caplog):  # noqa: F811
    argv = _quick(tmp_path / "out", data_cache, max_train_samples=9, num_train_epochs=1)  # batches of 8, then 1
    with caplog.at_level("WARNING", logger="mlic_hf.training.trainer"):
        assert _load_script("train").main(argv) == 2
    assert "9 training images in batches of 8 leave a last batch of 1 image" in caplog.text
    line = _error_line(capsys)
    assert "a training batch of 1 image (from 9 training image(s), --per_device_train_batch_size 8" in line
    assert "--dataloader_drop_last true" in line


def test_an_atomic_rewrite_keeps_the_file_permissions(tmp_path):
    from mlic_hf.file_utils import atomic_write_text

    path = tmp_path / "config.json"
    path.write_text("{}")
    path.chmod(0o644)
    atomic_write_text(path, '{"a": 1}')
    assert path.read_text() == '{"a": 1}' and (path.stat().st_mode & 0o777) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["config.json"]
