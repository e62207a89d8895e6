"""Absolute position embeddings for feature maps: learned (resized to the map) or fixed 2-D sine (DETR)."""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init


class LearnedPositionEmbedding2D(nn.Module):
    """A learned (d, H, W) embedding for the training grid, bilinearly resized for other map sizes."""

    def __init__(self, d_model: int, height: int, width: int) -> None:
        super().__init__()
        self.embedding = nn.Parameter(torch.zeros(1, d_model, height, width))
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Truncated normal, std 0.02 (DETR/ViT's learned position init); skips weights from_pretrained loaded."""
        init.trunc_normal_(self.embedding, std=0.02)

    def forward(self, height: int, width: int) -> torch.Tensor:
        embedding = self.embedding
        if embedding.shape[-2:] != (height, width):
            embedding = F.interpolate(embedding, size=(height, width), mode="bilinear", align_corners=False)
        return embedding


def sine_position_embedding_2d(d_model: int, height: int, width: int, temperature: float = 10000.0,
                               device=None, dtype=torch.float32, interleave: bool = False,
                               eps: float = 0.0) -> torch.Tensor:
    """DETR's fixed 2-D sine embedding, (1, d, H, W): half the channels encode the row, half the column, at
    frequencies ``temperature ** (-i / (d/4))`` of the normalised coordinate ``2π · (1..H) / (H + eps)``.

    Within each half, ``interleave=False`` lays out all sines, then all cosines (M2, M4); ``interleave=True`` alternates
    sin and cos of each frequency, the channel order of DETR's and Query2Label's ``PositionEmbeddingSine``, whose
    weights expect it (with ``eps=1e-6``, their normaliser's, the table is theirs)."""
    if d_model % 4:
        raise ValueError(f"the 2-D sine position embedding needs d_model divisible by 4, got {d_model}")
    quarter = d_model // 4
    y = torch.arange(1, height + 1, device=device, dtype=torch.float32) / (height + eps) * 2 * math.pi
    x = torch.arange(1, width + 1, device=device, dtype=torch.float32) / (width + eps) * 2 * math.pi
    freq = temperature ** (torch.arange(quarter, device=device, dtype=torch.float32) / quarter)
    py = y[:, None] / freq  # (H, q)
    px = x[:, None] / freq  # (W, q)
    if interleave:
        pos_y = torch.stack([py.sin(), py.cos()], dim=2).flatten(1)
        pos_x = torch.stack([px.sin(), px.cos()], dim=2).flatten(1)
    else:
        pos_y = torch.cat([py.sin(), py.cos()], dim=1)
        pos_x = torch.cat([px.sin(), px.cos()], dim=1)
    pos_y = pos_y[:, None, :].expand(height, width, 2 * quarter)
    pos_x = pos_x[None, :, :].expand(height, width, 2 * quarter)
    return torch.cat([pos_y, pos_x], dim=-1).permute(2, 0, 1)[None].to(dtype)
