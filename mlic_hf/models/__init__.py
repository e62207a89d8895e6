"""Every mlic_hf method: one sub-package each, registered with the Auto classes by ``import mlic_hf``."""

from .resnet_probabilistic import (
    ResNetProbabilisticConfig,
    ResNetProbabilisticForMultiLabelImageClassification,
    ResNetProbabilisticPreTrainedModel,
)

from .two_stage_irpe import (
    TwoStageIRPEConfig,
    TwoStageIRPEForMultiLabelImageClassification,
    TwoStageIRPEPreTrainedModel,
)

#: (config class, model class) of every method, in the order they are registered.
METHODS = [
    (ResNetProbabilisticConfig, ResNetProbabilisticForMultiLabelImageClassification),
    (TwoStageIRPEConfig, TwoStageIRPEForMultiLabelImageClassification),
]

__all__ = [
    "METHODS",
    "ResNetProbabilisticConfig",
    "ResNetProbabilisticForMultiLabelImageClassification",
    "ResNetProbabilisticPreTrainedModel",
    "TwoStageIRPEConfig",
    "TwoStageIRPEForMultiLabelImageClassification",
    "TwoStageIRPEPreTrainedModel",
]
