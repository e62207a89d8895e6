"""Model cards, plots and Hub uploads (offline: the card's contents, the files that would be uploaded)."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard
from huggingface_hub.utils import filter_repo_objects
from PIL import Image

import mlic_hf
import mlic_hf.hub as hub
from mlic_hf.hub import files_to_upload, push_to_hub, write_model_card
from mlic_hf.plots import micro_average_precision, plot_per_class_ap, plot_precision_recall, precision_recall_points

REPO_ROOT = Path(__file__).resolve().parents[1]
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


def _subprocess_env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error",
            "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("saved_model")
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=32, id2label=LABELS, loss="asl",
                                               asl_gamma_neg=3.0)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(folder)
    return folder


def _run_file():
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


def _predictions(num_samples=20, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((num_samples, len(LABELS))) > 0.5).astype(np.int8)
    labels[0, 0], labels[1, 1] = -1, -1
    scores = np.clip(0.35 * labels + 0.65 * rng.random(labels.shape), 0, 1).astype(np.float32)
    return scores, labels


@pytest.fixture
def checkpoint(saved_model, tmp_path):
    folder = tmp_path / "ckpt"
    shutil.copytree(saved_model, folder)
    (folder / "mlic_run.json").write_text(json.dumps(_run_file()))
    scores, labels = _predictions()
    np.savez_compressed(folder / "test_predictions.npz", scores=scores, labels=labels)
    for junk in JUNK:
        (folder / junk).parent.mkdir(exist_ok=True)
        (folder / junk).write_bytes(b"junk")
    return folder


def _front_matter(text):
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "the card must start with YAML front matter"
    return yaml.safe_load(match.group(1))


# ---------------------------------------------------------------------------------------------------------------------
# Model card
# ---------------------------------------------------------------------------------------------------------------------


def test_card_metadata_and_model_index(checkpoint):
    path = write_model_card(checkpoint, repo_id=REPO_ID)
    assert path == checkpoint / "README.md"
    data = ModelCard.load(path).data.to_dict()
    assert data == _front_matter(path.read_text())
    assert data["library_name"] == "mlic_hf" and data["pipeline_tag"] == "image-classification"
    assert set(data["tags"]) == {"multi-label-image-classification", "mlic_hf", "mlic-resnet-probabilistic"}
    assert data["datasets"] == ["fashion_mosaic"]
    assert data["metrics"] == ["map", "f1", "precision", "recall"]
    (entry,) = data["model-index"]
    assert entry["name"] == "mlic-test"
    (result,) = entry["results"]
    assert result["task"] == {"type": "image-classification", "name": "Multi-label image classification"}
    assert result["dataset"] == {"name": "fashion_mosaic", "type": "fashion_mosaic", "split": "test"}
    values = {metric["name"]: metric["value"] for metric in result["metrics"]}
    expected = {key: round(100 * TEST_METRICS[key], 2) for key in ("mAP", "CF1", "OF1", "CP", "CR", "OP", "OR")}
    assert values == pytest.approx(expected)
    assert values["mAP"] == pytest.approx(87.65)
    types = {metric["name"]: (metric["type"], metric.get("config")) for metric in result["metrics"]}
    assert types["mAP"] == ("map", "macro") and types["CF1"] == ("f1", "macro") and types["OF1"] == ("f1", "micro")


def test_card_body(checkpoint):
    text = write_model_card(checkpoint, repo_id=REPO_ID).read_text()
    info = mlic_hf.ResNetProbabilisticConfig.method_info
    assert text.count(info["paper_title"]) >= 2  # method section and citation block
    assert info["paper_authors"] in text and info["summary"] in text and info["name"] in text
    assert f"```bibtex\n{info['citation']}\n```" in text
    # architecture and loss from the config
    assert "| Backbone (timm) | `resnet18` |" in text and "| Input resolution | 32×32 |" in text
    assert "| Number of labels | 3 |" in text and "Asymmetric loss" in text
    assert "| `asl_gamma_neg` | `3.0` |" in text and "| `asl_clip` | `0.05` |" in text
    assert "apl_gamma_neg" not in text and "focal_gamma" not in text  # only the active loss's settings
    # training settings
    assert "| Learning rate | `0.002` |" in text and "| Seed | `7` |" in text and "| Epochs | `3` |" in text
    assert "| Training time | 2 min 05 s |" in text and "EMA" in text
    # metrics (%) with the top-3 column, per-class AP rows
    assert "| mAP | mean average precision over classes | 87.65 | – |" in text
    assert re.search(r"\| CF1 \| [^|]+ \| 33\.33 \| 45\.86 \|", text)
    assert re.search(r"\| OR \| [^|]+ \| 30\.00 \| 54\.00 \|", text)
    assert "| 0 | cat | 90.00 |" in text and "| 1 | dog | 81.25 |" in text and "| 2 | car | 91.75 |" in text
    # plots embedded with relative paths
    assert "![Per-class average precision](plots/per_class_ap.png)" in text
    assert "![Precision-recall curve](plots/precision_recall.png)" in text
    # usage and limitations
    assert f'pipeline("image-classification", model=repo_id, top_k=3)' in text
    assert "Trained and evaluated on `fashion_mosaic` only" in text
    assert "threshold 0.5 is a default, not a calibration" in text


def test_plots_are_valid_deterministic_pngs(checkpoint, tmp_path):
    write_model_card(checkpoint, repo_id=REPO_ID)
    other = tmp_path / "again"
    shutil.copytree(checkpoint, other)
    write_model_card(other, repo_id=REPO_ID)
    for plot in ("plots/per_class_ap.png", "plots/precision_recall.png"):
        with Image.open(checkpoint / plot) as image:
            image.load()
            assert image.format == "PNG" and image.size == (600, 400)
            pixels = np.asarray(image.convert("L"))
        assert pixels.std() > 5  # something was drawn
        assert (checkpoint / plot).read_bytes() == (other / plot).read_bytes()


def test_per_class_ap_plot_depends_on_the_values(tmp_path):
    first = plot_per_class_ap({"a": 0.2, "b": 0.9}, tmp_path / "one.png")
    second = plot_per_class_ap({"a": 0.9, "b": 0.2}, tmp_path / "two.png")
    assert first.read_bytes() != second.read_bytes()
    scores, labels = _predictions()
    pr = plot_precision_recall(scores, labels, tmp_path / "sub" / "pr.png", label_names=list(LABELS.values()))
    assert pr.is_file() and pr.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="label_names"):
        plot_precision_recall(scores, labels, tmp_path / "x.png", label_names=["cat"])


def test_card_without_run_file_or_predictions(checkpoint):
    write_model_card(checkpoint)  # draws both plots
    (checkpoint / "mlic_run.json").unlink()
    (checkpoint / "test_predictions.npz").unlink()
    text = write_model_card(checkpoint).read_text()
    data = _front_matter(text)
    assert "model-index" not in data and data["library_name"] == "mlic_hf"
    assert "Metrics are unavailable" in text and "Training settings are unavailable" in text
    assert "| 0 | cat |" not in text and "plots/" not in text
    assert not (checkpoint / "plots" / "per_class_ap.png").exists()  # stale plots are removed
    assert not (checkpoint / "plots" / "precision_recall.png").exists()
    assert 'repo_id = "your-username/ckpt"' in text


def test_percent_metrics_and_mismatched_predictions_are_rejected(checkpoint):
    run = _run_file()
    run["test_metrics"]["mAP"] = 87.65
    (checkpoint / "mlic_run.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match=r"mAP=87\.65 is not a fraction"):
        write_model_card(checkpoint)
    (checkpoint / "mlic_run.json").write_text(json.dumps(_run_file()))
    scores, labels = _predictions()
    np.savez(checkpoint / "test_predictions.npz", scores=scores[:, :2], labels=labels[:, :2])
    with pytest.raises(ValueError, match="2 columns but the model has 3 labels"):
        write_model_card(checkpoint)


def test_usage_snippet_in_the_card_runs(checkpoint):
    text = write_model_card(checkpoint, repo_id=REPO_ID).read_text()
    usage = text.split("## How to use", 1)[1]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    assert code.count(f'"{REPO_ID}"') == 1
    code = code.replace(f'"{REPO_ID}"', repr(str(checkpoint)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=_subprocess_env(),
                            timeout=300, cwd=checkpoint.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    scores = dict(re.fullmatch(r"(\w+): (\d\.\d{3})", line).groups() for line in lines[:3])
    assert set(scores) == set(LABELS.values())
    assert all(0.0 <= float(value) <= 1.0 for value in scores.values())
    assert lines[3].startswith("labels with probability >= 0.5:")


# ---------------------------------------------------------------------------------------------------------------------
# Upload
# ---------------------------------------------------------------------------------------------------------------------


def test_files_to_upload_exclude_trainer_files(checkpoint):
    write_model_card(checkpoint, repo_id=REPO_ID)
    (checkpoint / "test_predictions.npz").touch()
    assert files_to_upload(checkpoint) == EXPECTED_UPLOAD


def test_push_fails_fast_offline(checkpoint, monkeypatch):
    from huggingface_hub import HfApi, constants

    def no_network(*args, **kwargs):
        raise AssertionError("push_to_hub must not call the Hub in offline mode")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(HfApi, "create_repo", no_network)
    monkeypatch.setattr(HfApi, "upload_folder", no_network)
    start = time.perf_counter()
    with pytest.raises(RuntimeError, match=r"cannot push to the Hub: offline mode \(HF_HUB_OFFLINE=1\)") as info:
        push_to_hub(checkpoint, REPO_ID)
    assert time.perf_counter() - start < 5
    message = str(info.value)
    assert f"the files that would be uploaded are in {checkpoint}" in message and "model.safetensors" in message
    assert (checkpoint / "README.md").is_file()  # the card was written before failing


def test_push_turns_hub_offline_errors_into_a_clear_error(checkpoint, monkeypatch):
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    def offline(*args, **kwargs):
        raise OfflineModeIsEnabled("offline")

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "create_repo", offline)
    with pytest.raises(RuntimeError, match="offline mode") as info:
        push_to_hub(checkpoint, REPO_ID, create_card=False)
    assert isinstance(info.value.__cause__, OfflineModeIsEnabled)


def test_push_uploads_only_the_listed_files(checkpoint, monkeypatch):
    from huggingface_hub import HfApi, constants

    calls = {}

    def create_repo(self, repo_id, **kwargs):
        calls["create_repo"] = (repo_id, kwargs)
        return f"https://huggingface.co/{repo_id}"

    def upload_folder(self, **kwargs):
        calls["upload_folder"] = kwargs

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
    url = push_to_hub(checkpoint, REPO_ID, private=True, commit_message="test commit")
    assert url == f"https://huggingface.co/{REPO_ID}"
    repo_id, kwargs = calls["create_repo"]
    assert repo_id == REPO_ID and kwargs["private"] is True and kwargs["exist_ok"] is True
    upload = calls["upload_folder"]
    assert upload["repo_id"] == REPO_ID and Path(upload["folder_path"]) == checkpoint
    assert upload["commit_message"] == "test commit"
    assert set(hub.UPLOAD_IGNORE_PATTERNS) >= {"checkpoint-*", "*.pt", "*.pth", "*.bin", "optimizer*"}
    # what huggingface_hub would select with these patterns is exactly files_to_upload
    every_file = sorted(p.relative_to(checkpoint).as_posix() for p in checkpoint.rglob("*") if p.is_file())
    selected = list(filter_repo_objects(every_file, allow_patterns=upload["allow_patterns"],
                                        ignore_patterns=upload["ignore_patterns"]))
    assert selected == files_to_upload(checkpoint) == EXPECTED_UPLOAD


def test_incomplete_checkpoint_names_the_missing_file(checkpoint):
    (checkpoint / "model.safetensors").unlink()
    for call in (lambda: write_model_card(checkpoint), lambda: files_to_upload(checkpoint),
                 lambda: push_to_hub(checkpoint, REPO_ID)):
        with pytest.raises(FileNotFoundError, match="model.safetensors is missing"):
            call()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_model_card(checkpoint / "nope")


def test_bad_repo_id_and_missing_template(checkpoint, monkeypatch, tmp_path):
    with pytest.raises(ValueError, match="user_or_org/model_name"):
        push_to_hub(checkpoint, "no-slash")
    with pytest.raises(ValueError):
        write_model_card(checkpoint, repo_id="me/bad name!")
    assert hub.find_model_card_template().is_file()
    monkeypatch.setattr(mlic_hf, "__file__", str(tmp_path / "pkg" / "mlic_hf" / "__init__.py"))
    with pytest.raises(FileNotFoundError, match="model_card_template.md"):
        write_model_card(checkpoint)


def test_push_script_dry_run(checkpoint):
    script = str(REPO_ROOT / "scripts" / "push_to_hub.py")
    args = [sys.executable, script, "--checkpoint", str(checkpoint), "--repo_id", REPO_ID, "--dry_run"]
    result = subprocess.run(args, capture_output=True, text=True, env=_subprocess_env(), timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    listed = [line.strip() for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == EXPECTED_UPLOAD
    assert f"wrote {checkpoint / 'README.md'}" in result.stdout and (checkpoint / "README.md").is_file()


def _script_main():
    spec = importlib.util.spec_from_file_location("push_to_hub_script", REPO_ROOT / "scripts" / "push_to_hub.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_push_script_errors_exit_non_zero(checkpoint, monkeypatch, capsys):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    main = _script_main()
    assert main(["--checkpoint", str(checkpoint), "--repo_id", REPO_ID, "--no_card"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: cannot push to the Hub: offline mode") and str(checkpoint) in error
    (checkpoint / "model.safetensors").unlink()
    assert main(["--checkpoint", str(checkpoint), "--repo_id", REPO_ID, "--dry_run"]) == 2
    assert "model.safetensors is missing" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------------------
# Precision-recall computation
# ---------------------------------------------------------------------------------------------------------------------


def test_precision_recall_points_by_hand():
    # Non-ignored entries by decreasing score: 0.9(+), 0.8(-) and 0.8(+) tied, 0.6(+), 0.5(+), 0.3(-), 0.1(-); the
    # 0.2 entry is ignored (-1). 4 positives.
    scores = np.array([[0.9, 0.3], [0.8, 0.8], [0.6, 0.2], [0.1, 0.5]])
    labels = np.array([[1, 0], [0, 1], [1, -1], [0, 1]])
    precision, recall, thresholds = precision_recall_points(scores, labels)
    np.testing.assert_allclose(thresholds, [0.9, 0.8, 0.6, 0.5, 0.3, 0.1])
    np.testing.assert_allclose(precision, [1 / 1, 2 / 3, 3 / 4, 4 / 5, 4 / 6, 4 / 7])
    np.testing.assert_allclose(recall, [1 / 4, 2 / 4, 3 / 4, 4 / 4, 4 / 4, 4 / 4])
    assert micro_average_precision(precision, recall) == pytest.approx(0.25 * (1 + 2 / 3 + 3 / 4 + 4 / 5))


def test_precision_recall_points_match_scikit_learn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(1)
    scores = np.round(rng.random((50, 4)), 1)  # many ties
    labels = (rng.random((50, 4)) > 0.6).astype(int)
    labels[rng.random((50, 4)) > 0.9] = -1
    precision, recall, thresholds = precision_recall_points(scores, labels)
    keep = labels != -1
    ref_precision, ref_recall, ref_thresholds = metrics.precision_recall_curve(labels[keep], scores[keep])
    # scikit-learn: increasing thresholds, plus a final (precision 1, recall 0) point; it may also drop the points
    # after full recall is reached.
    n = ref_thresholds.size
    np.testing.assert_allclose(thresholds[:n][::-1], ref_thresholds)
    np.testing.assert_allclose(precision[:n][::-1], ref_precision[:-1])
    np.testing.assert_allclose(recall[:n][::-1], ref_recall[:-1])
    assert micro_average_precision(precision, recall) == pytest.approx(
        metrics.average_precision_score(labels[keep], scores[keep])
    )


def test_precision_recall_points_reject_bad_input():
    with pytest.raises(ValueError, match="no positive"):
        precision_recall_points([[0.1, 0.2]], [[0, -1]])
    with pytest.raises(ValueError, match="only 1"):
        precision_recall_points([[0.1, 0.2]], [[2, 1]])
    with pytest.raises(ValueError, match="same shape"):
        precision_recall_points([[0.1, 0.2]], [[1]])
