"""Model cards, plots and Hub uploads (offline: the files that would be uploaded, the card's contents)."""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

import mlic_hf
from mlic_hf.hub import files_to_upload, push_to_hub, write_model_card
from mlic_hf.plots import precision_recall_points

REPO = Path(__file__).resolve().parents[1]
LABELS = {0: "cat", 1: "dog", 2: "car"}


@pytest.fixture
def checkpoint(tmp_path):
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=32, id2label=LABELS, loss="asl")
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(tmp_path)
    run = {
        "method": "mlic-resnet-probabilistic",
        "dataset": "fashion_mosaic",
        "dataset_id": None,
        "splits": {"train": "train", "eval": "validation", "test": "test"},
        "training_args": {"num_train_epochs": 3, "learning_rate": 0.002, "ema_decay": 0.99},
        "test_metrics": {"mAP": 0.8765, "CP": 0.5, "CR": 0.25, "CF1": 0.3333, "OP": 0.6, "OR": 0.3, "OF1": 0.4},
        "per_class_AP": {"cat": 0.9, "dog": 0.8, "car": 0.93},
        "used_ema_weights": True,
        "train_runtime_s": 12.5,
        "num_train_samples": 100,
        "num_test_samples": 4,
    }
    (tmp_path / "mlic_run.json").write_text(json.dumps(run))
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "test_predictions.npz", scores=rng.random((4, 3)).astype(np.float32),
             labels=np.array([[1, 0, 1], [0, 1, -1], [1, 1, 0], [0, 0, 1]], dtype=np.int8))
    for junk in ("optimizer.pt", "training_args.bin", "checkpoint-2/model.safetensors"):
        (tmp_path / junk).parent.mkdir(exist_ok=True)
        (tmp_path / junk).write_bytes(b"x")
    return tmp_path


def _front_matter(text):
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "the card must start with YAML front matter"
    return yaml.safe_load(match.group(1))


def test_card_metadata_and_body(checkpoint):
    path = write_model_card(checkpoint, repo_id="me/mlic-test")
    text = path.read_text()
    meta = _front_matter(text)
    assert meta["library_name"] == "mlic_hf" and meta["pipeline_tag"] == "image-classification"
    assert "mlic-resnet-probabilistic" in meta["tags"] and meta["datasets"] == ["fashion_mosaic"]
    results = meta["model-index"][0]["results"][0]
    assert results["task"]["type"] == "image-classification"
    assert results["dataset"]["split"] == "test"
    values = {m["type"]: m["value"] for m in results["metrics"]}
    assert values["mAP"] == pytest.approx(87.65) and values["OF1"] == pytest.approx(40.0)
    assert "Supervised Multilabel Image Classification Using Residual Networks" in text
    assert "| dog | 80.00 |" in text and "| car | 93.00 |" in text
    assert "| mAP | 87.65 |" in text
    assert "asl (gamma_neg=4.0" in text and "| learning_rate | 0.002 |" in text
    assert "EMA weights" in text
    for plot in ("plots/per_class_ap.png", "plots/precision_recall.png"):
        assert f"]({plot})" in text
        with Image.open(checkpoint / plot) as image:
            assert image.format == "PNG" and image.size[0] > 100
    from huggingface_hub import ModelCard

    assert ModelCard.load(path).data.library_name == "mlic_hf"


def test_card_without_run_info(tmp_path):
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=32, id2label=LABELS)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(tmp_path)
    text = write_model_card(tmp_path).read_text()
    assert "model-index" not in _front_matter(text)
    assert "No evaluation results were recorded" in text


def test_usage_snippet_in_the_card_runs(checkpoint):
    text = write_model_card(checkpoint, repo_id="me/mlic-test").read_text()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1).replace("me/mlic-test", str(checkpoint))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    first = result.stdout.splitlines()[0]
    assert all(name in first for name in LABELS.values()) and "score" in first


def test_only_safe_files_are_uploaded(checkpoint):
    write_model_card(checkpoint)
    files = files_to_upload(checkpoint)
    assert {"config.json", "model.safetensors", "preprocessor_config.json", "README.md", "mlic_run.json",
            "plots/per_class_ap.png", "plots/precision_recall.png"} <= set(files)
    assert not [f for f in files if f.endswith((".pt", ".bin", ".npz")) or f.startswith("checkpoint-")]


def test_push_fails_fast_offline(checkpoint, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match="offline mode") as info:
        push_to_hub(checkpoint, "me/mlic-test")
    assert time.perf_counter() - start < 5
    assert "model.safetensors" in str(info.value)
    with pytest.raises(ValueError, match="user/name"):
        push_to_hub(checkpoint, "no-slash")


def test_incomplete_checkpoint_is_named(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
        write_model_card(tmp_path)


def test_precision_recall_points_by_hand():
    # scores of 4 (image, label) entries flattened: 0.9(+), 0.8(-), 0.7(+), 0.1(-)  -> after each: P = 1, 1/2, 2/3,
    # 1/2 and R = 1/2, 1/2, 1, 1; the ignored entry (label -1) is dropped.
    scores = np.array([[0.9, 0.8], [0.7, 0.1], [0.5, 0.5]])
    labels = np.array([[1, 0], [1, 0], [-1, -1]])
    precision, recall, thresholds = precision_recall_points(scores, labels)
    np.testing.assert_allclose(precision, [1.0, 0.5, 2 / 3, 0.5])
    np.testing.assert_allclose(recall, [0.5, 0.5, 1.0, 1.0])
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.7, 0.1])


def test_push_script_dry_run(checkpoint):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "push_to_hub.py"), "--checkpoint", str(checkpoint), "--repo_id",
         "me/mlic-test", "--dry_run"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "model.safetensors" in result.stdout and "optimizer.pt" not in result.stdout
    offline = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "push_to_hub.py"), "--checkpoint", str(checkpoint), "--repo_id",
         "me/mlic-test"], capture_output=True, text=True, env=env, timeout=300)
    assert offline.returncode == 2 and "offline mode" in offline.stderr
