from .configuration_two_stage_irpe import TwoStageIRPEConfig
from .modeling_two_stage_irpe import TwoStageIRPEForMultiLabelImageClassification, TwoStageIRPEPreTrainedModel

__all__ = ["TwoStageIRPEConfig", "TwoStageIRPEForMultiLabelImageClassification", "TwoStageIRPEPreTrainedModel"]
