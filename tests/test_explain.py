"""``mlic_hf.explain`` and ``scripts/predict.py --explain``: label maps drawn on real photos."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mlic_hf
from mlic_hf.explain import explain_files, explain_images, normalise, overlay, resize_maps

from .models.tiny_configs import TINY_IMAGE_SIZE, tiny_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Two scikit-image photographs of different sizes and aspect ratios."""
    from skimage import data

    folder = tmp_path_factory.mktemp("photos")
    Image.fromarray(data.astronaut()).resize((120, 90)).save(folder / "astronaut.png")
    Image.fromarray(data.coffee()).save(folder / "coffee.jpg")
    return sorted(folder.iterdir())


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    config = tiny_config(mlic_hf.ResNetProbabilisticConfig, thresholds=[0.0, 1.0, 1.0, 0.0])
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config)
    folder = tmp_path_factory.mktemp("ckpt")
    model.save_pretrained(folder)
    mlic_hf.MLICImageProcessor.from_model_config(config).save_pretrained(folder)
    return folder


def test_maps_are_stretched_onto_the_whole_image(photos):
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(
        tiny_config(mlic_hf.ResNetProbabilisticConfig)).eval()
    (explanation,) = explain_images(model, [photos[0]])
    assert explanation.maps.shape == (4, 90, 120) and explanation.image.size == (120, 90)
    with torch.no_grad():
        pixels = mlic_hf.MLICImageProcessor.from_model_config(model.config)(
            images=[explanation.image], return_tensors="pt")["pixel_values"]
        expected = torch.sigmoid(model(pixel_values=pixels).logits[0]).numpy()
    np.testing.assert_allclose(explanation.scores, expected, atol=1e-6)


def test_resize_normalise_and_overlay():
    maps = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    big = resize_maps(maps, (4, 8))
    assert big.shape == (1, 4, 8) and big[0, :, 0].max() < big[0, :, -1].min()  # the hot column stays on the right
    assert normalise(np.full((3, 3), 2.0)).max() == 0 and normalise(np.arange(4.0)).tolist() == [0, 1 / 3, 2 / 3, 1]
    image = Image.new("RGB", (8, 4), (255, 255, 255))
    drawn = np.asarray(overlay(image, big[0], alpha=1.0))
    assert drawn.shape == (4, 8, 3)
    assert drawn[0, -1, 0] > drawn[0, -1, 2] and drawn[0, 0, 2] > drawn[0, 0, 0]  # jet: hot red, cold blue


def test_explain_files_writes_one_figure_per_photo_with_the_predicted_labels(checkpoint, photos, tmp_path):
    from mlic_hf.inference import load_model

    model = load_model(str(checkpoint))
    written = explain_files(model, photos, tmp_path / "maps")
    assert [p.name for p in written] == ["astronaut_labels.png", "coffee_labels.png"]
    (explanation,) = explain_images(model, [photos[0]])
    assert explanation.shown_labels(np.asarray(model.config.thresholds)) == sorted(
        [0, 3], key=lambda i: -explanation.scores[i])  # the calibrated thresholds pick labels 0 and 3
    figure = Image.open(written[0])
    assert figure.width > 3 * figure.height / 2  # image + two overlays side by side
    assert np.asarray(figure.convert("L")).std() > 10  # drawn content, not a blank canvas


def test_predict_script_explain_flag(checkpoint, photos, tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("_predict_script", REPO / "scripts" / "predict.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    out = tmp_path / "explained"
    assert script.main([str(p) for p in photos] + ["--checkpoint", str(checkpoint), "--explain", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["astronaut_labels.png", "coffee_labels.png"]
    assert "wrote 2 label-map figure(s)" in capsys.readouterr().out
