"""Query2Label (Liu et al., 2021): label embeddings query a backbone's position-encoded last feature map in a
Transformer decoder, fed as the official code feeds it.

The method's folder: configuration, modeling and its ``--preset``; ``METHOD`` is what ``mlic_hf.models`` registers."""

from .configuration_query2label import Query2LabelConfig
from .modeling_query2label import Query2LabelForMultiLabelImageClassification, Query2LabelPreTrainedModel
from .preset import PRESETS

#: (config class, model class): what ``mlic_hf.models`` registers
METHOD = (Query2LabelConfig, Query2LabelForMultiLabelImageClassification)

__all__ = ["METHOD", "PRESETS", "Query2LabelConfig", "Query2LabelForMultiLabelImageClassification",
           "Query2LabelPreTrainedModel"]
