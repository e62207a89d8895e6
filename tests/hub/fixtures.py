"""A trained checkpoint as training leaves it (a tiny saved model, ``mlic_run.json``, ``test_predictions.npz`` and
trainer files that must never be uploaded), built under pytest's ``tmp_path`` for the hub tests."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np

import mlic_hf

REPO_ROOT = Path(__file__).resolve().parents[2]
LABELS = {0: "cat", 1: "dog", 2: "car"}
REPO_ID = "me/mlic-test"
TEST_METRICS = {
    "mAP": 0.8765, "CP": 0.5, "CR": 0.25, "CF1": 0.3333, "OP": 0.6, "OR": 0.3, "OF1": 0.4,
    "CP_top3": 0.41, "CR_top3": 0.52, "CF1_top3": 0.4586, "OP_top3": 0.43, "OR_top3": 0.54, "OF1_top3": 0.4788,
}
PER_CLASS_AP = {"cat": 0.9, "dog": 0.8125, "car": 0.9175}
JUNK = ("optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin",
        "pytorch_model.bin", "checkpoint-2/model.safetensors", "checkpoint-2/config.json", "runs/events.out")
EXPECTED_UPLOAD = ["README.md", "config.json", "mlic_run.json", "model.safetensors", "plots/per_class_ap.png",
                   "plots/precision_recall.png", "preprocessor_config.json"]


def subprocess_env() -> dict[str, str]:
    """Environment of a subprocess that imports this checkout's mlic_hf, offline."""
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}


def save_tiny_model(folder: Path) -> Path:
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=32, id2label=LABELS, loss="asl",
                                               asl_gamma_neg=3.0)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(folder)
    return folder


def run_file() -> dict:
    return {
        "method": "mlic-resnet-probabilistic",
        "dataset": "fashion_mosaic",
        "dataset_id": None,
        "splits": {"train": "train", "eval": "validation", "test": "test"},
        "model_args": {"method": "mlic-resnet-probabilistic", "backbone": "resnet18", "image_size": 32},
        "data_args": {"dataset": "fashion_mosaic", "threshold": 0.5, "top_k": 3},
        "training_args": {"num_train_epochs": 3, "learning_rate": 0.002, "weight_decay": 0.0001,
                          "per_device_train_batch_size": 16, "ema_decay": 0.99, "one_cycle": True, "seed": 7},
        "test_metrics": dict(TEST_METRICS),
        "per_class_AP": dict(PER_CLASS_AP),
        "used_ema_weights": True,
        "train_runtime_s": 125.0,
        "num_train_samples": 100,
        "num_test_samples": 20,
    }


def predictions(num_samples: int = 20, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Test ``(scores, labels)`` that agree with the labels more often than not, with two ignored (``-1``) entries."""
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_samples, len(LABELS))) > 0.5).astype(np.int8)
    labels[0, 0], labels[1, 1] = -1, -1
    scores = np.clip(0.35 * labels + 0.65 * rng.random(labels.shape), 0, 1).astype(np.float32)
    return scores, labels


def make_checkpoint(saved_model: Path, folder: Path) -> Path:
    """A copy of ``saved_model`` with a run file, test predictions and the trainer's files (``JUNK``)."""
    shutil.copytree(saved_model, folder)
    (folder / "mlic_run.json").write_text(json.dumps(run_file()))
    scores, labels = predictions()
    np.savez_compressed(folder / "test_predictions.npz", scores=scores, labels=labels)
    for junk in JUNK:
        (folder / junk).parent.mkdir(exist_ok=True)
        (folder / junk).write_bytes(b"junk")
    return folder
