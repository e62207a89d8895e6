"""The built-in Fashion-MNIST mosaic dataset."""

import numpy as np
import pytest

from mlic_hf.data import FASHION_MNIST_CLASSES, label_names_of, load_fashion_mosaic, load_mlic_dataset
from mlic_hf.data.fashion_mosaic import (
    NEVER_TOGETHER,
    SCENES,
    _build_split,
    fashion_mnist_split_plan,
    read_fashion_mnist,
    sample_label_sets,
)

SIZES = {"num_train": 40, "num_validation": 10, "num_test": 12}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return load_fashion_mosaic(**SIZES, seed=3, cache_dir=tmp_path_factory.mktemp("cache"))


def test_splits_columns_and_labels(tiny):
    assert {k: len(v) for k, v in tiny.items()} == {"train": 40, "validation": 10, "test": 12}
    assert label_names_of(tiny["train"]) == FASHION_MNIST_CLASSES
    for row in tiny["train"]:
        labels = np.asarray(row["labels"], dtype=np.float32)
        assert labels.shape == (10,) and set(np.unique(labels)) <= {0.0, 1.0}
        assert sorted(np.flatnonzero(labels).tolist()) == row["label_ids"]
        assert 1 <= len(row["label_ids"]) <= 4
        image = np.asarray(row["image"])
        assert image.shape == (64, 64) and image.dtype == np.uint8
        # every cell without a garment is black; with k garments at least k cells have content
        cells = [image[r:r + 32, c:c + 32].max() > 0 for r in (0, 32) for c in (0, 32)]
        assert sum(cells) >= 1


def test_same_seed_same_bytes_other_seed_differs(tmp_path):
    a = load_fashion_mosaic(**SIZES, seed=5, cache_dir=tmp_path / "a")
    b = load_fashion_mosaic(**SIZES, seed=5, cache_dir=tmp_path / "b")
    c = load_fashion_mosaic(**SIZES, seed=6, cache_dir=tmp_path / "c")
    assert a["train"]["labels"] == b["train"]["labels"]
    image_a = a["train"].cast_column("image", a["train"].features["image"].__class__(decode=False))[0]["image"]
    image_b = b["train"].cast_column("image", b["train"].features["image"].__class__(decode=False))[0]["image"]
    assert image_a["bytes"] == image_b["bytes"]
    assert a["train"]["labels"] != c["train"]["labels"]


def test_cached_after_first_build(tmp_path, monkeypatch):
    load_fashion_mosaic(**SIZES, seed=1, cache_dir=tmp_path)
    import mlic_hf.data.fashion_mosaic as module

    monkeypatch.setattr(module, "build_fashion_mosaic", lambda *a, **k: pytest.fail("rebuilt instead of cached"))
    again = load_fashion_mosaic(**SIZES, seed=1, cache_dir=tmp_path)
    assert len(again["train"]) == SIZES["num_train"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_cooccurrence_is_structured():
    sets = sample_label_sets(20000, np.random.default_rng(0))
    matrix = np.zeros((len(sets), 10))
    for i, s in enumerate(sets):
        matrix[i, s] = 1
    index = {name: i for i, name in enumerate(FASHION_MNIST_CLASSES)}
    together = matrix.T @ matrix
    for a, b in NEVER_TOGETHER:
        assert together[index[a], index[b]] == 0, (a, b)
    # scene partners co-occur far more often than independence predicts
    p = matrix.mean(0)
    lift = (together / len(sets)) / np.outer(p, p)
    assert lift[index["T-shirt/top"], index["Sandal"]] > 1.5  # summer
    assert lift[index["Coat"], index["Ankle boot"]] > 2.0  # winter
    assert lift[index["Dress"], index["Bag"]] > 1.5  # evening
    assert 1.5 < matrix.sum(1).mean() < 3.0
    assert set(SCENES)  # documented scene table is what the sampler uses


class _RecordingImages(np.ndarray):
    """A photo array that records every photo index the mosaic builder reads."""

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            self.picked.append(int(key))
        return super().__getitem__(key)


def test_splits_use_disjoint_photos():
    plan = fashion_mnist_split_plan(num_train=300, num_validation=100, num_test=100)
    picked, pixels = {}, {}
    for split, (num, images, labels, pool) in plan.items():
        recording = images.view(_RecordingImages)
        recording.picked = []
        _build_split(num, recording, labels, pool, np.random.default_rng(0), split)
        picked[split] = set(recording.picked)
        assert picked[split] and picked[split] <= set(pool.tolist()), split  # only the split's own pool
        pixels[split] = {images[i].tobytes() for i in picked[split]}
    # train and validation read the same file (60,000 photos) at disjoint indices; test reads t10k
    assert plan["train"][1] is plan["validation"][1] and len(plan["test"][1]) == 10000
    assert not set(plan["train"][3].tolist()) & set(plan["validation"][3].tolist())
    assert not picked["train"] & picked["validation"]
    # and no photo used by one split is, pixel for pixel, a photo used by another
    for a, b in (("train", "validation"), ("train", "test"), ("validation", "test")):
        assert not pixels[a] & pixels[b], (a, b)


def test_missing_source_gives_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_fashion_mosaic(**SIZES, cache_dir=tmp_path / "c", source_dir=tmp_path / "nothing")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "train-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="train-images"):
        read_fashion_mnist("train", tmp_path / "bad")


def test_split_sizes_are_validated(tmp_path):
    with pytest.raises(ValueError, match="num_validation must be >= 1"):
        load_fashion_mosaic(num_train=4, num_validation=0, num_test=1, cache_dir=tmp_path)


def test_registry_and_errors(tmp_path):
    dataset = load_mlic_dataset("fashion_mosaic", **SIZES, cache_dir=tmp_path)
    assert set(dataset) == {"train", "validation", "test"}
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_mlic_dataset("imagenet")
    with pytest.raises(ValueError, match="--data_dir"):
        load_mlic_dataset("voc2007")
