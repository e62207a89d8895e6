"""Group-aware mixture of experts (ML-VPT, Ma et al., CVPR 2025, section 4.3).

Each label group ``t`` owns ``N_m`` prompt tokens; their outputs ``z_t^e`` are the group-aware representations.

* Experts (eqs. 9–11): one residual bottleneck FFN per prompt token,
  ``E_t^e(z) = z + σ(z W_dn + b_dn) W_up + b_up`` with a small hidden size (5 by default).
* Gates (eqs. 12–13): one per class ``k`` in group ``t``: ``w_k = softmax_e(z_t^e · g_k^e + b_k^e)``. Each class has
  a ``D × N_m`` weight, one column per token of its group — the parameter count of the paper's Table 4 (1.02 M for
  80 COCO labels on DINOv2/B) and the layout of the authors' gate (a weight vector per class and expert). The gate
  reads the representations before the experts, as in eq. 12 and the authors' code. The bias ``b_k^e`` of eqs.
  12–13 is optional (``gate_bias=False``): the authors' ``Gate_MOE`` allocates it but never adds it
  (``code/MLIC-MoE/models/builder_network.py:200-202`` and the commented-out lines 231-232 of ML-VPT's public code).
* Label-aware features (eqs. 14–15): ``c_k = Σ_e w_k^e E_t^e(z_t^e)``.
* Gate logits (the authors' code only, not in the paper): ``Σ_e w_k^e s_k^e`` with ``s_k^e`` the gate's scores
  before the softmax — one logit per label, which the authors train with ASL like the heads' logits
  (``builder_network.py:213-225`` ``moe_attention``, returned as ``moe_co_logit`` / ``moe_cl_logit`` at 457-458).

Everything is batched: all experts of all groups are one pair of ``einsum`` calls, all gates another.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init

ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}
#: How the CO and DC heads are combined (see :func:`fuse_dual_logits`).
HEAD_FUSIONS = ("probability", "logit")


class GroupAwareMoE(nn.Module):
    """Label-aware features from group-aware prompt representations.

    Args:
        label_groups: the group id (``0..num_groups-1``) of every label.
        num_groups: number of groups ``N_c``.
        num_experts: tokens (= experts) per group ``N_m``.
        dim: token width ``D``.
        hidden_size: expert bottleneck width (5 in the paper).
        activation: expert activation, ``"relu"`` (the paper's text) or ``"gelu"`` (the authors' code).
        use_experts: ``False`` skips the experts (``E = identity``; the gated sum remains).
        gate_bias: learn the gate bias ``b_k`` of eqs. 12–13 (``False``: scores without bias, as the authors' code).

    Input ``(B, N_c, N_m, D)``; output ``(features (B, K, D), gate weights (B, K, N_m))``, and with
    ``return_scores=True`` also the gate scores before the softmax ``(B, K, N_m)``.
    """

    def __init__(self, label_groups: Sequence[int], num_groups: int, num_experts: int, dim: int,
                 hidden_size: int = 5, activation: str = "relu", use_experts: bool = True,
                 gate_bias: bool = True) -> None:
        super().__init__()
        label_groups = [int(g) for g in label_groups]
        if not label_groups or min(label_groups) < 0 or max(label_groups) >= num_groups:
            raise ValueError(f"label_groups must hold group ids in [0, {num_groups}), got {label_groups}")
        # a plain list, not a buffer: non-persistent buffers are not restored by from_pretrained's meta-device load
        self.groups: list[int] = label_groups
        if activation not in ACTIVATIONS:
            raise ValueError(f"expert activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
        self.num_groups, self.num_experts, self.dim, self.hidden_size = num_groups, num_experts, dim, hidden_size
        self.activation = activation
        experts = num_groups * num_experts
        self.use_experts = use_experts
        if use_experts:
            self.down_weight = nn.Parameter(torch.empty(experts, dim, hidden_size))
            self.down_bias = nn.Parameter(torch.empty(experts, hidden_size))
            self.up_weight = nn.Parameter(torch.empty(experts, hidden_size, dim))
            self.up_bias = nn.Parameter(torch.empty(experts, dim))
        self.gate_weight = nn.Parameter(torch.empty(len(label_groups), num_experts, dim))
        # without a bias no parameter is created (the authors' unused one would only be decayed by AdamW)
        self.gate_bias = nn.Parameter(torch.empty(len(label_groups), num_experts)) if gate_bias else None
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """``nn.Linear``'s default init for every expert and gate (as the authors' code)."""
        def linear_init(weight: torch.Tensor, bias: torch.Tensor | None, fan_in: int) -> None:
            bound = 1.0 / math.sqrt(fan_in)
            init.uniform_(weight, -bound, bound)
            if bias is not None:
                init.uniform_(bias, -bound, bound)

        if self.use_experts:
            linear_init(self.down_weight, self.down_bias, self.dim)
            linear_init(self.up_weight, self.up_bias, self.hidden_size)
        linear_init(self.gate_weight, self.gate_bias, self.dim)

    def experts(self, tokens: torch.Tensor) -> torch.Tensor:
        """Eq. 11 for every token: ``(B, N_c, N_m, D)`` → same shape."""
        if not self.use_experts:
            return tokens
        batch = tokens.shape[0]
        flat = tokens.reshape(batch, self.num_groups * self.num_experts, self.dim)
        hidden = ACTIVATIONS[self.activation](torch.einsum("bed,edh->beh", flat, self.down_weight) + self.down_bias)
        out = flat + torch.einsum("beh,ehd->bed", hidden, self.up_weight) + self.up_bias
        return out.reshape_as(tokens)

    def forward(self, tokens: torch.Tensor, return_scores: bool = False) -> tuple[torch.Tensor, ...]:
        expected = (self.num_groups, self.num_experts, self.dim)
        if tokens.dim() != 4 or tuple(tokens.shape[1:]) != expected:
            raise ValueError(f"GroupAwareMoE expects (batch, {', '.join(map(str, expected))}), got {tuple(tokens.shape)}")
        index = torch.as_tensor(self.groups, device=tokens.device)
        per_label = tokens[:, index]  # (B, K, N_m, D): each label's group representations
        scores = torch.einsum("bkmd,kmd->bkm", per_label, self.gate_weight)
        if self.gate_bias is not None:
            scores = scores + self.gate_bias
        weights = torch.softmax(scores, dim=-1)
        expert_out = self.experts(tokens)[:, index]
        features = (weights.unsqueeze(-1) * expert_out).sum(dim=2)
        return (features, weights, scores) if return_scores else (features, weights)


def gate_logits(weights: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """The authors' per-label gate logit ``Σ_e softmax(s)_e · s_e`` from the gate weights ``softmax(s)`` and scores
    ``s``, both ``(B, K, N_m)`` → ``(B, K)`` (``moe_attention`` in ``builder_network.py:213-225`` of ML-VPT's code,
    where the same scores are passed as both arguments)."""
    return (weights * scores).sum(dim=-1)


def fuse_dual_logits(co_logits: torch.Tensor, dc_logits: torch.Tensor, mode: str = "probability") -> torch.Tensor:
    """Combine the CO and DC heads' logits into one logit per label.

    ``"probability"``: the paper's ``ŷ = 0.5·(σ(a) + σ(b))`` (section 4.4), returned as its logit
    ``log ŷ − log(1 − ŷ)`` computed stably in float32, so ``sigmoid(fused)`` is exactly the paper's prediction.
    ``"logit"``: ``0.5·(a + b)``, the authors' code.
    """
    if mode not in HEAD_FUSIONS:
        raise ValueError(f"head fusion must be one of {HEAD_FUSIONS}, got {mode!r}")
    if mode == "logit":
        return 0.5 * (co_logits + dc_logits)
    a, b = co_logits.float(), dc_logits.float()
    log_p = torch.logaddexp(F.logsigmoid(a), F.logsigmoid(b))
    log_q = torch.logaddexp(F.logsigmoid(-a), F.logsigmoid(-b))
    return (log_p - log_q).to(co_logits.dtype)


def validate_label_groups(name: str, groups: Sequence[int], num_labels: int, num_groups: int) -> list[int]:
    """Check a per-label group assignment: one id in ``[0, num_groups)`` per label and no empty group."""
    groups = [int(g) for g in groups]
    if len(groups) != num_labels:
        raise ValueError(f"{name} has {len(groups)} entries but there are {num_labels} labels")
    bad = sorted({g for g in groups if not 0 <= g < num_groups})
    if bad:
        raise ValueError(f"{name} holds group ids {bad} outside [0, num_groups={num_groups})")
    empty = sorted(set(range(num_groups)) - set(groups))
    if empty:
        raise ValueError(f"{name}: groups {empty} have no labels (num_groups={num_groups}); recompute the groups or "
                         "lower num_groups")
    return groups


def label_group_kinds(co_groups: Sequence[int], dc_groups: Sequence[int], use_co: bool = True,
                      use_dc: bool = True) -> dict[str, Sequence[int]]:
    """The grouping kinds a model uses, in prompt order: ``{"co": co_groups, "dc": dc_groups}`` or one of them."""
    kinds = {"co": co_groups, "dc": dc_groups}
    return {kind: groups for kind, groups in kinds.items() if {"co": use_co, "dc": use_dc}[kind]}


def group_prompt_layout(num_groups: int, tokens_per_group: int, kinds: int) -> list[int]:
    """Group id of every prompt token for ``kinds`` grouping kinds (CO, then DC) of ``num_groups`` groups with
    ``tokens_per_group`` tokens each: token ``(kind·N_c + t)·N_m + e`` belongs to group ``kind·N_c + t``."""
    return [group for group in range(kinds * num_groups) for _ in range(tokens_per_group)]


class DualGroupHead(nn.Module):
    """ML-VPT's head on the prompt outputs: per grouping kind (CO, DC) a group-aware MoE (or, without MoE, the mean
    of the group's tokens) and a per-class linear head (eq. 16), fused into one logit per label (section 4.4).

    Args:
        kinds: ``{"co": label_groups, "dc": label_groups}`` — one or both grouping kinds, each the group id of every
            label (the order of the prompt tokens follows the order of this mapping).
        num_groups, tokens_per_group, dim, hidden_size, activation, gate_bias: as :class:`GroupAwareMoE`.
        use_moe: ``False`` gives the paper's GVPT ablation (Fig. 3): each label reads the mean of its group's tokens.
        fusion: ``"probability"`` or ``"logit"`` (see :func:`fuse_dual_logits`).

    ``forward(prompt_tokens (B, P, D))`` returns a dict with ``logits`` (B, K), per-kind ``<kind>_logits``,
    ``label_features`` (B, K, kinds·D) and, when the MoE is used, per-kind ``<kind>_gates`` (B, K, N_m) and
    ``<kind>_gate_logits`` (B, K; see :func:`gate_logits`).
    """

    def __init__(self, kinds: dict[str, Sequence[int]], num_groups: int, tokens_per_group: int, dim: int,
                 hidden_size: int = 5, activation: str = "relu", use_moe: bool = True,
                 fusion: str = "probability", gate_bias: bool = True) -> None:
        super().__init__()
        from ...layers.decoder import GroupWiseLinear

        if not kinds:
            raise ValueError("DualGroupHead needs at least one grouping kind (co and/or dc)")
        sizes = {len(groups) for groups in kinds.values()}
        if len(sizes) != 1:
            raise ValueError(f"every grouping must cover the same labels, got group lists of lengths {sorted(sizes)}")
        if fusion not in HEAD_FUSIONS:
            raise ValueError(f"head fusion must be one of {HEAD_FUSIONS}, got {fusion!r}")
        self.kinds = list(kinds)
        self.num_labels = sizes.pop()
        self.num_groups, self.tokens_per_group, self.dim = num_groups, tokens_per_group, dim
        self.use_moe, self.fusion = use_moe, fusion
        self.label_groups = {kind: [int(g) for g in groups] for kind, groups in kinds.items()}
        self.moe = nn.ModuleDict()
        if use_moe:
            for kind, groups in kinds.items():
                self.moe[kind] = GroupAwareMoE(groups, num_groups, tokens_per_group, dim, hidden_size, activation,
                                               gate_bias=gate_bias)
        self.heads = nn.ModuleDict({kind: GroupWiseLinear(self.num_labels, dim) for kind in kinds})

    @property
    def num_prompts(self) -> int:
        return len(self.kinds) * self.num_groups * self.tokens_per_group

    def forward(self, prompt_tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        batch = prompt_tokens.shape[0]
        if prompt_tokens.shape[1] != self.num_prompts:
            raise ValueError(f"DualGroupHead expects {self.num_prompts} prompt tokens, got {prompt_tokens.shape[1]}")
        grouped = prompt_tokens.reshape(batch, len(self.kinds), self.num_groups, self.tokens_per_group, self.dim)
        out: dict[str, torch.Tensor] = {}
        features, logits = [], []
        for index, kind in enumerate(self.kinds):
            tokens = grouped[:, index]
            if self.use_moe:
                label_features, gates, scores = self.moe[kind](tokens, return_scores=True)
                out[f"{kind}_gates"] = gates
                out[f"{kind}_gate_logits"] = gate_logits(gates, scores)
            else:
                index = torch.as_tensor(self.label_groups[kind], device=tokens.device)
                label_features = tokens[:, index].mean(dim=2)
            kind_logits = self.heads[kind](label_features)
            out[f"{kind}_logits"] = kind_logits
            features.append(label_features)
            logits.append(kind_logits)
        out["logits"] = logits[0] if len(logits) == 1 else fuse_dual_logits(logits[0], logits[1], self.fusion)
        out["label_features"] = torch.cat(features, dim=-1)
        return out


__all__ = ["ACTIVATIONS", "HEAD_FUSIONS", "DualGroupHead", "GroupAwareMoE", "fuse_dual_logits", "gate_logits",
           "group_prompt_layout", "label_group_kinds", "validate_label_groups"]
