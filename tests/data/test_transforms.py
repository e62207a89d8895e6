"""Training/evaluation transforms: Cutout really erases, evaluation equals the image processor, seeding."""

import numpy as np
import pytest
import torch
from PIL import Image

from mlic_hf import MLICImageProcessor, ResNetProbabilisticConfig
from mlic_hf.data.transforms import (
    AugmentationConfig,
    BatchTransform,
    Cutout,
    EvalTransform,
    TrainTransform,
    collate_fn,
    decode_image,
    defer_image_decoding,
    sample_seed,
)


def _photo(seed=0, size=(48, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=size + (3,), dtype=np.uint8))


def test_cutout_erases_a_square_of_one_colour():
    import random

    image = Image.new("RGB", (40, 40), (10, 20, 30))
    out = Cutout(0.5)(image, random.Random(1))
    changed = np.any(np.asarray(out) != np.asarray(image), axis=-1)
    assert changed.sum() > 0, "Cutout must change pixels"
    ys, xs = np.nonzero(changed)
    assert changed[ys.min():ys.max() + 1, xs.min():xs.max() + 1].all()  # a filled rectangle
    assert (ys.max() - ys.min() + 1) <= 20 and (xs.max() - xs.min() + 1) <= 20
    assert len({tuple(p) for p in np.asarray(out)[changed]}) == 1
    assert np.asarray(image).max() == 30  # the input is left untouched
    with pytest.raises(ValueError, match="cutout factor"):
        Cutout(0.0)


def test_eval_transform_equals_the_image_processor():
    config = ResNetProbabilisticConfig(image_size=32, image_mean=[0.5, 0.4, 0.3], image_std=[0.2, 0.25, 0.3])
    processor = MLICImageProcessor.from_model_config(config)
    transform = EvalTransform(32, config.image_mean, config.image_std)
    for image in (_photo(0), _photo(1).convert("L"), _photo(2).convert("RGBA")):
        expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
        torch.testing.assert_close(transform(image), expected.float(), atol=1e-5, rtol=0)


def test_train_transform_is_seeded_per_sample_and_epoch():
    transform = TrainTransform(AugmentationConfig(image_size=32, rand_augment="rand-m9-mstd0.5", cutout=0.5, seed=7))
    image = _photo(3)
    torch.manual_seed(123)
    a = transform(image, index=5)
    torch.manual_seed(999)  # the global RNG state does not matter
    b = transform(image, index=5)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, transform(image, index=6))
    transform.epoch = 1
    assert not torch.equal(a, transform(image, index=5))
    assert a.shape == (3, 32, 32) and a.dtype == torch.float32
    # the global RNG state is left as it was
    state = torch.get_rng_state()
    transform(image, index=1)
    assert torch.equal(state, torch.get_rng_state())
    assert sample_seed(0, 0, 1) != sample_seed(0, 1, 0)


def test_batch_transform_and_collate_map_ignored_labels_to_minus_one():
    batch_transform = BatchTransform(EvalTransform(16, [0.5] * 3, [0.5] * 3))
    batch = {
        "image": [_photo(0), _photo(1)],
        "labels": [[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]],
        "ignore_mask": [[False, True, False], [False, False, False]],
    }
    out = batch_transform(batch)
    collated = collate_fn([{"pixel_values": p, "labels": l} for p, l in zip(out["pixel_values"], out["labels"])])
    assert collated["pixel_values"].shape == (2, 3, 16, 16)
    assert collated["labels"].tolist() == [[1.0, -1.0, 1.0], [0.0, 0.0, 1.0]]


def test_deferred_decoding_gives_the_same_tensors_and_names_a_bad_file(tmp_path):
    from mlic_hf.data.common import build_split

    paths = [tmp_path / "a.jpg", tmp_path / "b.png"]
    for seed, path in enumerate(paths):
        _photo(seed).save(path)
    dataset = build_split([{"path": p, "label_ids": [0], "image_id": p.stem} for p in paths], ["x"])
    transform = BatchTransform(EvalTransform(16, [0.5] * 3, [0.5] * 3))
    deferred = defer_image_decoding(dataset)
    assert deferred.features["image"].decode is False and defer_image_decoding(deferred) is deferred
    expected = dataset.with_transform(transform)[:]["pixel_values"]
    got = deferred.with_transform(transform)[:]["pixel_values"]
    assert all(torch.equal(a, b) for a, b in zip(expected, got))
    # bytes (as the fashion mosaics store them) decode too
    assert decode_image({"path": None, "bytes": paths[1].read_bytes()}).size == (40, 48)
    paths[0].unlink()
    with pytest.raises(FileNotFoundError, match=rf"image 'a' \({paths[0]}\): file not found"):
        deferred.with_transform(transform)[0]
    with pytest.raises(ValueError, match=r"image 'm' \(in-memory bytes\): cannot decode: UnidentifiedImageError"):
        decode_image({"path": None, "bytes": b"not an image"}, "m")


def test_an_undecodable_image_without_an_image_id_is_named_by_its_row(tmp_path):
    from mlic_hf.data.common import build_split
    from mlic_hf.data.transforms import DecodedImages, with_index_column

    paths = [tmp_path / f"{i}.png" for i in range(3)]
    for seed, path in enumerate(paths):
        _photo(seed).save(path)
    dataset = defer_image_decoding(build_split([{"path": p, "label_ids": [0]} for p in paths], ["x"]))
    dataset = with_index_column(dataset.remove_columns("image_id"))
    paths[2].write_bytes(b"not an image")  # broken after the split was built (its files are checked then)
    transform = BatchTransform(EvalTransform(16, [0.5] * 3, [0.5] * 3))
    with pytest.raises(ValueError, match=rf"the image of row 2 \({paths[2]}\): cannot decode"):
        dataset.with_transform(transform)[1:3]
    with pytest.raises(ValueError, match=rf"the image of row 2 \({paths[2]}\): cannot decode"):
        list(DecodedImages(dataset))


def test_random_resized_crop_box_draws_like_torchvision():
    """Area fraction in the scale range, aspect ratio in [3/4, 4/3], inside the image; over many draws the area
    fractions cover the range as torchvision's ``RandomResizedCrop.get_params`` (same algorithm) does."""
    import math
    import random

    from torchvision.transforms import RandomResizedCrop

    from mlic_hf.data.transforms import random_resized_crop_box

    rng = random.Random(0)
    ours = []
    for _ in range(2000):
        left, top, right, bottom = random_resized_crop_box(200, 150, (0.7, 1.0), rng)
        w, h = right - left, bottom - top
        assert 0 <= left < right <= 200 and 0 <= top < bottom <= 150
        ours.append(w * h / (200 * 150))
        # a fallback crop is the whole image or the largest central crop within the ratios
        assert 3 / 4 - 0.02 <= w / h <= 4 / 3 + 0.02 or (w, h) == (200, 150)
    torch.manual_seed(0)
    theirs = [(lambda t: t[2] * t[3] / (200 * 150))(RandomResizedCrop.get_params(torch.zeros(3, 150, 200),
                                                                              [0.7, 1.0], [3 / 4, 4 / 3]))
              for _ in range(2000)]
    assert min(ours) >= 0.69 and max(ours) <= 1.0
    assert abs(np.mean(ours) - np.mean(theirs)) < 0.01 and abs(np.std(ours) - np.std(theirs)) < 0.01
    assert math.isclose(np.quantile(ours, 0.1), np.quantile(theirs, 0.1), abs_tol=0.02)


def test_a_training_transform_with_a_crop_scale_crops_then_resizes():
    image = Image.fromarray(np.tile(np.arange(64, dtype=np.uint8)[None, :, None] * 4, (48, 1, 3)))  # a horizontal ramp
    plain = TrainTransform(AugmentationConfig(image_size=32, rand_augment="", cutout=0.0, hflip=0.0, seed=1))
    cropped = TrainTransform(AugmentationConfig(image_size=32, rand_augment="", cutout=0.0, hflip=0.0, seed=1,
                                                crop_scale=(0.3, 0.3)))
    a, b = plain(image, index=0), cropped(image, index=0)
    assert a.shape == b.shape == (3, 32, 32)
    # 30 % of the area: the crop covers part of the ramp, so its range of values is narrower than the whole ramp's
    assert (b[0, 0].max() - b[0, 0].min()) < 0.8 * (a[0, 0].max() - a[0, 0].min())
    torch.testing.assert_close(b, cropped(image, index=0), rtol=0, atol=0)  # seeded per sample
    assert not torch.equal(b, cropped(image, index=1))
