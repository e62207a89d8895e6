"""Configuration of ML-VPT, multi-label visual prompt tuning with correlative and discriminative label groups (M3)."""

from __future__ import annotations

import logging

from huggingface_hub.dataclasses import strict

from ...configuration_utils import MLICConfig, check_choices
from .moe import ACTIVATIONS, HEAD_FUSIONS, validate_label_groups
from .prompts import PROMPT_DEPTHS, PROMPT_MASKS

#: ``variant`` values: the method and the baselines of the paper's Table 4 on the same frozen ViT.
VARIANTS = ("ml-vpt", "vpt", "linear-probe", "full-finetune")
logger = logging.getLogger(__name__)


@strict
class MultiLabelVPTConfig(MLICConfig):
    r"""Configuration of [`MultiLabelVPTForMultiLabelImageClassification`]: ML-VPT (Ma et al., CVPR 2025) — a frozen
    timm Vision Transformer with deep prompt tokens for ``num_groups`` co-occurrence (CO) and ``num_groups``
    discriminative (DC) label groups (``num_prompts_per_group`` tokens each, a mask keeping groups apart), a
    group-aware mixture of experts per grouping kind, and two per-class heads whose probabilities are averaged.
    Trained with ASL on both heads (eq. 17). Defaults are the paper's (5 groups, 3 tokens and experts per group, expert
    hidden size 5, τ = 2 for the grouping, ViT-B/16 at 224 px).

    The label groups come from the training set's label co-occurrence
    (:func:`mlic_hf.models.multilabel_vpt.grouping.compute_label_groups`, ``scripts/compute_label_groups.py``;
    ``scripts/train.py`` computes them when they are not given) and are stored here, so a checkpoint is
    self-contained.

    Args:
        backbone (`str`, defaults to `"vit_base_patch16_224"`): a timm ``VisionTransformer`` (also e.g.
            ``vit_base_patch14_dinov2``, ``vit_small_patch14_dinov2``, ``vit_base_patch16_224.mae``). It is created
            with ``img_size=image_size`` (timm resamples pretrained position embeddings).
        variant (`str`, defaults to `"ml-vpt"`): ``"ml-vpt"`` (the method), ``"vpt"`` (VPT baseline: prompts +
            linear head on the class token), ``"linear-probe"`` (frozen backbone, class token → linear) or
            ``"full-finetune"`` (everything trained, class token → linear) — the rows of Table 4.
        num_groups (`int`, defaults to 5): groups per grouping kind, ``N_c``.
        num_prompts_per_group (`int`, defaults to 3): prompt tokens (and experts) per group, ``N_m``.
        co_groups (`list[int]`, *optional*): the CO group (``0..num_groups-1``) of every label.
        dc_groups (`list[int]`, *optional*): the DC group of every label. Without groups the model falls back to
            contiguous CO blocks and round-robin DC groups and logs a warning: compute real ones from data. Groups
            whose length differs from the number of labels (a checkpoint loaded for a new label set) are dropped
            with a warning.
        grouping_tau (`float`, defaults to 2.0), grouping_seed (`int`, defaults to 0): how the stored groups were
            computed (eq. 5's τ and the spectral-clustering seed); recorded for provenance.
        label_groups_source (`str`, *optional*): where the groups came from, e.g. ``"co-occurrence of 82783 training
            images"`` (set by ``scripts/train.py``) or ``"fallback"`` (no statistics; set by the model).
        use_co_groups (`bool`, defaults to `True`), use_dc_groups (`bool`, defaults to `True`): which grouping kinds
            get prompts and a head (Fig. 4's VPT-CO / VPT-DC ablations use one of them).
        prompt_depth (`str`, defaults to `"deep"`): ``"deep"`` (fresh prompts before every block) or ``"shallow"``.
        prompt_mask (`str`, defaults to `"group"`): ``"group"`` (prompts see only their own group's prompts),
            ``"self"`` (prompts see no other prompt, as the authors' code) or ``"none"``.
        prompt_dropout (`float`, defaults to 0.0): dropout on the prompt tokens.
        use_moe (`bool`, defaults to `True`): the group-aware MoE; ``False`` is Fig. 3's GVPT (each label reads the
            mean of its group's tokens).
        expert_hidden_size (`int`, defaults to 5): expert bottleneck width (eq. 11).
        expert_activation (`str`, defaults to `"relu"`): expert activation — the paper's text says ReLU; the
            authors' code uses ``"gelu"``.
        head_fusion (`str`, defaults to `"probability"`): ``"probability"`` — the paper's ŷ = ½(ŷ⁺ + ŷ⁻), returned
            as its logit — or ``"logit"`` (the authors' code averages logits).
        prompt_features_norm (`bool`, defaults to `True`): apply the ViT's final norm to the prompt outputs before
            the MoE (as the authors' code does for ViT-B and DINOv2).
        vpt_num_prompts (`int`, defaults to 30): prompts per block of the ``"vpt"`` variant (30 = the token budget of
            ML-VPT's defaults, 2·5·3, as the paper's comparisons).
    """

    model_type = "mlic-ml-vpt"
    method_info = {
        "name": "ML-VPT",
        "paper_title": "Correlative and Discriminative Label Grouping for Multi-Label Visual Prompt Tuning",
        "paper_authors": "Lei-Lei Ma, Shuo Xu, Ming-Kun Xie, Lei Wang, Dengdi Sun, Haifeng Zhao",
        "paper_url": "https://github.com/yu-gi-oh-leilei/ML-VPT",
        "summary": "Labels are grouped twice by spectral clustering of the training set's co-occurrence graph: into "
        "co-occurrence groups (labels that appear together) and discriminative groups (labels that rarely do). A "
        "frozen Vision Transformer gets deep prompt tokens for every group, with an attention mask that keeps the "
        "groups' prompts apart. A group-aware mixture of experts turns each group's prompt outputs into one feature "
        "per label, and two per-class heads (co-occurrence and discriminative) are averaged. Only prompts, experts, "
        "gates and heads are trained (about 1 M parameters on ViT-B).",
        "citation": "@inproceedings{ma2025mlvpt,\n  title={Correlative and Discriminative Label Grouping for Multi-Label "
        "Visual Prompt Tuning},\n  author={Ma, Lei-Lei and Xu, Shuo and Xie, Ming-Kun and Wang, Lei and Sun, Dengdi "
        "and Zhao, Haifeng},\n  booktitle={CVPR},\n  year={2025}\n}",
    }

    backbone: str = "vit_base_patch16_224"
    image_size: int = 224
    loss: str = "asl"
    variant: str = "ml-vpt"
    num_groups: int = 5
    num_prompts_per_group: int = 3
    co_groups: list[int] | None = None
    dc_groups: list[int] | None = None
    grouping_tau: float = 2.0
    grouping_seed: int = 0
    label_groups_source: str | None = None
    use_co_groups: bool = True
    use_dc_groups: bool = True
    prompt_depth: str = "deep"
    prompt_mask: str = "group"
    prompt_dropout: float = 0.0
    use_moe: bool = True
    expert_hidden_size: int = 5
    expert_activation: str = "relu"
    head_fusion: str = "probability"
    prompt_features_norm: bool = True
    vpt_num_prompts: int = 30

    def _check_fields(self) -> None:
        super()._check_fields()
        check_choices(
            ("variant", self.variant, VARIANTS),
            ("prompt_depth", self.prompt_depth, PROMPT_DEPTHS),
            ("prompt_mask", self.prompt_mask, PROMPT_MASKS),
            ("expert_activation", self.expert_activation, tuple(ACTIVATIONS)),
            ("head_fusion", self.head_fusion, HEAD_FUSIONS),
        )
        for name in ("num_groups", "num_prompts_per_group", "expert_hidden_size", "vpt_num_prompts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f"prompt_dropout must be in [0, 1), got {self.prompt_dropout}")
        if self.grouping_tau <= 0:
            raise ValueError(f"grouping_tau must be positive, got {self.grouping_tau}")
        if self.variant == "ml-vpt" and not (self.use_co_groups or self.use_dc_groups):
            raise ValueError("ML-VPT needs use_co_groups and/or use_dc_groups")
        if self.variant == "ml-vpt" and self.num_labels < self.num_groups:
            raise ValueError(f"{self.num_labels} labels cannot fill num_groups={self.num_groups} groups: "
                             "use fewer groups")
        for name in ("co_groups", "dc_groups"):
            groups = getattr(self, name)
            if groups is not None and len(groups) != self.num_labels:
                # e.g. from_pretrained(..., num_labels=N, ignore_mismatched_sizes=True): the groups belong to the old
                # label set. They are dropped (train.py recomputes them; the model otherwise uses the fallback).
                logger.warning("%s has %d entries but the config has %d labels: dropping the groups (recompute them "
                               "for this label set)", name, len(groups), self.num_labels)
                setattr(self, name, None)
            elif groups is not None:
                setattr(self, name, validate_label_groups(name, groups, self.num_labels, self.num_groups))

    def setup_from_training_data(self, train_dataset, recompute: bool = False) -> None:
        """Compute the label groups from the training split's co-occurrence (:mod:`.grouping`) unless the
        config has them; ``recompute=True`` (a checkpoint fine-tuned on a new label set) replaces stored groups,
        which belong to the old labels. Only the ``ml-vpt`` variant uses groups."""
        if self.variant != "ml-vpt":
            return
        have_groups = self.co_groups is not None and self.dc_groups is not None
        if have_groups and not recompute:
            return
        from .grouping import groups_from_dataset

        groups = groups_from_dataset(train_dataset, num_groups=self.num_groups, tau=self.grouping_tau,
                                     seed=self.grouping_seed).to_config_kwargs()
        self.co_groups, self.dc_groups = groups["co_groups"], groups["dc_groups"]
        self.label_groups_source = f"co-occurrence of {len(train_dataset)} training images"
        logger.info("label groups %s from %d training samples (tau=%s, seed=%s): CO %s, DC %s",
                    "recomputed for the new label set" if recompute else "computed", len(train_dataset),
                    self.grouping_tau, self.grouping_seed, self.co_groups, self.dc_groups)

    def model_card_sections(self) -> list[tuple[str, str]]:
        """The model card lists the label groups by name."""
        if self.variant != "ml-vpt" or self.co_groups is None or self.dc_groups is None:
            return []
        names = [str(self.id2label[i]).replace("|", "\\|") for i in range(self.num_labels)]
        if self.label_groups_source == "fallback":
            intro = (f"Default groups — no label statistics were available: contiguous blocks of labels as the "
                     f"{self.num_groups} co-occurrence (CO) groups and round-robin discriminative (DC) groups.")
        else:
            source = f" ({self.label_groups_source})" if self.label_groups_source else ""
            intro = (f"Spectral clustering of the training labels' co-occurrence{source}, τ = {self.grouping_tau}, "
                     f"seed {self.grouping_seed}, into {self.num_groups} co-occurrence (CO) groups — labels that "
                     "appear together — and as many discriminative (DC) groups — labels that rarely do.")
        lines = [f"{intro} Each group has {self.num_prompts_per_group} prompt token(s) per block.", "",
                 "| group | CO labels | DC labels |", "|---|---|---|"]
        for group in range(self.num_groups):
            co = ", ".join(n for n, g in zip(names, self.co_groups) if g == group)
            dc = ", ".join(n for n, g in zip(names, self.dc_groups) if g == group)
            lines.append(f"| {group} | {co} | {dc} |")
        return [("Label groups", "\n".join(lines))]

    def default_label_groups(self) -> tuple[list[int], list[int]]:
        """The fallback groups without data: contiguous CO blocks and round-robin DC groups (label ``i`` in DC group
        ``i mod N_c``), so that neighbouring labels share a CO group and are split across DC groups."""
        k, n = self.num_labels, self.num_groups
        return [i * n // k for i in range(k)], [i % n for i in range(k)]


__all__ = ["MultiLabelVPTConfig"]
