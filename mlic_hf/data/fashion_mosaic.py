"""The built-in default dataset: multi-label mosaics of real Fashion-MNIST photos with structured co-occurrence.

Fashion-MNIST (Xiao et al., 2017; MIT licence) ships offline as the Debian package ``dataset-fashion-mnist`` (IDX
files under ``/usr/share/datasets/fashion-mnist``). Each mosaic is a 64×64 grayscale canvas split into a 2×2 grid of
32×32 cells; 1–4 garments (28×28 each, jittered inside their cell) fill distinct cells, and the image's labels are
the set of garment classes shown.

Which garments appear together is *not* uniform, so that label-correlation methods have something to learn. A mosaic
first draws a **scene** (an outfit), then includes each of the scene's garments with its own probability:

=========  ======  ====================================================================
scene      weight  garments (inclusion probability)
=========  ======  ====================================================================
summer     0.25    T-shirt/top 0.9, Sandal 0.8, Bag 0.4
sport      0.20    T-shirt/top 0.6, Trouser 0.7, Sneaker 0.9
winter     0.20    Coat 0.9, Pullover 0.6, Ankle boot 0.8, Trouser 0.4
evening    0.15    Dress 0.95, Bag 0.7, Sandal 0.5
office     0.20    Shirt 0.9, Trouser 0.8, Bag 0.3, Sneaker 0.3
=========  ======  ====================================================================

With probability 0.15 one extra garment of any class is added (a distractor), unless it would break a **never
together** rule: Dress–Trouser, Sandal–Ankle boot, Sandal–Sneaker, Coat–Sandal, Dress–Coat never share a mosaic.
Mosaics with no garment are redrawn; at most 4 garments (one per cell) are kept. Training mosaics use photos from the
Fashion-MNIST training set (first 54,000), validation mosaics the last 6,000, test mosaics the separate 10,000-image
test set, so no photo is shared between splits. Everything is drawn from ``numpy.random.default_rng(seed)``: the
same seed gives byte-identical datasets. The result is cached on disk as an HF dataset (``save_to_disk``) after the
first build.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FASHION_MNIST_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]
_C = {name: i for i, name in enumerate(FASHION_MNIST_CLASSES)}

#: scene name -> (weight, {class name: inclusion probability})
SCENES: dict[str, tuple[float, dict[str, float]]] = {
    "summer": (0.25, {"T-shirt/top": 0.9, "Sandal": 0.8, "Bag": 0.4}),
    "sport": (0.20, {"T-shirt/top": 0.6, "Trouser": 0.7, "Sneaker": 0.9}),
    "winter": (0.20, {"Coat": 0.9, "Pullover": 0.6, "Ankle boot": 0.8, "Trouser": 0.4}),
    "evening": (0.15, {"Dress": 0.95, "Bag": 0.7, "Sandal": 0.5}),
    "office": (0.20, {"Shirt": 0.9, "Trouser": 0.8, "Bag": 0.3, "Sneaker": 0.3}),
}
#: pairs of classes that never appear in the same mosaic
NEVER_TOGETHER: list[tuple[str, str]] = [
    ("Dress", "Trouser"),
    ("Sandal", "Ankle boot"),
    ("Sandal", "Sneaker"),
    ("Coat", "Sandal"),
    ("Dress", "Coat"),
]
DISTRACTOR_PROBABILITY = 0.15
CANVAS, CELL, ITEM = 64, 32, 28
TRAIN_POOL_SIZE = 54000  # training photos [0, 54000); validation photos [54000, 60000)
DATASET_VERSION = "1"

DEFAULT_SOURCE_DIR = "/usr/share/datasets/fashion-mnist"
_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def _read_idx(path: Path, expected_ndim: int) -> np.ndarray:
    if not path.is_file():
        raise FileNotFoundError(
            f"Fashion-MNIST file {str(path)!r} not found: install the Debian package `dataset-fashion-mnist` "
            "(apt-get install dataset-fashion-mnist) or set source_dir / MLIC_FASHION_MNIST_DIR"
        )
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise ValueError(f"{str(path)!r} is unreadable ({err}); reinstall dataset-fashion-mnist") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or data[3] != expected_ndim:
        raise ValueError(f"{str(path)!r} is not an IDX file of uint8 with {expected_ndim} dimensions")
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(expected_ndim)]
    offset = 4 + 4 * expected_ndim
    if len(data) - offset != int(np.prod(dims)):
        raise ValueError(f"{str(path)!r}: header says {dims} but the file holds {len(data) - offset} bytes")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(dims)


def read_fashion_mnist(split: str, source_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Images (N, 28, 28) uint8 and labels (N,) of the Fashion-MNIST ``"train"`` or ``"test"`` split."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    root = Path(source_dir or os.environ.get("MLIC_FASHION_MNIST_DIR", DEFAULT_SOURCE_DIR))
    images = _read_idx(root / _FILES[split][0], 3)
    labels = _read_idx(root / _FILES[split][1], 1)
    if len(images) != len(labels):
        raise ValueError(f"{root}: {len(images)} images but {len(labels)} labels in the {split} split")
    return images, labels


def sample_label_sets(
    num: int,
    rng: np.random.Generator,
    max_labels: int = 4,
    extra_probabilities: tuple[float, ...] = (DISTRACTOR_PROBABILITY,),
) -> list[list[int]]:
    """Draw ``num`` label sets (sorted class indices) from the scene model described in the module docstring.

    ``extra_probabilities`` holds one chance per extra garment of any class (skipped when it breaks a never-together
    rule); ``max_labels`` caps the set size. The defaults are the mosaic's; ``fashion_clutter`` asks for more extras.
    """
    names = list(SCENES)
    weights = np.array([SCENES[n][0] for n in names])
    weights = weights / weights.sum()
    forbidden = {frozenset((_C[a], _C[b])) for a, b in NEVER_TOGETHER}
    out: list[list[int]] = []
    while len(out) < num:
        scene = SCENES[names[rng.choice(len(names), p=weights)]][1]
        chosen = [_C[name] for name, p in scene.items() if rng.random() < p]
        for probability in extra_probabilities:
            if rng.random() < probability:
                extra = int(rng.integers(len(FASHION_MNIST_CLASSES)))
                if extra not in chosen and not any(frozenset((extra, c)) in forbidden for c in chosen):
                    chosen.append(extra)
        if not chosen:
            continue
        if len(chosen) > max_labels:
            chosen = list(rng.choice(chosen, size=max_labels, replace=False))
        out.append(sorted(int(c) for c in chosen))
    return out


def compose_mosaic(items: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """Place up to four 28×28 images in distinct random cells of a 64×64 canvas, jittered inside their cell."""
    canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
    cells = rng.permutation(4)[: len(items)]
    for item, cell in zip(items, cells):
        row, col = divmod(int(cell), 2)
        dy, dx = (int(v) for v in rng.integers(0, CELL - ITEM + 1, size=2))
        y, x = row * CELL + dy, col * CELL + dx
        canvas[y : y + ITEM, x : x + ITEM] = np.maximum(canvas[y : y + ITEM, x : x + ITEM], item)
    return canvas


def png_bytes(canvas: np.ndarray) -> bytes:
    """A grayscale uint8 canvas encoded as PNG (lossless, and deterministic for the same pixels)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(canvas, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def multi_hot(label_set: list[int]) -> list[float]:
    out = np.zeros(len(FASHION_MNIST_CLASSES), dtype=np.float32)
    out[label_set] = 1.0
    return out.tolist()


def _build_split(num, images, labels, pool, rng, prefix):
    by_class = [pool[labels[pool] == c] for c in range(len(FASHION_MNIST_CLASSES))]
    label_sets = sample_label_sets(num, rng)
    records = {"image": [], "labels": [], "label_ids": [], "image_id": []}
    for index, label_set in enumerate(label_sets):
        photos = [images[rng.choice(by_class[c])] for c in label_set]
        canvas = compose_mosaic(photos, rng)
        records["image"].append({"bytes": png_bytes(canvas), "path": None})
        records["labels"].append(multi_hot(label_set))
        records["label_ids"].append(label_set)
        records["image_id"].append(f"{prefix}-{index:06d}")
    return records


def fashion_mnist_split_plan(num_train: int, num_validation: int, num_test: int, source_dir=None) -> dict:
    """``{split: (num, images, labels, pool)}``: training images come from the first 54,000 Fashion-MNIST training
    photos, validation from the last 6,000 and test from the t10k set, so no photo is shared between splits."""
    for name, value in (("num_train", num_train), ("num_validation", num_validation), ("num_test", num_test)):
        if value < 1:
            raise ValueError(f"{name} must be >= 1, got {value}")
    train_images, train_labels = read_fashion_mnist("train", source_dir)
    test_images, test_labels = read_fashion_mnist("test", source_dir)
    return {
        "train": (num_train, train_images, train_labels, np.arange(0, TRAIN_POOL_SIZE)),
        "validation": (num_validation, train_images, train_labels, np.arange(TRAIN_POOL_SIZE, len(train_images))),
        "test": (num_test, test_images, test_labels, np.arange(len(test_images))),
    }


def build_fashion_mosaic(
    num_train: int = 8000,
    num_validation: int = 1000,
    num_test: int = 2000,
    seed: int = 0,
    source_dir: str | os.PathLike | None = None,
):
    """Build the mosaic dataset in memory (see the module docstring) as a ``datasets.DatasetDict``."""
    from .common import make_features

    features = make_features(FASHION_MNIST_CLASSES, with_ignore_mask=False)
    return build_fashion_splits(_build_split, features, num_train, num_validation, num_test, seed, source_dir)


def build_fashion_splits(split_builder, features, num_train: int, num_validation: int, num_test: int, seed: int,
                         source_dir: str | os.PathLike | None):
    """The ``train``/``validation``/``test`` splits of a Fashion-MNIST-based dataset: ``split_builder(num, images,
    labels, pool, rng, split)`` returns one split's records, drawn from the split's own photo pool
    (:func:`fashion_mnist_split_plan`) with its own generator seeded from ``seed``."""
    import datasets

    plan = fashion_mnist_split_plan(num_train, num_validation, num_test, source_dir)
    rng = np.random.default_rng(seed)
    out = {}
    for split, (num, images, labels, pool) in plan.items():
        split_rng = np.random.default_rng(rng.integers(2**63))
        records = split_builder(num, images, labels, pool, split_rng, split)
        out[split] = datasets.Dataset.from_dict(records, features=features, split=split)
    return datasets.DatasetDict(out)


def default_cache_dir() -> Path:
    return Path(os.environ.get("MLIC_HF_CACHE", Path.home() / ".cache" / "mlic_hf")) / "datasets"


def load_fashion_mosaic(
    num_train: int = 8000,
    num_validation: int = 1000,
    num_test: int = 2000,
    seed: int = 0,
    cache_dir: str | os.PathLike | None = None,
    source_dir: str | os.PathLike | None = None,
    rebuild: bool = False,
):
    """The built-in multi-label dataset (``train``/``validation``/``test``), built once and cached on disk.

    Args:
        num_train, num_validation, num_test: number of mosaics per split.
        seed: generator seed; the same arguments give the same dataset.
        cache_dir: where built datasets are kept (default ``$MLIC_HF_CACHE/datasets`` or ``~/.cache/mlic_hf/datasets``).
        source_dir: folder of the Fashion-MNIST IDX files (default ``$MLIC_FASHION_MNIST_DIR`` or
            ``/usr/share/datasets/fashion-mnist``).
        rebuild: ignore a cached copy and build again.
    """
    name = f"fashion_mosaic-v{DATASET_VERSION}-seed{seed}-{num_train}-{num_validation}-{num_test}"
    # build_fashion_mosaic is looked up at call time, so the tests can check that a cached copy is not rebuilt
    return load_cached(
        name, lambda: build_fashion_mosaic(num_train, num_validation, num_test, seed, source_dir), cache_dir, rebuild
    )


def load_cached(name: str, build, cache_dir: str | os.PathLike | None = None, rebuild: bool = False):
    """The ``DatasetDict`` cached as ``cache_dir/name``, or ``build()`` saved there first (also when the cached copy
    is unreadable, or with ``rebuild``). Shared by the generated built-in datasets."""
    import datasets

    target = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = target / name
    if path.is_dir() and not rebuild:
        try:
            return datasets.load_from_disk(str(path))
        except Exception as err:  # a damaged cache is rebuilt, never trusted
            logger.warning("cached dataset %s is unreadable (%s): rebuilding it", path, err)
    logger.info("building the dataset %s into %s", name, path)
    dataset = build()
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target))
    try:
        dataset.save_to_disk(str(staging))
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)  # atomic: a half-written cache is never picked up
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return datasets.load_from_disk(str(path))
