"""Label-query Transformer decoder shared by the query-based methods (M2, M4).

Learnable label embeddings are the queries; image tokens are keys and values. Each layer is post-norm (as DETR and
Query2Label): optional self-attention among the label queries, cross-attention to the image tokens, FFN. Whether a
layer has self-attention is set per layer — the M2 paper removes it everywhere (Table V), M4 ablates it per layer
(Table 7: all, layers 2..n, layer 1 only, none). Without self-attention the labels are decoded independently: a
label's output depends only on its own query and the image.

Two ways to feed the stack. M2 and M4 (their papers' eq. 7) pass the label embeddings as the input queries once and
position-encoded image tokens as keys and values. Query2Label (DETR's convention) starts from zeros, adds the label
embeddings as ``query_pos`` to the queries of every attention in every layer, adds the position embedding
``memory_pos`` to the keys only, and normalises the stack's output (``final_norm``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.modeling_layers import GradientCheckpointingLayer

#: Named per-layer self-attention settings: ``none``; ``all``; ``second_only`` (layer 2); ``first_only`` (layer 1);
#: ``except_first`` (layers 2..n).
SELF_ATTENTION_MODES = ("none", "all", "second_only", "first_only", "except_first")


def self_attention_layers(mode: str | Sequence[bool], num_layers: int) -> list[bool]:
    """Per-layer self-attention flags from a mode name (one of :data:`SELF_ATTENTION_MODES`) or explicit flags."""
    if isinstance(mode, str):
        if mode not in SELF_ATTENTION_MODES:
            raise ValueError(f"decoder self-attention mode must be one of {SELF_ATTENTION_MODES}, got {mode!r}")
        if mode in ("second_only", "except_first") and num_layers < 2:
            raise ValueError(f"decoder self-attention {mode!r} needs at least 2 decoder layers")
        if mode == "first_only" and num_layers < 1:
            raise ValueError("decoder self-attention 'first_only' needs at least 1 decoder layer")
        rule = {
            "none": lambda i: False,
            "all": lambda i: True,
            "second_only": lambda i: i == 1,
            "first_only": lambda i: i == 0,
            "except_first": lambda i: i >= 1,
        }[mode]
        return [rule(i) for i in range(num_layers)]
    flags = [bool(f) for f in mode]
    if len(flags) != num_layers:
        raise ValueError(f"{len(flags)} self-attention flags for {num_layers} decoder layers")
    return flags


class LabelDecoderLayer(GradientCheckpointingLayer):
    """[self-attention →] cross-attention → FFN, each with residual + LayerNorm: after the residual sum (post-norm, the
    default) or, with ``pre_norm``, on each sub-layer's input (DETR's and Query2Label's ``normalize_before``).
    Checkpointed under ``model.activation_checkpointing_enable()`` (a transformers ``GradientCheckpointingLayer``)."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 self_attention: bool = False, activation: str = "relu", pre_norm: bool = False) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        self.self_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True) if self_attention else None
        self.norm_self = nn.LayerNorm(d_model) if self_attention else None
        self.cross_attn = nn.MultiheadAttention(d_model, num_heads, dropout=dropout, batch_first=True)
        self.norm_cross = nn.LayerNorm(d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm_ffn = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = {"relu": F.relu, "gelu": F.gelu}[activation]

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, need_weights: bool = False,
                query_pos: torch.Tensor | None = None, memory_pos: torch.Tensor | None = None):
        """``query_pos`` is added to the queries (self-attention: queries and keys) and ``memory_pos`` to the keys of
        the cross-attention, never to a value (DETR / Query2Label); both ``None``: plain attention (M2, M4)."""
        if self.pre_norm:
            return self._forward_pre_norm(queries, memory, need_weights, query_pos, memory_pos)
        if self.self_attn is not None:
            positioned = _with_position(queries, query_pos)
            attended, _ = self.self_attn(positioned, positioned, queries, need_weights=False)
            queries = self.norm_self(queries + self.dropout(attended))
        attended, weights = self.cross_attn(_with_position(queries, query_pos), _with_position(memory, memory_pos),
                                            memory, need_weights=need_weights)
        queries = self.norm_cross(queries + self.dropout(attended))
        queries = self.norm_ffn(queries + self.dropout(self._ffn(queries)))
        return queries, weights

    def _ffn(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear2(self.dropout(self.activation(self.linear1(x))))

    def _forward_pre_norm(self, queries, memory, need_weights, query_pos, memory_pos):
        if self.self_attn is not None:
            normed = self.norm_self(queries)
            positioned = _with_position(normed, query_pos)
            queries = queries + self.dropout(self.self_attn(positioned, positioned, normed, need_weights=False)[0])
        normed = self.norm_cross(queries)
        attended, weights = self.cross_attn(_with_position(normed, query_pos), _with_position(memory, memory_pos),
                                            memory, need_weights=need_weights)
        queries = queries + self.dropout(attended)
        return queries + self.dropout(self._ffn(self.norm_ffn(queries))), weights


def _with_position(tensor: torch.Tensor, position: torch.Tensor | None) -> torch.Tensor:
    return tensor if position is None else tensor + position


class LabelDecoder(nn.Module):
    """A stack of :class:`LabelDecoderLayer` with per-layer self-attention flags, and a LayerNorm after the last
    layer when ``final_norm`` (Query2Label's and DETR's ``decoder_norm``)."""

    def __init__(self, d_model: int, num_heads: int, num_layers: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, self_attention: str | Sequence[bool] = "none", activation: str = "relu",
                 final_norm: bool = False, pre_norm: bool = False) -> None:
        super().__init__()
        flags = self_attention_layers(self_attention, num_layers)
        self.layers = nn.ModuleList(
            LabelDecoderLayer(d_model, num_heads, dim_feedforward, dropout, flag, activation, pre_norm)
            for flag in flags
        )
        self.norm = nn.LayerNorm(d_model) if final_norm else None

    def forward(self, queries: torch.Tensor, memory: torch.Tensor, output_attentions: bool = False,
                query_pos: torch.Tensor | None = None, memory_pos: torch.Tensor | None = None):
        attentions = []
        for layer in self.layers:
            queries, weights = layer(queries, memory, need_weights=output_attentions, query_pos=query_pos,
                                     memory_pos=memory_pos)
            if output_attentions:
                attentions.append(weights)
        if self.norm is not None:
            queries = self.norm(queries)
        return queries, tuple(attentions) if output_attentions else None


class GroupWiseLinear(nn.Module):
    """Per-class linear head: logit_c = w_c · h_c + b_c, one weight vector per label (Query2Label's ``GroupWiseLinear``).

    ``init_scheme``: ``"trunc_normal"`` (std 0.02 weights, zero biases; M2 and M4) or ``"uniform"`` (weights and biases
    uniform in ±1/sqrt(d), the official Query2Label init)."""

    def __init__(self, num_labels: int, d_model: int, init_scheme: str = "trunc_normal") -> None:
        super().__init__()
        if init_scheme not in ("trunc_normal", "uniform"):
            raise ValueError(f"GroupWiseLinear init_scheme must be 'trunc_normal' or 'uniform', got {init_scheme!r}")
        self.init_scheme = init_scheme
        self.weight = nn.Parameter(torch.empty(num_labels, d_model))
        self.bias = nn.Parameter(torch.zeros(num_labels))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Initialise as ``self.init_scheme`` says, through transformers' ``initialization`` so that weights loaded by
        ``from_pretrained`` are not overwritten."""
        if self.init_scheme == "uniform":
            bound = 1.0 / math.sqrt(self.weight.shape[1])
            init.uniform_(self.weight, -bound, bound)
            init.uniform_(self.bias, -bound, bound)
        else:
            init.trunc_normal_(self.weight, std=0.02)
            init.zeros_(self.bias)

    def forward(self, label_features: torch.Tensor) -> torch.Tensor:
        return (label_features * self.weight).sum(-1) + self.bias
