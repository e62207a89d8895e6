"""Official CSRA checkpoints (github.com/Kevinz-code/CSRA, ``ResNet_CSRA`` of ``pipeline/resnet_csra.py``) as mlic_hf
weights and configs.

==========================================================  =====================================================
official                                                    mlic_hf
==========================================================  =====================================================
``conv1.*``, ``bn1.*``, ``layer1``-``layer4`` (torchvision)  ``backbone.body.<same key>`` (timm's ResNet names)
``fc.*`` (torchvision's unused classifier)                   dropped
``classifier.multi_head.N.head.weight`` (C, d, 1, 1)         ``heads.N.classifier.weight``
==========================================================  =====================================================

Images are scaled to [0, 1] without normalisation, as the official ResNet pipeline does. The checkpoint does not
record λ: pass it (``lam``; the official settings are 0.1 on VOC 2007, 0.5 on COCO). The number
of heads is read from the weights and their temperatures are the official table's; the ResNet depth from the blocks.
The official ViT variant (``VIT_CSRA``) is not converted.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ...layers.backbone import features_only_state_dict
from .configuration_csra import CSRAConfig

#: Where the checkpoints this module converts come from.
OFFICIAL_REPOSITORY = "https://github.com/Kevinz-code/CSRA"

_HEAD = re.compile(r"^classifier\.multi_head\.(\d+)\.head\.weight$")
#: (blocks in layer3, has conv3: a bottleneck) -> torchvision ResNet
_DEPTHS = {(2, False): "resnet18", (6, False): "resnet34", (6, True): "resnet50", (23, True): "resnet101",
           (36, True): "resnet152"}


def _resnet_name(state: Mapping[str, torch.Tensor], source: str) -> str:
    blocks = {int(m.group(1)) for k in state if (m := re.match(r"^layer3\.(\d+)\.", k))}
    bottleneck = any(k.startswith("layer1.0.conv3.") for k in state)
    key = (max(blocks) + 1 if blocks else 0, bottleneck)
    if key not in _DEPTHS:
        raise ValueError(f"{source}: no torchvision ResNet has {key[0]} blocks in layer3 "
                         f"({'bottleneck' if bottleneck else 'basic'} blocks): not an official ResNet CSRA checkpoint")
    return _DEPTHS[key]


def convert_checkpoint(state_dict: Mapping[str, torch.Tensor], *, source: str = "the checkpoint",
                       lam: float | None = None, **options) -> tuple[CSRAConfig, dict]:
    """Config and weights of an official ResNet CSRA ``state_dict``; ``lam`` (λ) is required, ``options`` are further
    config fields (e.g. ``image_size``, ``id2label``)."""
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    heads = {int(m.group(1)): v for k, v in state.items() if (m := _HEAD.match(k))}
    if not heads:
        raise ValueError(f"{source}: not an official CSRA state dict (no classifier.multi_head.N.head.weight)")
    if lam is None:
        raise ValueError(f"{source}: official CSRA checkpoints do not record λ: pass it (lam=0.1 for the VOC 2007 "
                         "setting, lam=0.5 for COCO)")
    num_labels = next(iter(heads.values())).shape[0]
    backbone = _resnet_name(state, source)
    options.setdefault("id2label", {i: f"LABEL_{i}" for i in range(num_labels)})
    # the official ResNet pipeline scales images to [0, 1] without ImageNet normalisation
    options.setdefault("image_mean", [0.0, 0.0, 0.0])
    options.setdefault("image_std", [1.0, 1.0, 1.0])
    config = CSRAConfig(backbone=backbone, num_heads=len(heads), lam=float(lam), **options)
    weights = {f"heads.{i}.classifier.weight": heads[i] for i in sorted(heads)}
    body = {k: v for k, v in state.items() if not k.startswith("classifier.")}
    weights.update({f"backbone.body.{k}": v for k, v in
                    features_only_state_dict(backbone, body, config.out_indices, source=source).items()})
    return config, weights


__all__ = ["OFFICIAL_REPOSITORY", "convert_checkpoint"]
