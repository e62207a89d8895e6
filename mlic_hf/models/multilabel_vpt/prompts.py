"""Visual prompt tuning on a frozen timm Vision Transformer (VPT and ML-VPT's group prompts).

VPT (Jia et al., ECCV 2022) inserts ``P`` learnable tokens after the class (and any register) tokens of a frozen ViT:
*shallow* VPT only before the first block, *deep* VPT a fresh set before every block (the previous block's prompt
outputs are dropped, eq. 4 of the ML-VPT paper). ML-VPT (Ma et al., CVPR 2025) gives every label group its own
prompts and adds an attention mask so that prompts of different groups cannot exchange information (section 4.2);
the class token and the patches still attend to every prompt.

The functions here work on any ``timm.models.vision_transformer.VisionTransformer`` (ViT, DeiT, DINOv2, MAE, ...):
they reuse its modules (``patch_embed``, ``_pos_embed``, ``blocks``, ``norm``) and only change the token sequence.
Both the registered ML-VPT model and the PEFT adapters (:mod:`mlic_hf.models.multilabel_vpt.peft_methods`) are built
from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

import torch
from torch import nn
from transformers import initialization as init

#: ``prompt_mask`` values: ``"group"`` (prompts only see prompts of their own group, the paper's predefined mask),
#: ``"self"`` (every prompt–prompt pair is blocked except a prompt with itself, as the authors' code does) and
#: ``"none"`` (plain VPT: every token sees every token).
PROMPT_MASKS = ("group", "self", "none")
#: ``prompt_depth`` values: a fresh prompt set before every block (deep VPT) or one set at the input (shallow VPT).
PROMPT_DEPTHS = ("deep", "shallow")


def vision_transformer_class() -> type:
    from timm.models.vision_transformer import VisionTransformer

    return VisionTransformer


def check_vision_transformer(model: nn.Module, what: str = "backbone") -> None:
    """Raise a ``TypeError`` unless ``model`` is a timm ``VisionTransformer`` (prompt tuning needs its token path)."""
    if not isinstance(model, vision_transformer_class()):
        raise TypeError(
            f"visual prompt tuning needs a timm VisionTransformer as {what} (e.g. vit_base_patch16_224, "
            f"vit_base_patch14_dinov2), got {type(model).__name__}"
        )


def vpt_init_bound(patch_size: Sequence[int] | int, dim: int, in_chans: int = 3) -> float:
    """VPT's uniform init bound for prompts: Xavier-uniform with the patch embedding's fan-in (3·p_h·p_w) and the
    embedding width as fan-out, ``sqrt(6 / (3·p_h·p_w + D))`` (as in the VPT reference code). ``in_chans`` is the
    patch projection's input channels: 3 for a plain ViT, the CNN's channels for a hybrid (1×1 "patches")."""
    if isinstance(patch_size, int):
        patch_size = (patch_size, patch_size)
    return math.sqrt(6.0 / float(in_chans * patch_size[0] * patch_size[1] + dim))


def patch_in_chans(vit: nn.Module) -> int:
    """Input channels of a timm ViT's patch projection (3, or a hybrid's CNN channels), for :func:`vpt_init_bound`."""
    return int(vit.patch_embed.proj.in_channels)


class PromptTokens(nn.Module):
    """Learnable prompt tokens, one set per block (deep) or one set for the input (shallow).

    Args:
        num_tokens: prompts per set (``P``).
        dim: token width (the ViT's ``embed_dim``).
        depth: number of sets: the number of blocks for deep VPT, 1 for shallow VPT.
        patch_size: the ViT's patch size, for VPT's init bound.
        in_chans: the patch projection's input channels, for VPT's init bound (:func:`patch_in_chans`).
        dropout: dropout on the prompts (VPT's ``PROMPT.DROPOUT``; 0 by default).
    """

    def __init__(self, num_tokens: int, dim: int, depth: int, patch_size: Sequence[int] | int = 16,
                 dropout: float = 0.0, in_chans: int = 3) -> None:
        super().__init__()
        if num_tokens < 1 or depth < 1:
            raise ValueError(f"PromptTokens needs num_tokens >= 1 and depth >= 1, got {num_tokens} and {depth}")
        self.num_tokens = num_tokens
        self.depth = depth
        self.bound = vpt_init_bound(patch_size, dim, in_chans)
        self.tokens = nn.Parameter(torch.empty(depth, num_tokens, dim))
        self.dropout = nn.Dropout(dropout)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        init.uniform_(self.tokens, -self.bound, self.bound)

    def forward(self, layer: int, batch_size: int) -> torch.Tensor:
        """The prompts entering block ``layer`` (deep) or the input (shallow, ``layer`` 0), ``(B, P, D)``."""
        return self.dropout(self.tokens[layer]).unsqueeze(0).expand(batch_size, -1, -1)


def prompt_attention_mask(num_prefix_tokens: int, prompt_groups: Sequence[int], num_patches: int, mode: str,
                          dtype: torch.dtype = torch.float32, device: torch.device | str | None = None,
                          ) -> torch.Tensor | None:
    """Additive attention mask ``(N, N)`` (0 = attend, -inf = blocked) for ``[prefix, prompts, patches]``.

    Args:
        num_prefix_tokens: class (and register) tokens before the prompts.
        prompt_groups: the group id of each prompt token (prompts with equal ids form a group).
        num_patches: number of patch tokens after the prompts.
        mode: ``"group"``, ``"self"`` or ``"none"`` (see :data:`PROMPT_MASKS`); ``"none"`` returns ``None``.

    Rows are queries: a prompt may attend to the prefix tokens, the patches and (``"group"``) the prompts of its own
    group or (``"self"``) only itself; prefix and patch tokens attend to everything.
    """
    if mode not in PROMPT_MASKS:
        raise ValueError(f"prompt_mask must be one of {PROMPT_MASKS}, got {mode!r}")
    if mode == "none":
        return None
    groups = torch.as_tensor(list(prompt_groups), device=device)
    num_prompts = groups.numel()
    total = num_prefix_tokens + num_prompts + num_patches
    if mode == "group":
        allowed = groups[:, None] == groups[None, :]
    else:
        allowed = torch.eye(num_prompts, dtype=torch.bool, device=device)
    mask = torch.zeros(total, total, dtype=dtype, device=device)
    block = slice(num_prefix_tokens, num_prefix_tokens + num_prompts)
    mask[block, block] = mask[block, block].masked_fill(~allowed, float("-inf"))
    return mask


def embed_tokens(vit: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """The token sequence a timm ViT feeds its first block: patch embedding, prefix tokens, position embedding."""
    x = vit.patch_embed(pixel_values)
    x = vit._pos_embed(x)
    x = vit.patch_drop(x)
    return vit.norm_pre(x)


def run_block(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
              checkpoint: Callable | None = None) -> torch.Tensor:
    """One timm ViT block on ``x``; through ``checkpoint`` (``torch.utils.checkpoint.checkpoint``-like: keep the
    input, recompute the block in the backward pass) when given. timm's own ``set_grad_checkpointing`` only covers
    ``forward_features``, which prompt tuning does not call."""
    call = partial(block, attn_mask=attn_mask) if attn_mask is not None else block
    return checkpoint(call, x) if checkpoint is not None else call(x)


def run_prompted_blocks(blocks: Sequence[nn.Module], tokens: torch.Tensor, prompts: PromptTokens,
                        num_prefix_tokens: int, attn_mask: torch.Tensor | None = None,
                        checkpoint: Callable | None = None, return_last_input: bool = False,
                        ) -> tuple[torch.Tensor, ...]:
    """Run ViT ``blocks`` on ``tokens`` with prompts inserted after the ``num_prefix_tokens`` prefix tokens.

    With ``prompts.depth == len(blocks)`` (deep VPT) every block gets fresh prompts and the previous block's prompt
    outputs are dropped; with depth 1 (shallow VPT) the prompts are inserted once and flow through all blocks.
    ``checkpoint`` recomputes every block in the backward pass instead of keeping its activations (see
    :func:`run_block`).

    Returns:
        ``(tokens, prompt_outputs)``: the sequence without prompts, ``(B, N, D)``, exactly the shape the ViT's own
        blocks return (so its ``norm`` and head work unchanged), and the last block's outputs at the prompt
        positions, ``(B, P, D)``; with ``return_last_input``, also the last block's input sequence (prompts
        included, ``(B, N + P, D)``), from which its attention can be recomputed.
    """
    if prompts.depth not in (1, len(blocks)):
        raise ValueError(f"{prompts.depth} prompt sets for {len(blocks)} blocks: use 1 (shallow) or one per block (deep)")
    batch = tokens.shape[0]
    start, stop = num_prefix_tokens, num_prefix_tokens + prompts.num_tokens
    x = torch.cat([tokens[:, :start], prompts(0, batch).to(tokens.dtype), tokens[:, start:]], dim=1)
    if attn_mask is not None:
        attn_mask = attn_mask.to(dtype=x.dtype, device=x.device)
    last_input = x
    for index, block in enumerate(blocks):
        if index > 0 and prompts.depth > 1:
            x = torch.cat([x[:, :start], prompts(index, batch).to(x.dtype), x[:, stop:]], dim=1)
        last_input = x
        x = run_block(block, x, attn_mask, checkpoint)
    outputs = torch.cat([x[:, :start], x[:, stop:]], dim=1), x[:, start:stop]
    return (*outputs, last_input) if return_last_input else outputs


__all__ = [
    "PROMPT_DEPTHS",
    "PROMPT_MASKS",
    "PromptTokens",
    "check_vision_transformer",
    "embed_tokens",
    "prompt_attention_mask",
    "run_block",
    "run_prompted_blocks",
    "vpt_init_bound",
]
