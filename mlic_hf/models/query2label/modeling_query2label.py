"""Query2Label: a backbone's last feature map → [1×1 projection] → Transformer encoder → label-query decoder →
per-class linear, fed as the official code (DETR's convention) feeds its Transformer."""

from __future__ import annotations

import torch
from timm.layers import freeze_batch_norm_2d
from torch import nn
from transformers import initialization as init
from transformers.utils import can_return_tuple

from ...layers.decoder import GroupWiseLinear, LabelDecoder
from ...layers.encoder import SelfAttention, TransformerEncoderLayer
from ...layers.position import sine_position_embedding_2d
from ...modeling_utils import MLICPreTrainedModel, MultiLabelImageClassifierOutput
from .configuration_query2label import Query2LabelConfig


def stem_parameter_names(backbone: nn.Module, stride: int) -> list[str]:
    """Names of a timm ``features_only`` backbone's parameters up to and including the last feature stage whose
    stride is at most ``stride`` (in registration order, which is the forward order of timm's feature networks):
    ResNet's ``conv1``, ``bn1`` and ``layer1`` for stride 4."""
    stages = [info["module"] for info in backbone.feature_info.info if info["reduction"] <= stride]
    if not stages:
        return []
    names = [name for name, _ in backbone.named_parameters()]
    last = max(i for i, name in enumerate(names) if name.startswith(stages[-1] + "."))
    return names[: last + 1]


class Query2LabelPreTrainedModel(MLICPreTrainedModel):
    config_class = Query2LabelConfig
    base_model_prefix = "query2label"
    supports_gradient_checkpointing = True  # the encoder and decoder layers (GradientCheckpointingLayer)

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # The official Transformer's init (``_reset_parameters``): Xavier-uniform for every matrix of the encoder and
        # decoder (the only Linear layers here: the backbone is timm's), PyTorch's defaults for the rest: FFN biases
        # U(±1/sqrt(fan_in)), attention biases 0 (the encoder's fused projections here; nn.MultiheadAttention's own
        # reset in the base class), LayerNorm 1 and 0
        if isinstance(module, nn.Linear):
            init.xavier_uniform_(module.weight)
            if module.bias is None:
                pass
            elif id(module) in self._attention_projections():
                init.zeros_(module.bias)
            else:
                bound = 1.0 / module.weight.shape[1] ** 0.5
                init.uniform_(module.bias, -bound, bound)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight)  # nn.Embedding's N(0, 1), the official label embeddings' init
        else:
            super()._init_weights(module)

    def _attention_projections(self) -> set[int]:
        """ids of the encoder attention's fused input and output projections (their biases start at zero)."""
        return {id(linear) for attention in self.modules() if isinstance(attention, SelfAttention)
                for linear in (attention.qkv, attention.out_proj)}


class Query2LabelForMultiLabelImageClassification(Query2LabelPreTrainedModel):
    """Backbone → last feature map → (1×1 convolution if ``input_projection``) → ``num_encoder_layers`` encoder
    layers (position embedding on queries and keys) → ``num_decoder_layers`` decoder layers (zero input, label
    embeddings added to every query, position embedding on the cross-attention keys, final LayerNorm) →
    :class:`~mlic_hf.layers.decoder.GroupWiseLinear` → logits.

    With ``output_attentions=True``, ``attentions`` are each decoder layer's cross-attention (B, K, h·w), averaged
    over heads. With ``output_class_maps=True``, ``label_maps`` (B, K, h, w) are the last decoder layer's: where each
    label query read the image (each map sums to 1), the maps the paper visualises.
    """

    def __init__(self, config: Query2LabelConfig) -> None:
        super().__init__(config)
        self.backbone = self.build_backbone(config)
        if config.frozen_batch_norm:
            self.backbone.body = freeze_batch_norm_2d(self.backbone.body)
        channels = self.backbone.channels[-1]
        if config.input_projection:
            self.input_proj = nn.Conv2d(channels, config.hidden_size, kernel_size=1)
        elif channels != config.hidden_size:
            raise ValueError(
                f"Query2Label without input_projection needs hidden_size equal to the backbone's channels: "
                f"{config.backbone} gives {channels}, hidden_size is {config.hidden_size} (set hidden_size={channels} "
                f"or input_projection=True)")
        else:
            self.input_proj = nn.Identity()
        self.encoder = nn.ModuleList(
            TransformerEncoderLayer(config.hidden_size, config.num_attention_heads, config.intermediate_size,
                                    config.dropout, config.hidden_act, pre_norm=config.pre_norm)
            for _ in range(config.num_encoder_layers)
        )
        # the official encoder ends with a LayerNorm only in pre-norm (its ``encoder_norm``)
        self.encoder_norm = nn.LayerNorm(config.hidden_size) if config.pre_norm and config.num_encoder_layers else None
        self.label_embeddings = nn.Embedding(config.num_labels, config.hidden_size)
        self.decoder = LabelDecoder(config.hidden_size, config.num_attention_heads, config.num_decoder_layers,
                                    config.intermediate_size, config.dropout, config.decoder_self_attention,
                                    config.hidden_act, final_norm=True, pre_norm=config.pre_norm)
        self.classifier = GroupWiseLinear(config.num_labels, config.hidden_size, init_scheme="uniform")
        self.freeze_parameters()
        self.post_init()

    def label_layers(self) -> list[nn.Module]:
        """The label set's layers: the label embeddings (query positions) and the per-class classifier."""
        return [self.label_embeddings, self.classifier]

    def freeze_parameters(self) -> None:
        """The backbone's stem and first stage (``frozen_backbone_stride``) are not trained, as in the official code."""
        if self.config.frozen_backbone_stride is None:
            return
        frozen = set(stem_parameter_names(self.backbone.body, self.config.frozen_backbone_stride))
        for name, parameter in self.backbone.body.named_parameters():
            if name in frozen:
                parameter.requires_grad_(False)

    def position(self, height: int, width: int, reference: torch.Tensor) -> torch.Tensor | None:
        """The (1, h·w, d) position embedding of the token grid, or ``None`` for ``position_embedding="none"``."""
        if self.config.position_embedding == "none":
            return None
        pos = sine_position_embedding_2d(self.config.hidden_size, height, width, device=reference.device,
                                         dtype=reference.dtype, interleave=True, eps=1e-6)
        return pos.flatten(2).transpose(1, 2)

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
        tokens = features.flatten(2).transpose(1, 2)  # (B, h·w, d)
        pos = self.position(height, width, tokens)
        for layer in self.encoder:
            tokens = layer(tokens, height, width, pos=pos)
        if self.encoder_norm is not None:
            tokens = self.encoder_norm(tokens)
        query_pos = self.label_embeddings.weight.unsqueeze(0).expand(batch, -1, -1)
        label_features, attentions = self.decoder(
            torch.zeros_like(query_pos), tokens, output_attentions=bool(output_attentions or output_class_maps),
            query_pos=query_pos, memory_pos=pos)
        logits = self.classifier(label_features)
        return MultiLabelImageClassifierOutput(
            loss=self.compute_loss(logits, labels),
            logits=logits,
            label_features=label_features,
            feature_maps=tuple(feature_maps) if output_hidden_states else None,
            attentions=attentions if output_attentions else None,
            label_maps=attentions[-1].unflatten(-1, (height, width)) if output_class_maps else None,
        )


__all__ = ["Query2LabelForMultiLabelImageClassification", "Query2LabelPreTrainedModel", "stem_parameter_names"]
