"""ML-Decoder: a backbone's last feature map → projection + ReLU → group queries → cross-attention-only decoder →
group fully-connected pooling."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.utils import can_return_tuple

from ...modeling_utils import MLICPreTrainedModel, MultiLabelImageClassifierOutput
from .configuration_ml_decoder import MLDecoderConfig


class MLDecoderLayer(GradientCheckpointingLayer):
    """The official ``TransformerDecoderLayerOptimal``: ``q = norm1(q + dropout(q))`` (where a decoder layer's
    self-attention would add its output: in evaluation the queries are doubled), cross-attention to the tokens
    (no position embeddings), residual + ``norm2``, ReLU FFN, residual + ``norm3``."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model)
        self.cross_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm2 = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm3 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, need_weights: bool = False):
        queries = self.norm1(queries + self.dropout(queries))
        attended, weights = self.cross_attn(queries, memory, memory, need_weights=need_weights)
        queries = self.norm2(queries + self.dropout(attended))
        queries = self.norm3(queries + self.dropout(self.linear2(self.dropout(F.relu(self.linear1(queries))))))
        return queries, weights


class GroupFullyConnected(nn.Module):
    """Group fully-connected pooling: query g's output ``h_g`` (``d``) times its own ``d × k`` matrix gives the logits
    of labels ``g·k .. g·k + k - 1``; the first ``num_labels`` are kept and a per-label bias added (the official
    ``GroupFC`` with ``duplicate_pooling`` and ``duplicate_pooling_bias``)."""

    def __init__(self, num_queries: int, d_model: int, labels_per_query: int, num_labels: int) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.weight = nn.Parameter(torch.empty(num_queries, d_model, labels_per_query))
        self.bias = nn.Parameter(torch.empty(num_labels))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """The official init: Xavier normal weights, zero biases (through transformers' ``initialization``, so that
        weights loaded by ``from_pretrained`` are not overwritten)."""
        init.xavier_normal_(self.weight)
        init.zeros_(self.bias)

    def forward(self, query_outputs: torch.Tensor) -> torch.Tensor:
        logits = torch.einsum("bgd,gdk->bgk", query_outputs, self.weight).flatten(1)
        return logits[:, : self.num_labels] + self.bias


class GroupQueries(nn.Module):
    """The group queries (``num_queries × d``): standard-normal random vectors, as ``nn.Embedding`` initialises the
    official ones, fixed unless ``learnable``."""

    def __init__(self, num_queries: int, d_model: int, learnable: bool) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_queries, d_model), requires_grad=learnable)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        init.normal_(self.weight, mean=0.0, std=1.0)

    def forward(self, batch_size: int) -> torch.Tensor:
        return self.weight.unsqueeze(0).expand(batch_size, -1, -1)


class MLDecoderPreTrainedModel(MLICPreTrainedModel):
    config_class = MLDecoderConfig
    base_model_prefix = "ml_decoder"
    supports_gradient_checkpointing = True  # the decoder layers (GradientCheckpointingLayer)


class MLDecoderForMultiLabelImageClassification(MLDecoderPreTrainedModel):
    """Backbone → last feature map as ``h·w`` tokens → ``Linear`` to ``hidden_size`` + ReLU → ``num_decoder_layers``
    :class:`MLDecoderLayer` read by the group queries → :class:`GroupFullyConnected` → logits.

    With ``output_attentions=True``, ``attentions`` are each decoder layer's cross-attention (B, queries, h·w),
    averaged over heads. With ``output_class_maps=True``, ``label_maps`` (B, K, h, w) give each label the last
    layer's cross-attention of the query whose output scores it (label ``l`` is scored by query ``l // k``): with
    fewer queries than labels, the labels of one group share a map. Each map sums to 1 over the positions.
    """

    def __init__(self, config: MLDecoderConfig) -> None:
        super().__init__(config)
        self.backbone = self.build_backbone(config)
        self.input_proj = nn.Linear(self.backbone.channels[-1], config.hidden_size)
        self.queries = GroupQueries(config.num_queries, config.hidden_size, config.learnable_queries)
        self.layers = nn.ModuleList(
            MLDecoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size, config.dropout)
            for _ in range(config.num_decoder_layers)
        )
        self.classifier = GroupFullyConnected(config.num_queries, config.hidden_size, config.labels_per_query,
                                              config.num_labels)
        self.post_init()
        self.freeze_parameters()

    def label_layers(self) -> list[nn.Module]:
        """The label set's layers: the group fully-connected pooling (its weights fit every label count with as many
        labels per query). The group queries belong to no label."""
        return [self.classifier]

    def freeze_parameters(self) -> None:
        """The group queries are fixed (the paper's and the official code's) unless ``learnable_queries``."""
        self.queries.weight.requires_grad_(self.config.learnable_queries)

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        output_attentions: bool | None = None,
        *,
        return_dict: bool | None = None,  # handled by @can_return_tuple, which sees keywords only
        output_class_maps: bool | None = None,
    ) -> MultiLabelImageClassifierOutput | tuple:
        feature_maps = self.backbone(pixel_values)
        batch, _, height, width = feature_maps[-1].shape
        tokens = F.relu(self.input_proj(feature_maps[-1].flatten(2).transpose(1, 2)))
        queries = self.queries(batch)
        want_weights = bool(output_attentions or output_class_maps)
        attentions = []
        for layer in self.layers:
            queries, weights = layer(queries, tokens, need_weights=want_weights)
            attentions.append(weights)
        logits = self.classifier(queries)
        label_maps = None
        if output_class_maps:
            which = torch.arange(self.config.num_labels, device=logits.device) // self.config.labels_per_query
            label_maps = attentions[-1][:, which].reshape(batch, -1, height, width)
        return MultiLabelImageClassifierOutput(
            loss=self.compute_loss(logits, labels),
            logits=logits,
            label_features=queries,
            feature_maps=tuple(feature_maps) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            label_maps=label_maps,
        )


__all__ = ["MLDecoderForMultiLabelImageClassification", "MLDecoderPreTrainedModel"]
