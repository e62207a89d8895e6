"""Pre-processing and augmentation for training and evaluation, applied to HF datasets with ``set_transform``.

Training: any image → 8-bit RGB → square resize → random horizontal flip → RandAugment (timm's
``rand_augment_transform``) → Cutout → tensor → normalise. Evaluation: RGB → square resize → tensor → normalise,
numerically the same as the checkpoint's :class:`~mlic_hf.MLICImageProcessor` (bilinear PIL resize).

Augmentations draw their randomness from generators seeded by ``(seed, epoch, sample index)``, not from the global
RNG state, so they are identical however the data is split across DataLoader workers or processes, and a run resumed
from a checkpoint sees exactly the augmentations an uninterrupted run would have seen.

Decoding: :class:`BatchTransform` decodes the images itself when the dataset's ``image`` column is not decoded by
``datasets`` (:func:`defer_image_decoding`), so that a file that cannot be decoded (e.g. a truncated JPEG that slipped
through ``verify_images=False``) raises an error naming the image id and the file, instead of PIL's bare "image file
is truncated" from inside ``datasets``.
"""

from __future__ import annotations

import contextlib
import io
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import datasets
import numpy as np
import torch
from PIL import Image, ImageDraw

from ..image_processing import to_rgb_pil

INDEX_COLUMN = "__index__"


class Cutout:
    """Cutout (DeVries & Taylor, 2017) as used by ASL/ML-Decoder: erase one square whose side is ``factor`` × the
    image side, centred at a uniformly random point (clipped at the borders), filled with a random colour.

    Works on PIL images. Unlike Query2Label's ``CutoutPIL`` (whose erased patch is never written back), the patch is
    really drawn: ``Cutout(0.5)`` changes up to a quarter of the pixels.
    """

    def __init__(self, factor: float = 0.5, fill: str | tuple[int, int, int] = "random") -> None:
        if not 0.0 < factor <= 1.0:
            raise ValueError(f"cutout factor must be in (0, 1], got {factor}")
        self.factor = factor
        self.fill = fill

    def __call__(self, image: Image.Image, rng: random.Random | None = None) -> Image.Image:
        rng = rng or random
        width, height = image.size
        side_h, side_w = int(self.factor * height + 0.5), int(self.factor * width + 0.5)
        cy, cx = rng.randint(0, height - 1), rng.randint(0, width - 1)
        top, bottom = max(cy - side_h // 2, 0), min(cy + side_h // 2, height)
        left, right = max(cx - side_w // 2, 0), min(cx + side_w // 2, width)
        fill = tuple(rng.randint(0, 255) for _ in range(3)) if self.fill == "random" else tuple(self.fill)
        image = image.copy()
        ImageDraw.Draw(image).rectangle([left, top, right - 1, bottom - 1], fill=fill)
        return image

    def __repr__(self) -> str:
        return f"Cutout(factor={self.factor}, fill={self.fill!r})"


def _open_and_load(source) -> Image.Image:
    image = Image.open(source)
    try:
        image.load()  # the pixels now, as ``datasets`` does: a truncated file fails here, not in a later transform
    except BaseException:
        image.close()
        raise
    return image


def decode_image(value: Any, image_id: str | None = None, row: int | None = None) -> Image.Image:
    """The image of an ``image`` column value: a path or a ``{"path", "bytes"}`` dict (``datasets.Image(decode=False)``)
    is decoded here, with errors naming ``image_id`` (else the ``row`` number, if known) and the file; anything else
    (a PIL image, an array) is returned as is. EXIF orientation is left to the transforms
    (:func:`~mlic_hf.image_processing.to_rgb_pil` applies it).
    """
    name = (f"image {image_id!r}" if image_id is not None else f"the image of row {row}" if row is not None
            else "image")
    if value is None or isinstance(value, dict) and value.get("path") is None and value.get("bytes") is None:
        # a null image would otherwise fail later in a transform with an error naming no image
        raise ValueError(f"{name}: the image is missing (null in the dataset's image column)")
    if isinstance(value, str):
        path, data = value, None
    elif isinstance(value, dict):
        path, data = value.get("path"), value.get("bytes")
    else:
        return value
    name += f" ({path})" if path else " (in-memory bytes)"
    try:
        return _open_and_load(io.BytesIO(data) if data is not None else path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{name}: file not found") from None
    except Exception as exc:  # PIL raises many types (OSError "image file is truncated", SyntaxError, ...)
        raise ValueError(f"{name}: cannot decode: {type(exc).__name__}: {exc}") from exc


def defer_image_decoding(dataset):
    """``dataset`` with its ``image`` column left undecoded by ``datasets`` (``Image(decode=False)``), so that
    :class:`BatchTransform` decodes each image itself and names the one that fails. A dataset without such a column,
    or whose column converts to a fixed ``mode`` (which :func:`decode_image` does not apply), is returned as is.
    """
    feature = dataset.features.get("image")
    if isinstance(feature, datasets.Image) and feature.decode and feature.mode is None:
        return dataset.cast_column("image", datasets.Image(decode=False))
    return dataset


def to_normalized_tensor(image: Image.Image, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 RGB PIL image → float32 CHW tensor, rescaled to [0, 1] and normalised."""
    array = np.asarray(image, dtype=np.float32) * (1.0 / 255.0)
    array = (array - np.asarray(mean, dtype=np.float32)) / np.asarray(std, dtype=np.float32)
    return torch.from_numpy(np.ascontiguousarray(array.transpose(2, 0, 1)))


@contextlib.contextmanager
def _seeded_python_random(seed: int):
    """Temporarily seed python's global ``random`` (timm's augmentation ops draw their magnitudes from it)."""
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A well-mixed 63-bit seed for one sample in one epoch."""
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, dtype=np.uint64)[0] >> 1)


@dataclass
class AugmentationConfig:
    """Training augmentation settings (the papers' recipe: RandAugment + Cutout + flips).

    Args:
        image_size: square side after resizing.
        mean, std: normalisation statistics (the model config's ``image_mean``/``image_std``).
        hflip: probability of a horizontal flip (0 disables).
        rand_augment: timm RandAugment config string (e.g. ``"rand-m9-mstd0.5"``); empty disables.
        cutout: Cutout side as a fraction of the image side (0 disables; ASL/ML-Decoder use 0.5).
        seed: base seed of the per-sample augmentation generators.
        crop_scale: ``(low, high)``: a random resized crop before the resize, as torchvision's
            ``RandomResizedCrop(image_size, scale=(low, high))`` (area fraction of the image in [low, high], aspect
            ratio log-uniform in [3/4, 4/3]; CSRA's recipe uses (0.7, 1.0)); ``None`` (default): the whole image.
    """

    image_size: int
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)
    hflip: float = 0.5
    rand_augment: str = "rand-m9-mstd0.5"
    cutout: float = 0.5
    seed: int = 0
    crop_scale: tuple[float, float] | None = None


#: aspect ratios (width / height) of :func:`random_resized_crop_box`: torchvision's ``RandomResizedCrop`` default
CROP_RATIO = (3.0 / 4.0, 4.0 / 3.0)


def random_resized_crop_box(width: int, height: int, scale: tuple[float, float],
                            rng: random.Random) -> tuple[int, int, int, int]:
    """The ``(left, top, right, bottom)`` box of a random resized crop of a ``width`` × ``height`` image, drawn as
    torchvision's ``RandomResizedCrop.get_params`` draws it (area fraction uniform in ``scale``, aspect ratio
    log-uniform in :data:`CROP_RATIO`, up to 10 tries, then the largest central crop within the ratios), but from
    ``rng``: torchvision draws from torch's global generator, which per-sample seeding (and exact resume) cannot
    use."""
    area = width * height
    log_low, log_high = math.log(CROP_RATIO[0]), math.log(CROP_RATIO[1])
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        ratio = math.exp(rng.uniform(log_low, log_high))
        w = int(round(math.sqrt(target * ratio)))
        h = int(round(math.sqrt(target / ratio)))
        if 0 < w <= width and 0 < h <= height:
            top = rng.randint(0, height - h)
            left = rng.randint(0, width - w)
            return left, top, left + w, top + h
    in_ratio = width / height
    if in_ratio < CROP_RATIO[0]:
        w, h = width, int(round(width / CROP_RATIO[0]))
    elif in_ratio > CROP_RATIO[1]:
        w, h = int(round(height * CROP_RATIO[1])), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


class TrainTransform:
    """Per-image training transform (see :class:`AugmentationConfig`); ``__call__(image, index)`` → tensor."""

    def __init__(self, config: AugmentationConfig) -> None:
        self.config = config
        self.epoch = 0
        self._rand_augment = None
        if config.rand_augment:
            from timm.data.auto_augment import rand_augment_transform

            fill = tuple(int(round(255 * m)) for m in config.mean)
            self._rand_augment = rand_augment_transform(
                config.rand_augment, {"translate_const": int(config.image_size * 0.45), "img_mean": fill}
            )
        self._cutout = Cutout(config.cutout) if config.cutout > 0 else None

    def _apply_rand_augment(self, image: Image.Image, rng: random.Random, seed: int) -> Image.Image:
        # timm's RandAugment.__call__ picks its ops with numpy's global RNG; we pick them with the per-sample
        # generator instead (same distribution: uniform with replacement, or weighted without), then run timm's
        # ops, whose probabilities/magnitudes come from python's `random`, seeded for this sample.
        augment = self._rand_augment
        if augment.choice_weights is None:
            ops = [augment.ops[rng.randrange(len(augment.ops))] for _ in range(augment.num_layers)]
        else:
            picks = np.random.default_rng(seed).choice(
                len(augment.ops), augment.num_layers, replace=False, p=augment.choice_weights
            )
            ops = [augment.ops[i] for i in picks]
        with _seeded_python_random(seed):
            for op in ops:
                image = op(image)
        return image

    def __call__(self, image, index: int) -> torch.Tensor:
        cfg = self.config
        seed = sample_seed(cfg.seed, self.epoch, index)
        rng = random.Random(seed)
        image = to_rgb_pil(image)
        if cfg.crop_scale is not None:
            image = image.crop(random_resized_crop_box(image.width, image.height, cfg.crop_scale, rng))
        image = image.resize((cfg.image_size, cfg.image_size), Image.BILINEAR)
        # flipping after the crop (CSRA's code flips first): the crop's distribution is symmetric, so the same
        if cfg.hflip > 0 and rng.random() < cfg.hflip:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        if self._rand_augment is not None:
            image = self._apply_rand_augment(image, rng, seed)
        if self._cutout is not None:
            image = self._cutout(image, rng)
        return to_normalized_tensor(image, cfg.mean, cfg.std)


class EvalTransform:
    """Deterministic evaluation transform: RGB → bilinear square resize → tensor → normalise."""

    def __init__(self, image_size: int, mean: Sequence[float], std: Sequence[float]) -> None:
        self.image_size, self.mean, self.std = image_size, mean, std

    def __call__(self, image, index: int = 0) -> torch.Tensor:
        image = to_rgb_pil(image).resize((self.image_size, self.image_size), Image.BILINEAR)
        return to_normalized_tensor(image, self.mean, self.std)


class BatchTransform:
    """``datasets.Dataset.set_transform`` function: ``{"image", "labels", ["ignore_mask"], [__index__]}`` →
    ``{"pixel_values", "labels"}``. Ignored labels (``ignore_mask``) become -1, which the models' losses and the
    metrics skip. Undecoded images (:func:`defer_image_decoding`) are decoded here by :func:`decode_image`, so a bad
    file raises naming its ``image_id`` (else its row number, ``__index__``) and path."""

    def __init__(self, transform: TrainTransform | EvalTransform) -> None:
        self.transform = transform

    def set_epoch(self, epoch: int) -> None:
        """Seed the next epoch's augmentation (a training transform's; evaluation has none)."""
        if hasattr(self.transform, "epoch"):
            self.transform.epoch = int(epoch)

    def __call__(self, batch: dict) -> dict:
        images = batch["image"]
        rows = batch.get(INDEX_COLUMN) or [None] * len(images)
        image_ids = batch.get("image_id") or [None] * len(images)
        pixel_values = [
            self.transform(decode_image(image, image_id, row), int(row or 0))
            for image, image_id, row in zip(images, image_ids, rows)
        ]
        out = {"pixel_values": pixel_values}
        if "labels" in batch:
            labels = torch.as_tensor(np.asarray(batch["labels"], dtype=np.float32))
            if "ignore_mask" in batch and batch["ignore_mask"] is not None:
                mask = torch.as_tensor(np.asarray(batch["ignore_mask"], dtype=bool))
                labels = labels.masked_fill(mask, -1.0)
            out["labels"] = list(labels)
        return out


def with_index_column(dataset):
    """The dataset with an ``__index__`` column (row number), used to seed per-sample augmentation."""
    if INDEX_COLUMN in dataset.column_names:
        return dataset
    return dataset.add_column(INDEX_COLUMN, list(range(len(dataset))))


def collate_fn(examples: list[dict]) -> dict:
    """Stack ``pixel_values`` and ``labels`` of transformed examples into a batch."""
    batch = {"pixel_values": torch.stack([e["pixel_values"] for e in examples])}
    if "labels" in examples[0]:
        batch["labels"] = torch.stack([torch.as_tensor(e["labels"], dtype=torch.float32) for e in examples])
    return batch


class DecodedImages:
    """The images of a dataset split, read and decoded one row at a time (never the whole column in memory), with
    errors naming the image; ``__len__`` sizes progress bars. What inference over a split iterates."""

    def __init__(self, subset) -> None:
        columns = [c for c in ("image", "image_id") if c in subset.column_names]
        self.rows = defer_image_decoding(subset).select_columns(columns)

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return (decode_image(row["image"], row.get("image_id"), number) for number, row in enumerate(self.rows))
