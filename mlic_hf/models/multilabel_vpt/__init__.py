"""M3: ML-VPT, multi-label visual prompt tuning with correlative and discriminative label groups (Ma et al., CVPR 2025).

The method's folder: configuration, modeling, the layers only it uses and its ``--preset``; ``METHOD`` is what
``mlic_hf.models`` registers."""

from . import hybrid_vit  # noqa: F401  (registers the offline hybrid ViT, vit_tiny_efficientnet_lite0_s16, with timm)
from .configuration_multilabel_vpt import MultiLabelVPTConfig
from .modeling_multilabel_vpt import MultiLabelVPTForMultiLabelImageClassification, MultiLabelVPTPreTrainedModel
from .preset import PRESETS

#: (config class, model class): what ``mlic_hf.models`` registers
METHOD = (MultiLabelVPTConfig, MultiLabelVPTForMultiLabelImageClassification)

__all__ = ["METHOD", "PRESETS", "MultiLabelVPTConfig", "MultiLabelVPTForMultiLabelImageClassification", "MultiLabelVPTPreTrainedModel"]
