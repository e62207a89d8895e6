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
No L×L×d tensor is ever built. Bucket indices are kept in a small LRU cache (see :func:`product_bucket_ids`).

The q lookup follows the M2 paper's eq. 4, r^Q at bucket(i, j); the official iRPE code indexes the q table at
bucket(j, i) — see :class:`IRPEAttention` for the weight mapping.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterable

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init

from ...layers.encoder import SelfAttention, TransformerEncoderLayer

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


BUCKET_CACHE_SIZE = 8
"""Maximum number of bucket tables kept by :func:`product_bucket_ids` (least recently used evicted first)."""

# (height, width, alpha, beta, gamma, device) -> (L, L) int64 bucket ids; an LRU of at most BUCKET_CACHE_SIZE entries
_BUCKET_CACHE: OrderedDict[tuple, torch.Tensor] = OrderedDict()
_BUCKET_CACHE_LOCK = threading.Lock()


def clear_bucket_cache() -> None:
    """Empties the cache of :func:`product_bucket_ids` (frees its tables)."""
    with _BUCKET_CACHE_LOCK:
        _BUCKET_CACHE.clear()


def _compute_product_bucket_ids(height: int, width: int, alpha: float, beta: float, gamma: float) -> torch.Tensor:
    rows = torch.arange(height).repeat_interleave(width)
    cols = torch.arange(width).repeat(height)
    limit = int(beta)
    side = 2 * limit + 1
    d_row = piecewise_index(rows[:, None] - rows[None, :], alpha, beta, gamma) + limit
    d_col = piecewise_index(cols[:, None] - cols[None, :], alpha, beta, gamma) + limit
    return d_row * side + d_col


def product_bucket_ids(
    height: int, width: int, alpha: float = 1.9, beta: float = 3.8, gamma: float = 15.2, device=None
) -> torch.Tensor:
    """(L, L) int64 bucket index of every token pair on an ``height × width`` grid (row-major, L = H·W), product
    method: ``ids[i, j] = bucket(i, j)`` of the relative position of token i to token j (row_i − row_j,
    col_i − col_j).

    Cached per (grid size, alpha, beta, gamma, device) in a module-level LRU of at most :data:`BUCKET_CACHE_SIZE`
    (= 8) tables; using a key makes it the most recently used, and inserting a new key beyond the bound evicts the
    least recently used one. One table takes L² × 8 bytes (int64) on its device: 19 kB at 7×7, 0.3 MB at 14×14,
    134 MB at 64×64 (L = 4096); the cache never holds more than 8 tables (e.g. at most 8 × 134 MB if every cached
    grid were 64×64, instead of growing with every new grid size). :func:`clear_bucket_cache` empties it.
    The returned tensor is shared with the cache: do not modify it in place.
    """
    device = torch.device("cpu") if device is None else torch.device(device)
    if torch.compiler.is_compiling():
        # under torch.export / torch.compile (ONNX export) the table is a traced tensor: caching it would hand a fake
        # tensor to every later eager forward
        return _compute_product_bucket_ids(height, width, alpha, beta, gamma).to(device)
    key = (height, width, alpha, beta, gamma, str(device))
    with _BUCKET_CACHE_LOCK:
        ids = _BUCKET_CACHE.get(key)
        if ids is not None:
            _BUCKET_CACHE.move_to_end(key)
            return ids
    ids = _compute_product_bucket_ids(height, width, alpha, beta, gamma).to(device)
    with _BUCKET_CACHE_LOCK:
        ids = _BUCKET_CACHE.setdefault(key, ids)  # another thread may have inserted it meanwhile
        _BUCKET_CACHE.move_to_end(key)
        while len(_BUCKET_CACHE) > BUCKET_CACHE_SIZE:
            _BUCKET_CACHE.popitem(last=False)
    return ids


def num_product_buckets(beta: float) -> int:
    return (2 * int(beta) + 1) ** 2


class RPETables(nn.ParameterDict):
    """The iRPE lookup tables of one attention layer (``"q"``/``"k"``/``"v"`` → (heads, buckets, head_dim)).

    Its own module so that the tables are initialised where they live: transformers initialises a model built on
    the meta device module by module, and skips a module that holds no parameter directly (as ``IRPEAttention``)."""

    def __init__(self, tables: dict[str, nn.Parameter]) -> None:
        super().__init__(tables)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Zero, as the reference code: training starts from plain attention. Through transformers' ``initialization``
        so that tables loaded by ``from_pretrained`` are kept."""
        for table in self.values():
            init.zeros_(table)


class IRPEAttention(SelfAttention):
    """Multi-head self-attention over an H×W token grid with contextual product-method iRPE on any of q, k, v.

    Args:
        d_model: token width. num_heads: attention heads. dropout: attention-weight dropout.
        rpe_on: any subset of ``("q", "k", "v")``; empty gives plain scaled dot-product attention.
        shared_heads: one r table shared by all heads (the reference default) instead of one per head.
        alpha, beta, gamma: piecewise index parameters (defaults: the reference ratio 1.9).

    Tables ``rpe_tables[p]`` have shape ``(heads or 1, num_buckets, head_dim)``. With b(i, j) = bucket(i, j) (see
    :func:`product_bucket_ids`) the attention logits are

        e_ij = (q_i·k_j + q_i·r^K[b(i, j)] + k_j·r^Q[b(i, j)]) / √d     and   z_i = Σ_j a_ij (v_j + r^V[b(i, j)]).

    **Porting official iRPE weights** (microsoft/Cream, ``iRPE/.../irpe.py``). The q term above follows the M2
    paper's eq. 4 (bucket(i, j)); the official code computes ``rpe_q(k).transpose(2, 3)``, i.e. k_j·r^Q[b(j, i)].
    With the product method and the (odd-symmetric) piecewise index, b(j, i) = num_buckets − 1 − b(i, j)
    (= 48 − b(i, j) for the 7×7 = 49 buckets): the relative position just changes sign. Hence an official q table
    is ours flipped along the bucket axis. The official contextual q / k tables are stored as
    ``(heads, head_dim, num_buckets)``, the v table as ``(heads, num_buckets, head_dim)``, so:

        rpe_tables["k"] = official_k.transpose(1, 2)
        rpe_tables["q"] = official_q.transpose(1, 2).flip(1)     # bucket axis reversed
        rpe_tables["v"] = official_v

    (valid without the official ``skip`` / class-token bucket, which this layer does not have).
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
        super().__init__(d_model, num_heads, dropout)
        self.rpe_on = tuple(p for p in IRPE_POSITIONS if p in set(rpe_on))
        unknown = set(rpe_on) - set(IRPE_POSITIONS)
        if unknown:
            raise ValueError(f"rpe_on must be a subset of {IRPE_POSITIONS}, got {sorted(unknown)}")
        piecewise_index(torch.zeros(1), alpha, beta, gamma)  # validates the parameters
        self.alpha, self.beta, self.gamma = alpha, beta, gamma
        table_heads = 1 if shared_heads else num_heads
        buckets = num_product_buckets(beta)
        self.rpe_tables = RPETables(
            {p: nn.Parameter(torch.empty(table_heads, buckets, self.head_dim)) for p in self.rpe_on}
        )

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        batch, length, _ = x.shape
        if length != height * width:
            raise ValueError(f"sequence length {length} != height*width = {height}*{width}")
        if not self.rpe_on:
            return super().forward(x)
        q, k, v = self.split_heads(x)
        scale = self.head_dim**-0.5
        q = q * scale
        attn = q @ k.transpose(-2, -1)  # (B, h, L, L)
        ids = product_bucket_ids(height, width, self.alpha, self.beta, self.gamma, x.device)
        index = ids.expand(batch, self.num_heads, length, length)
        if "k" in self.rpe_on:  # q_i · r^K_ij: per-bucket products, then gathered
            per_bucket = q @ self.rpe_tables["k"].transpose(-2, -1)  # (B, h, L, buckets)
            attn = attn + per_bucket.gather(-1, index)
        # k_j · r^Q_ij: gather at (j, bucket(i, j)), then transpose to (i, j). M2 eq. 4 uses bucket(i, j); the official
        # iRPE code uses bucket(j, i) = num_buckets - 1 - bucket(i, j): its q table is ours flipped (class docstring).
        if "q" in self.rpe_on:
            per_bucket = (k * scale) @ self.rpe_tables["q"].transpose(-2, -1)
            attn = attn + per_bucket.gather(-1, index.transpose(-2, -1)).transpose(-2, -1)
        attn = attn.softmax(dim=-1)
        attn = F.dropout(attn, p=self.dropout, training=self.training)
        out = attn @ v
        if "v" in self.rpe_on:  # Σ_j a_ij r^V_ij = Σ_b (Σ_{j in bucket b} a_ij) r^V_b
            weights = attn.new_zeros(batch, self.num_heads, length, self.rpe_tables["v"].shape[1])
            weights.scatter_add_(-1, index, attn)
            out = out + weights @ self.rpe_tables["v"]
        return self.merge_heads(out)


class IRPEEncoderLayer(TransformerEncoderLayer):
    """Post-norm Transformer encoder layer (as DETR/Query2Label) whose self-attention is :class:`IRPEAttention`."""

    def __init__(self, d_model: int, num_heads: int, dim_feedforward: int = 2048, dropout: float = 0.1,
                 activation: str = "relu", **irpe_kwargs) -> None:
        super().__init__(d_model, num_heads, dim_feedforward, dropout, activation,
                         attention=IRPEAttention(d_model, num_heads, dropout=dropout, **irpe_kwargs))
