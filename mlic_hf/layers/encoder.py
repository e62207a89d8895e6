"""A plain post-norm Transformer encoder layer over a grid of image tokens, shared by the methods with an encoder (M2's
"standard" ablation and M4's global feature enhancement); M2's iRPE layer subclasses it with another attention."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F
from transformers.modeling_layers import GradientCheckpointingLayer

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}


class SelfAttention(nn.Module):
    """Multi-head self-attention with one fused ``qkv`` projection (PyTorch's scaled dot-product attention)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def split_heads(self, x: torch.Tensor, pos: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(B, L, d)`` → q, k, v of shape ``(B, heads, L, head_dim)``. With ``pos``, queries and keys are projected
        from ``x + pos`` and values from ``x`` (DETR / Query2Label's encoder)."""
        batch, length, d_model = x.shape
        qkv = self.qkv(x)
        if pos is not None:  # W_qk (x + pos) + b = W_qk x + b + W_qk pos: one fused projection, then pos's share
            qkv = qkv + F.pad(F.linear(pos, self.qkv.weight[: 2 * d_model]), (0, d_model))
        return qkv.view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)

    def merge_heads(self, out: torch.Tensor) -> torch.Tensor:
        """``(B, heads, L, head_dim)`` → the output projection of ``(B, L, d)``."""
        batch, _, length, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, self.num_heads * self.head_dim))

    def forward(self, x: torch.Tensor, height: int | None = None, width: int | None = None,
                pos: torch.Tensor | None = None) -> torch.Tensor:
        # height/width: the token grid, unused by plain attention (kept so that grid-aware attentions fit in)
        q, k, v = self.split_heads(x, pos)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
        return self.merge_heads(out)


class TransformerEncoderLayer(GradientCheckpointingLayer):
    """Post-norm Transformer encoder layer (as DETR and Query2Label): self-attention → residual + LayerNorm → FFN →
    residual + LayerNorm; with ``pre_norm``, the LayerNorms normalise each sub-layer's input instead. ``attention``
    replaces the plain :class:`SelfAttention` (e.g. M2's iRPE attention).

    A transformers ``GradientCheckpointingLayer``: after ``model.activation_checkpointing_enable()`` (Trainer's
    ``--activation_checkpointing``) a training forward keeps only the layer's input and recomputes the rest in the
    backward pass."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", attention: nn.Module | None = None, pre_norm: bool = False) -> None:
        super().__init__()
        self.pre_norm = pre_norm
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.self_attn = attention if attention is not None else SelfAttention(d_model, num_heads, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = ACTIVATIONS[activation]

    def forward(self, x: torch.Tensor, height: int, width: int, pos: torch.Tensor | None = None) -> torch.Tensor:
        """``pos`` (optional, ``(B or 1, L, d)``): a position embedding added to the queries and keys only (Query2Label);
        M2 and M4 add theirs to the tokens before the encoder."""
        if self.pre_norm:  # LayerNorm on each sub-layer's input (DETR's and Query2Label's normalize_before)
            normed = self.norm1(x)
            attended = self.self_attn(normed, height, width) if pos is None else self.self_attn(
                normed, height, width, pos=pos)
            x = x + self.dropout(attended)
            return x + self.dropout(self.linear2(self.dropout(self.activation(self.linear1(self.norm2(x))))))
        attended = self.self_attn(x, height, width) if pos is None else self.self_attn(x, height, width, pos=pos)
        x = self.norm1(x + self.dropout(attended))
        return self.norm2(x + self.dropout(self.linear2(self.dropout(self.activation(self.linear1(x))))))


__all__ = ["ACTIVATIONS", "SelfAttention", "TransformerEncoderLayer"]
