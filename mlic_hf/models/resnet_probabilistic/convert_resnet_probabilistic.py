"""Official ASL checkpoints (github.com/Alibaba-MIIL/ASL: TResNet-M/L/XL with global average pooling and one linear
layer, trained with the asymmetric loss; saved as ``{"model": state_dict, "num_classes": ..., "idx_to_class": ...}``)
as checkpoints of M1's architecture (backbone → global average pooling → linear), the same network.

==========================================  ============================================================================
official                                    mlic_hf
==========================================  ============================================================================
``body.*`` (the official TResNet)           ``backbone.body.*`` through timm's TResNet ``checkpoint_filter_fn``
                                            (InplaceABN to BatchNorm) and its ``features_only`` names
``head.fc.weight`` / ``head.fc.bias``       ``classifier.weight`` / ``classifier.bias``
==========================================  ============================================================================

The TResNet variant is read from the classifier's width (2,048: ``tresnet_m``, 2,432: ``tresnet_l``, 2,656:
``tresnet_xl``) unless the ``backbone`` option names it; the image size is an option (the official models: 224 or 448
px, XL 640). Images are scaled to [0, 1] without normalisation, as the official code and timm's TResNet configuration
do. The loss is ASL at its paper's setting (γ- 4, γ+ 0, clip 0.05).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ...layers.backbone import features_only_state_dict
from .configuration_resnet_probabilistic import ResNetProbabilisticConfig

#: Where the checkpoints this module converts come from.
OFFICIAL_REPOSITORY = "https://github.com/Alibaba-MIIL/ASL"

#: the classifier's input width -> timm's TResNet of that width
TRESNET_BY_WIDTH = {2048: "tresnet_m", 2432: "tresnet_l", 2656: "tresnet_xl"}


def convert_checkpoint(state_dict: Mapping[str, torch.Tensor], *, source: str = "the checkpoint",
                       backbone: str | None = None, **options) -> tuple[ResNetProbabilisticConfig, dict]:
    """Config and weights of an official ASL ``state_dict`` (``checkpoint["model"]``); ``options`` are further
    config fields (e.g. ``image_size``, ``id2label``)."""
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if "head.fc.weight" not in state:
        raise ValueError(f"{source}: not an official ASL (TResNet) state dict (no head.fc.weight)")
    weight, bias = state["head.fc.weight"], state["head.fc.bias"]
    width = weight.shape[1]
    if backbone is None:
        if width not in TRESNET_BY_WIDTH:
            raise ValueError(f"{source}: a classifier of width {width} is no TResNet's (2048 M, 2432 L, 2656 XL): "
                             "name the timm backbone (backbone=...)")
        backbone = TRESNET_BY_WIDTH[width]
    options.setdefault("id2label", {i: f"LABEL_{i}" for i in range(weight.shape[0])})
    options.setdefault("image_mean", [0.0, 0.0, 0.0])
    options.setdefault("image_std", [1.0, 1.0, 1.0])
    config = ResNetProbabilisticConfig(backbone=backbone, loss="asl", **options)
    weights = {"classifier.weight": weight, "classifier.bias": bias}
    body = {k: v for k, v in state.items() if not k.startswith("head.")}
    weights.update({f"backbone.body.{k}": v for k, v in
                    features_only_state_dict(backbone, body, config.out_indices, source=source).items()})
    return config, weights


__all__ = ["OFFICIAL_REPOSITORY", "TRESNET_BY_WIDTH", "convert_checkpoint"]
