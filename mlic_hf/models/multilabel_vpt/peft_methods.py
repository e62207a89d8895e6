"""VPT and ML-VPT as PEFT methods on timm Vision Transformers.

Usage (importing this module registers both methods with PEFT)::

    import timm
    from peft import PeftModel, get_peft_model
    from mlic_hf.models.multilabel_vpt.peft_methods import MLVPTConfig, VPTConfig

    vit = timm.create_model("vit_base_patch16_224", pretrained=True, num_classes=80)
    model = get_peft_model(vit, MLVPTConfig(co_groups=co, dc_groups=dc))   # or VPTConfig(num_prompts=30)
    model.print_trainable_parameters()
    logits = model(pixel_values)                                          # (B, 80)
    model.save_pretrained("adapter")                                      # adapter weights only
    model = PeftModel.from_pretrained(timm.create_model(...), "adapter")

* :class:`VPTConfig` — VPT (Jia et al., 2022), shallow or deep prompts; the ViT's own class-token head is trained
  (``modules_to_save=["head"]``; create the ViT with ``num_classes=<labels>``).
* :class:`MLVPTConfig` — ML-VPT (Ma et al., CVPR 2025): group prompts with the group attention mask, group-aware MoE
  and dual heads. The adapter replaces the ViT's head output with the fused logits; the last forward's per-head
  logits (for eq. 17's loss: the loss of each head, summed) are in :func:`last_ml_vpt_outputs`.
* LoRA on the same ViT is PEFT's own ``LoraConfig(target_modules=["qkv"], modules_to_save=["head"])``.

With the adapter disabled (``with model.disable_adapter():``) the ViT runs exactly as the base model.
The building blocks are shared with the registered model ``mlic-ml-vpt``
(:mod:`mlic_hf.models.multilabel_vpt.prompts`, :mod:`mlic_hf.models.multilabel_vpt.moe`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import torch
from peft.config import PeftConfig
from peft.tuners.tuners_utils import BaseTuner, BaseTunerLayer
from peft.utils.peft_types import PeftType
from torch import nn

from ...configuration_utils import check_choices
from .moe import (
    ACTIVATIONS,
    HEAD_FUSIONS,
    DualGroupHead,
    group_prompt_layout,
    label_group_kinds,
    validate_label_groups,
)
from .prompts import (
    PROMPT_DEPTHS,
    PROMPT_MASKS,
    PromptTokens,
    check_vision_transformer,
    patch_in_chans,
    prompt_attention_mask,
    run_prompted_blocks,
)
from .peft_registry import add_peft_type, register_method

VPT_PREFIX = "vptprompt_"
MLVPT_PREFIX = "mlvpt_"
add_peft_type("VPT")
add_peft_type("ML_VPT")


@dataclass
class VPTConfig(PeftConfig):
    """PEFT config of visual prompt tuning (VPT) on a timm ViT.

    Args:
        num_prompts: prompt tokens per set (30 in the ML-VPT paper's comparison).
        prompt_depth: ``"deep"`` (a fresh set before every block) or ``"shallow"`` (one set at the input).
        prompt_dropout: dropout on the prompts.
        modules_to_save: modules trained in full and saved with the adapter (the classifier ``head``).
    """

    num_prompts: int = field(default=30, metadata={"help": "prompt tokens per set"})
    prompt_depth: str = field(default="deep", metadata={"help": "'deep' or 'shallow'"})
    prompt_dropout: float = field(default=0.0, metadata={"help": "dropout on the prompts"})
    modules_to_save: Optional[list[str]] = field(default_factory=lambda: ["head"],
                                                 metadata={"help": "modules trained in full (the classifier)"})
    target_modules: Optional[list[str]] = field(default_factory=lambda: ["blocks"],
                                                metadata={"help": "the ViT's block container (fixed)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = PeftType.VPT
        check_choices(("prompt_depth", self.prompt_depth, PROMPT_DEPTHS))
        if self.num_prompts < 1:
            raise ValueError(f"num_prompts must be >= 1, got {self.num_prompts}")
        self.target_modules = ["blocks"]


@dataclass
class MLVPTConfig(PeftConfig):
    """PEFT config of ML-VPT on a timm ViT (see :class:`mlic_hf.MultiLabelVPTConfig` for the fields' meaning).

    Args:
        co_groups, dc_groups: the co-occurrence / discriminative group of every label (from
            :func:`mlic_hf.models.multilabel_vpt.grouping.compute_label_groups`); their length is the number of labels.
        num_groups (5), num_prompts_per_group (3), prompt_depth ("deep"), prompt_mask ("group"),
        prompt_dropout (0.0), use_co_groups / use_dc_groups (True), use_moe (True), expert_hidden_size (5),
        expert_activation ("relu"), head_fusion ("probability"), prompt_features_norm (True), gate_bias (True).
    """

    co_groups: Optional[list[int]] = field(default=None, metadata={"help": "CO group of every label"})
    dc_groups: Optional[list[int]] = field(default=None, metadata={"help": "DC group of every label"})
    num_groups: int = field(default=5, metadata={"help": "groups per grouping kind (N_c)"})
    num_prompts_per_group: int = field(default=3, metadata={"help": "prompt tokens / experts per group (N_m)"})
    prompt_depth: str = field(default="deep", metadata={"help": "'deep' or 'shallow'"})
    prompt_mask: str = field(default="group", metadata={"help": "'group', 'self' or 'none'"})
    prompt_dropout: float = field(default=0.0, metadata={"help": "dropout on the prompts"})
    use_co_groups: bool = field(default=True, metadata={"help": "prompts + head for the CO groups"})
    use_dc_groups: bool = field(default=True, metadata={"help": "prompts + head for the DC groups"})
    use_moe: bool = field(default=True, metadata={"help": "group-aware mixture of experts"})
    expert_hidden_size: int = field(default=5, metadata={"help": "expert bottleneck width"})
    expert_activation: str = field(default="relu", metadata={"help": "'relu' (paper) or 'gelu' (authors' code)"})
    head_fusion: str = field(default="probability", metadata={"help": "'probability' (paper) or 'logit'"})
    prompt_features_norm: bool = field(default=True, metadata={"help": "final ViT norm on the prompt outputs"})
    gate_bias: bool = field(default=True, metadata={"help": "gate bias of eqs. 12-13 (False: the authors' code)"})
    target_modules: Optional[list[str]] = field(default_factory=lambda: ["blocks", "head"],
                                                metadata={"help": "the ViT's blocks and head (fixed)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        self.peft_type = PeftType.ML_VPT
        check_choices(
            ("prompt_depth", self.prompt_depth, PROMPT_DEPTHS),
            ("prompt_mask", self.prompt_mask, PROMPT_MASKS),
            ("expert_activation", self.expert_activation, tuple(ACTIVATIONS)),
            ("head_fusion", self.head_fusion, HEAD_FUSIONS),
        )
        if self.co_groups is None or self.dc_groups is None:
            raise ValueError("MLVPTConfig needs co_groups and dc_groups "
                             "(mlic_hf.models.multilabel_vpt.grouping.compute_label_groups)")
        if not (self.use_co_groups or self.use_dc_groups):
            raise ValueError("MLVPTConfig needs use_co_groups and/or use_dc_groups")
        num_labels = len(self.co_groups)
        self.co_groups = validate_label_groups("co_groups", self.co_groups, num_labels, self.num_groups)
        self.dc_groups = validate_label_groups("dc_groups", self.dc_groups, num_labels, self.num_groups)
        self.target_modules = ["blocks", "head"]

    @property
    def num_labels(self) -> int:
        return len(self.co_groups)

    @classmethod
    def from_model_config(cls, config, **kwargs) -> "MLVPTConfig":
        """The adapter config matching a :class:`mlic_hf.MultiLabelVPTConfig` (its groups and switches)."""
        fields = ("co_groups", "dc_groups", "num_groups", "num_prompts_per_group", "prompt_depth", "prompt_mask",
                  "prompt_dropout", "use_co_groups", "use_dc_groups", "use_moe", "expert_hidden_size",
                  "expert_activation", "head_fusion", "prompt_features_norm", "gate_bias")
        return cls(**{name: getattr(config, name) for name in fields}, **kwargs)


class PromptedBlocksLayer(nn.Module, BaseTunerLayer):
    """Wraps a ViT's ``blocks``: runs them with the active adapter's prompts (and mask) and returns the sequence
    without the prompts, so the rest of the ViT is unchanged. The prompt outputs of the last call are kept in
    ``last_prompt_outputs`` for a head adapter."""

    adapter_layer_names: tuple[str, ...] = ()
    prompt_attr = ""

    def __init__(self, base_layer: nn.Module, num_prefix_tokens: int) -> None:
        nn.Module.__init__(self)
        self.base_layer = base_layer
        self.num_prefix_tokens = num_prefix_tokens
        setattr(self, self.prompt_attr, nn.ModuleDict())
        self.prompt_groups: dict[str, list[int]] = {}
        self.prompt_masks: dict[str, str] = {}
        self.last_prompt_outputs: torch.Tensor | None = None
        self._disable_adapters = False
        self.merged_adapters = []

    def update_layer(self, adapter_name: str, prompts: PromptTokens, groups: list[int], mask: str) -> None:
        getattr(self, self.prompt_attr)[adapter_name] = prompts
        self.prompt_groups[adapter_name], self.prompt_masks[adapter_name] = groups, mask
        self.set_adapter(self.active_adapters)

    def _active_prompts(self) -> tuple[str, PromptTokens] | None:
        store = getattr(self, self.prompt_attr)
        active = [name for name in self.active_adapters if name in store]
        if self.disable_adapters or not active:
            return None
        if len(active) > 1:
            raise ValueError(f"only one prompt adapter can be active at a time, got {active}")
        return active[0], store[active[0]]

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        self.last_prompt_outputs = None
        active = self._active_prompts()
        if active is None:
            return self.base_layer(x, *args, **kwargs)
        if args or kwargs:
            raise ValueError("prompted ViT blocks take only the token sequence (no external attention mask)")
        name, prompts = active
        mask = prompt_attention_mask(self.num_prefix_tokens, self.prompt_groups[name],
                                     x.shape[1] - self.num_prefix_tokens, self.prompt_masks[name], x.dtype, x.device)
        x, self.last_prompt_outputs = run_prompted_blocks(self.base_layer, x, prompts, self.num_prefix_tokens, mask)
        return x


class VPTBlocksLayer(PromptedBlocksLayer):
    adapter_layer_names = ("vptprompt_tokens",)
    prompt_attr = "vptprompt_tokens"


class MLVPTBlocksLayer(PromptedBlocksLayer):
    adapter_layer_names = ("mlvpt_prompts",)
    prompt_attr = "mlvpt_prompts"


class MLVPTHeadLayer(nn.Module, BaseTunerLayer):
    """Wraps a ViT's ``head``: with the adapter active, returns ML-VPT's fused logits computed from the prompt outputs
    of the (wrapped) blocks; disabled, the base head's output."""

    adapter_layer_names = ("mlvpt_head",)

    def __init__(self, base_layer: nn.Module, blocks: MLVPTBlocksLayer, norm: nn.Module) -> None:
        nn.Module.__init__(self)
        self.base_layer = base_layer
        self.mlvpt_head = nn.ModuleDict()
        self.features_norm: dict[str, bool] = {}
        # plain references (not submodules): both belong to the ViT and are saved/moved with it
        object.__setattr__(self, "_blocks", blocks)
        object.__setattr__(self, "_norm", norm)
        self.last_outputs: dict[str, torch.Tensor] | None = None
        self._disable_adapters = False
        self.merged_adapters = []

    def update_layer(self, adapter_name: str, head: DualGroupHead, features_norm: bool) -> None:
        self.mlvpt_head[adapter_name] = head
        self.features_norm[adapter_name] = features_norm
        self.set_adapter(self.active_adapters)

    def forward(self, x: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        active = [name for name in self.active_adapters if name in self.mlvpt_head]
        if self.disable_adapters or not active:
            self.last_outputs = None
            return self.base_layer(x, *args, **kwargs)
        name = active[0]
        tokens = self._blocks.last_prompt_outputs
        if tokens is None:
            raise RuntimeError("the ML-VPT head ran without prompt outputs: call the whole ViT, not its head alone")
        if self.features_norm[name]:
            tokens = self._norm(tokens)
        self.last_outputs = self.mlvpt_head[name](tokens)
        return self.last_outputs["logits"]


class _PromptTuner(BaseTuner):
    """Shared injection logic: the targets are the ViT's top-level ``blocks`` (and ``head``)."""

    uses_shared_state = True  # the head reads the blocks' prompt outputs
    target_module_mapping: dict[str, list[str]] = {}

    def _prepare_adapter_config(self, peft_config: PeftConfig, model_config: dict) -> PeftConfig:
        return peft_config

    @classmethod
    def _remove_adapter_name_from_key(cls, key: str, adapter_name: str) -> str:
        """Drop the adapter name after our container attribute wherever it sits in the key (our adapters are
        module trees, e.g. ``head.mlvpt_head.<adapter>.moe.co.gate_weight``), so checkpoints are adapter-name free."""
        return re.sub(rf"\.({re.escape(cls.prefix)}\w*)\.{re.escape(adapter_name)}(?=\.|$)", r".\1", key)

    def _pre_injection_hook(self, model: nn.Module, config: PeftConfig, adapter_name: str) -> None:
        check_vision_transformer(model, "the PEFT base model")
        if any(isinstance(m, PromptedBlocksLayer) for m in model.modules()):
            raise ValueError("this ViT already has a prompt adapter; only one prompt adapter per model is supported")

    @staticmethod
    def _check_target_module_exists(peft_config: PeftConfig, key: str) -> bool:
        return key in peft_config.target_modules

    def _mark_only_adapters_as_trainable(self, model: nn.Module) -> None:
        for name, param in model.named_parameters():
            param.requires_grad = self.prefix in name

    def _prompt_tokens(self, num_tokens: int, depth: str, dropout: float) -> PromptTokens:
        vit = self.model
        return PromptTokens(num_tokens, vit.embed_dim, len(vit.blocks) if depth == "deep" else 1,
                            vit.patch_embed.patch_size, dropout, patch_in_chans(vit))


class VPTModel(_PromptTuner):
    """PEFT tuner of :class:`VPTConfig` (``get_peft_model(vit, VPTConfig(...))``)."""

    prefix = VPT_PREFIX
    tuner_layer_cls = VPTBlocksLayer

    def _create_and_replace(self, peft_config: VPTConfig, adapter_name: str, target: nn.Module, target_name: str,
                            parent: nn.Module, current_key: str, **kwargs) -> None:
        layer = target if isinstance(target, VPTBlocksLayer) else VPTBlocksLayer(target, self.model.num_prefix_tokens)
        prompts = self._prompt_tokens(peft_config.num_prompts, peft_config.prompt_depth, peft_config.prompt_dropout)
        layer.update_layer(adapter_name, prompts, [0] * peft_config.num_prompts, "none")
        if layer is not target:
            setattr(parent, target_name, layer)


class MLVPTModel(_PromptTuner):
    """PEFT tuner of :class:`MLVPTConfig` (``get_peft_model(vit, MLVPTConfig(...))``)."""

    prefix = MLVPT_PREFIX
    tuner_layer_cls = (MLVPTBlocksLayer, MLVPTHeadLayer)

    def _create_and_replace(self, peft_config: MLVPTConfig, adapter_name: str, target: nn.Module, target_name: str,
                            parent: nn.Module, current_key: str, **kwargs) -> None:
        vit = self.model
        kinds = label_group_kinds(peft_config.co_groups, peft_config.dc_groups, peft_config.use_co_groups,
                                  peft_config.use_dc_groups)
        if current_key == "blocks":
            layer = MLVPTBlocksLayer(target, vit.num_prefix_tokens)
            groups = group_prompt_layout(peft_config.num_groups, peft_config.num_prompts_per_group, len(kinds))
            layer.update_layer(adapter_name, self._prompt_tokens(len(groups), peft_config.prompt_depth,
                                                                 peft_config.prompt_dropout),
                               groups, peft_config.prompt_mask)
        else:  # "head": injected after "blocks" (named_modules order of a timm ViT)
            blocks = vit.blocks
            if not isinstance(blocks, MLVPTBlocksLayer):
                raise RuntimeError("ML-VPT: the ViT's blocks must be wrapped before its head")
            layer = MLVPTHeadLayer(target, blocks, vit.norm)
            layer.update_layer(adapter_name, DualGroupHead(
                kinds, peft_config.num_groups, peft_config.num_prompts_per_group, vit.embed_dim,
                peft_config.expert_hidden_size, peft_config.expert_activation, peft_config.use_moe,
                peft_config.head_fusion, gate_bias=peft_config.gate_bias), peft_config.prompt_features_norm)
        setattr(parent, target_name, layer)


def last_ml_vpt_outputs(model: nn.Module) -> dict[str, torch.Tensor]:
    """The ML-VPT head's outputs of the last forward of ``model`` (a PeftModel or the wrapped ViT):
    ``logits``, ``co_logits``, ``dc_logits``, gates, gate logits and ``label_features`` — e.g. to train with eq. 17,
    ``loss = asl(out["co_logits"], y) + asl(out["dc_logits"], y)``, plus ``asl(out["co_gate_logits"], y) +
    asl(out["dc_gate_logits"], y)`` for the authors' gate-logit terms (``MultiLabelVPTConfig.gate_logit_loss``)."""
    for module in model.modules():
        if isinstance(module, MLVPTHeadLayer):
            if module.last_outputs is None:
                raise RuntimeError("no ML-VPT outputs yet (run a forward pass with the adapter enabled)")
            return module.last_outputs
    raise ValueError("the model has no ML-VPT adapter")


register_method("vpt", VPTConfig, VPTModel, VPT_PREFIX)
register_method("ml_vpt", MLVPTConfig, MLVPTModel, MLVPT_PREFIX)

__all__ = [
    "MLVPTConfig",
    "MLVPTHeadLayer",
    "MLVPTModel",
    "PromptedBlocksLayer",
    "VPTConfig",
    "VPTModel",
    "last_ml_vpt_outputs",
]
