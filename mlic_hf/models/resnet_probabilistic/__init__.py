"""M1: the ResNet-101 "probabilistic" baseline (backbone → global average pooling → linear → per-label sigmoid).

The method's folder: configuration, modeling, the layers only it uses and its ``--preset``; ``METHOD`` is what
``mlic_hf.models`` registers."""

from .configuration_resnet_probabilistic import ResNetProbabilisticConfig
from .modeling_resnet_probabilistic import (
    ResNetProbabilisticForMultiLabelImageClassification,
    ResNetProbabilisticPreTrainedModel,
)
from .preset import PRESETS

#: (config class, model class): what ``mlic_hf.models`` registers
METHOD = (ResNetProbabilisticConfig, ResNetProbabilisticForMultiLabelImageClassification)

__all__ = [
    "METHOD",
    "PRESETS",
    "ResNetProbabilisticConfig",
    "ResNetProbabilisticForMultiLabelImageClassification",
    "ResNetProbabilisticPreTrainedModel",
]
