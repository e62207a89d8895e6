"""A harder built-in dataset: cluttered 128×128 scenes of Fashion-MNIST garments at several scales, with occlusion.

``fashion_mosaic`` places 1–4 full-size garments in separate cells of a black 64×64 canvas, and the M1 baseline
saturates it. ``fashion_clutter`` keeps its photos, scene model and never-together rules
(:mod:`mlic_hf.data.fashion_mosaic`) and adds what the seed papers are about:

* **several scales, small objects**: each garment is resized to a square of side drawn log-uniformly from
  ``[MIN_SCALE, MAX_SCALE]`` = [12, 56] px (log-uniform, so small items are as common as large ones);
* **clutter and bounded occlusion**: garments go to random positions inside the canvas, later ones drawn over earlier
  ones through their own silhouette (pixels above ``MASK_THRESHOLD`` with the holes filled). A position is accepted
  only if every garment already placed keeps at least ``1 - MAX_OCCLUSION`` = 60% of its silhouette visible; after
  ``PLACEMENT_TRIES`` refused positions the garment is shrunk by ``SHRINK`` and tried again, and below ``MIN_SCALE``
  it is left out (rare; its label then goes too, since the labels are the classes actually placed). With
  ``NEAR_PROBABILITY`` a candidate position is drawn next to a garment already placed, so overlaps are common;
* **textured, noisy background**: smooth low-frequency noise, sometimes stripes, and ``2..MAX_FRAGMENTS``
  **unlabelled fragments**: a crop of at most 12×12 of a 28×28 photo (≤ 18% of it), Gaussian-blurred and drawn at
  25–45% intensity, so a fragment never shows a whole recognisable garment. Per-pixel Gaussian noise covers the
  finished image;
* **label structure**: scenes as in ``fashion_mosaic`` plus up to two extra garments of any class (probabilities
  ``EXTRA_PROBABILITIES``, never breaking a never-together rule), at most ``MAX_LABELS`` = 5 labels; each label's
  garment appears a second time (another photo) with ``DUPLICATE_PROBABILITY``, so there can be more garments than
  labels. About 2.7 labels per image on average.

Besides the usual columns, each row has ``objects``: one ``{"label", "box", "visible", "photo"}`` record per garment
placed, in drawing order — class index, ``[x, y, width, height]`` in canvas pixels (width = height = the garment's
scale), the fraction of its silhouette visible in the final image, and the photo's index in its Fashion-MNIST split
(``train`` for the train/validation splits, ``t10k`` for test). Splits use disjoint photo pools exactly as
``fashion_mosaic`` (fragments too come from the split's own pool). Everything is drawn from
``numpy.random.default_rng(seed)``: the same seed gives byte-identical datasets; the result is cached on disk.
"""

from __future__ import annotations

import math
import os

import numpy as np

from .fashion_mosaic import (
    FASHION_MNIST_CLASSES,
    build_fashion_splits,
    load_cached,
    multi_hot,
    png_bytes,
    sample_label_sets,
)

CANVAS = 128
MIN_SCALE, MAX_SCALE = 12, 56
MAX_OCCLUSION = 0.4
MASK_THRESHOLD = 24
PLACEMENT_TRIES, SHRINK = 30, 0.8
NEAR_PROBABILITY = 0.6
EXTRA_PROBABILITIES = (0.5, 0.3)
MAX_LABELS = 5
DUPLICATE_PROBABILITY = 0.25
MAX_FRAGMENTS = 5
NOISE_SIGMA = 6.0
DATASET_VERSION = "1"


def objects_feature():
    """The ``objects`` column: a list of ``{label, box, visible, photo}`` records (see the module docstring)."""
    import datasets

    return datasets.List(
        {
            "label": datasets.ClassLabel(names=FASHION_MNIST_CLASSES),
            "box": datasets.List(datasets.Value("int32"), length=4),
            "visible": datasets.Value("float32"),
            "photo": datasets.Value("int32"),
        }
    )


def _resize(array: np.ndarray, side: int) -> np.ndarray:
    """Antialiased bilinear resize of a 2-D uint8 or float array to ``side`` × ``side``."""
    from PIL import Image

    image = Image.fromarray(array.astype(np.float32), mode="F").resize((side, side), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def draw_background(rng: np.random.Generator, images: np.ndarray, pool: np.ndarray) -> np.ndarray:
    """Float canvas: smooth noise, sometimes stripes, and blurred low-contrast fragments of photos from ``pool``."""
    from scipy.ndimage import gaussian_filter

    grid = int(rng.integers(3, 9))
    canvas = _resize(rng.random((grid, grid)), CANVAS) * rng.uniform(20, 60)
    if rng.random() < 0.5:
        angle, period = rng.uniform(0, math.pi), rng.uniform(6, 24)
        yy, xx = np.mgrid[0:CANVAS, 0:CANVAS]
        phase = (xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period
        canvas += rng.uniform(6, 18) * (1 + np.sin(phase)) / 2
    for _ in range(int(rng.integers(2, MAX_FRAGMENTS + 1))):
        photo = images[rng.choice(pool)]
        crop = int(rng.integers(7, 13))  # at most 12×12 of 28×28: a part, never a whole garment
        y0, x0 = (int(v) for v in rng.integers(0, 28 - crop + 1, size=2))
        fragment = gaussian_filter(photo[y0 : y0 + crop, x0 : x0 + crop].astype(np.float32), 1.2)
        side = int(rng.integers(crop, 2 * crop + 1))
        # a soft round window: the fragment fades into the background instead of showing a square patch
        yy, xx = np.mgrid[0:side, 0:side] - (side - 1) / 2
        window = np.clip(1.5 - 1.5 * np.hypot(yy, xx) / (side / 2), 0, 1)
        fragment = _resize(fragment, side) * window * rng.uniform(0.25, 0.45)
        y, x = (int(v) for v in rng.integers(0, CANVAS - side + 1, size=2))
        canvas[y : y + side, x : x + side] = np.maximum(canvas[y : y + side, x : x + side], fragment)
    return canvas


def silhouette(item: np.ndarray) -> np.ndarray:
    """Boolean mask of a resized garment: its bright pixels with the holes filled, so dark patterns inside a garment
    still hide what is behind it."""
    from scipy.ndimage import binary_fill_holes

    return binary_fill_holes(item > MASK_THRESHOLD)


def _candidate(boxes, side, rng):
    """A random top-left corner; with NEAR_PROBABILITY next to a placed garment, so that garments overlap (uniform
    positions on a 128-px canvas would rarely make them touch)."""
    if boxes and rng.random() < NEAR_PROBABILITY:
        x0, y0, w, h = boxes[int(rng.integers(len(boxes)))]
        y = y0 + h // 2 - side // 2 + int(rng.integers(-(h + side) // 2, (h + side) // 2 + 1))
        x = x0 + w // 2 - side // 2 + int(rng.integers(-(w + side) // 2, (w + side) // 2 + 1))
        return min(max(y, 0), CANVAS - side), min(max(x, 0), CANVAS - side)
    y, x = rng.integers(0, CANVAS - side + 1, size=2)
    return int(y), int(x)


def _find_position(owner, visible, areas, boxes, mask, rng):
    """A top-left corner where drawing ``mask`` leaves every placed garment ≥ 1 - MAX_OCCLUSION visible, or None."""
    side = mask.shape[0]
    needed = np.ceil((1 - MAX_OCCLUSION) * np.asarray(areas, dtype=np.float64) - 1e-9)
    for _ in range(PLACEMENT_TRIES):
        y, x = _candidate(boxes, side, rng)
        covered = owner[y : y + side, x : x + side][mask]
        hidden = np.bincount(covered + 1, minlength=len(areas) + 1)[1:]  # +1: background (-1) goes to bin 0
        if np.all(np.asarray(visible) - hidden >= needed):
            return y, x
    return None


def compose_clutter(items: list[tuple[int, int, np.ndarray]], background: np.ndarray, rng: np.random.Generator):
    """Draw ``(class, photo index, 28×28 photo)`` garments over ``background`` (see the module docstring).

    Returns the uint8 canvas and the ``objects`` records of the garments placed, in drawing order.
    """
    canvas = background.copy()
    owner = np.full((CANVAS, CANVAS), -1, dtype=np.int64)  # index of the garment on top of each pixel
    placed, areas, visible = [], [], []
    for label, photo_index, photo in items:
        side = int(round(math.exp(rng.uniform(math.log(MIN_SCALE), math.log(MAX_SCALE)))))
        contrast = rng.uniform(0.7, 1.0)
        while side >= MIN_SCALE:
            item = _resize(photo, side)
            mask = silhouette(item)
            boxes = [p["box"] for p in placed]
            position = _find_position(owner, visible, areas, boxes, mask, rng) if mask.any() else None
            if position is not None:
                break
            side = int(side * SHRINK)
        else:
            continue  # no room even at the smallest scale: the garment (and maybe its label) is left out
        y, x = position
        for k in np.unique(owner[y : y + side, x : x + side][mask]):
            if k >= 0:
                visible[k] -= int(np.count_nonzero(owner[y : y + side, x : x + side][mask] == k))
        owner[y : y + side, x : x + side][mask] = len(placed)
        canvas[y : y + side, x : x + side][mask] = item[mask] * contrast
        areas.append(int(mask.sum()))
        visible.append(int(mask.sum()))
        placed.append({"label": int(label), "box": [x, y, side, side], "photo": int(photo_index)})
    canvas = canvas + rng.normal(0.0, NOISE_SIGMA, size=canvas.shape)
    for record, area, seen in zip(placed, areas, visible):
        record["visible"] = round(seen / area, 4)
    return np.clip(np.rint(canvas), 0, 255).astype(np.uint8), placed


def _garments(label_set, by_class, images, rng):
    """The garments of one image: each label's class once, a second photo with DUPLICATE_PROBABILITY, shuffled."""
    classes = [c for c in label_set for _ in range(2 if rng.random() < DUPLICATE_PROBABILITY else 1)]
    items = []
    for c in classes:
        index = int(rng.choice(by_class[c]))
        items.append((c, index, images[index]))
    return [items[i] for i in rng.permutation(len(items))]


def _build_split(num, images, labels, pool, rng, prefix):
    by_class = [pool[labels[pool] == c] for c in range(len(FASHION_MNIST_CLASSES))]
    label_sets = sample_label_sets(num, rng, max_labels=MAX_LABELS, extra_probabilities=EXTRA_PROBABILITIES)
    records = {"image": [], "labels": [], "label_ids": [], "image_id": [], "objects": []}
    for index, label_set in enumerate(label_sets):
        items = _garments(label_set, by_class, images, rng)
        canvas, objects = compose_clutter(items, draw_background(rng, images, pool), rng)
        placed = sorted({o["label"] for o in objects})  # the labels are the classes actually visible
        records["image"].append({"bytes": png_bytes(canvas), "path": None})
        records["labels"].append(multi_hot(placed))
        records["label_ids"].append(placed)
        records["image_id"].append(f"{prefix}-{index:06d}")
        records["objects"].append(objects)
    return records


def build_fashion_clutter(
    num_train: int = 8000,
    num_validation: int = 1000,
    num_test: int = 2000,
    seed: int = 0,
    source_dir: str | os.PathLike | None = None,
):
    """Build the cluttered dataset in memory (see the module docstring) as a ``datasets.DatasetDict``."""
    from .common import make_features

    features = make_features(FASHION_MNIST_CLASSES, with_ignore_mask=False)
    features["objects"] = objects_feature()
    return build_fashion_splits(_build_split, features, num_train, num_validation, num_test, seed, source_dir)


def load_fashion_clutter(
    num_train: int = 8000,
    num_validation: int = 1000,
    num_test: int = 2000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
):
    """The cluttered multi-scale dataset (``train``/``validation``/``test``), built once and cached on disk.

    Arguments as :func:`mlic_hf.data.fashion_mosaic.load_fashion_mosaic` (cache and Fashion-MNIST folders).
    """
    name = f"fashion_clutter-v{DATASET_VERSION}-seed{seed}-{num_train}-{num_validation}-{num_test}"
    return load_cached(
        name, lambda: build_fashion_clutter(num_train, num_validation, num_test, seed, source_dir), cache_dir, rebuild
    )
