"""ONNX export of every registered method: onnxruntime's logits equal PyTorch's on real photos at any batch size."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import mlic_hf
from mlic_hf.export import ONNXMultiLabelClassifier, check_export, export_onnx
from mlic_hf.image_processing import MLICImageProcessor

from .models.method_facts import registered_methods
from .models.tiny_configs import tiny_config

REPO = Path(__file__).resolve().parents[1]
METHODS = registered_methods()
IDS = [config_class.model_type for config_class, _ in METHODS]


@pytest.fixture(scope="module")
def photos():
    from skimage import data

    return [Image.fromarray(data.astronaut()), Image.fromarray(data.coffee()), Image.fromarray(data.chelsea())]


@pytest.mark.parametrize("config_class, model_class", METHODS, ids=IDS)
def test_onnxruntime_matches_pytorch_on_photos(config_class, model_class, photos, tmp_path):
    torch.manual_seed(0)
    model = model_class(tiny_config(config_class, thresholds=[0.3, 0.4, 0.5, 0.6])).eval()
    processor = MLICImageProcessor.from_model_config(model.config)
    path = export_onnx(model, tmp_path, processor)
    assert path == tmp_path / "model.onnx"
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == config_class.model_type and saved["thresholds"] == [0.3, 0.4, 0.5, 0.6]
    assert (tmp_path / "preprocessor_config.json").is_file()
    runner = ONNXMultiLabelClassifier(tmp_path)
    for batch in (photos[:1], photos):  # traced at batch 2: batches of 1 and 3 run too
        pixels = processor(images=batch, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            expected = model(pixel_values=pixels).logits.numpy()
        np.testing.assert_allclose(runner.logits(pixels.numpy()), expected, atol=1e-4, rtol=0)
        np.testing.assert_allclose(runner(batch), 1 / (1 + np.exp(-expected)), atol=1e-5, rtol=0)
    assert check_export(model, tmp_path, photos) < 1e-4
    # the eager model still runs after the export traced it (M2's bucket-table cache once kept a traced tensor)
    with torch.no_grad():
        again = model(pixel_values=processor(images=photos, return_tensors="pt")["pixel_values"]).logits.numpy()
    np.testing.assert_allclose(runner.logits(processor(images=photos, return_tensors="np")["pixel_values"]), again,
                               atol=1e-4, rtol=0)
    with torch.no_grad():
        size = model.config.image_size
        assert type(model(pixel_values=torch.zeros(1, 3, size, size)).logits) is torch.Tensor


def test_export_script_checks_real_photos(photos, tmp_path, capsys):
    torch.manual_seed(0)
    config = tiny_config(mlic_hf.ResNetProbabilisticConfig)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(tmp_path / "ckpt")
    MLICImageProcessor.from_model_config(config).save_pretrained(tmp_path / "ckpt")
    folder = tmp_path / "photos"
    folder.mkdir()
    for index, photo in enumerate(photos):
        photo.save(folder / f"{index}.jpg")
    spec = importlib.util.spec_from_file_location("_export_script", REPO / "scripts" / "export_onnx.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert script.main(["--checkpoint", str(tmp_path / "ckpt"), "--output_dir", str(tmp_path / "onnx"),
                        "--check", str(folder)]) == 0
    assert "onnxruntime matches PyTorch on 3 image(s)" in capsys.readouterr().out
    assert script.main(["--checkpoint", str(tmp_path / "ckpt"), "--output_dir", str(tmp_path / "o2"),
                        "--opset", "11"]) == 2
    assert "--opset must be at least 17" in capsys.readouterr().err
    assert script.main(["--checkpoint", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "o3")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing" in err[0]


def test_missing_graph_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="has no model.onnx"):
        ONNXMultiLabelClassifier(tmp_path)


def _export_script():
    spec = importlib.util.spec_from_file_location("_export_script", REPO / "scripts" / "export_onnx.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    return script


@pytest.mark.parametrize("atol", ["-1", "nan"])
def test_export_script_refuses_a_negative_or_nan_atol_before_exporting(atol, tmp_path, capsys):
    config = tiny_config(mlic_hf.ResNetProbabilisticConfig)
    mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config).save_pretrained(tmp_path / "ckpt")
    (tmp_path / "img.png").write_bytes(b"")  # --check needs a file; it is never read
    assert _export_script().main(["--checkpoint", str(tmp_path / "ckpt"), "--output_dir", str(tmp_path / "onnx"),
                                  "--check", str(tmp_path / "img.png"), "--atol", atol]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--atol must be a non-negative number" in err[0] and atol in err[0]
    assert not (tmp_path / "onnx").exists()  # refused before the export


@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"),
                                     RuntimeError("16384 bytes requested and 0 written")])
def test_a_full_disk_during_export_names_the_file_and_the_cause(failure, tmp_path, monkeypatch):
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(tiny_config(mlic_hf.ResNetProbabilisticConfig))

    def full_disk(module, args, path, **kwargs):
        Path(path).write_bytes(b"partial")
        raise failure

    monkeypatch.setattr(torch.onnx, "export", full_disk)
    with pytest.raises(OSError) as error:
        export_onnx(model, tmp_path)
    message = str(error.value)
    assert str(tmp_path / "model.onnx") in message
    assert ("No space left on device" if isinstance(failure, OSError) else "requested and 0 written") in message
    assert "MiB free" in message
    assert not (tmp_path / "model.onnx").exists()  # a partial graph would pass for an export
