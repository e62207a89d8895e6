"""The built-in cluttered multi-scale Fashion-MNIST dataset (``fashion_clutter``)."""

import datasets
import numpy as np
import pytest

from mlic_hf.data import FASHION_MNIST_CLASSES, label_names_of, load_mlic_dataset
from mlic_hf.data import fashion_clutter as clutter
from mlic_hf.data.fashion_mosaic import NEVER_TOGETHER, TRAIN_POOL_SIZE, read_fashion_mnist

SIZES = {"num_train": 50, "num_validation": 10, "num_test": 10}
INDEX = {name: i for i, name in enumerate(FASHION_MNIST_CLASSES)}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return clutter.load_fashion_clutter(**SIZES, seed=3, cache_dir=tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def larger():
    return clutter.build_fashion_clutter(num_train=300, num_validation=1, num_test=1, seed=0)["train"]


def _image_bytes(split):
    return [row["image"]["bytes"] for row in split.cast_column("image", datasets.Image(decode=False))]


def test_split_sizes_columns_and_canvas(tiny):
    assert {k: len(v) for k, v in tiny.items()} == {"train": 50, "validation": 10, "test": 10}
    assert label_names_of(tiny["train"]) == FASHION_MNIST_CLASSES
    image = np.asarray(tiny["train"][0]["image"])
    assert image.shape == (128, 128) and image.dtype == np.uint8


def test_same_seed_same_bytes_other_seed_differs():
    a = clutter.build_fashion_clutter(**SIZES, seed=5)
    b = clutter.build_fashion_clutter(**SIZES, seed=5)
    c = clutter.build_fashion_clutter(**SIZES, seed=6)
    for split in a:
        assert _image_bytes(a[split]) == _image_bytes(b[split])
        assert a[split]["objects"] == b[split]["objects"]
    assert _image_bytes(a["train"]) != _image_bytes(c["train"])


def test_photos_come_from_disjoint_pools(tiny):
    train_images, train_labels = read_fashion_mnist("train")
    _, test_labels = read_fashion_mnist("test")
    photos = {split: [o["photo"] for row in tiny[split]["objects"] for o in row] for split in tiny}
    assert max(photos["train"]) < TRAIN_POOL_SIZE <= min(photos["validation"])
    assert max(photos["validation"]) < len(train_images)
    # each object's photo index points at a photo of its own class in the split's source file (train or t10k)
    for split, source_labels in (("train", train_labels), ("validation", train_labels), ("test", test_labels)):
        for row in tiny[split]["objects"]:
            assert all(source_labels[o["photo"]] == o["label"] for o in row), split


def test_labels_are_the_placed_classes_and_rules_hold(larger):
    forbidden = [(INDEX[a], INDEX[b]) for a, b in NEVER_TOGETHER]
    for row in larger:
        placed = sorted({o["label"] for o in row["objects"]})
        assert row["label_ids"] == placed
        assert np.flatnonzero(row["labels"]).tolist() == placed
        assert not any(a in placed and b in placed for a, b in forbidden)


def test_label_count_scales_and_occlusion(larger):
    per_image = np.array([len(ids) for ids in larger["label_ids"]])
    assert 2 <= per_image.mean() <= 5 and per_image.max() <= clutter.MAX_LABELS
    objects = [o for row in larger["objects"] for o in row]
    assert len(objects) > per_image.sum()  # some classes appear twice
    sides = np.array([o["box"][2] for o in objects])
    assert sides.min() >= clutter.MIN_SCALE and sides.max() <= clutter.MAX_SCALE
    assert (sides < 20).mean() > 0.1 and (sides > 40).mean() > 0.1  # small and large objects both present
    for o in objects:
        x, y, w, h = o["box"]
        assert w == h and 0 <= x <= 128 - w and 0 <= y <= 128 - h
    visible = np.array([o["visible"] for o in objects])
    assert visible.min() >= 1 - clutter.MAX_OCCLUSION - 1e-6 and (visible < 1).any()


def test_occlusion_of_solid_squares_matches_the_geometry():
    # solid 28×28 photos have square silhouettes, so the visible fraction of each box is plain geometry:
    # its area minus what the boxes drawn after it cover
    items = [(i % 10, i, np.full((28, 28), 200, dtype=np.uint8)) for i in range(8)]
    rng = np.random.default_rng(1)
    _, objects = clutter.compose_clutter(items, np.zeros((128, 128)), rng)
    assert len(objects) >= 4
    for k, obj in enumerate(objects):
        x, y, w, h = obj["box"]
        later = np.zeros((128, 128), dtype=bool)
        for other in objects[k + 1 :]:
            ox, oy, ow, oh = other["box"]
            later[oy : oy + oh, ox : ox + ow] = True
        expected = 1 - later[y : y + h, x : x + w].sum() / (w * h)
        assert obj["visible"] == pytest.approx(expected, abs=1e-4)
        assert expected >= 1 - clutter.MAX_OCCLUSION - 1e-9


def test_fragments_are_unlabelled_background():
    # an image without garments holds only background: low-contrast noise and blurred fragments
    rng = np.random.default_rng(0)
    images, _ = read_fashion_mnist("train")
    background = clutter.draw_background(rng, images, np.arange(100))
    canvas, objects = clutter.compose_clutter([], background, rng)
    assert objects == [] and canvas.max() < 200


def test_cache_round_trip_and_damaged_cache_rebuilt(tmp_path, monkeypatch):
    first = clutter.load_fashion_clutter(**SIZES, seed=1, cache_dir=tmp_path)
    built = []
    original = clutter.build_fashion_clutter
    monkeypatch.setattr(clutter, "build_fashion_clutter", lambda *a, **k: built.append(1) or original(*a, **k))
    again = clutter.load_fashion_clutter(**SIZES, seed=1, cache_dir=tmp_path)
    assert built == [] and _image_bytes(again["test"]) == _image_bytes(first["test"])
    assert again["train"]["objects"] == first["train"]["objects"]
    (cached,) = [p for p in tmp_path.iterdir() if p.name.startswith("fashion_clutter")]
    for path in cached.rglob("*.arrow"):
        path.unlink()  # a new file, not an in-place write: the loaded datasets still memory-map the old one
        path.write_bytes(b"damaged")
    rebuilt = clutter.load_fashion_clutter(**SIZES, seed=1, cache_dir=tmp_path)
    assert built == [1] and _image_bytes(rebuilt["train"]) == _image_bytes(first["train"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_registered_name_loads(tmp_path):
    dataset = load_mlic_dataset("fashion_clutter", **SIZES, cache_dir=tmp_path)
    assert set(dataset) == {"train", "validation", "test"} and "objects" in dataset["train"].column_names
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        load_mlic_dataset("fashion_clutter", str(tmp_path / "nothing"), **SIZES, cache_dir=tmp_path / "c")
