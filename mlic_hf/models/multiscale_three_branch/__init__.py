from .configuration_multiscale_three_branch import MultiScaleThreeBranchConfig
from .modeling_multiscale_three_branch import (
    MultiScaleThreeBranchForMultiLabelImageClassification,
    MultiScaleThreeBranchPreTrainedModel,
)

__all__ = [
    "MultiScaleThreeBranchConfig",
    "MultiScaleThreeBranchForMultiLabelImageClassification",
    "MultiScaleThreeBranchPreTrainedModel",
]
