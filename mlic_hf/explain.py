"""Label maps drawn on the image: why did the model say "dog"?

Every mlic_hf model gives per-label spatial maps on its feature grid (:meth:`MLICPreTrainedModel.label_maps`; what a
map is depends on the method). This module resizes them to the image, draws them as heat-map overlays and lays the
overlays of the labels worth showing out in one figure per image, for ``scripts/predict.py --explain DIR``, the model
card's example and the demo app. The image processor squashes an image to a square without cropping, so a map
stretched back to the image's own size lies on the right pixels.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .calibration import resolve_thresholds
from .file_utils import atomic_write
from .image_processing import MLICImageProcessor, load_image

logger = logging.getLogger(__name__)

#: At most this many labels per figure (the highest-scoring first).
MAX_LABELS_SHOWN = 8


@dataclass
class Explanation:
    """One image's prediction with its label maps resized to the image."""

    image: Image.Image  # the image as the model read it (8-bit RGB), at its own size
    scores: np.ndarray  # (C,) sigmoid probabilities
    maps: np.ndarray  # (C, H, W) label maps at the image's size, raw values (method-specific scale)
    label_names: list[str]

    def shown_labels(self, thresholds: np.ndarray, max_labels: int = MAX_LABELS_SHOWN) -> list[int]:
        """The labels at or above their thresholds, highest score first (the top one if none is), at most
        ``max_labels``."""
        order = np.argsort(-self.scores, kind="stable")
        chosen = [int(i) for i in order if self.scores[i] >= thresholds[i]]
        return (chosen or [int(order[0])])[:max_labels]


def resize_maps(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """``(C, h, w)`` maps → ``(C, H, W)`` at ``size = (H, W)`` by bilinear interpolation."""
    resized = torch.nn.functional.interpolate(maps[None].float(), size=size, mode="bilinear", align_corners=False)
    return resized[0].numpy()


def normalise(heat: np.ndarray) -> np.ndarray:
    """Min-max scaling to [0, 1] (a constant map becomes 0: nothing stands out)."""
    low, high = float(heat.min()), float(heat.max())
    return np.zeros_like(heat) if high - low < 1e-12 else (heat - low) / (high - low)


def overlay(image: Image.Image, heat: np.ndarray, alpha: float = 0.5, colormap: str = "jet") -> Image.Image:
    """``image`` with the normalised ``heat`` (H, W) blended over it in ``colormap`` (``alpha`` the heat's weight)."""
    from matplotlib import colormaps

    colours = colormaps[colormap](normalise(heat))[..., :3]
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    blended = (1 - alpha) * base + alpha * colours
    return Image.fromarray((blended * 255).round().astype(np.uint8))


@torch.no_grad()
def explain_images(model, images: Sequence, processor=None) -> list[Explanation]:
    """Scores and image-sized label maps of ``images`` (PIL images or paths), one forward pass each."""
    processor = processor if processor is not None else MLICImageProcessor.from_model_config(model.config)
    device = next(model.parameters()).device
    names = [model.config.id2label[i] for i in range(model.config.num_labels)]
    results = []
    for item in images:
        image = load_image(item) if isinstance(item, (str, os.PathLike)) else item.convert("RGB")
        pixels = processor(images=[image], return_tensors="pt")["pixel_values"].to(device)
        out = model.label_maps(pixels)
        maps = resize_maps(out.label_maps[0].cpu(), (image.height, image.width))
        results.append(Explanation(image, torch.sigmoid(out.logits[0].float()).cpu().numpy(), maps, names))
    return results


def explanation_figure(explanation: Explanation, thresholds: np.ndarray, max_labels: int = MAX_LABELS_SHOWN,
                       title: str | None = None):
    """A matplotlib figure: the image, then one overlay per shown label titled with its name and score."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = explanation.shown_labels(thresholds, max_labels)
    panels = 1 + len(shown)
    columns = min(panels, 5)
    rows = -(-panels // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 2.8 * rows), squeeze=False)
    for axis in axes.flat:
        axis.axis("off")
    axes.flat[0].imshow(explanation.image)
    axes.flat[0].set_title(title or "image", fontsize=9)
    for axis, label in zip(axes.flat[1:], shown):
        axis.imshow(overlay(explanation.image, explanation.maps[label]))
        mark = "" if explanation.scores[label] >= thresholds[label] else " (below threshold)"
        axis.set_title(f"{explanation.label_names[label]} {explanation.scores[label]:.2f}{mark}", fontsize=9)
    figure.tight_layout()
    return figure


def save_explanation(explanation: Explanation, path: str | os.PathLike, thresholds: np.ndarray,
                     max_labels: int = MAX_LABELS_SHOWN, title: str | None = None) -> Path:
    """Write :func:`explanation_figure` as a PNG; returns the path."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure = explanation_figure(explanation, thresholds, max_labels, title)
    with atomic_write(path, "wb") as handle:  # an overwrite killed mid-write keeps the previous figure
        figure.savefig(handle, format="png", dpi=100)
    plt.close(figure)
    return path


def explain_files(model, paths: Sequence[str | os.PathLike], output_dir: str | os.PathLike,
                  threshold: float | None = None, processor=None, max_labels: int = MAX_LABELS_SHOWN) -> list[Path]:
    """For every image file, ``<output_dir>/<stem>_labels.png``: the image and its shown labels' overlays (the
    labels at or above their thresholds, see :func:`mlic_hf.calibration.resolve_thresholds`). Files whose stems repeat get their index
    as a prefix. Returns the written paths."""
    from tqdm.auto import tqdm

    thresholds = resolve_thresholds(model.config, threshold)
    stems = [Path(p).stem for p in paths]
    written = []
    for index, path in enumerate(tqdm(paths, desc="explain", unit="image", disable=len(paths) < 2)):
        (explanation,) = explain_images(model, [path], processor)
        stem = stems[index] if stems.count(stems[index]) == 1 else f"{index:04d}_{stems[index]}"
        written.append(save_explanation(explanation, Path(output_dir) / f"{stem}_labels.png", thresholds,
                                        max_labels, title=Path(path).name))
    return written


__all__ = ["Explanation", "explain_files", "explain_images", "explanation_figure", "normalise",
           "overlay", "resize_maps", "save_explanation"]
