"""Per-label spatial maps (``output_class_maps=True`` / ``model.label_maps``) for every registered method."""

import pytest
import torch

import mlic_hf
from mlic_hf.models.multilabel_vpt import MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification
from mlic_hf.models.multilabel_vpt.modeling_multilabel_vpt import last_block_attention

from .tiny_configs import TINY_IMAGE_SIZE, tiny_config

METHODS = list(mlic_hf.METHODS)
IDS = [config_class.model_type for config_class, _ in METHODS]
ATTENTION_MAPS = {"mlic-two-stage-irpe", "mlic-multiscale-three-branch", "mlic-ml-vpt"}


def _model(config_class, model_class, **overrides):
    torch.manual_seed(0)
    return model_class(tiny_config(config_class, **overrides)).eval()


@pytest.mark.parametrize("config_class, model_class", METHODS, ids=IDS)
def test_maps_per_label_on_the_feature_grid(config_class, model_class):
    model = _model(config_class, model_class)
    pixels = torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    with torch.no_grad():
        plain = model(pixel_values=pixels).logits
    model.train()
    out = model.label_maps(pixels)
    assert model.training  # label_maps runs in eval mode and restores the mode
    maps = out.label_maps
    assert maps.ndim == 4 and maps.shape[:2] == (2, model.config.num_labels) and torch.isfinite(maps).all()
    assert maps.shape[-1] > 1 and maps.shape[-2] > 1
    torch.testing.assert_close(out.logits, plain)  # asking for maps changes no prediction
    if config_class.model_type in ATTENTION_MAPS:  # attention: non-negative, summing to 1 over the positions
        assert (maps >= 0).all()
        torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(2, model.config.num_labels), atol=1e-5, rtol=0)
    else:  # M1: class activation maps average exactly to the logits (GAP + linear)
        torch.testing.assert_close(maps.mean((-2, -1)), out.logits, atol=1e-5, rtol=1e-5)
    # different images give different maps (they depend on the image, not only on the label)
    assert not torch.allclose(maps[0], maps[1])


@pytest.mark.parametrize("config_class, model_class", METHODS, ids=IDS)
def test_trainer_sees_only_labels_as_label_inputs(config_class, model_class):
    """transformers' Trainer treats every forward argument whose name contains "label" as a label input (and skips
    the metrics when one is missing): the maps switch is ``output_class_maps`` for that reason."""
    from transformers.utils import find_labels

    assert find_labels(model_class) == ["labels"]


@pytest.mark.parametrize("config_class, model_class", METHODS, ids=IDS)
def test_maps_only_when_asked(config_class, model_class):
    model = _model(config_class, model_class)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    assert out.label_maps is None


def test_m2_maps_are_the_last_decoder_layers_cross_attention():
    model = _model(mlic_hf.TwoStageIRPEConfig, mlic_hf.TwoStageIRPEForMultiLabelImageClassification)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), output_attentions=True,
                    output_class_maps=True)
    torch.testing.assert_close(out.label_maps.flatten(2), out.attentions[-1])


def test_m4_maps_average_the_branches_and_need_region_selection():
    config_class, model_class = mlic_hf.MultiScaleThreeBranchConfig, \
        mlic_hf.MultiScaleThreeBranchForMultiLabelImageClassification
    out = _model(config_class, model_class).label_maps(torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    branches = out.extras["branch_label_maps"]
    assert len(branches) == 3 and out.label_maps.shape[-2:] == max(b.shape[-2:] for b in branches)
    largest = [b for b in branches if b.shape[-2:] == out.label_maps.shape[-2:]]
    assert largest  # the common grid is one branch's own
    with pytest.raises(ValueError, match="region_selection"):
        _model(config_class, model_class, region_selection=False).label_maps(
            torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))


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
