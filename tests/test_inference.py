"""Inference preprocesses with the checkpoint's own image processor, exactly as the pipeline does."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from transformers import pipeline

import mlic_hf
from mlic_hf.data.transforms import EvalTransform
from mlic_hf.image_processing import MLICImageProcessor
from mlic_hf.inference import load_checkpoint, load_model, load_processor, predict_files, predict_probabilities

from .models.tiny_configs import tiny_config


@pytest.fixture()
def checkpoint(tmp_path):
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(
        tiny_config(mlic_hf.ResNetProbabilisticConfig)).eval()
    model.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def _photo(tmp_path):
    from skimage import data

    path = tmp_path / "coffee.jpg"
    Image.fromarray(data.coffee()).save(path)
    return path


def test_predictions_follow_the_saved_processor_not_the_config(checkpoint, tmp_path):
    # a processor that differs from what the config implies (e.g. edited by a user, or saved by another tool)
    processor_file = checkpoint / "preprocessor_config.json"
    settings = json.loads(processor_file.read_text())
    settings.update(image_mean=[0.2, 0.3, 0.4], image_std=[0.5, 0.5, 0.5], size={"height": 48, "width": 48})
    processor_file.write_text(json.dumps(settings))
    photo = _photo(tmp_path)
    model, processor = load_checkpoint(str(checkpoint))
    assert processor.size == {"height": 48, "width": 48} and not model.training
    assert processor.to_dict() == load_processor(str(checkpoint)).to_dict()
    rows, _ = predict_files(model, [photo], progress=False, processor=processor)
    classifier = pipeline("image-classification", model=str(checkpoint))
    expected = {r["label"]: r["score"] for r in classifier(str(photo), top_k=model.config.num_labels)}
    assert rows[0]["scores"] == pytest.approx(expected, abs=1e-6)
    from_config = predict_probabilities(model, [Image.open(photo)], progress=False)[0]
    assert not np.allclose(from_config, [rows[0]["scores"][model.config.id2label[i]] for i in range(4)], atol=1e-4)


def test_processor_falls_back_to_the_config_when_missing(checkpoint, tmp_path, caplog):
    (checkpoint / "preprocessor_config.json").unlink()
    model = load_model(str(checkpoint))
    processor = load_processor(str(checkpoint), model.config)
    assert isinstance(processor, MLICImageProcessor) and processor.size["height"] == model.config.image_size
    assert "no preprocessor_config.json" in caplog.text


def test_training_eval_transform_matches_the_processor(tmp_path):
    """The eval split during training is preprocessed like the saved processor will do at inference."""
    from skimage import data

    processor = MLICImageProcessor(size={"height": 96, "width": 96}, image_mean=[0.5, 0.4, 0.3],
                                   image_std=[0.2, 0.25, 0.3])
    transform = EvalTransform(96, [0.5, 0.4, 0.3], [0.2, 0.25, 0.3])
    for array in (data.astronaut(), data.camera(), data.coffee()):
        image = Image.fromarray(array)
        expected = processor(images=image, return_tensors="pt")["pixel_values"][0]
        torch.testing.assert_close(transform(image), expected, rtol=0, atol=1e-5)


def test_load_checkpoint_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint folder './nowhere'"):
        load_checkpoint("./nowhere")
    (tmp_path / "weights.safetensors").write_bytes(b"")
    with pytest.raises(NotADirectoryError, match="is a file: pass the checkpoint folder"):
        load_checkpoint(str(tmp_path / "weights.safetensors"))
