"""``--streaming`` training: with 2 processes (torchrun, gloo) every training row is read exactly once per epoch, by
one process, both processes have the same number of batches, and each image's augmentation is the one an on-disk run
gives it; ``scripts/train.py --streaming`` trains and evaluates under torchrun; a streamed run resumes exactly."""

import json
import os
import subprocess
import sys

import pytest
import torch

from mlic_hf.data import load_fashion_mosaic
from mlic_hf.data.streaming import write_parquet_shards
from mlic_hf.training import attach_transforms, build_model, load_splits, parse_args, run_training

from .test_training import REPO, TINY_DATA, _argv, _load_script, _losses, _run_script, data_cache  # noqa: F401

DRIVER = REPO / "tests" / "training" / "streaming_driver.py"
TRAIN_SHARDS = [7, 12, 13]  # uneven, as real shards are: 32 rows


@pytest.fixture(scope="module")
def shards(tmp_path_factory, data_cache):  # noqa: F811
    """The tiny mosaic as parquet shards: train in 3 uneven files, validation and test in one each."""
    folder = tmp_path_factory.mktemp("shards")
    data = load_fashion_mosaic(**TINY_DATA, cache_dir=data_cache)
    write_parquet_shards(data["train"], folder, TRAIN_SHARDS)
    write_parquet_shards(data["validation"], folder, [len(data["validation"])], prefix="validation")
    write_parquet_shards(data["test"], folder, [len(data["test"])], prefix="test")
    files = {split: str(folder / f"{split}-*.parquet") for split in ("train", "validation", "test")}
    return {"files": json.dumps(files), "train_ids": list(data["train"]["image_id"])}


def _streaming_argv(output_dir, data_files, streaming=True, **extra):
    argv = _argv(output_dir, "unused", **extra)
    at = argv.index("--dataset_kwargs")
    del argv[at:at + 2]
    return argv + ["--streaming", str(streaming).lower(), "--dataset_name", "parquet", "--data_files", data_files]


def _on_disk_pixel_sums(data_files, epochs, **extra) -> dict[int, dict[str, float]]:
    """Each training image's pixel sum per epoch, transformed by the on-disk (map-style) path of the same shards."""
    model_args, data_args, training_args = parse_args(_streaming_argv("unused", data_files, streaming=False, **extra))
    train, evaluation, test, names = load_splits(data_args, training_args.seed)
    ids = list(train["image_id"])
    model = build_model(model_args, names, train)
    train, _, _, transform = attach_transforms(model, data_args, train, evaluation, test, training_args.seed)
    sums = {}
    for epoch in epochs:
        transform.epoch = epoch
        sums[epoch] = {ids[i]: float(train[i]["pixel_values"].double().sum()) for i in range(len(train))}
    return sums


def test_two_processes_read_every_row_once_per_epoch(tmp_path, shards):
    argv = _streaming_argv(tmp_path / "run", shards["files"], per_device_train_batch_size=4, shuffle_buffer_size=8)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541"]
    result = subprocess.run(launcher + [str(DRIVER), str(tmp_path), *argv], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world_size"] for r in ranks] == [2, 2]
    every = sorted(shards["train_ids"])
    for epoch in (0, 1):
        first, second = (r["epochs"][epoch] for r in ranks)
        assert len(first["ids"]) == len(second["ids"]) == 16
        assert not set(first["ids"]) & set(second["ids"])
        assert sorted(first["ids"] + second["ids"]) == every  # each row exactly once, by one process
        assert first["batches"] == second["batches"] == first["len"] == second["len"] == 4
    assert ranks[0]["epochs"][0]["ids"] != ranks[0]["epochs"][1]["ids"]  # each epoch is shuffled anew
    # augmentation seeded per sample and epoch: the same as the on-disk path gives the same row
    expected = _on_disk_pixel_sums(shards["files"], (0, 1))
    for epoch in (0, 1):
        streamed = {**ranks[0]["epochs"][epoch]["sums"], **ranks[1]["epochs"][epoch]["sums"]}
        assert streamed == pytest.approx(expected[epoch], rel=1e-9)
    changed = sum(expected[0][i] != expected[1][i] for i in every)
    assert changed >= 28, changed  # epochs differ: the epoch reaches the augmentation


def test_train_script_streams_under_torchrun(tmp_path, shards):
    out = tmp_path / "run"
    argv = _streaming_argv(out, shards["files"], num_train_epochs=2, per_device_train_batch_size=4,
                           eval_strategy="epoch", save_strategy="epoch")
    at = argv.index("--use_cpu")  # as users run it: without --use_cpu, a CPU-only machine still trains in parallel
    del argv[at:at + 2]
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29542"]
    _run_script(launcher, argv, tmp_path)
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 8  # 2 epochs of 16 rows per process in batches of 4
    assert [round(e["epoch"]) for e in state["log_history"] if "eval_mAP" in e] == [1, 2]
    run = json.loads((out / "mlic_run.json").read_text())
    assert run["world_size"] == 2 and run["num_train_samples"] == 32 and run["data_args"]["streaming"] is True
    from mlic_hf import AutoModelForMultiLabelImageClassification

    model = AutoModelForMultiLabelImageClassification.from_pretrained(out)
    assert model.config.num_labels == 10


def test_streamed_run_resumes_exactly(tmp_path, shards):
    """Killed after step 5 (one batch into the second epoch) and resumed: the same losses and EMA as a run that was
    not stopped, as for data on disk."""
    common = dict(max_steps=8, save_strategy="steps", save_steps=5, eval_strategy="no", save_total_limit=5,
                  metric_for_best_model="loss", greater_is_better="false", shuffle_buffer_size=8)
    full = run_training(*parse_args(_streaming_argv(tmp_path / "full", shards["files"], **common)))["trainer"]
    import shutil

    shutil.copytree(tmp_path / "full" / "checkpoint-5", tmp_path / "resumed" / "checkpoint-5")
    resumed = run_training(*parse_args(_streaming_argv(
        tmp_path / "resumed", shards["files"], **common, resume_from_checkpoint=tmp_path / "resumed" / "checkpoint-5")
    ))["trainer"]
    full_losses, resumed_losses = _losses(full), _losses(resumed)
    assert sorted(full_losses) == list(range(1, 9))
    for step in (6, 7, 8):
        assert resumed_losses[step] == pytest.approx(full_losses[step], rel=1e-5, abs=1e-7), step
    for name, value in full.ema.shadow.items():
        torch.testing.assert_close(resumed.ema.shadow[name], value, rtol=1e-5, atol=1e-6)


def test_stream_without_a_validation_split_is_one_clear_error(tmp_path, shards, capsys):
    only_train = json.dumps({"train": json.loads(shards["files"])["train"]})
    argv = _streaming_argv(tmp_path / "out", only_train, max_steps=1)
    assert _load_script("train").main(argv) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "has no split 'validation'" in error[0] and "--eval_split" in error[0]


def test_example_shards_stream_into_training(tmp_path, capsys):
    """docs/scale.md's try-it-yourself: ``make_example_dataset.py --format parquet`` writes shards whose labels are a
    Sequence(ClassLabel), and ``train.py --streaming`` trains on them without --label_names."""
    shards = tmp_path / "shards"
    assert _load_script("make_example_dataset").main([
        "--output", str(shards), "--format", "parquet", "--shards", "3", "--num_train", "24",
        "--num_validation", "8", "--num_test", "8"]) == 0
    assert sorted(p.name for p in shards.glob("train-*.parquet")) == [f"train-0000{k}-of-00003.parquet" for k in range(3)]
    files = json.dumps({split: str(shards / f"{split}-*.parquet") for split in ("train", "validation", "test")})
    argv = _streaming_argv(tmp_path / "run", files, num_train_epochs=1, eval_strategy="no", save_strategy="no",
                           metric_for_best_model="loss", greater_is_better="false")
    assert _load_script("train").main(argv) == 0
    run = json.loads((tmp_path / "run" / "mlic_run.json").read_text())
    assert run["num_train_samples"] == 24
    assert sorted(run["per_class_AP"]) == ["bag", "bottom", "dress", "footwear", "top"]
    with pytest.raises(SystemExit):  # argparse: --format takes folder or parquet
        _load_script("make_example_dataset").main(["--output", str(tmp_path / "x"), "--format", "csv"])
    assert _load_script("make_example_dataset").main(["--output", str(tmp_path / "y"), "--format", "parquet",
                                                      "--shards", "0"]) == 2
    assert "--shards must be between 1 and --num_train" in capsys.readouterr().err
