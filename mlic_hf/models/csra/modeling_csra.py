"""CSRA: a backbone's last feature map → class-specific residual attention heads → summed logits."""

from __future__ import annotations

import torch
from torch import nn
from transformers.utils import can_return_tuple

from ...modeling_utils import MLICPreTrainedModel, MultiLabelImageClassifierOutput
from .configuration_csra import MAX_POOLING, CSRAConfig


class CSRAHead(nn.Module):
    """One CSRA head (eqs. 1-5 of the paper, as the official ``CSRA`` module computes them): class scores
    ``s = (m_i · x_j) / ||m_i||`` at every position j from a bias-free 1×1 convolution, then
    ``mean_j s + lam · Σ_j s · softmax_j(T s)`` per label, or ``mean_j s + lam · max_j s`` when ``temperature`` is
    :data:`MAX_POOLING`.

    Returns the logits ``(B, C)`` and the attention over positions ``(B, C, H, W)`` (the softmax, or a one-hot map of
    the maximum for max pooling): non-negative, summing to 1 over the positions.
    """

    def __init__(self, in_channels: int, num_labels: int, temperature: float, lam: float) -> None:
        super().__init__()
        self.temperature = temperature
        self.lam = lam
        self.classifier = nn.Conv2d(in_channels, num_labels, kernel_size=1, bias=False)

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, height, width = features.shape
        norms = self.classifier.weight.flatten(1).norm(dim=1)
        scores = (self.classifier(features) / norms[None, :, None, None]).flatten(2)  # (B, C, HW)
        base = scores.mean(dim=2)
        if self.temperature == MAX_POOLING:
            pooled, where = scores.max(dim=2)
            attention = torch.zeros_like(scores).scatter_(2, where.unsqueeze(2), 1.0)
        else:
            attention = torch.softmax(scores * self.temperature, dim=2)
            pooled = (scores * attention).sum(dim=2)
        return base + self.lam * pooled, attention.view(batch, -1, height, width)


class CSRAPreTrainedModel(MLICPreTrainedModel):
    config_class = CSRAConfig
    base_model_prefix = "csra"


class CSRAForMultiLabelImageClassification(CSRAPreTrainedModel):
    """Backbone → last feature map → ``num_heads`` CSRA heads (:class:`CSRAHead`, each with its own classifier and
    temperature) → the sum of their logits. With ``labels`` the configured loss (BCE averaged over batch and labels,
    as the official code, by default) is returned.

    With ``output_class_maps=True``, ``label_maps`` are the class-specific attention maps on the feature grid: each
    label's attention over the positions, averaged over the heads (a max-pooling head contributes a one-hot map of
    its maximum), so a map sums to 1 over the positions. ``attentions`` holds each head's maps.
    """

    def __init__(self, config: CSRAConfig) -> None:
        super().__init__(config)
        self.backbone = self.build_backbone(config)
        channels = self.backbone.channels[-1]
        self.heads = nn.ModuleList(
            CSRAHead(channels, config.num_labels, temperature, config.lam) for temperature in config.head_temperatures
        )
        self.post_init()

    def label_layers(self) -> list[nn.Module]:
        """The label set's layers: the heads' classifiers."""
        return [self.heads]

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
        outputs = [head(feature_maps[-1]) for head in self.heads]
        logits = torch.stack([head_logits for head_logits, _ in outputs]).sum(dim=0)
        loss = self.compute_loss(logits, labels)
        attentions = tuple(attention for _, attention in outputs) if output_class_maps else None
        return MultiLabelImageClassifierOutput(
            loss=loss,
            logits=logits,
            feature_maps=tuple(feature_maps) if output_hidden_states else None,
            attentions=attentions,
            label_maps=torch.stack(attentions).mean(dim=0) if output_class_maps else None,
        )


__all__ = ["CSRAForMultiLabelImageClassification", "CSRAHead", "CSRAPreTrainedModel"]
