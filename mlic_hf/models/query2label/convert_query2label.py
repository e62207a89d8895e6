"""Official Query2Label checkpoints (github.com/SlongLiu/query2labels) as mlic_hf weights and configs.

The official ``Qeruy2Label`` module's state-dict keys map onto :class:`Query2LabelForMultiLabelImageClassification`'s
as follows (``N``: a layer index; a leading ``module.`` from DistributedDataParallel is dropped first):

===============================================================  ===================================================
official                                                          mlic_hf
===============================================================  ===================================================
``backbone.0.body.<torchvision ResNet key>``                      ``backbone.body.<same key>`` (timm's ResNet names)
``backbone.1.pe``                                                 dropped: the fixed sine table, recomputed
``input_proj.{weight,bias}`` (``--keep_input_proj`` only)         ``input_proj.{weight,bias}``
``transformer.encoder.layers.N.self_attn.in_proj_{weight,bias}``  ``encoder.N.self_attn.qkv.{weight,bias}``
``transformer.encoder.layers.N.self_attn.out_proj.*``             ``encoder.N.self_attn.out_proj.*``
``transformer.encoder.layers.N.{linear1,linear2,norm1,norm2}.*``  ``encoder.N.{same}.*``
``transformer.encoder.norm.*`` (``--pre_norm`` only)              ``encoder_norm.*``
``transformer.decoder.layers.N.self_attn.*`` (kept layers only)   ``decoder.layers.N.self_attn.*``
``transformer.decoder.layers.N.norm1.*``                          ``decoder.layers.N.norm_self.*``
``transformer.decoder.layers.N.multihead_attn.*``                 ``decoder.layers.N.cross_attn.*``
``transformer.decoder.layers.N.norm2.*`` / ``norm3.*``            ``decoder.layers.N.norm_cross.*`` / ``norm_ffn.*``
``transformer.decoder.layers.N.{linear1,linear2}.*``              ``decoder.layers.N.{same}.*``
``transformer.decoder.norm.*``                                    ``decoder.norm.*``
``query_embed.weight``                                            ``label_embeddings.weight``
``fc.W`` (1, K, d) / ``fc.b`` (1, K)                              ``classifier.weight`` (K, d) / ``classifier.bias``
===============================================================  ===================================================

The official ``config.json`` saved beside a checkpoint (its training arguments) gives the config
(:func:`config_from_official_args`); :func:`convert_checkpoint` does both, for ``scripts/convert_official.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import torch

from ...layers.backbone import features_only_state_dict
from .configuration_query2label import Query2LabelConfig

#: Where the checkpoints this module converts come from.
OFFICIAL_REPOSITORY = "https://github.com/SlongLiu/query2labels"

_RENAMES = (
    (r"^backbone\.0\.body\.", "backbone.body."),
    (r"^transformer\.encoder\.layers\.(\d+)\.self_attn\.in_proj_(weight|bias)$", r"encoder.\1.self_attn.qkv.\2"),
    (r"^transformer\.encoder\.layers\.(\d+)\.", r"encoder.\1."),
    (r"^transformer\.encoder\.norm\.", "encoder_norm."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm1\.", r"decoder.layers.\1.norm_self."),
    (r"^transformer\.decoder\.layers\.(\d+)\.multihead_attn\.", r"decoder.layers.\1.cross_attn."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm2\.", r"decoder.layers.\1.norm_cross."),
    (r"^transformer\.decoder\.layers\.(\d+)\.norm3\.", r"decoder.layers.\1.norm_ffn."),
    (r"^transformer\.decoder\.", "decoder."),
    (r"^query_embed\.weight$", "label_embeddings.weight"),
    (r"^fc\.W$", "classifier.weight"),
    (r"^fc\.b$", "classifier.bias"),
)
_DROPPED = re.compile(r"^backbone\.1\.pe$|num_batches_tracked$")


def convert_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An official Query2Label state dict (``checkpoint["state_dict"]``) in mlic_hf's names (the table above)."""
    converted: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if _DROPPED.search(key):
            continue
        for pattern, replacement in _RENAMES:
            new_key, count = re.subn(pattern, replacement, key)
            if count:
                key = new_key
                break
        if key in ("classifier.weight", "classifier.bias"):
            value = value[0]  # GroupWiseLinear keeps a leading batch axis of 1
        converted[key] = value
    return converted


def config_from_official_args(args: dict, id2label: dict[int, str] | None = None, **overrides) -> Query2LabelConfig:
    """The config of an official checkpoint from its training arguments (the ``config.json`` the official scripts
    save: ``backbone``, ``img_size``, ``hidden_dim``, ``dim_feedforward``, ``enc_layers``, ``dec_layers``,
    ``nheads``, ``dropout``, ``keep_input_proj``, ``keep_first_self_attn_dec``, ``keep_other_self_attn_dec``,
    ``pre_norm``, ``num_class``); ``overrides`` are further config fields. Raises ``ValueError`` for a backbone other
    than torchvision's ResNets."""
    backbone = args.get("backbone", "resnet101")
    if backbone not in ("resnet18", "resnet34", "resnet50", "resnet101"):
        raise ValueError(f"official Query2Label backbone {backbone!r}: only the torchvision ResNets convert "
                         "(their keys are timm's)")
    keep_first, keep_other = bool(args.get("keep_first_self_attn_dec")), bool(args.get("keep_other_self_attn_dec"))
    mode = {(False, False): "none", (True, False): "first_only", (False, True): "except_first",
            (True, True): "all"}[(keep_first, keep_other)]
    num_labels = int(args.get("num_class", 80))
    labels = id2label or {i: f"LABEL_{i}" for i in range(num_labels)}
    fields = dict(
        backbone=backbone,
        image_size=int(args.get("img_size", 448)),
        hidden_size=int(args.get("hidden_dim", 2048)),
        intermediate_size=int(args.get("dim_feedforward", 8192)),
        num_encoder_layers=int(args.get("enc_layers", 1)),
        num_decoder_layers=int(args.get("dec_layers", 2)),
        num_attention_heads=int(args.get("nheads", 4)),
        dropout=float(args.get("dropout", 0.1)),
        input_projection=bool(args.get("keep_input_proj", False)),
        decoder_self_attention=mode,
        pre_norm=bool(args.get("pre_norm", False)),
        id2label=labels,
    )
    return Query2LabelConfig(**{**fields, **overrides})


def convert_checkpoint(state_dict: Mapping[str, torch.Tensor], *, source: str = "the checkpoint",
                       official_config: str | dict | None = None, **options) -> tuple[Query2LabelConfig, dict]:
    """Config and weights of an official checkpoint's ``state_dict``. ``official_config``: the official
    ``config.json`` (a path or its contents) of the checkpoint's training arguments; without it the label count and
    widths are read from the weights and the rest are the official defaults. ``options`` override config fields."""
    if isinstance(official_config, str):
        with open(official_config, encoding="utf-8") as handle:
            official_config = json.load(handle)
    args = dict(official_config or {})
    state = {k.removeprefix("module."): v for k, v in state_dict.items()}
    if "fc.W" not in state or "query_embed.weight" not in state:
        raise ValueError(f"{source}: not an official Query2Label state dict (no fc.W / query_embed.weight)")
    args.setdefault("num_class", state["fc.W"].shape[1])
    args.setdefault("hidden_dim", state["fc.W"].shape[2])
    args.setdefault("keep_input_proj", "input_proj.weight" in state)
    config = config_from_official_args(args, **options)
    weights = convert_state_dict({k: v for k, v in state.items() if not k.startswith("backbone.0.body.")})
    backbone = {k.removeprefix("backbone.0.body."): v for k, v in state.items() if k.startswith("backbone.0.body.")}
    body = features_only_state_dict(config.backbone, backbone, config.out_indices, source=source)
    weights.update({f"backbone.body.{k}": v for k, v in body.items()})
    return config, weights


__all__ = ["OFFICIAL_REPOSITORY", "config_from_official_args", "convert_checkpoint", "convert_state_dict"]
