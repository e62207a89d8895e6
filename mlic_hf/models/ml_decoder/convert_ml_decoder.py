"""Official ML-Decoder checkpoints (github.com/Alibaba-MIIL/ML_Decoder: a TResNet whose ``head`` is ``MLDecoder``,
saved as ``{"model": state_dict, "idx_to_class": ...}``) as mlic_hf weights and configs.

=====================================================  ==========================================================
official                                               mlic_hf
=====================================================  ==========================================================
``body.*`` (the official TResNet)                      ``backbone.body.*`` through timm's TResNet
                                                       ``checkpoint_filter_fn`` (InplaceABN to BatchNorm) and
                                                       its ``features_only`` names
``head.decoder.embed_standart.*``                      ``input_proj.*``
``head.decoder.query_embed.weight``                    ``queries.weight``
``head.decoder.layers.N.multihead_attn.*``             ``layers.N.cross_attn.*``
``head.decoder.layers.N.{linear1,linear2,norm1-3}.*``  ``layers.N.{same}.*``
``head.decoder.duplicate_pooling`` (G, d, k)           ``classifier.weight``
``head.decoder.duplicate_pooling_bias`` (C)            ``classifier.bias``
=====================================================  ==========================================================

timm's ``MLDecoder`` keeps the same tensors on the module (``head.embed_standart.*``, ``head.query_embed.weight``,
``head.duplicate_pooling``, ...): those keys convert too. Zero-shot checkpoints (``zsl``: one shared pooling column)
are refused. The backbone's timm name is an option (``backbone``, ``tresnet_l`` by default). Tested on state dicts in
these names; the official TResNet body names go through timm's own converter (no official weights exist offline).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

from ...layers.backbone import features_only_state_dict
from .configuration_ml_decoder import MLDecoderConfig

#: Where the checkpoints this module converts come from.
OFFICIAL_REPOSITORY = "https://github.com/Alibaba-MIIL/ML_Decoder"

_RENAMES = (
    (r"^head\.(decoder\.)?embed_standart\.", "input_proj."),
    (r"^head\.(decoder\.)?query_embed\.weight$", "queries.weight"),
    (r"^head\.decoder\.layers\.(\d+)\.multihead_attn\.", r"layers.\1.cross_attn."),
    (r"^head\.decoder\.layers\.(\d+)\.", r"layers.\1."),
    (r"^head\.(decoder\.)?duplicate_pooling$", "classifier.weight"),
    (r"^head\.(decoder\.)?duplicate_pooling_bias$", "classifier.bias"),
)


def convert_head(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ``head.*`` tensors of an official (or timm) ML-Decoder state dict in mlic_hf's names (the table above)."""
    converted = {}
    for key, value in state.items():
        if not key.startswith("head."):
            continue
        for pattern, replacement in _RENAMES:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                converted[new_key] = value
                break
    return converted


def convert_checkpoint(state_dict: Mapping[str, torch.Tensor], *, source: str = "the checkpoint",
                       backbone: str = "tresnet_l", **options) -> tuple[MLDecoderConfig, dict]:
    """Config and weights of an official ML-Decoder ``state_dict`` (``checkpoint["model"]``); ``options`` are further
    config fields (e.g. ``image_size``, ``id2label``)."""
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    head = convert_head(state)
    if "classifier.weight" not in head or "queries.weight" not in head:
        raise ValueError(f"{source}: not an official ML-Decoder state dict (no head.decoder.duplicate_pooling / "
                         "query_embed)")
    pooling = head["classifier.weight"]
    if pooling.dim() != 3:
        raise ValueError(f"{source}: a zero-shot (zsl) ML-Decoder checkpoint (pooling of shape "
                         f"{tuple(pooling.shape)}): mlic_hf builds the group-query head only")
    num_labels, num_queries = head["classifier.bias"].shape[0], head["queries.weight"].shape[0]
    options.setdefault("id2label", {i: f"LABEL_{i}" for i in range(num_labels)})
    config = MLDecoderConfig(
        backbone=backbone, hidden_size=head["input_proj.weight"].shape[0],
        num_groups=-1 if num_queries == min(100, num_labels) else num_queries,
        num_decoder_layers=len({k.split(".")[1] for k in head if k.startswith("layers.")}),
        intermediate_size=head["layers.0.linear1.weight"].shape[0], **options)
    if (config.num_queries, config.labels_per_query) != (num_queries, pooling.shape[2]):
        raise ValueError(f"{source}: {num_queries} queries scoring {pooling.shape[2]} labels each do not fit "
                         f"{num_labels} labels as ML-Decoder groups them")
    body = {k: v for k, v in state.items() if not k.startswith("head.")}
    head.update({f"backbone.body.{k}": v for k, v in
                 features_only_state_dict(backbone, body, config.out_indices, source=source).items()})
    return config, head


__all__ = ["OFFICIAL_REPOSITORY", "convert_checkpoint", "convert_head"]
