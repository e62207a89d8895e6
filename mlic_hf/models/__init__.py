"""Every mlic_hf method: one sub-package each, registered with the Auto classes by ``import mlic_hf``."""

from .resnet_probabilistic import (
    ResNetProbabilisticConfig,
    ResNetProbabilisticForMultiLabelImageClassification,
    ResNetProbabilisticPreTrainedModel,
)

#: (config class, model class) of every method, in the order they are registered.
METHODS = [
    (ResNetProbabilisticConfig, ResNetProbabilisticForMultiLabelImageClassification),
]

__all__ = [
    "METHODS",
    "ResNetProbabilisticConfig",
    "ResNetProbabilisticForMultiLabelImageClassification",
    "ResNetProbabilisticPreTrainedModel",
]
