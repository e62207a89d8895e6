"""M4: the multi-scale three-branch Transformer with hierarchical scale attention (Zhong et al., CMC 2025).

The method's folder: configuration, modeling, the layers only it uses and its ``--preset``; ``METHOD`` is what
``mlic_hf.models`` registers."""

from .configuration_multiscale_three_branch import MultiScaleThreeBranchConfig
from .modeling_multiscale_three_branch import (
    MultiScaleThreeBranchForMultiLabelImageClassification,
    MultiScaleThreeBranchPreTrainedModel,
)
from .preset import PRESETS

#: (config class, model class): what ``mlic_hf.models`` registers
METHOD = (MultiScaleThreeBranchConfig, MultiScaleThreeBranchForMultiLabelImageClassification)

__all__ = [
    "METHOD",
    "PRESETS",
    "MultiScaleThreeBranchConfig",
    "MultiScaleThreeBranchForMultiLabelImageClassification",
    "MultiScaleThreeBranchPreTrainedModel",
]
