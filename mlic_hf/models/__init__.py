"""Every mlic_hf method: one sub-package each, registered with the Auto classes by ``import mlic_hf``."""

from .resnet_probabilistic import (
    ResNetProbabilisticConfig,
    ResNetProbabilisticForMultiLabelImageClassification,
    ResNetProbabilisticPreTrainedModel,
)

from .multilabel_vpt import (
    MultiLabelVPTConfig,
    MultiLabelVPTForMultiLabelImageClassification,
    MultiLabelVPTPreTrainedModel,
)
from .multiscale_three_branch import (
    MultiScaleThreeBranchConfig,
    MultiScaleThreeBranchForMultiLabelImageClassification,
    MultiScaleThreeBranchPreTrainedModel,
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
    (MultiScaleThreeBranchConfig, MultiScaleThreeBranchForMultiLabelImageClassification),
    (MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification),
]

__all__ = [
    "METHODS",
    "MultiLabelVPTConfig",
    "MultiLabelVPTForMultiLabelImageClassification",
    "MultiLabelVPTPreTrainedModel",
    "MultiScaleThreeBranchConfig",
    "MultiScaleThreeBranchForMultiLabelImageClassification",
    "MultiScaleThreeBranchPreTrainedModel",
    "ResNetProbabilisticConfig",
    "ResNetProbabilisticForMultiLabelImageClassification",
    "ResNetProbabilisticPreTrainedModel",
    "TwoStageIRPEConfig",
    "TwoStageIRPEForMultiLabelImageClassification",
    "TwoStageIRPEPreTrainedModel",
]
