"""Model cards: metadata and model-index, body, usage snippet, missing data, bad inputs, the template's location."""

import json
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest
import yaml
from huggingface_hub import ModelCard

import mlic_hf
import mlic_hf.hub as hub
from mlic_hf.hub import card, files_to_upload, push_to_hub, write_model_card
from mlic_hf.losses import LOSSES

from .fixtures import LABELS, REPO_ID, REPO_ROOT, TEST_METRICS, predictions, run_file, subprocess_env


def _front_matter(text):
    match = re.match(r"^---\n(.*?)\n---\n", text, re.S)
    assert match, "the card must start with YAML front matter"
    return yaml.safe_load(match.group(1))



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


@pytest.mark.parametrize("name, display_name", [
    ("bce", "Binary cross-entropy"),
    ("focal", "Focal loss (Lin et al., 2017)"),
    ("asl", "Asymmetric loss, ASL (Ridnik et al., 2021)"),
    ("apl", "Asymmetric polynomial loss, APL (Huang et al., 2023)"),
])
def test_loss_section_comes_from_the_loss_registry(name, display_name):
    config = mlic_hf.MLICConfig(loss=name, num_labels=3)
    shown, rows = card._loss_info(config)
    assert shown == display_name == LOSSES[name].display_name
    # the loss, its reduction, then exactly the active loss's fields with the config's values
    fields = list(LOSSES[name].config_fields)
    assert [key for key, _ in rows] == ["`loss`", "`loss_reduction`", *(f"`{field}`" for field in fields)]
    assert [value for _, value in rows[2:]] == [f"`{card._fmt(getattr(config, field))}`" for field in fields]


def test_card_with_calibrated_thresholds_adds_their_column(checkpoint):
    run = json.loads((checkpoint / "mlic_run.json").read_text())
    run["test_metrics"].update({f"{k}_calibrated": v + 0.1 for k, v in TEST_METRICS.items() if len(k) <= 3
                                and k != "mAP"})
    (checkpoint / "mlic_run.json").write_text(json.dumps(run))
    text = write_model_card(checkpoint, repo_id=REPO_ID).read_text()
    assert "| Metric | Description | Value (%) | Top-3 (%) | calibrated (%) |" in text
    assert re.search(r"\| CF1 \| [^|]+ \| 33\.33 \| 45\.86 \| 43\.33 \|", text)
    assert "| mAP | mean average precision over classes | 87.65 | – | – |" in text
    assert "per-class thresholds chosen on the validation split" in text
    assert "not a calibration" not in text and "CF1_calibrated" not in text  # in the table, not in "other"


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
    run = run_file()
    run["test_metrics"]["mAP"] = 87.65
    (checkpoint / "mlic_run.json").write_text(json.dumps(run))
    with pytest.raises(ValueError, match=r"mAP=87\.65 is not a fraction"):
        write_model_card(checkpoint)
    (checkpoint / "mlic_run.json").write_text(json.dumps(run_file()))
    scores, labels = predictions()
    np.savez(checkpoint / "test_predictions.npz", scores=scores[:, :2], labels=labels[:, :2])
    with pytest.raises(ValueError, match="2 columns but the model has 3 labels"):
        write_model_card(checkpoint)


def test_usage_snippet_in_the_card_runs(checkpoint):
    text = write_model_card(checkpoint, repo_id=REPO_ID).read_text()
    usage = text.split("## How to use", 1)[1]
    code = re.search(r"```python\n(.*?)```", usage, re.S).group(1)
    assert code.count(f'"{REPO_ID}"') == 1
    code = code.replace(f'"{REPO_ID}"', repr(str(checkpoint)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=subprocess_env(),
                            timeout=300, cwd=checkpoint.parent)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    scores = dict(re.fullmatch(r"(\w+): (\d\.\d{3})", line).groups() for line in lines[:3])
    assert set(scores) == set(LABELS.values())
    assert all(0.0 <= float(value) <= 1.0 for value in scores.values())
    assert lines[3].startswith("labels with probability >= 0.5:")



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
    assert hub.find_model_card_template() == REPO_ROOT / "mlic_hf" / "hub" / "model_card_template.md"
    monkeypatch.setattr(card, "_TEMPLATE_DIR", tmp_path)  # as in an install without the package data
    with pytest.raises(FileNotFoundError, match="model_card_template.md"):
        write_model_card(checkpoint)


def test_the_template_is_package_data():
    # a wheel ships the template only if pyproject.toml's package-data matches its path
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["mlic_hf"]
    template = hub.find_model_card_template().relative_to(REPO_ROOT / "mlic_hf")
    assert any(template.match(pattern) for pattern in patterns)


def test_a_card_killed_mid_write_keeps_the_previous_card_and_plots(checkpoint, monkeypatch):
    """README.md and the plots are replaced atomically: a failure while writing (a kill, a full disk) leaves the
    previous files whole and no temporary file behind."""
    import os

    import mlic_hf.file_utils

    readme = write_model_card(checkpoint)
    before = {path: path.read_bytes() for path in [readme, *sorted((checkpoint / "plots").glob("*.png"))]}

    def disk_full(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(mlic_hf.file_utils.os, "replace", disk_full)
    with pytest.raises(OSError, match="No space left on device"):
        write_model_card(checkpoint)
    monkeypatch.undo()
    assert {path: path.read_bytes() for path in before} == before
    leftovers = [name for _, _, files in os.walk(checkpoint) for name in files if name.endswith(".tmp")]
    assert not leftovers
