from .configuration_resnet_probabilistic import ResNetProbabilisticConfig
from .modeling_resnet_probabilistic import (
    ResNetProbabilisticForMultiLabelImageClassification,
    ResNetProbabilisticPreTrainedModel,
)

__all__ = [
    "ResNetProbabilisticConfig",
    "ResNetProbabilisticForMultiLabelImageClassification",
    "ResNetProbabilisticPreTrainedModel",
]
