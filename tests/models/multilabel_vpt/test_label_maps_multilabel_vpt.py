"""ML-VPT's label maps (the shared checks are in ``tests/models/test_label_maps.py``)."""

import pytest
import torch

from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification
from mlic_hf.models.multilabel_vpt.modeling_multilabel_vpt import last_block_attention

from ..tiny_configs import TINY_IMAGE_SIZE, tiny_config


def _model(config_class, model_class, **overrides):
    torch.manual_seed(0)
    return model_class(tiny_config(config_class, **overrides)).eval()


def test_ml_vpt_attention_is_timms_own():
    """The weights recomputed from the last block's input equal those timm's non-fused attention path applies."""
    model = _model(MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification)
    attention = model.vit.blocks[-1].attn
    attention.fused_attn = False
    seen = {}
    attention.attn_drop.register_forward_hook(lambda module, args, output: seen.setdefault("weights", output))
    inputs = {}
    attention.register_forward_pre_hook(
        lambda module, args, kwargs: inputs.update(x=args[0], mask=kwargs.get("attn_mask")), with_kwargs=True)
    with torch.no_grad():
        model(pixel_values=torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
        recomputed = last_block_attention(attention, inputs["x"], inputs["mask"])
    torch.testing.assert_close(recomputed, seen["weights"].mean(1), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("variant", ["linear-probe", "vpt", "full-finetune"])
def test_ml_vpt_baselines_map_the_head_over_patch_tokens(variant):
    model = _model(MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification, variant=variant,
                   backbone_kwargs={**tiny_config(MultiLabelVPTConfig).backbone_kwargs, "global_pool": "avg",
                                    "class_token": False, "fc_norm": False})
    out = model.label_maps(torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    # average pooling of normalised tokens + linear head: the patch-logit maps average exactly to the logits
    torch.testing.assert_close(out.label_maps.mean((-2, -1)), out.logits, atol=1e-5, rtol=1e-5)


def test_ml_vpt_labels_with_their_own_gates_get_their_own_maps():
    model = _model(MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification)
    maps = model.label_maps(torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)).label_maps[0]
    assert len({tuple(m.flatten().round(decimals=6).tolist()) for m in maps}) == maps.shape[0]
