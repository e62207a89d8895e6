"""Image relative position encoding (iRPE; Wu et al., "Rethinking and Improving Relative Position Encoding for
Vision Transformer", ICCV 2021) in its contextual product form, as used by the M2 encoder (eqs. 3-5).

For tokens on an H×W grid, the relative position of token i to token j is (Δrow, Δcol). Each component is mapped to
an integer by the *piecewise index function* g: exact for |x| ≤ α, logarithmic beyond, clipped at β:

    g(x) = round(x)                                                        if |x| ≤ α
    g(x) = sign(x) · min(β, round(α + ln(|x|/α) / ln(γ/α) · (β − α)))      otherwise

With the reference implementation's ratio 1.9: α = 1.9, β = 3.8, γ = 15.2 (so |g| ≤ ⌊β⌋ = 3). The *product method*
gives bucket(i, j) = (g(Δrow) + ⌊β⌋) · (2⌊β⌋ + 1) + (g(Δcol) + ⌊β⌋): 49 buckets. In *contextual mode* each bucket
has a learnable vector r per position (q, k or v) and

    e_ij = (q_i k_jᵀ + q_i r^K_ijᵀ + k_j r^Q_ijᵀ) / √d          (eqs. 3-4; the bias b_ij is scaled like q_i k_jᵀ)
    z_i  = Σ_j softmax(e)_ij (v_j + r^V_ij)                      (eq. 5)

Efficiently (as the reference code does): q·r^K is computed once per *bucket* (an L×49 table per head) and
gathered to L×L; the r^V term sums the attention weights per bucket (scatter-add) and multiplies by the 49×d table.
No L×L×d tensor is ever built. Bucket indices are cached per (H, W, device).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F

IRPE_POSITIONS = ("q", "k", "v")


def piecewise_index(relative_position: torch.Tensor, alpha: float, beta: float, gamma: float) -> torch.Tensor:
    """The piecewise index function g of iRPE, element-wise, as int64 (see the module docstring)."""
    if not 0 < alpha < beta < gamma:
        raise ValueError(f"iRPE needs 0 < alpha < beta < gamma, got alpha={alpha}, beta={beta}, gamma={gamma}")
    rp = relative_position.to(torch.float64)
    magnitude = rp.abs()
    far = magnitude > alpha
    log_part = alpha + torch.log(magnitude.clamp(min=alpha) / alpha) / math.log(gamma / alpha) * (beta - alpha)
    far_value = torch.sign(rp) * log_part.round().clamp(max=beta)
    return torch.where(far, far_value, rp.round()).to(torch.int64)


_BUCKET_CACHE: dict[tuple, torch.Tensor] = {}


def product_bucket_ids(
    height: int, width: int, alpha: float = 1.9, beta: float = 3.8, gamma: float = 15.2, device=None
) -> torch.Tensor:
    """(L, L) int64 bucket index of every token pair on an ``height × width`` grid (row-major), product method.
    Cached per grid size, parameters and device."""
    key = (height, width, alpha, beta, gamma, str(device))
    ids = _BUCKET_CACHE.get(key)
    if ids is None:
        rows = torch.arange(height).repeat_interleave(width)
        cols = torch.arange(width).repeat(height)
        limit = int(beta)
        side = 2 * limit + 1
        d_row = piecewise_index(rows[:, None] - rows[None, :], alpha, beta, gamma) + limit
        d_col = piecewise_index(cols[:, None] - cols[None, :], alpha, beta, gamma) + limit
        ids = (d_row * side + d_col).to(device)
        _BUCKET_CACHE[key] = ids
    return ids


def num_product_buckets(beta: float) -> int:
    return (2 * int(beta) + 1) ** 2


class IRPEAttention(nn.Module):
    """Multi-head self-attention over an H×W token grid with contextual product-method iRPE on any of q, k, v.

    Args:
        d_model: token width. num_heads: attention heads. dropout: attention-weight dropout.
        rpe_on: any subset of ``("q", "k", "v")``; empty gives plain scaled dot-product attention.
        shared_heads: one r table shared by all heads (the reference default) instead of one per head.
        alpha, beta, gamma: piecewise index parameters (defaults: the reference ratio 1.9).
    """

    def __init__(
        self,
        d_model: int,
        num_heads: int,
        dropout: float = 0.0,
        rpe_on: Iterable[str] = IRPE_POSITIONS,
        shared_heads: bool = True,
        alpha: float = 1.9,
        beta: float = 3.8,
        gamma: float = 15.2,
    ) -> None:
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model={d_model} is not divisible by num_heads={num_heads}")
        self.rpe_on = tuple(p for p in IRPE_POSITIONS if p in set(rpe_on))
        unknown = set(rpe_on) - set(IRPE_POSITIONS)
        if unknown:
            raise ValueError(f"rpe_on must be a subset of {IRPE_POSITIONS}, got {sorted(unknown)}")
        piecewise_index(torch.zeros(1), alpha, beta, gamma)  # validates the parameters
        self.num_heads, self.head_dim = num_heads, d_model // num_heads
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        self.dropout = dropout
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        table_heads = 1 if shared_heads else num_heads
        buckets = num_product_buckets(beta)
        # the reference code initialises the lookup tables to zero: training starts from plain attention
        self.rpe_tables = nn.ParameterDict(
            {p: nn.Parameter(torch.zeros(table_heads, buckets, self.head_dim)) for p in self.rpe_on}
        )

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, length, d_model = x.shape
        if length != height * width:
            raise ValueError(f"sequence length {length} != height*width = {height}*{width}")
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        if not self.rpe_on:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0)
            return self.out_proj(out.transpose(1, 2).reshape(batch, length, d_model))
        scale = self.head_dim**-0.5
        q = q * scale
        attn = q @ k.transpose(-2, -1)  # (B, h, L, L)
        ids = product_bucket_ids(height, width, self.alpha, self.beta, self.gamma, x.device)
        index = ids.expand(batch, self.num_heads, length, length)
        if "k" in self.rpe_on:  # q_i · r^K_ij: per-bucket products, then gathered
            per_bucket = q @ self.rpe_tables["k"].transpose(-2, -1)  # (B, h, L, buckets)
            attn = attn + per_bucket.gather(-1, index)
        if "q" in self.rpe_on:  # k_j · r^Q_ij: gather at (j, bucket(i, j)), then transpose to (i, j)
            per_bucket = (k * scale) @ self.rpe_tables["q"].transpose(-2, -1)
            attn = attn + per_bucket.gather(-1, index.transpose(-2, -1)).transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        attn = F.dropout(attn, p=self.dropout, training=self.training)
        out = attn @ v
        if "v" in self.rpe_on:  # Σ_j a_ij r^V_ij = Σ_b (Σ_{j in bucket b} a_ij) r^V_b
            weights = attn.new_zeros(batch, self.num_heads, length, self.rpe_tables["v"].shape[1])
            weights.scatter_add_(-1, index, attn)
            out = out + weights @ self.rpe_tables["v"]
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, d_model))


class IRPEEncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer (as DETR/Query2Label) whose self-attention is :class:`IRPEAttention`."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", **irpe_kwargs) -> None:
        super().__init__()
        self.self_attn = IRPEAttention(d_model, num_heads, dropout=dropout, **irpe_kwargs)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.activation = {"relu": F.relu, "gelu": F.gelu}[activation]

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        x = self.norm1(x + self.dropout(self.self_attn(x, height, width)))
        x = self.norm2(x + self.dropout(self.linear2(self.dropout(self.activation(self.linear1(x))))))
        return x
