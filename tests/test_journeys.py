"""Acceptance suite: the user journeys of the README, for every registered method (tiny configs and test facts,
``tests/models/method_facts.py``), through the scripts users run.

1. train a few steps with ``scripts/train.py`` on the built-in data → a checkpoint folder;
2. load it with ``pipeline("image-classification")`` and ``mlic_hf.multilabel_pipeline`` and run real photos;
3. fine-tune it with ``scripts/train.py --model_name_or_path`` on a folder + ``metadata.jsonl`` dataset with other
   labels;
4. ``scripts/evaluate.py`` and ``scripts/predict.py`` on the fine-tuned checkpoint;
5. kill training hard (SIGKILL) and resume: the same final weights as an uninterrupted run;
6. ``scripts/push_to_hub.py --dry_run``: the card renders with metrics, split names, and no local paths.

A method's own journeys (e.g. a method used as a PEFT adapter) live with its tests, in ``tests/models/<package>/``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import mlic_hf
from mlic_hf.training.checkpoints import COMPLETE_MARKER

from .models.method_facts import facts_for, method_ids
from .models.tiny_configs import TINY_CONFIGS

REPO = Path(__file__).resolve().parents[1]
METHOD_IDS = method_ids()
TINY_DATA = {"num_train": 24, "num_validation": 12, "num_test": 12, "seed": 0}
IMAGE_SIZE = 32
NEW_LABELS = ["cat", "coffee", "person"]  # the fine-tuning label set (sorted: the folder loader's order)
NEW_LABEL_SPLITS = {"train": 24, "validation": 12, "test": 12}  # images per split of the fine-tuning dataset


def _script(name: str):
    """``scripts/<name>.py`` as a module (under a private name: ``evaluate`` would clash with the HF package)."""
    spec = importlib.util.spec_from_file_location(f"_journey_script_{name}", REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos (real RGB images of different sizes)."""
    from skimage import data

    return {"cat": data.chelsea(), "coffee": data.coffee(), "person": data.astronaut(), "rocket": data.rocket()}


@pytest.fixture(scope="module")
def mosaic_cache(tmp_path_factory):
    from mlic_hf.data import load_fashion_mosaic

    cache = tmp_path_factory.mktemp("mosaic-cache")
    load_fashion_mosaic(**TINY_DATA, cache_dir=cache)
    return cache


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    paths = []
    for name, array in _photos().items():
        path = folder / (f"{name}.jpg" if name != "rocket" else f"{name}.png")
        Image.fromarray(array).save(path)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def new_label_folder(tmp_path_factory):
    """A folder dataset with the labels cat / coffee / person: each image is one or two random crops of the matching
    photos side by side (real photo content, multi-label, learnable)."""
    root = tmp_path_factory.mktemp("folder-dataset")
    photos = _photos()
    rng = np.random.default_rng(0)
    for split, count in NEW_LABEL_SPLITS.items():
        (root / split).mkdir()
        rows = []
        for index in range(count):
            labels = sorted(rng.choice(NEW_LABELS, size=int(rng.integers(1, 3)), replace=False).tolist())
            crops = []
            for label in labels:
                photo = photos[label]
                top, left = (int(rng.integers(0, s - 200)) for s in photo.shape[:2])
                crops.append(photo[top:top + 200, left:left + 200])
            name = f"{index:03d}.png"
            Image.fromarray(np.concatenate(crops, axis=1)).save(root / split / name)
            rows.append({"file_name": name, "labels": labels})
        (root / split / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def _train_argv(method: str, output_dir, **flags) -> list[str]:
    """``scripts/train.py`` flags for a tiny model of ``method`` (no augmentation, CPU, quiet)."""
    tiny = dict(TINY_CONFIGS[method])
    overrides = {k: v for k, v in tiny.items() if k not in ("backbone", "image_size")}
    values = {
        "method": method, "backbone": tiny["backbone"], "image_size": IMAGE_SIZE, "output_dir": output_dir,
        "per_device_train_batch_size": 8, "per_device_eval_batch_size": 8, "learning_rate": 3e-3,
        "logging_steps": 1, "ema_decay": 0.9, "use_cpu": "true", "dataloader_num_workers": 0,
        "disable_tqdm": "true", "rand_augment": "", "cutout": 0.0, "hflip": 0.0, "seed": 0,
        "config_overrides": json.dumps(overrides),
        **flags,
    }
    argv = []
    for key, value in values.items():
        argv += [f"--{key}", str(value)]
    return argv


def _mosaic_flags(cache) -> dict:
    return {"dataset": "fashion_mosaic", "dataset_kwargs": json.dumps({**TINY_DATA, "cache_dir": str(cache)})}


def _train(argv) -> None:
    assert _script("train").main(argv) == 0


@pytest.fixture(scope="module", params=METHOD_IDS, ids=METHOD_IDS)
def trained(request, tmp_path_factory, mosaic_cache):
    """Journey 1: a few steps of ``scripts/train.py`` on the built-in data."""
    out = tmp_path_factory.mktemp("trained") / "run"
    _train(_train_argv(request.param, out, max_steps=3, eval_strategy="steps", eval_steps=3, save_strategy="steps",
                       save_steps=3, **_mosaic_flags(mosaic_cache)))
    return request.param, out


def test_journey_1_train_writes_a_complete_checkpoint(trained):
    method, out = trained
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "mlic_run.json",
                 "test_predictions.npz"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == method and len(config["id2label"]) == 10
    run = json.loads((out / "mlic_run.json").read_text())
    # the split names really used, not None for "the dataset's default"
    assert run["splits"] == {"train": "train", "eval": "validation", "test": "test"}
    card = (out / "README.md").read_text()
    assert "| Test split | `test` |" in card and "| Model-selection split | `validation` |" in card


def test_journey_2_pipelines_on_real_photos(trained, photo_files):
    from transformers import pipeline

    from mlic_hf.inference import load_model, load_processor, predict_files

    method, out = trained
    model = load_model(str(out))
    processor = load_processor(str(out))
    num_labels = model.config.num_labels
    classifier = pipeline("image-classification", model=str(out))
    multi = mlic_hf.multilabel_pipeline(str(out))
    rows, skipped = predict_files(model, photo_files, threshold=0.5, progress=False, processor=processor)
    assert not skipped and len(rows) == len(photo_files)
    for path, row in zip(photo_files, rows):
        image = Image.open(path)
        with torch.no_grad():
            logits = model(**processor(images=image, return_tensors="pt")).logits[0]
        expected = {model.config.id2label[i]: torch.sigmoid(logits[i]).item() for i in range(num_labels)}
        for result in (classifier(str(path), top_k=num_labels), multi(str(path), threshold=0.0)):
            assert len(result) == num_labels  # one sigmoid score per label
            assert {r["label"] for r in result} == set(expected)
            for entry in result:
                assert entry["score"] == pytest.approx(expected[entry["label"]], abs=1e-5)
        # by default the multi-label pipeline keeps the labels at or above the thresholds training calibrated
        thresholds = dict(zip(expected, model.config.thresholds))
        assert {r["label"] for r in multi(str(path))} == {n for n, p in expected.items() if p >= thresholds[n]}
        # scripts/predict.py's code path preprocesses exactly like the pipeline (the checkpoint's processor)
        for name, score in row["scores"].items():
            assert score == pytest.approx(expected[name], abs=1e-5)


@pytest.fixture(scope="module")
def finetuned(trained, new_label_folder, tmp_path_factory):
    """Journey 3: fine-tune the trained checkpoint on a dataset with other labels."""
    method, checkpoint = trained
    out = tmp_path_factory.mktemp("finetuned") / "run"
    argv = _train_argv(method, out, model_name_or_path=checkpoint, dataset="folder", data_dir=new_label_folder,
                       max_steps=9, eval_strategy="no", save_strategy="no", ema_decay=0.0,
                       metric_for_best_model="loss", greater_is_better="false")
    # the checkpoint's architecture is used: drop the tiny-config flags that belong to a fresh model
    cut = argv.index("--config_overrides")
    del argv[cut:cut + 2]
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("mlic_hf")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        _train(argv)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return method, out, [r.getMessage() for r in records]


def test_journey_3_finetune_on_a_new_label_set(finetuned):
    method, out, messages = finetuned
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {str(i): name for i, name in enumerate(NEW_LABELS)}
    assert config["label2id"] == {name: i for i, name in enumerate(NEW_LABELS)}
    weights = load_file(out / "model.safetensors")
    for name, tensor in weights.items():
        assert torch.isfinite(tensor).all(), name
        assert tensor.abs().max() < 1e3, name
    state = json.loads((out / "trainer_state.json").read_text())  # written at the end of every run
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert len(losses) == 9
    # 24 images, batches of 8: each epoch sees every image once; the last epoch's loss is below the first's
    assert np.mean(losses[-3:]) < np.mean(losses[:3]), losses
    assert any("re-initialised" in m for m in messages), messages
    card = (out / "README.md").read_text()
    for label in NEW_LABELS:
        assert label in card
    check = facts_for(method).check_finetuned_on_new_labels  # e.g. label groups of the old labels recomputed
    if check is not None:
        check(config, messages, NEW_LABEL_SPLITS["train"], len(NEW_LABELS))


def test_journey_4_evaluate_and_predict_scripts(finetuned, new_label_folder, photo_files, tmp_path, capsys):
    _, out, _ = finetuned
    metrics_file = tmp_path / "metrics.json"
    code = _script("evaluate").main(["--checkpoint", str(out), "--dataset", "folder", "--data_dir",
                                     str(new_label_folder), "--output", str(metrics_file)])
    assert code == 0
    result = json.loads(metrics_file.read_text())
    assert result["split"] == "test" and result["num_samples"] == 12
    assert set(result["per_class_AP"]) == set(NEW_LABELS) and 0.0 <= result["metrics"]["mAP"] <= 1.0
    predictions = tmp_path / "pred.jsonl"
    assert _script("predict").main(["--checkpoint", str(out), *map(str, photo_files), "--threshold", "0.0",
                                    "--output", str(predictions)]) == 0
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert [Path(r["file"]).name for r in rows] == [p.name for p in photo_files]
    assert all(set(r["scores"]) == set(NEW_LABELS) and len(r["labels"]) == 3 for r in rows)


def _subprocess_env() -> dict:
    # the same thread count as this process: float sums (and so weights, step after step) depend on it
    return {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(torch.get_num_threads()),
            "PYTHONPATH": str(REPO)}


@pytest.mark.parametrize("method", METHOD_IDS, ids=METHOD_IDS)
def test_journey_5_sigkill_and_resume_gives_the_same_weights(method, mosaic_cache, tmp_path):
    flags = dict(max_steps=12, save_strategy="steps", save_steps=2, eval_strategy="no", save_total_limit=3,
                 metric_for_best_model="loss", greater_is_better="false", rand_augment="rand-m9-mstd0.5",
                 cutout=0.5, hflip=0.5, **_mosaic_flags(mosaic_cache))
    full, killed = tmp_path / "full", tmp_path / "killed"
    process = subprocess.Popen([sys.executable, str(REPO / "scripts" / "train.py"), *_train_argv(method, killed,
                                                                                                   **flags)],
                               env=_subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "checkpoint-2" / COMPLETE_MARKER).exists():  # the file written last
            assert process.poll() is None, process.stderr.read().decode()[-3000:]
            assert time.monotonic() < deadline, "no checkpoint-2 within 5 minutes"
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
        process.stderr.close()
    assert process.returncode == -signal.SIGKILL
    assert not (killed / "model.safetensors").exists()  # it really was interrupted
    _train(_train_argv(method, killed, resume_from_checkpoint="last", **flags))
    _train(_train_argv(method, full, **flags))
    resumed_weights, full_weights = load_file(killed / "model.safetensors"), load_file(full / "model.safetensors")
    assert resumed_weights.keys() == full_weights.keys()
    for name, value in full_weights.items():
        torch.testing.assert_close(resumed_weights[name], value, rtol=1e-4, atol=1e-6,
                                   msg=lambda detail, name=name: f"{name}: {detail}")


def test_journey_6_push_to_hub_dry_run(trained, mosaic_cache):
    method, out = trained
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "push_to_hub.py"), "--checkpoint", str(out),
                             "--repo_id", "someone/tiny-model", "--dry_run"],
                            env=_subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    card = (out / "README.md").read_text()
    run = json.loads((out / "mlic_run.json").read_text())
    assert f"{100 * run['test_metrics']['mAP']:.2f}" in card  # the metrics, in %
    assert "| Test split | `test` |" in card and "split: test" in card
    for private in (str(out), str(mosaic_cache), str(Path.home()), "/tmp/"):
        assert private not in card and private not in (out / "mlic_run.json").read_text(), private
    assert "shared/" not in card and "model.safetensors" in result.stdout
