"""Two-stage Transformer with image relative position encoding (M2)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.utils import can_return_tuple

from ...layers.decoder import GroupWiseLinear, LabelDecoder
from ...layers.encoder import TransformerEncoderLayer
from .irpe import IRPEEncoderLayer
from ...layers.position import LearnedPositionEmbedding2D, sine_position_embedding_2d
from ...modeling_utils import MLICPreTrainedModel, MultiLabelImageClassifierOutput
from .configuration_two_stage_irpe import TwoStageIRPEConfig


class TwoStageIRPEPreTrainedModel(MLICPreTrainedModel):
    config_class = TwoStageIRPEConfig
    base_model_prefix = "two_stage_irpe"
    supports_gradient_checkpointing = True  # the encoder and decoder layers (GradientCheckpointingLayer)


class TwoStageIRPEForMultiLabelImageClassification(TwoStageIRPEPreTrainedModel):
    """Backbone → projection + position embedding → iRPE encoder → label-query decoder → per-class linear.

    With ``output_attentions=True``, ``attentions`` are the decoder's cross-attention maps (B, K, h·w), one per layer
    (averaged over heads). With ``output_class_maps=True``, ``label_maps`` (B, K, h, w) are the last decoder layer's
    cross-attention of each label query over the image tokens (averaged over heads; each map sums to 1): where the
    label's features were read from, as Query2Label visualises its queries.
    """

    def __init__(self, config: TwoStageIRPEConfig) -> None:
        super().__init__(config)
        self.backbone = self.build_backbone(config)
        channels, stride = self.backbone.channels[-1], self.backbone.reductions[-1]
        if config.input_projection == "conv":
            self.input_proj = nn.Conv2d(channels, config.hidden_size, kernel_size=1)
        elif channels != config.hidden_size:
            raise ValueError(f"input_projection='identity' needs hidden_size == backbone channels ({channels}), "
                             f"got hidden_size={config.hidden_size}")
        else:
            self.input_proj = nn.Identity()
        side = max(1, -(-config.image_size // stride))
        self.position = (LearnedPositionEmbedding2D(config.hidden_size, side, side)
                         if config.position_embedding == "learned" else None)
        layers = 0 if config.encoder == "none" else config.num_encoder_layers
        self.encoder = nn.ModuleList(self._encoder_layer(config) for _ in range(layers))
        self.label_embeddings = nn.Embedding(config.num_labels, config.hidden_size)
        self.decoder = LabelDecoder(config.hidden_size, config.num_attention_heads, config.num_decoder_layers,
                                    config.intermediate_size, config.dropout, config.decoder_self_attention,
                                    config.hidden_act)
        self.classifier = GroupWiseLinear(config.num_labels, config.hidden_size)
        self.post_init()

    def label_layers(self) -> list[nn.Module]:
        """The label set's layers: the label embeddings and the per-class classifier."""
        return [self.label_embeddings, self.classifier]

    @staticmethod
    def _encoder_layer(config: TwoStageIRPEConfig) -> nn.Module:
        """An iRPE encoder layer, or a plain one for Table IV's ``encoder="standard"`` (the same parameter names)."""
        if config.encoder == "standard":
            return TransformerEncoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                                           config.dropout, config.hidden_act)
        return IRPEEncoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                                config.dropout, config.hidden_act, rpe_on=config.irpe_on,
                                shared_heads=config.irpe_shared_heads, alpha=config.irpe_alpha, beta=config.irpe_beta,
                                gamma=config.irpe_gamma)

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
        features = self.input_proj(feature_maps[-1])
        batch, _, height, width = features.shape
        if self.position is not None:
            features = features + self.position(height, width)
        else:
            features = features + sine_position_embedding_2d(
                self.config.hidden_size, height, width, device=features.device, dtype=features.dtype)
        tokens = features.flatten(2).transpose(1, 2)  # (B, L, d), eq. 2
        for layer in self.encoder:
            tokens = layer(tokens, height, width)
        queries = self.label_embeddings.weight.unsqueeze(0).expand(batch, -1, -1)
        label_features, attentions = self.decoder(queries, tokens,
                                                  output_attentions=bool(output_attentions or output_class_maps))
        logits = self.classifier(label_features)
        label_maps = attentions[-1].unflatten(-1, (height, width)) if output_class_maps else None
        output = MultiLabelImageClassifierOutput(
            loss=self.compute_loss(logits, labels),
            logits=logits,
            label_features=label_features,
            feature_maps=tuple(feature_maps) if output_hidden_states else None,
            attentions=attentions if output_attentions else None,
            label_maps=label_maps,
        )
        return output


__all__ = ["TwoStageIRPEForMultiLabelImageClassification", "TwoStageIRPEPreTrainedModel"]
