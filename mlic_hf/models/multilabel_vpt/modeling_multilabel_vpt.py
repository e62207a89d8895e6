"""ML-VPT: multi-label visual prompt tuning with label groups and a group-aware mixture of experts (M3).

The same class also builds the paper's baselines on the same frozen ViT (``config.variant``): VPT, linear probing
and full fine-tuning (Table 4). The prompt and MoE blocks live next to this module, in
:mod:`mlic_hf.models.multilabel_vpt.prompts` and :mod:`mlic_hf.models.multilabel_vpt.moe`, and are shared with the
PEFT adapters of :mod:`mlic_hf.models.multilabel_vpt.peft_methods`.
"""

from __future__ import annotations

import logging

import torch
from torch import nn
from transformers.utils import can_return_tuple

from ...layers.backbone import create_timm_model
from .moe import DualGroupHead, group_prompt_layout, label_group_kinds
from .prompts import (
    PromptTokens,
    check_vision_transformer,
    embed_tokens,
    patch_in_chans,
    prompt_attention_mask,
    run_block,
    run_prompted_blocks,
)
from ...modeling_utils import MLICPreTrainedModel, MultiLabelImageClassifierOutput
from .configuration_multilabel_vpt import MultiLabelVPTConfig

logger = logging.getLogger(__name__)


def attention_input(block: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """What a timm ViT block's ``attn`` reads of the block input ``x``: ``norm1(x)`` in the pre-norm ``Block`` (ViT,
    DeiT, DINOv2, ...), ``x`` itself in the post-norm ``ResPostBlock``. Computed here rather than recorded by a hook,
    so that the forward with label maps compiles into one graph."""
    from timm.models.vision_transformer import ResPostBlock

    return x if isinstance(block, ResPostBlock) else block.norm1(x)


def last_block_attention(attention: nn.Module, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The head-averaged attention weights ``(B, N, N)`` a timm ``Attention`` module computes for input ``x``
    (softmax of ``q·kᵀ·scale`` plus the additive ``mask``), as its non-fused path does."""
    batch, length, _ = x.shape
    qkv = attention.qkv(x).reshape(batch, length, 3, attention.num_heads, attention.head_dim).permute(2, 0, 3, 1, 4)
    q, k = attention.q_norm(qkv[0]), attention.k_norm(qkv[1])
    scores = (q * attention.scale) @ k.transpose(-2, -1)
    if mask is not None:
        scores = scores + mask
    return scores.softmax(-1).mean(1)


class MultiLabelVPTPreTrainedModel(MLICPreTrainedModel):
    config_class = MultiLabelVPTConfig
    base_model_prefix = "multilabel_vpt"
    supports_gradient_checkpointing = True  # the ViT blocks (see ``forward``)


class MultiLabelVPTForMultiLabelImageClassification(MultiLabelVPTPreTrainedModel):
    """Frozen timm ViT + (group) prompts → ML-VPT head (or a class-token linear head for the baselines).

    Only the prompts, experts, gates and heads are trainable (everything for ``variant="full-finetune"``); the frozen
    ViT stays in eval mode even under ``model.train()`` (no dropout/drop-path in a backbone that is not trained, as
    in the authors' code).
    """

    def __init__(self, config: MultiLabelVPTConfig) -> None:
        super().__init__(config)
        kwargs = {"img_size": config.image_size, **(config.backbone_kwargs or {})}
        try:
            self.vit, self.loaded_weights = create_timm_model(
                config.backbone, use_pretrained=config.use_pretrained_backbone, weights=config.backbone_weights,
                num_classes=0, **kwargs,
            )
        except TypeError as err:  # e.g. a CNN does not take img_size
            raise TypeError(f"backbone={config.backbone!r}: ML-VPT needs a timm VisionTransformer "
                            f"(e.g. vit_base_patch16_224, vit_base_patch14_dinov2); timm said: {err}") from err
        check_vision_transformer(self.vit, f"backbone={config.backbone!r}")
        self.adopt_backbone_normalisation(config, getattr(self.vit, "pretrained_cfg", None) or {})
        for module in self.vit.modules():
            module._is_hf_initialized = True
        dim, depth = self.vit.embed_dim, len(self.vit.blocks)
        patch_size = self.vit.patch_embed.patch_size
        prompt_depth = depth if config.prompt_depth == "deep" else 1
        self.prompts: PromptTokens | None = None
        self.head: DualGroupHead | None = None
        self.classifier: nn.Linear | None = None
        self.prompt_groups: list[int] = []
        if config.variant == "ml-vpt":
            if config.co_groups is None or config.dc_groups is None:
                co, dc = config.default_label_groups()
                logger.warning(
                    "MultiLabelVPTConfig has no label groups: using contiguous CO and round-robin DC groups. Compute "
                    "real ones from the training labels (mlic_hf.models.multilabel_vpt.grouping.compute_label_groups "
                    "or scripts/compute_label_groups.py); scripts/train.py does it automatically."
                )
                config.co_groups = config.co_groups if config.co_groups is not None else co
                config.dc_groups = config.dc_groups if config.dc_groups is not None else dc
                config.label_groups_source = "fallback"
            kinds = label_group_kinds(config.co_groups, config.dc_groups, config.use_co_groups, config.use_dc_groups)
            self.prompt_groups = group_prompt_layout(config.num_groups, config.num_prompts_per_group, len(kinds))
            self.prompts = PromptTokens(len(self.prompt_groups), dim, prompt_depth, patch_size, config.prompt_dropout,
                                        patch_in_chans(self.vit))
            self.head = DualGroupHead(kinds, config.num_groups, config.num_prompts_per_group, dim,
                                      config.expert_hidden_size, config.expert_activation, config.use_moe,
                                      config.head_fusion, gate_bias=config.gate_bias)
        else:
            if config.variant == "vpt":
                self.prompts = PromptTokens(config.vpt_num_prompts, dim, prompt_depth, patch_size,
                                            config.prompt_dropout, patch_in_chans(self.vit))
            self.classifier = nn.Linear(dim, config.num_labels)
        # set by transformers' activation_checkpointing_enable() (with _gradient_checkpointing_func): the ViT blocks are
        # recomputed in the backward pass; timm's Block is not a GradientCheckpointingLayer, so forward does it
        self.gradient_checkpointing = False
        self.freeze_parameters()
        self.post_init()

    def label_layers(self) -> list[nn.Module]:
        """The label set's layers: the label-group prompts and head (ML-VPT), or the linear classifier (the baselines,
        whose prompts belong to no label)."""
        return [self.prompts, self.head] if self.head is not None else [self.classifier]

    def get_backbone(self) -> nn.Module:
        return self.vit

    def repeated_layer_names(self) -> list[str]:
        """The ViT's block class (timm's ``Block``): what FSDP shards and checkpointing recomputes."""
        return sorted({type(block).__name__ for block in self.vit.blocks})

    def freeze_parameters(self) -> None:
        """The ViT is frozen except for ``variant="full-finetune"``."""
        if self.config.variant != "full-finetune":
            self.vit.requires_grad_(False)

    def loss_logits(self, output: MultiLabelImageClassifierOutput) -> list[torch.Tensor]:
        """Eq. 17 sums the loss of the CO and DC heads (the baselines have one head); with ``gate_logit_loss`` the
        gate logits of each kind follow, the authors' four terms (``losses/builder_criterion.py:19``, computed by ``SetCriterion`` in ``models/builder_network.py``)."""
        if self.head is None:
            return [output.logits]
        terms = [output.extras[f"{kind}_logits"] for kind in self.head.kinds]
        if self.config.gate_logit_loss:
            terms += [output.extras[f"{kind}_gate_logits"] for kind in self.head.kinds]
        return terms

    def _group_prompt_maps(self, last_input: torch.Tensor, mask: torch.Tensor | None, extras: dict) -> torch.Tensor:
        """ML-VPT's label maps: the last block's attention from a label's group prompts to the patches, weighted as
        the label reads those prompts (its MoE gates; the plain mean without MoE), averaged over its CO and DC
        groups and over heads, renormalised over the patches. Labels that share both groups share a map only
        without MoE: the gates are per label. ``last_input`` is the last block's input sequence (prompts included),
        ``mask`` the prompt attention mask."""
        vit, config = self.vit, self.config
        block = vit.blocks[-1]
        weights = last_block_attention(block.attn, attention_input(block, last_input), mask)  # (B, N, N)
        start = vit.num_prefix_tokens
        stop = start + len(self.prompt_groups)
        prompt_to_patch = weights[:, start:stop, stop:]  # (B, P, patches)
        prompt_to_patch = prompt_to_patch / prompt_to_patch.sum(-1, keepdim=True).clamp_min(1e-12)
        per_group = prompt_to_patch.unflatten(1, (-1, config.num_prompts_per_group))  # (B, kinds·N_c, N_m, patches)
        maps = []
        for index, kind in enumerate(self.head.kinds):
            groups = torch.as_tensor(self.head.label_groups[kind], device=per_group.device)
            group_ids = index * config.num_groups + groups
            label_prompts = per_group[:, group_ids]  # (B, K, N_m, patches)
            gates = extras.get(f"{kind}_gates")
            if gates is None:
                maps.append(label_prompts.mean(2))
            else:
                maps.append(torch.einsum("bke,bkep->bkp", gates, label_prompts))
        return torch.stack(maps).mean(0).unflatten(-1, tuple(vit.patch_embed.grid_size))

    def _patch_logit_maps(self, tokens: torch.Tensor) -> torch.Tensor:
        """The baselines' label maps (VPT, linear probing, full fine-tuning): the linear head applied to every
        normalised patch token, ``W_c · norm(x_hw) + b_c``. With average pooling of normalised tokens
        (``global_pool="avg", fc_norm=False``) a map averages exactly to the logit; otherwise (the class token, or a
        norm after pooling) it shows what the head would read at each patch."""
        vit = self.vit
        patches = vit.fc_norm(vit.norm(tokens)[:, vit.num_prefix_tokens:])  # (B, patches, D)
        return self.classifier(patches).transpose(1, 2).unflatten(-1, tuple(vit.patch_embed.grid_size))

    def train(self, mode: bool = True):
        super().train(mode)
        if self.config.variant != "full-finetune":
            self.vit.eval()
        return self

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        *,
        return_dict: bool | None = None,  # handled by @can_return_tuple, which sees keywords only
        output_class_maps: bool | None = None,
        **kwargs,
    ) -> MultiLabelImageClassifierOutput | tuple:
        vit = self.vit
        tokens = embed_tokens(vit, pixel_values)
        num_prefix = vit.num_prefix_tokens
        prompt_outputs = None
        checkpoint = None
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            checkpoint = self._gradient_checkpointing_func
        mask = last_input = None
        if self.prompts is not None:
            if self.head is not None:
                mask = prompt_attention_mask(num_prefix, self.prompt_groups, tokens.shape[1] - num_prefix,
                                             self.config.prompt_mask, tokens.dtype, tokens.device)
            tokens, prompt_outputs, last_input = run_prompted_blocks(
                vit.blocks, tokens, self.prompts, num_prefix, mask, checkpoint, return_last_input=True)
        else:
            for block in vit.blocks:
                tokens = run_block(block, tokens, checkpoint=checkpoint)
        extras = None
        if self.head is not None:
            features = vit.norm(prompt_outputs) if self.config.prompt_features_norm else prompt_outputs
            head_out = self.head(features)
            logits, label_features = head_out["logits"], head_out["label_features"]
            extras = {k: v for k, v in head_out.items() if k not in ("logits", "label_features")}
        else:
            pooled = vit.forward_head(vit.norm(tokens), pre_logits=True)
            logits, label_features = self.classifier(pooled), None
        if output_hidden_states:
            extras = dict(extras or {}, tokens=tokens, prompt_outputs=prompt_outputs)
        label_maps = None
        if output_class_maps:
            label_maps = (self._group_prompt_maps(last_input, mask, extras) if self.head is not None
                          else self._patch_logit_maps(tokens))
        output = MultiLabelImageClassifierOutput(logits=logits, label_features=label_features, label_maps=label_maps,
                                                 extras=extras)
        if labels is not None:  # eq. 17: the loss of each head (and gate, see loss_logits), summed
            loss = self.config.loss_scale * sum(self.compute_loss(term, labels) for term in self.loss_logits(output))
            # a new output, so that the loss comes first in to_tuple()
            output = MultiLabelImageClassifierOutput(loss=loss, **output)
        return output


__all__ = ["MultiLabelVPTForMultiLabelImageClassification", "MultiLabelVPTPreTrainedModel"]
