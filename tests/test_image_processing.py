import numpy as np
import pytest
import torch
from PIL import Image

import mlic_hf
from mlic_hf import MLICImageProcessor, load_image, to_rgb_array


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(12, 10, 3), dtype=np.uint8)


def test_modes_are_converted_not_rejected(rgb):
    gray = rgb[..., 0]
    assert np.array_equal(to_rgb_array(Image.fromarray(gray)), np.repeat(gray[..., None], 3, axis=-1))
    assert np.array_equal(to_rgb_array(Image.fromarray(rgb)), rgb)
    # RGBA: fully opaque keeps the colours, fully transparent becomes white
    alpha = np.full(rgb.shape[:2] + (1,), 255, dtype=np.uint8)
    assert np.array_equal(to_rgb_array(Image.fromarray(np.concatenate([rgb, alpha], -1))), rgb)
    clear = np.concatenate([rgb, np.zeros_like(alpha)], -1)
    assert (to_rgb_array(Image.fromarray(clear)) == 255).all()
    assert (to_rgb_array(clear) == 255).all()
    # CMYK: pure cyan is (0, 255, 255) in RGB
    cmyk = Image.new("CMYK", (3, 2), (255, 0, 0, 0))
    assert to_rgb_array(cmyk)[0, 0].tolist() == [0, 255, 255]
    # palette and 1-bit
    assert to_rgb_array(Image.fromarray(rgb).convert("P")).shape == rgb.shape
    assert to_rgb_array(Image.fromarray(gray > 127)).max() == 255


def test_16_bit_and_float_images_are_rescaled_not_clipped(rgb, tmp_path):
    gray8 = rgb[..., 0]
    gray16 = gray8.astype(np.uint16) * 257  # the same picture at 16 bits: 255 -> 65535
    expected = np.repeat(gray8[..., None], 3, axis=-1)
    assert np.array_equal(to_rgb_array(gray16), expected)
    assert np.array_equal(to_rgb_array(Image.fromarray(gray16)), expected)
    Image.fromarray(gray16).save(tmp_path / "g16.png")
    assert np.array_equal(np.asarray(load_image(tmp_path / "g16.png")), expected)
    as_float = gray8.astype(np.float32) / 255.0
    assert np.array_equal(to_rgb_array(as_float), expected)
    assert np.array_equal(to_rgb_array(torch.from_numpy(rgb).permute(2, 0, 1)), rgb)  # CHW tensor


def test_bad_images_give_clear_errors(tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    with pytest.raises(ValueError, match="notes.jpg"):
        load_image(not_an_image)
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        load_image(tmp_path / "nowhere.png")
    with pytest.raises(ValueError, match="channels"):
        to_rgb_array(np.zeros((5, 5, 7), dtype=np.uint8))
    with pytest.raises(ValueError, match="NaN"):
        to_rgb_array(np.full((4, 4), np.nan, dtype=np.float32))


def test_processor_resizes_and_normalises(rgb):
    config = mlic_hf.ResNetProbabilisticConfig(image_size=32, image_mean=[0.5] * 3, image_std=[0.25] * 3)
    processor = MLICImageProcessor.from_model_config(config)
    pixel_values = processor(images=Image.fromarray(rgb), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 32, 32)
    flat = processor(images=np.full((20, 30, 3), 255, dtype=np.uint8), return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(flat, torch.full((1, 3, 32, 32), (1.0 - 0.5) / 0.25))
    # a 16-bit array and its 8-bit twin give the same input
    gray8 = rgb[..., 0]
    a = processor(images=gray8, return_tensors="pt")["pixel_values"]
    b = processor(images=gray8.astype(np.uint16) * 257, return_tensors="pt")["pixel_values"]
    torch.testing.assert_close(a, b)


def test_multilabel_pipeline_reads_16_bit_files_correctly(tmp_path, rgb):
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=32, num_labels=3)
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).eval()
    model.save_pretrained(tmp_path / "ckpt")
    gray8 = rgb[..., 0]
    Image.fromarray(gray8).save(tmp_path / "g8.png")
    Image.fromarray(gray8.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    classifier = mlic_hf.multilabel_pipeline(str(tmp_path / "ckpt"))
    scores8 = {r["label"]: r["score"] for r in classifier(str(tmp_path / "g8.png"))}
    scores16 = {r["label"]: r["score"] for r in classifier(str(tmp_path / "g16.png"))}
    assert scores8.keys() == scores16.keys() and len(scores8) == 3
    for label in scores8:
        assert scores16[label] == pytest.approx(scores8[label], abs=1e-6)
    with pytest.raises(ValueError, match="not.png"):
        (tmp_path / "not.png").write_bytes(b"\x00\x01")
        classifier(str(tmp_path / "not.png"))
