"""M2: the two-stage Transformer with image relative position encoding (iRPE) and the asymmetric polynomial loss.

The method's folder: configuration, modeling, the layers only it uses and its ``--preset``; ``METHOD`` is what
``mlic_hf.models`` registers."""

from .configuration_two_stage_irpe import TwoStageIRPEConfig
from .modeling_two_stage_irpe import TwoStageIRPEForMultiLabelImageClassification, TwoStageIRPEPreTrainedModel
from .preset import PRESETS

#: (config class, model class): what ``mlic_hf.models`` registers
METHOD = (TwoStageIRPEConfig, TwoStageIRPEForMultiLabelImageClassification)

__all__ = ["METHOD", "PRESETS", "TwoStageIRPEConfig", "TwoStageIRPEForMultiLabelImageClassification", "TwoStageIRPEPreTrainedModel"]
