"""ResNet-101 "probabilistic" baseline (M1): backbone → global average pooling → linear → per-label sigmoid."""

from __future__ import annotations

import torch
from torch import nn
from transformers.utils import can_return_tuple

from ...modeling_utils import MLICPreTrainedModel, MultiLabelImageClassifierOutput
from .configuration_resnet_probabilistic import ResNetProbabilisticConfig


class ResNetProbabilisticPreTrainedModel(MLICPreTrainedModel):
    config_class = ResNetProbabilisticConfig
    base_model_prefix = "resnet_probabilistic"


class ResNetProbabilisticForMultiLabelImageClassification(ResNetProbabilisticPreTrainedModel):
    """Backbone features → global average pooling → dropout → linear → logits; ``sigmoid(logits)`` gives
    P(y_i = 1 | x) for every label independently. With ``labels`` the configured loss (BCE by default) is returned.

    With ``output_class_maps=True``, ``label_maps`` are the class activation maps (Zhou et al., CVPR 2016) on the last
    feature map: ``W_c · F(h, w) + b_c``. For global average pooling + linear they are exact: a label's map averages
    to its logit (in eval mode, where dropout is the identity).
    """

    def __init__(self, config: ResNetProbabilisticConfig) -> None:
        super().__init__(config)
        self.backbone = self.build_backbone(config)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.backbone.channels[-1], config.num_labels)
        self.post_init()

    def label_layers(self) -> list[nn.Module]:
        """The label set's layers: the classifier."""
        return [self.classifier]

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        *,
        return_dict: bool | None = None,  # handled by @can_return_tuple, which sees keywords only
        output_class_maps: bool | None = None,
        **kwargs,
    ) -> MultiLabelImageClassifierOutput | tuple:
        feature_maps = self.backbone(pixel_values)
        pooled = self.pool(feature_maps[-1]).flatten(1)
        logits = self.classifier(self.dropout(pooled))
        loss = self.compute_loss(logits, labels)
        label_maps = None
        if output_class_maps:
            weight, bias = self.classifier.weight, self.classifier.bias
            label_maps = torch.einsum("ck,bkhw->bchw", weight, feature_maps[-1]) + bias[None, :, None, None]
        output = MultiLabelImageClassifierOutput(
            loss=loss,
            logits=logits,
            feature_maps=tuple(feature_maps) if output_hidden_states else None,
            label_maps=label_maps,
        )
        return output


__all__ = ["ResNetProbabilisticForMultiLabelImageClassification", "ResNetProbabilisticPreTrainedModel"]
