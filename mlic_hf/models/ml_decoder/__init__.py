"""ML-Decoder (Ridnik et al., WACV 2023): group queries, one cross-attention-only decoder layer and group
fully-connected pooling over a backbone's last feature map.

The method's folder: configuration, modeling (with the layers only it uses) and its ``--preset``; ``METHOD`` is what
``mlic_hf.models`` registers."""

from .configuration_ml_decoder import MLDecoderConfig
from .modeling_ml_decoder import MLDecoderForMultiLabelImageClassification, MLDecoderPreTrainedModel
from .preset import PRESETS

#: (config class, model class): what ``mlic_hf.models`` registers
METHOD = (MLDecoderConfig, MLDecoderForMultiLabelImageClassification)

__all__ = ["METHOD", "PRESETS", "MLDecoderConfig", "MLDecoderForMultiLabelImageClassification",
           "MLDecoderPreTrainedModel"]
