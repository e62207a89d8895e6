"""Multi-scale three-branch Transformer (M4: Zhong et al., CMC 2025)."""

from __future__ import annotations

import torch
from torch import nn
from transformers.utils import can_return_tuple

from ...layers.decoder import GroupWiseLinear, LabelDecoder
from ...layers.encoder import TransformerEncoderLayer
from .multiscale import HierarchicalScaleAttention, MultiScaleStem
from ...layers.position import LearnedPositionEmbedding2D
from ...modeling_utils import MLICPreTrainedModel, MultiLabelImageClassifierOutput
from .configuration_multiscale_three_branch import MultiScaleThreeBranchConfig

NUM_BRANCHES = 3


class BranchTransformer(nn.Module):
    """What the three branches share by default: the global feature enhancement encoder (post-norm self-attention +
    ReLU FFN layers, eqs. 8-9) and the region selection module (label embeddings as queries + decoder layers with
    cross-attention, eq. 10). Either part may be absent (Table 4)."""

    def __init__(self, config: MultiScaleThreeBranchConfig, hidden_size: int) -> None:
        super().__init__()
        heads, ffn, dropout, activation = (config.num_attention_heads, config.intermediate_size, config.dropout,
                                           config.hidden_act)
        self.encoder = nn.ModuleList(
            TransformerEncoderLayer(hidden_size, heads, ffn, dropout, activation)
            for _ in range(config.num_encoder_layers if config.global_feature_enhancement else 0)
        )
        if config.region_selection:
            self.label_embeddings = nn.Embedding(config.num_labels, hidden_size)
            self.decoder = LabelDecoder(hidden_size, heads, config.num_decoder_layers, ffn, dropout,
                                        config.decoder_self_attention_layers, activation)
        else:
            self.label_embeddings = self.decoder = None

    def encode(self, tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
        for layer in self.encoder:
            tokens = layer(tokens, height, width)
        return tokens

    def decode(self, tokens: torch.Tensor, output_attentions: bool = False):
        queries = self.label_embeddings.weight.unsqueeze(0).expand(tokens.shape[0], -1, -1)
        return self.decoder(queries, tokens, output_attentions=output_attentions)


class SharedLinear(nn.Module):
    """One Linear(3d, 1) applied to every label's features (the alternative reading of the paper's linear layer)."""

    def __init__(self, in_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 1)

    def forward(self, label_features: torch.Tensor) -> torch.Tensor:
        return self.linear(label_features).squeeze(-1)


def _mean_of_resized(maps: list[torch.Tensor]) -> torch.Tensor:
    """The mean of (B, K, h_i, w_i) attention maps after bilinear resizing to the largest grid, each rescaled to
    its own total (an attention map keeps summing to 1)."""
    height = max(m.shape[-2] for m in maps)
    width = max(m.shape[-1] for m in maps)
    resized = []
    for m in maps:
        if m.shape[-2:] != (height, width):
            total = m.sum((-2, -1), keepdim=True)
            m = nn.functional.interpolate(m, size=(height, width), mode="bilinear", align_corners=False)
            m = m * total / m.sum((-2, -1), keepdim=True).clamp_min(1e-12)
        resized.append(m)
    return torch.stack(resized).mean(0)


class MultiScaleThreeBranchPreTrainedModel(MLICPreTrainedModel):
    config_class = MultiScaleThreeBranchConfig
    base_model_prefix = "multiscale_three_branch"
    supports_gradient_checkpointing = True  # the encoder and decoder layers (GradientCheckpointingLayer)


class MultiScaleThreeBranchForMultiLabelImageClassification(MultiScaleThreeBranchPreTrainedModel):
    """Backbone (layer3, layer4) → fusion-mode convolutions (3 scales) → hierarchical scale attention → per branch:
    learned position embedding, flatten, encoder, label-query decoder → concatenated label features → per-class
    linear.

    With ``output_hidden_states=True`` the output's ``feature_maps`` are the backbone maps and ``extras`` holds every
    stage, one entry per branch: ``scales`` (B, d, h_i, w_i) from the convolutions, ``scales_after_attention``
    (after the hierarchical scale attention; the same tensors when it is off), ``encoder_outputs`` (B, h_i·w_i, d),
    and ``branch_label_features`` (B, K, d; the paper's Z_i) or, without region selection, ``pooled_features``
    (B, 3d). With ``output_attentions=True``, ``attentions`` are the decoder cross-attention maps (B, K, h_i·w_i),
    branch by branch, layer by layer (3 × num_decoder_layers maps). With ``output_class_maps=True``, ``extras``
    holds ``branch_label_maps``: per branch, the last decoder layer's cross-attention of each label query (B, K, h_i,
    w_i; averaged over heads, each map sums to 1), and ``label_maps`` is their mean after bilinear resizing to the
    largest branch grid (B, K, h, w): the regions each branch's region selection read for the label (eq. 10).
    Without region selection there are no label queries, and asking for label maps is an error.
    """

    def __init__(self, config: MultiScaleThreeBranchConfig) -> None:
        super().__init__(config)
        config._check_fields()  # again: fields may have been set after construction (e.g. from_pretrained kwargs)
        self.backbone = self.build_backbone(config)
        channels, reductions = self.backbone.channels, self.backbone.reductions
        if any(a >= b for a, b in zip(reductions, reductions[1:])):
            raise ValueError(f"out_indices={config.out_indices} must name backbone stages shallow to deep "
                             f"(strides {reductions})")
        hidden = config.hidden_size if config.hidden_size is not None else channels[-1] // 4
        if hidden < 1 or hidden % config.num_attention_heads:
            raise ValueError(f"hidden_size={hidden} (backbone channels {channels[-1]} // 4 when unset) must be a "
                             f"positive multiple of num_attention_heads={config.num_attention_heads}")
        config.hidden_size = hidden  # stored, so that a saved config does not depend on the backbone's channels
        self.stem = MultiScaleStem(channels, hidden, config.fusion_mode)
        self.scale_attention = HierarchicalScaleAttention(config.interpolation) if config.scale_attention else None
        map_sides = [max(1, -(-config.image_size // r)) for r in reductions]
        self.position = nn.ModuleList(
            LearnedPositionEmbedding2D(hidden, side, side) for side in self.stem.output_sizes(map_sides)  # eq. 6
        )
        self.branch_transformers = nn.ModuleList(
            BranchTransformer(config, hidden) for _ in range(1 if config.share_branch_weights else NUM_BRANCHES)
        )
        if not config.region_selection:
            self.classifier = nn.Linear(NUM_BRANCHES * hidden, config.num_labels)
        elif config.classifier == "group_wise":
            self.classifier = GroupWiseLinear(config.num_labels, NUM_BRANCHES * hidden)
        else:
            self.classifier = SharedLinear(NUM_BRANCHES * hidden)
        self.post_init()

    def label_layers(self) -> list[nn.Module]:
        """The label set's layers: each branch's label embeddings and the classifier."""
        embeddings = [branch.label_embeddings for branch in self.branch_transformers]
        return [*(e for e in embeddings if e is not None), self.classifier]

    def branch_transformer(self, branch: int) -> BranchTransformer:
        """The encoder/decoder of ``branch`` (0, 1, 2): the same module for all three when weights are shared."""
        return self.branch_transformers[0 if len(self.branch_transformers) == 1 else branch]

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
        if output_class_maps and not self.config.region_selection:
            raise ValueError("label maps are the label queries' cross-attention: this model has region_selection="
                             "False (no label queries)")
        output_attentions = bool(output_attentions) and self.config.region_selection
        feature_maps = self.backbone(pixel_values)
        scales = self.stem(feature_maps)  # eq. 1: 2H, H, H/2
        fused = self.scale_attention(scales) if self.scale_attention is not None else scales  # eqs. 2-5
        encoded, branch_features, attentions, branch_maps = [], [], [], []
        for branch, x in enumerate(fused):
            transformer = self.branch_transformer(branch)
            _, _, height, width = x.shape
            x = x + self.position[branch](height, width)  # eq. 6
            tokens = x.flatten(2).transpose(1, 2)  # eq. 7: (B, L, d)
            tokens = transformer.encode(tokens, height, width)  # eqs. 8-9
            encoded.append(tokens)
            if transformer.decoder is not None:
                z, maps = transformer.decode(tokens, output_attentions or bool(output_class_maps))  # eq. 10: Z_i
                branch_features.append(z)
                if output_attentions:
                    attentions.extend(maps)
                if output_class_maps:
                    branch_maps.append(maps[-1].unflatten(-1, (height, width)))
        extras = None
        if self.config.region_selection:
            label_features = torch.cat(branch_features, dim=-1)  # eq. 11: Z' (B, K, 3d)
            logits = self.classifier(label_features)
            if output_hidden_states:
                extras = {"branch_label_features": tuple(branch_features)}
        else:  # Table 4 without region selection: pooled branches → linear
            label_features = None
            pooled = torch.cat([tokens.mean(dim=1) for tokens in encoded], dim=-1)
            logits = self.classifier(pooled)
            if output_hidden_states:
                extras = {"pooled_features": pooled}
        if output_hidden_states:
            extras.update(scales=tuple(scales), scales_after_attention=tuple(fused), encoder_outputs=tuple(encoded))
        label_maps = None
        if output_class_maps:
            label_maps = _mean_of_resized(branch_maps)
            extras = dict(extras or {}, branch_label_maps=tuple(branch_maps))
        output = MultiLabelImageClassifierOutput(
            loss=self.compute_loss(logits, labels),
            logits=logits,
            label_features=label_features,
            feature_maps=tuple(feature_maps) if output_hidden_states else None,
            attentions=tuple(attentions) if output_attentions else None,
            label_maps=label_maps,
            extras=extras,
        )
        return output


__all__ = ["MultiScaleThreeBranchForMultiLabelImageClassification", "MultiScaleThreeBranchPreTrainedModel"]
