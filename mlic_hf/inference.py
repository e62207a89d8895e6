"""Batched inference on image files and dataset splits (used by ``scripts/predict.py`` and ``scripts/evaluate.py``)."""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .calibration import resolve_thresholds
from .configuration_utils import load_config
from .image_processing import MLICImageProcessor, is_url, load_image
from .modeling_utils import check_checkpoint_path

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm"}


def load_model(checkpoint: str, device: str | torch.device = "cpu"):
    """Load a checkpoint (directory or Hub id) through the Auto class, in eval mode.

    A path that looks local but does not exist fails at once (``FileNotFoundError`` naming it): the Auto class
    would otherwise try it as a Hub id and retry the network first."""
    from transformers import AutoConfig

    from .auto import AutoModelForMultiLabelImageClassification

    # before the Auto class, which reads the config (trying the network first) before our from_pretrained runs
    path = check_checkpoint_path(checkpoint)
    config = load_config(AutoConfig.from_pretrained, path)  # a field error names the config.json
    model = AutoModelForMultiLabelImageClassification.from_pretrained(path, config=config)
    return model.to(device).eval()


def load_checkpoint(checkpoint: str, device: str | torch.device = "cpu"):
    """``(model, image processor)`` of a checkpoint (directory or Hub id): the model in eval mode
    (:func:`load_model`) and the image processor saved with it (:func:`load_processor`), the path checked once."""
    path = check_checkpoint_path(checkpoint)
    model = load_model(path, device)
    return model, load_processor(path, model.config)


def check_prediction_options(threshold: float | None = 0.5, top_k: int | None = None, batch_size: int = 32) -> None:
    """Raise ``ValueError`` naming the option for a threshold outside [0, 1], ``top_k`` < 1 or ``batch_size`` < 1
    (``top_k=0`` would report no label and ``batch_size=0`` no image at all, silently). ``threshold=None`` means
    the checkpoint's calibrated thresholds (else 0.5)."""
    if threshold is not None and not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    if top_k is not None and top_k < 1:
        raise ValueError(f"top_k must be at least 1 (or unset for every label above the threshold), got {top_k}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")


def load_processor(checkpoint: str, config=None):
    """The image processor saved with a checkpoint (``preprocessor_config.json``): the one preprocessing path of
    inference, shared with ``pipeline("image-classification")``. A checkpoint without one (saved by other code)
    gets the processor matching its config, with a warning."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(check_checkpoint_path(checkpoint))
    except OSError:
        if config is None:
            raise
        logger.warning("%s has no preprocessor_config.json: preprocessing from its config (image_size %d)",
                       checkpoint, config.image_size)
        return MLICImageProcessor.from_model_config(config)


def expand_inputs(inputs: Sequence[str | os.PathLike]) -> list[Path | str]:
    """Files as given; folders expanded (recursively, sorted) to the image files they contain; ``http(s)://`` URLs
    kept as strings (:func:`~mlic_hf.image_processing.load_image` downloads them, naming a URL it cannot fetch)."""
    paths: list[Path | str] = []
    for item in inputs:
        if is_url(item):  # Path() would merge the scheme's "//"
            paths.append(item)
            continue
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                logger.warning("%s contains no image files", path)
            paths.extend(found)
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"no such file or folder: {str(path)!r}")
    return paths


@torch.no_grad()
def predict_probabilities(
    model, images: Iterable, batch_size: int = 32, progress: bool = True, desc: str = "predict", processor=None
) -> np.ndarray:
    """Sigmoid probabilities (N, C) for an iterable of images (PIL images, arrays or paths).

    ``processor`` is the checkpoint's image processor (:func:`load_processor`); ``None`` builds the one matching
    ``model.config``. Images are read lazily, ``batch_size`` at a time (a dataset's image column is never decoded
    all at once)."""
    from tqdm.auto import tqdm

    check_prediction_options(batch_size=batch_size)
    cfg = model.config
    processor = processor if processor is not None else MLICImageProcessor.from_model_config(cfg)
    device = next(model.parameters()).device
    iterator = iter(images)
    out = []
    with tqdm(total=len(images) if hasattr(images, "__len__") else None, disable=not progress, desc=desc,
              unit="image") as bar:
        while batch := list(itertools.islice(iterator, batch_size)):
            batch = [load_image(im) if isinstance(im, (str, os.PathLike)) else im for im in batch]
            pixel_values = processor(images=batch, return_tensors="pt")["pixel_values"].to(device)
            out.append(torch.sigmoid(model(pixel_values).logits.float()).cpu().numpy())
            bar.update(len(batch))
    return np.concatenate(out) if out else np.zeros((0, cfg.num_labels), dtype=np.float32)


def predict_files(
    model,
    inputs: Sequence[str | os.PathLike],
    threshold: float | None = None,
    top_k: int | None = None,
    batch_size: int = 32,
    skip_bad: bool = False,
    progress: bool = True,
    processor=None,
) -> tuple[list[dict], list[tuple[str, str]]]:
    """Predict labels for files/folders.

    Returns (results, skipped): one ``{"file", "labels", "scores"}`` dict per readable image — ``labels`` are the
    names with probability ≥ ``threshold`` (highest first; at most ``top_k`` if given), ``scores`` every label's
    probability — and the ``(file, reason)`` pairs skipped when ``skip_bad`` (otherwise a bad file raises).
    ``threshold=None``: the checkpoint's calibrated per-class thresholds (``config.thresholds``), else 0.5."""
    check_prediction_options(threshold, top_k, batch_size)
    cutoffs = resolve_thresholds(model.config, threshold)
    paths = expand_inputs(inputs)
    images, kept, skipped = [], [], []
    for path in paths:
        try:
            images.append(load_image(path))
            kept.append(path)
        except (ValueError, OSError) as err:
            if not skip_bad:
                raise
            skipped.append((str(path), str(err)))
    if skipped:
        logger.warning("skipped %d unreadable file(s), first: %s", len(skipped), skipped[0][0])
    probs = predict_probabilities(model, images, batch_size=batch_size, progress=progress, processor=processor)
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    results = []
    for path, row in zip(kept, probs):
        order = np.argsort(-row, kind="stable")
        chosen = [names[i] for i in order if row[i] >= cutoffs[i]]
        if top_k is not None:
            chosen = chosen[:top_k]
        results.append({"file": str(path), "labels": chosen, "scores": {names[i]: float(row[i]) for i in order}})
    return results, skipped
