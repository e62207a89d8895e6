"""CSRA: class-specific residual attention (Zhu & Wu, ICCV 2021) over a backbone's last feature map.

The method's folder: configuration, modeling and its ``--preset``; ``METHOD`` is what ``mlic_hf.models`` registers."""

from .configuration_csra import CSRAConfig
from .modeling_csra import CSRAForMultiLabelImageClassification, CSRAPreTrainedModel
from .preset import PRESETS

#: (config class, model class): what ``mlic_hf.models`` registers
METHOD = (CSRAConfig, CSRAForMultiLabelImageClassification)

__all__ = ["METHOD", "PRESETS", "CSRAConfig", "CSRAForMultiLabelImageClassification", "CSRAPreTrainedModel"]
