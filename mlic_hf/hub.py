"""Model cards and Hub uploads for mlic_hf checkpoints.

``write_model_card(dir)`` renders ``model_cards/model_card_template.md`` from the checkpoint's ``config.json`` and,
when training wrote them, ``mlic_run.json`` (settings and test metrics) and ``test_predictions.npz`` (for the
precision-recall plot). ``push_to_hub(dir, repo_id)`` uploads the checkpoint (safetensors only) with its card.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TEMPLATE_NAME = "model_card_template.md"
METRIC_ORDER = ("mAP", "CP", "CR", "CF1", "OP", "OR", "OF1", "CP_top3", "CR_top3", "CF1_top3", "OP_top3",
                "OR_top3", "OF1_top3")
MODEL_INDEX_METRICS = ("mAP", "CF1", "OF1", "CP", "CR", "OP", "OR")
UPLOAD_IGNORE = ["checkpoint-*", "checkpoint-*/**", "*.pt", "*.pth", "*.bin", "optimizer*", "scheduler*",
                 "rng_state*", "trainer_state.json", "training_args.bin", "runs/**", "*.npz"]
REQUIRED_FILES = ("config.json", "model.safetensors")


def template_path() -> Path:
    """The model-card template: in the installed package, or in the source tree's ``model_cards/``."""
    import mlic_hf

    package = Path(mlic_hf.__file__).resolve().parent
    for folder in (package / "model_cards", package.parent / "model_cards"):
        if (folder / TEMPLATE_NAME).is_file():
            return folder / TEMPLATE_NAME
    raise FileNotFoundError(f"model card template {TEMPLATE_NAME} not found next to {package}")


def check_checkpoint(checkpoint_dir: str | os.PathLike) -> Path:
    folder = Path(checkpoint_dir)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint directory {str(folder)!r} does not exist")
    for name in REQUIRED_FILES:
        if not (folder / name).is_file():
            raise FileNotFoundError(f"{str(folder)!r} is not a complete checkpoint: {name} is missing")
    return folder


def _pct(value: Any) -> str:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if math.isnan(value) else f"{100.0 * value:.2f}"


def _loss_summary(config) -> str:
    name = config.loss
    prefix = {"asl": "asl_", "apl": "apl_", "focal": "focal_"}.get(name)
    fields = {k[len(prefix):]: v for k, v in config.to_dict().items() if prefix and k.startswith(prefix)}
    details = ", ".join(f"{k}={v}" for k, v in fields.items())
    return f"{name} ({details}; reduction {config.loss_reduction})" if details else f"{name} (reduction {config.loss_reduction})"


def _metadata(config, run: dict | None, repo_id: str) -> str:
    import yaml

    dataset = (run or {}).get("dataset_id") or (run or {}).get("dataset") or "unknown"
    meta: dict[str, Any] = {
        "library_name": "mlic_hf",
        "pipeline_tag": "image-classification",
        "tags": ["multi-label-image-classification", "mlic_hf", config.model_type],
        "datasets": [dataset],
        "metrics": ["map", "f1", "precision", "recall"],
    }
    if run and run.get("test_metrics"):
        results = [
            {"type": key, "name": key, "value": round(100.0 * float(run["test_metrics"][key]), 2)}
            for key in MODEL_INDEX_METRICS
            if key in run["test_metrics"] and not math.isnan(float(run["test_metrics"][key]))
        ]
        meta["model-index"] = [{
            "name": repo_id,
            "results": [{
                "task": {"type": "image-classification", "name": "Multi-label image classification"},
                "dataset": {"name": dataset, "type": dataset, "split": (run.get("splits") or {}).get("test") or "test"},
                "metrics": results,
            }],
        }]
    return yaml.safe_dump(meta, sort_keys=False).strip()


def write_model_card(checkpoint_dir: str | os.PathLike, repo_id: str | None = None) -> Path:
    """Render the model card (``README.md``) and its plots (``plots/*.png``) into a checkpoint directory."""
    import jinja2
    import numpy as np

    from transformers import AutoConfig  # mlic_hf's configs are registered by importing the package

    from .plots import plot_per_class_ap, plot_precision_recall

    folder = check_checkpoint(checkpoint_dir)
    config = AutoConfig.from_pretrained(folder)
    run = None
    if (folder / "mlic_run.json").is_file():
        run = json.loads((folder / "mlic_run.json").read_text())
    repo_id = repo_id or (run or {}).get("repo_id") or folder.name
    info = dict(getattr(config, "method_info", {}) or {})
    label_names = [config.id2label[i] for i in range(config.num_labels)]

    has_pr_plot = False
    metrics, per_class, training = [], [], []
    if run:
        test_metrics = run.get("test_metrics") or {}
        metrics = [(k, _pct(test_metrics[k])) for k in METRIC_ORDER if k in test_metrics]
        per_class_ap = run.get("per_class_AP") or {}
        per_class = [(name, _pct(per_class_ap.get(name))) for name in label_names]
        if per_class_ap:
            plot_per_class_ap({n: per_class_ap.get(n) for n in label_names}, folder / "plots" / "per_class_ap.png",
                              map_value=test_metrics.get("mAP"))
        predictions = folder / "test_predictions.npz"
        if predictions.is_file():
            with np.load(predictions) as data:
                plot_precision_recall(data["scores"], data["labels"], folder / "plots" / "precision_recall.png",
                                      label_names=label_names)
            has_pr_plot = True
        training = [(k, v) for k, v in (run.get("training_args") or {}).items() if v is not None]
        if run.get("train_runtime_s"):
            training.append(("train runtime (s)", round(float(run["train_runtime_s"]), 1)))
        if run.get("num_train_samples"):
            training.append(("training images", run["num_train_samples"]))

    architecture = [
        ("model_type", config.model_type),
        ("backbone (timm)", config.backbone),
        ("input size", f"{config.image_size}×{config.image_size}"),
        ("labels", config.num_labels),
        ("loss", _loss_summary(config)),
    ]
    template = jinja2.Template(template_path().read_text(), keep_trailing_newline=True)
    text = template.render(
        metadata=_metadata(config, run, repo_id),
        title=f"{info.get('name', config.model_type)} — {(run or {}).get('dataset', 'multi-label classifier')}",
        method_name=info.get("name", config.model_type),
        summary=info.get("summary", ""),
        paper_title=info.get("paper_title"),
        paper_authors=info.get("paper_authors"),
        paper_url=info.get("paper_url"),
        citation=info.get("citation"),
        dataset=(run or {}).get("dataset_id") or (run or {}).get("dataset") or "its training data",
        num_labels=config.num_labels,
        num_test_samples=(run or {}).get("num_test_samples"),
        used_ema=(run or {}).get("used_ema_weights", False),
        architecture=architecture,
        metrics=metrics,
        per_class=per_class,
        has_pr_plot=has_pr_plot,
        training=training,
        repo_id=repo_id,
    )
    path = folder / "README.md"
    path.write_text(text)
    return path


def files_to_upload(checkpoint_dir: str | os.PathLike) -> list[str]:
    """Relative paths that :func:`push_to_hub` uploads (weights as safetensors, configs, card, plots, run info)."""
    from fnmatch import fnmatch

    folder = check_checkpoint(checkpoint_dir)
    files = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        relative = path.relative_to(folder).as_posix()
        if not any(fnmatch(relative, pattern) or fnmatch(path.name, pattern) for pattern in UPLOAD_IGNORE):
            files.append(relative)
    return files


def push_to_hub(
    checkpoint_dir: str | os.PathLike,
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str = "Upload mlic_hf model",
    create_card: bool = True,
) -> str:
    """Upload a checkpoint (safetensors weights, configs, model card, plots) to the Hub; returns the repo URL.

    Raises ``RuntimeError`` at once in offline mode (``HF_HUB_OFFLINE=1``), naming the folder whose files would
    have been uploaded."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub.errors import OfflineModeIsEnabled

    folder = check_checkpoint(checkpoint_dir)
    if not repo_id or "/" not in repo_id:
        raise ValueError(f"repo_id must look like 'user/name', got {repo_id!r}")
    if create_card:
        write_model_card(folder, repo_id=repo_id)
    offline_message = (
        f"cannot push to the Hub: offline mode (HF_HUB_OFFLINE=1) or no network. The files that would be uploaded "
        f"are in {folder}: {', '.join(files_to_upload(folder))}"
    )
    if constants.HF_HUB_OFFLINE:
        raise RuntimeError(offline_message)
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, exist_ok=True, private=private)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                          allow_patterns=files_to_upload(folder))
    except OfflineModeIsEnabled as err:
        raise RuntimeError(offline_message) from err
    return f"https://huggingface.co/{repo_id}"
