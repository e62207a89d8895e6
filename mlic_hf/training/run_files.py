"""What a finished run leaves behind: ``mlic_run.json`` and ``test_predictions.npz`` (read by the model card), the
label-map example of the card, and the Hub upload (checked before training, pushed after, with a recovery command
when it fails).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import logging
import os

import numpy as np
from huggingface_hub import constants
from huggingface_hub.utils import validate_repo_id

from ..cli import parse_json_object
from ..configuration_utils import redact_local_path, redact_local_paths
from ..data.hf_dataset import is_hub_id, parse_data_files
from ..data.transforms import DecodedImages
from ..file_utils import atomic_write
from ..explain import explain_images, save_explanation
from ..calibration import resolve_thresholds
from .. import hub  # looked up at call time: a patched mlic_hf.hub.push_to_hub (tests, dry runs) is honoured
from ..hub.card import LABEL_MAPS_PLOT
from ..image_processing import MLICImageProcessor
from .build import split_names

__all__ = ["HubPushError", "check_push_to_hub", "push_run", "write_label_map_example", "write_run_files"]

logger = logging.getLogger(__name__)


class HubPushError(RuntimeError):
    """The finished run could not be pushed to the Hub; the model is saved and the message says how to push it."""


def write_run_files(output_dir, model_args, data_args, training_args, metrics, used_ema, scores, labels, extra=None):
    """Write ``mlic_run.json`` (settings and test metrics, read by the model card) and ``test_predictions.npz``."""
    keys = ("num_train_epochs", "max_steps", "learning_rate", "weight_decay", "per_device_train_batch_size",
            "gradient_accumulation_steps", "ema_decay", "ema_warmup", "one_cycle", "one_cycle_pct_start",
            "early_stopping_patience", "seed", "bf16", "fp16", "optim", "adam_beta1", "adam_beta2",
            "channels_last")
    train_dict = training_args.to_dict()
    model_dict, data_dict = dataclasses.asdict(model_args), dataclasses.asdict(data_args)
    # mlic_run.json is uploaded with the model: keep local paths (data folders, caches, weight files) out of it
    data_dict["data_dir"] = redact_local_path(data_dict.get("data_dir"))
    if data_dict.get("dataset_kwargs"):
        kwargs = parse_json_object(data_dict["dataset_kwargs"], "dataset_kwargs")
        data_dict["dataset_kwargs"] = json.dumps({k: redact_local_path(v) if k.endswith("_dir") else v
                                                  for k, v in kwargs.items()})
    model_dict["backbone_weights"] = redact_local_path(model_dict.get("backbone_weights"))
    model_dict["model_name_or_path"] = redact_local_path(model_dict.get("model_name_or_path"))
    data_dict["data_files"] = _redact_data_files(data_dict.get("data_files"))
    hub_id = data_args.dataset_name if data_args.dataset_name and is_hub_id(data_args.dataset_name) else None
    if data_args.dataset_name:
        data_dict["dataset"] = None  # not used: the run's dataset is dataset_name
        data_dict["dataset_name"] = hub_id or redact_local_path(data_args.dataset_name)
    run = {
        "method": model_args.method,
        "dataset": hub_id or data_dict.get("dataset_name") or data_args.dataset,
        "dataset_id": hub_id,  # the model card links a Hub dataset
        "splits": split_names(data_args),  # the names actually used (defaults resolved), shown on the model card
        "model_args": model_dict,
        "data_args": data_dict,
        "training_args": {k: train_dict.get(k) for k in keys if k in train_dict},
        "test_metrics": {k: float(v) for k, v in metrics.items() if k != "per_class_AP"},
        "per_class_AP": {k: float(v) for k, v in metrics["per_class_AP"].items()},
        "used_ema_weights": bool(used_ema),
        **(extra or {}),
    }
    os.makedirs(output_dir, exist_ok=True)
    # atomic: a run finished again in the same folder (or killed while writing) never leaves a half file
    with atomic_write(os.path.join(output_dir, "mlic_run.json")) as handle:
        json.dump(run, handle, indent=2, default=str)
    with atomic_write(os.path.join(output_dir, "test_predictions.npz"), "wb") as handle:
        np.savez_compressed(handle, scores=np.asarray(scores, dtype=np.float32),
                            labels=np.asarray(labels).astype(np.int8))


def _redact_data_files(value: str | None) -> str | None:
    """``--data_files`` with local paths reduced to file names (``mlic_run.json`` is uploaded with the model)."""
    parsed = parse_data_files(value)
    if parsed is None or isinstance(parsed, str):
        return redact_local_path(parsed)
    return json.dumps(redact_local_paths(parsed))


def write_label_map_example(model, test, output_dir: str) -> None:
    """``plots/label_maps.png``: the first test image with its predicted labels' maps, for the model card. A model
    without label maps (e.g. M4 without region selection) or an unreadable image only logs a warning: the trained
    model is saved already."""
    path = os.path.join(output_dir, LABEL_MAPS_PLOT)
    try:
        image = next(iter(DecodedImages(test.select([0]))))
        (explanation,) = explain_images(model, [image], MLICImageProcessor.from_model_config(model.config))
        save_explanation(explanation, path, resolve_thresholds(model.config), title="first test image")
    except (ValueError, RuntimeError, OSError) as err:
        logger.warning("no label-map example for the model card: %s", " ".join(str(err).split()))
        if os.path.isfile(path):
            os.remove(path)  # a stale example of an earlier run in the same folder


def check_push_to_hub(training_args) -> bool:
    """Whether to push the finished run to the Hub. Checked before training, not after: no repo id or offline mode
    would lose the upload at the end. Turns transformers' own push off (the run pushes itself, with its card)."""
    if not training_args.push_to_hub:
        return False
    if not training_args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id USER/NAME")
    repo_id = training_args.hub_model_id
    try:  # checked now, not after hours of training
        if repo_id.count("/") != 1:
            raise ValueError("expected USER/NAME")
        validate_repo_id(repo_id)
    except ValueError as err:
        raise ValueError(f"--hub_model_id {repo_id!r}: {err}") from err
    if constants.HF_HUB_OFFLINE:
        raise HubPushError("--push_to_hub: the Hub is unreachable in offline mode (HF_HUB_OFFLINE=1); train "
                           "without it and run scripts/push_to_hub.py later")
    training_args.push_to_hub = False  # we push ourselves, with our model card, once training is done
    return True


def push_run(output_dir: str, training_args) -> str:
    """Push the saved run; a network or Hub failure becomes a :class:`HubPushError` saying where the model is and
    the command that pushes it later (the training is not lost, and not repeated)."""
    repo_id = training_args.hub_model_id
    try:
        url = hub.push_to_hub(output_dir, repo_id, token=training_args.hub_token,
                          private=bool(training_args.hub_private_repo))
    except _push_errors() as err:
        detail = " ".join(str(err).split()) or type(err).__name__
        raise HubPushError(
            f"the model is saved in {os.path.abspath(output_dir)}, but pushing it to {repo_id} failed "
            f"({type(err).__name__}: {detail}); push it later with: python scripts/push_to_hub.py --checkpoint "
            f"{output_dir} --repo_id {repo_id}"
        ) from err
    return url


def _push_errors() -> tuple[type[BaseException], ...]:
    """What a failed upload raises: OSError (huggingface_hub's HTTP errors, ``requests`` connection errors, a
    full disk), RuntimeError/ValueError (offline mode, a repository refused), and httpx's transport errors, which
    derive from neither (huggingface_hub uses ``httpx2`` or ``httpx``, whichever it was built for)."""
    errors: list[type[BaseException]] = [OSError, RuntimeError, ValueError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).HTTPError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)
