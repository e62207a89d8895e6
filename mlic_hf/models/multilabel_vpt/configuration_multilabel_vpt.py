"""Configuration of ML-VPT, multi-label visual prompt tuning with correlative and discriminative label groups (M3)."""

from __future__ import annotations

import logging
import math

from huggingface_hub.dataclasses import strict

from ...configuration_utils import MLICConfig, check_choices
from .moe import ACTIVATIONS, HEAD_FUSIONS, validate_label_groups
from .prompts import PROMPT_DEPTHS, PROMPT_MASKS
from .published_groups import PUBLISHED_GROUPS, match_published_groups, published_label_groups

#: ``variant`` values: the method and the baselines of the paper's Table 4 on the same frozen ViT.
VARIANTS = ("ml-vpt", "vpt", "linear-probe", "full-finetune")
#: ``image_normalization`` values (see the config docstring).
IMAGE_NORMALIZATIONS = ("backbone", "imagenet", "authors")
#: ``label_groups_preset`` values besides ``None``: the published groups by name, or ``"auto"``.
LABEL_GROUP_PRESETS = (*PUBLISHED_GROUPS, "auto")
#: ImageNet mean / std, with which the authors' data pipeline normalises the input of every backbone
#: (``code/MLIC-MoE/dataset/get_data.py:75-76``).
IMAGENET_MEAN, IMAGENET_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
#: The timm architectures of the authors' backbones (ViT-B/16 with IN1k, IN21k, MAE and MoCo v3 weights; DINOv2/B
#: and /S): ``image_normalization="authors"`` gives these ImageNet statistics and any other its own.
AUTHORS_ARCHITECTURES = ("vit_base_patch16_224", "vit_base_patch14_dinov2", "vit_small_patch14_dinov2")
logger = logging.getLogger(__name__)


@strict
class MultiLabelVPTConfig(MLICConfig):
    r"""Configuration of [`MultiLabelVPTForMultiLabelImageClassification`]: ML-VPT (Ma et al., CVPR 2025) — a frozen
    timm Vision Transformer with deep prompt tokens for ``num_groups`` co-occurrence (CO) and ``num_groups``
    discriminative (DC) label groups (``num_prompts_per_group`` tokens each, a mask keeping groups apart), a
    group-aware mixture of experts per grouping kind, and two per-class heads whose probabilities are averaged.
    Trained with ASL on both heads (eq. 17). Defaults are the paper's (5 groups, 3 tokens and experts per group, expert
    hidden size 5, τ = 2 for the grouping, ViT-B/16 at 224 px).

    Where the authors' public code (github.com/yu-gi-oh-leilei/ML-VPT, commit 4fd40e48; files below are under its
    ``code/MLIC-MoE/``) differs from the paper, a switch reproduces it; every default is the paper's. The
    ``--preset m3-authors*`` recipes set them all (see ``docs/ml_vpt_authors.md``): ``prompt_mask="self"``,
    ``expert_activation="gelu"``, ``head_fusion="logit"``, ``gate_bias=False``, ``gate_logit_loss=True``,
    ``asl_clamp_probabilities=True`` with ``asl_eps=1e-5``, ``asl_gamma_neg=2``, ``asl_clip=0``,
    ``loss_reduction="mean"`` with ``loss_scale=1000``, ``prompt_features_norm`` per backbone,
    ``image_normalization="authors"``, ``label_groups_preset="auto"`` and ``grouping_runs=4``.

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
        grouping_runs (`int`, defaults to 1): seeded spectral clusterings (seeds ``grouping_seed`` ...
            ``grouping_seed + grouping_runs - 1``) of each graph to keep the best of by Calinski-Harabasz score when
            the groups are computed from data, as CPSD's partition code (``partition/generate_with_adj.py``, whose
            grouping the paper adopts) keeps the best of 4 runs; 1 = a single run.
        label_groups_preset (`str`, *optional*): use published groups instead of computing them: ``"coco"`` or
            ``"nus-wide"`` (the authors' ``data/aux_data/{coco,nus}/*_coocurrence5_0.json`` / ``*_cluster5_0.json``,
            :mod:`.published_groups`), matched to the labels by name — a ``ValueError`` if the labels are not that
            dataset's or ``num_groups`` is not 5 —, or ``"auto"``: the published groups of the dataset whose label
            names these are (with ``num_groups=5``), computed groups otherwise. Groups given explicitly must equal a
            named preset's; with ``"auto"`` they win. ``None`` (default): computed from the training labels.
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
            the MoE. The authors' code does for ViT-B/16 (IN1k) and DINOv2 (``models/builder_network.py:368-372,
            384-392``) but takes the outputs before the norm (``pre_x_norm``) for the IN21k, MAE and MoCo v3
            backbones (lines 358-362, 374-378, 394-398): ``False`` for those.
        gate_bias (`bool`, defaults to `True`): learn the gates' bias ``b_k`` of eqs. 12–13. The authors' ``Gate_MOE``
            allocates it but never adds it (``models/builder_network.py:200-202``, the addition commented out at
            231-232): ``False`` creates no bias.
        gate_logit_loss (`bool`, defaults to `False`): add an ASL term on each grouping kind's gate logit
            ``Σ_e softmax(s)_e · s_e`` (``s``: the gate scores of a label, see :func:`.moe.gate_logits`). ``False`` is
            the paper's eq. 17 (one ASL term per head); ``True`` the authors' four terms of weight 1
            (``losses/builder_criterion.py:19``, weights at lines 13-17: ``loss_co_cls``, ``loss_cl_cls``,
            ``loss_co_moe_cls``, ``loss_cl_moe_cls``; ``Coef`` 1.0 in every config; the gate logit is
            ``moe_attention`` of ``models/builder_network.py:213-225``). Needs the MoE (``variant="ml-vpt"``, ``use_moe=True``).
        asl_clamp_probabilities (`bool`, defaults to `False`; a loss field of every method, see
            :class:`~mlic_hf.configuration_utils.MLICConfig`): ASL as the official / the authors' code computes it,
            ``log(max(p, asl_eps))`` and ``log(max(1 - p_m, asl_eps))`` (``losses/aslloss.py:150-151``), instead of
            the exact ``logsigmoid``. With the authors' ``asl_eps=1e-5`` an element's loss is capped at 11.5.
        loss_scale (`float`, defaults to 1.0): multiplies the training loss (every term). The authors' ASL returns
            the mean over batch and labels times 1000 (``losses/aslloss.py:173-174``): ``loss_reduction="mean"``,
            ``loss_scale=1000``. Under AdamW a constant scale changes the updates only through Adam's ``epsilon``.
        image_normalization (`str`, defaults to `"backbone"`): the normalisation statistics when ``image_mean`` /
            ``image_std`` are not given: ``"backbone"`` — the timm pretrained config's (0.5 / 0.5 for Google's ViT-B/16
            weights); ``"imagenet"`` — ImageNet mean / std for any backbone, as the authors' data pipeline
            (``dataset/get_data.py:75-76``); ``"authors"`` — ImageNet mean / std for the authors' backbone
            architectures (``vit_base_patch16_224`` with any weights, ``vit_base_patch14_dinov2``,
            ``vit_small_patch14_dinov2``), the backbone's own otherwise, so a recipe that sets it keeps another
            backbone's (e.g. a stand-in ViT's) statistics.
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
    grouping_runs: int = 1
    label_groups_preset: str | None = None
    gate_bias: bool = True
    gate_logit_loss: bool = False
    loss_scale: float = 1.0
    image_normalization: str = "backbone"

    def _check_fields(self) -> None:
        super()._check_fields()
        check_choices(
            ("variant", self.variant, VARIANTS),
            ("prompt_depth", self.prompt_depth, PROMPT_DEPTHS),
            ("prompt_mask", self.prompt_mask, PROMPT_MASKS),
            ("expert_activation", self.expert_activation, tuple(ACTIVATIONS)),
            ("head_fusion", self.head_fusion, HEAD_FUSIONS),
            ("image_normalization", self.image_normalization, IMAGE_NORMALIZATIONS),
            ("label_groups_preset", self.label_groups_preset, (None, *LABEL_GROUP_PRESETS)),
        )
        for name in ("num_groups", "num_prompts_per_group", "expert_hidden_size", "vpt_num_prompts", "grouping_runs"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.prompt_dropout < 1.0:
            raise ValueError(f"prompt_dropout must be in [0, 1), got {self.prompt_dropout}")
        if self.grouping_tau <= 0:
            raise ValueError(f"grouping_tau must be positive, got {self.grouping_tau}")
        if self.variant == "ml-vpt" and not (self.use_co_groups or self.use_dc_groups):
            raise ValueError("ML-VPT needs use_co_groups and/or use_dc_groups")
        if self.gate_logit_loss and not (self.variant == "ml-vpt" and self.use_moe):
            raise ValueError("gate_logit_loss trains the MoE gates' logits: it needs variant='ml-vpt' and use_moe=True")
        if not (math.isfinite(self.loss_scale) and self.loss_scale > 0):
            raise ValueError(f"loss_scale must be a positive number, got {self.loss_scale}")
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
        self._apply_label_groups_preset()
        self._apply_image_normalization()

    def _label_names(self) -> list[str]:
        return [str(self.id2label[i]) for i in range(self.num_labels)]

    def published_groups_name(self) -> str | None:
        """The published groups ``label_groups_preset`` selects for this config's labels (``None``: compute them).
        A named preset that does not fit the labels or ``num_groups`` raises a ``ValueError``."""
        preset = self.label_groups_preset
        if preset is None:
            return None
        name = match_published_groups(self._label_names()) if preset == "auto" else preset
        if name is None:
            return None
        groups = PUBLISHED_GROUPS[name]
        if self.num_groups != groups.num_groups:
            if preset == "auto":
                return None
            raise ValueError(f"label_groups_preset={preset!r} has {groups.num_groups} groups of each kind, but "
                             f"num_groups={self.num_groups}")
        return name

    def _apply_label_groups_preset(self) -> None:
        name = self.published_groups_name()
        if name is None:
            return
        try:
            co, dc = published_label_groups(name, self._label_names())
        except ValueError as err:
            raise ValueError(f"label_groups_preset={name!r}: {err} (use label_groups_preset='auto' or None for other "
                             "labels)") from None
        if self.co_groups is None and self.dc_groups is None:
            self.co_groups, self.dc_groups = co, dc
            self.label_groups_source = PUBLISHED_GROUPS[name].source
        elif (self.co_groups, self.dc_groups) != (co, dc):
            if self.label_groups_preset != "auto":
                raise ValueError(f"co_groups / dc_groups differ from label_groups_preset={name!r}'s published "
                                 "groups: give one or the other")
            logger.info("label_groups_preset='auto': the given groups are kept instead of the published %r ones", name)

    def _apply_image_normalization(self) -> None:
        """ImageNet statistics for unset ``image_mean`` / ``image_std`` where ``image_normalization`` asks for them
        (the model fills the rest from timm's pretrained config)."""
        if self.image_normalization == "backbone":
            return
        if self.image_normalization == "authors" and self.backbone.split(".")[0] not in AUTHORS_ARCHITECTURES:
            return
        if self.image_mean is None:
            self.image_mean = list(IMAGENET_MEAN)
        if self.image_std is None:
            self.image_std = list(IMAGENET_STD)

    def setup_from_training_data(self, train_dataset, recompute: bool = False) -> None:
        """Compute the label groups from the training split's co-occurrence (:mod:`.grouping`) unless the
        config has them; ``recompute=True`` (a checkpoint fine-tuned on a new label set) replaces stored groups,
        which belong to the old labels. Only the ``ml-vpt`` variant uses groups."""
        if self.variant != "ml-vpt":
            return
        have_groups = self.co_groups is not None and self.dc_groups is not None
        if have_groups and not recompute:
            return
        published = self.published_groups_name()
        if published is not None:  # a new label set that the preset covers: its groups, not computed ones
            self.co_groups, self.dc_groups = published_label_groups(published, self._label_names())
            self.label_groups_source = PUBLISHED_GROUPS[published].source
            logger.info("label groups: %s", self.label_groups_source)
            return
        from .grouping import groups_from_dataset

        groups = groups_from_dataset(train_dataset, num_groups=self.num_groups, tau=self.grouping_tau,
                                     seed=self.grouping_seed, n_runs=self.grouping_runs).to_config_kwargs()
        self.co_groups, self.dc_groups = groups["co_groups"], groups["dc_groups"]
        self.label_groups_source = f"co-occurrence of {len(train_dataset)} training images"
        logger.info("label groups %s from %d training samples (tau=%s, seed=%s, best of %d runs): CO %s, DC %s",
                    "recomputed for the new label set" if recompute else "computed", len(train_dataset),
                    self.grouping_tau, self.grouping_seed, self.grouping_runs, self.co_groups, self.dc_groups)

    def model_card_sections(self) -> list[tuple[str, str]]:
        """The model card lists the label groups by name."""
        if self.variant != "ml-vpt" or self.co_groups is None or self.dc_groups is None:
            return []
        names = [str(self.id2label[i]).replace("|", "\\|") for i in range(self.num_labels)]
        if self.label_groups_source == "fallback":
            intro = (f"Default groups — no label statistics were available: contiguous blocks of labels as the "
                     f"{self.num_groups} co-occurrence (CO) groups and round-robin discriminative (DC) groups.")
        elif self.label_groups_source in {groups.source for groups in PUBLISHED_GROUPS.values()}:
            intro = (f"The {self.label_groups_source}: {self.num_groups} co-occurrence (CO) groups — labels that "
                     "appear together — and as many discriminative (DC) groups — labels that rarely do.")
        else:
            source = f" ({self.label_groups_source})" if self.label_groups_source else ""
            runs = f" (best of {self.grouping_runs} runs)" if self.grouping_runs > 1 else ""
            intro = (f"Spectral clustering of the training labels' co-occurrence{source}, τ = {self.grouping_tau}, "
                     f"seed {self.grouping_seed}{runs}, into {self.num_groups} co-occurrence (CO) groups — labels that "
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
