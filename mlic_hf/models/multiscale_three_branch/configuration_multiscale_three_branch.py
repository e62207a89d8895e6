"""Configuration of the multi-scale three-branch Transformer (M4: Zhong et al., CMC 2025)."""

from __future__ import annotations

from typing import ClassVar

from huggingface_hub.dataclasses import strict

from ...configuration_utils import MLICConfig, check_choices, pop_renamed_fields
from ...layers.decoder import SELF_ATTENTION_MODES, self_attention_layers
from .multiscale import FUSION_MODES, INTERPOLATION_MODES, fusion_mode_num_inputs

CLASSIFIERS = ("group_wise", "shared_linear")
ACTIVATIONS = ("relu", "gelu")


def default_out_indices(fusion_mode: int) -> list[int]:
    """The backbone stages a fusion mode reads by default: the last 2 (layer3, layer4) or, for mode 2, the last 3
    (layer2, layer3, layer4) — for timm ResNets the same as out_indices (3, 4) and (2, 3, 4)."""
    return list(range(-fusion_mode_num_inputs(fusion_mode), 0))


#: ``out_indices`` values that are replaced by the fusion mode's default (the MLICConfig default ``[-1]`` and every
#: mode's own default, so that changing ``fusion_mode`` alone keeps the config consistent).
_AUTO_OUT_INDICES = ([-1], [-2, -1], [-3, -2, -1])


@strict
class MultiScaleThreeBranchConfig(MLICConfig):
    r"""Configuration of [`MultiScaleThreeBranchForMultiLabelImageClassification`] (M4, Zhong et al., "Multi-Scale
    Feature Fusion and Advanced Representation Learning for Multi Label Image Classification", CMC 2025).

    ResNet layer3/layer4 features → three maps of width d at 2H, H, H/2 (fusion mode, Table 5) → hierarchical scale
    attention (eqs. 2-5) → per-branch learned position embedding + flatten (eqs. 6-7) → Transformer encoder (global
    feature enhancement, eqs. 8-9) → decoder of learnable label queries with cross-attention (region selection,
    eq. 10) → the three branches' label features concatenated (K × 3d, eq. 11) → per-class linear → sigmoid, trained
    with the asymmetric loss (eq. 12). Every ablation of Tables 4-7 and Figure 5 is a field below. Defaults are the
    paper's (ResNet-101, 448 px, fusion mode 3, bilinear scale attention, 2 encoder and 3 decoder layers without
    decoder self-attention, weights shared across branches, ASL α+=0, α−=4); where it is silent (heads, dropout,
    classifier form) the choices are stated per field. With 80 labels the model has 69.96 M parameters (paper:
    69.5 M; Table 7's 70.6/71.7/72.7 M with decoder self-attention are matched within 1% as well).

    Field names follow transformers (``hidden_size``, ``intermediate_size``, ``hidden_act``); the names of earlier
    versions (``dim_feedforward``, ``activation``) are still accepted as keyword arguments, in an old ``config.json``
    and as attribute aliases (``attribute_map``), and ``save_pretrained`` writes the new names.

    Args:
        hidden_size (`int`, *optional*):
            Width d of every branch (the paper's d_model/4). ``None`` (default) = channels of the deepest backbone map
            // 4 (2048 // 4 = 512 for ResNet-101); resolved and stored in the config when the model is built.
        fusion_mode (`int`, defaults to 3):
            Table 5. ``3``: layer3 1×1 (2H), layer4 1×1 (H), layer4 3×3 stride 2 (H/2) — the paper's eq. 1.
            ``1``: layer3 1×1 (2H), layer3 3×3 stride 2 (H), layer4 3×3 stride 2 (H/2). ``2``: layer2, layer3 and
            layer4 each 3×3 stride 2 (2H, H, H/2). Every mode gives the same three scales (our reading of Table 5,
            which lists the convolutions per layer only; see ``mlic_hf/models/multiscale_three_branch/multiscale.py``).
        out_indices (`list[int]`, defaults to the fusion mode's stages):
            Backbone stages feeding the fusion convolutions, shallow first. Left at the MLICConfig default ``[-1]``
            (or at any mode's default) it becomes ``[-2, -1]`` (layer3, layer4) for modes 1 and 3 and
            ``[-3, -2, -1]`` (layer2-4) for mode 2. Other values must name exactly 2 (modes 1, 3) or 3 (mode 2)
            stages.
        scale_attention (`bool`, defaults to `True`):
            Hierarchical scale attention (eqs. 2-5; Table 4). Parameter-free.
        interpolation (`str`, defaults to `"bilinear"`):
            Interpolation of the scale attention: ``"nearest"``, ``"bilinear"``, ``"bicubic"`` or ``"area"``
            (Table 6; ``align_corners=False`` for bilinear/bicubic).
        global_feature_enhancement (`bool`, defaults to `True`):
            The Transformer encoder on each branch's tokens (section 3.4; Table 4). Off: the position-embedded tokens
            go straight to the decoder.
        num_encoder_layers (`int`, defaults to 2):
            Encoder layers m (Figure 5), each post-norm self-attention + ReLU FFN (eqs. 8-9).
        region_selection (`bool`, defaults to `True`):
            The label-query decoder (section 3.5; Table 4). Off: each branch's tokens are global-average-pooled, the
            three pooled vectors concatenated (3d) and a linear layer gives the K logits.
        num_decoder_layers (`int`, defaults to 3):
            Simplified decoder layers n (Figure 5): cross-attention of the label queries to the tokens + FFN.
        decoder_self_attention (`str` or `list[bool]`, defaults to `"none"`):
            Self-attention among the label queries per decoder layer (Table 7): ``"none"`` (the paper's choice),
            ``"first_only"`` (layer 1), ``"except_first"`` (layers 2..n), ``"all"``, ``"second_only"`` (layer 2), or
            one bool per decoder layer. Each self-attention layer adds 4d² + 4d + 2d parameters.
        share_branch_weights (`bool`, defaults to `True`):
            One encoder, one set of label embeddings and one decoder for the three branches (the paper). ``False``
            gives each branch its own (3× those parameters). Position embeddings are always per branch.
        classifier (`str`, defaults to `"group_wise"`):
            The "linear projection layer" on the concatenated K × 3d label features: ``"group_wise"`` = one weight
            vector of 3d (and a bias) per label (Query2Label's GroupWiseLinear; the paper's "obtain the prediction
            scores corresponding to each class"), or ``"shared_linear"`` = one Linear(3d, 1) applied to every label.
            Unused without region selection.
        num_attention_heads (`int`, defaults to 8):
            Heads of every attention layer. The paper does not say; 8 heads of 64 channels (d = 512) is the standard
            Transformer setting.
        intermediate_size (`int`, defaults to 2048):
            FFN width of the encoder and decoder layers (the standard Transformer's 4d for d = 512). Old name
            ``dim_feedforward``, still accepted.
        dropout (`float`, defaults to 0.1):
            Dropout of attention weights, residual branches and FFN (not given in the paper; the DETR/Query2Label
            value).
        hidden_act (`str`, defaults to `"relu"`):
            FFN activation, ``"relu"`` (eq. 9) or ``"gelu"``. Old name ``activation``, still accepted.
        loss (`str`, defaults to `"asl"`), asl_gamma_pos (defaults to 0.0), asl_gamma_neg (defaults to 4.0):
            The asymmetric loss of eq. 12 with α+ = 0, α− = 4.
        asl_clip (`float`, defaults to 0.05):
            Eq. 12 writes no probability margin, but it is the ASL loss the paper cites, whose reference setting
            (γ−=4, γ+=0 on COCO) shifts negative probabilities by 0.05; we keep ASL's 0.05. ``asl_clip=None`` gives
            eq. 12 literally.
        loss_reduction (`str`, defaults to `"mean"`):
            Eq. 12 averages over the C labels (1/C Σ_c); ``"mean"`` also averages over the batch.
    """

    model_type = "mlic-multiscale-three-branch"
    #: Old field names (before transformers' naming) → current names; read by transformers and ``__post_init__``.
    attribute_map: ClassVar[dict[str, str]] = {"dim_feedforward": "intermediate_size", "activation": "hidden_act"}
    method_info = {
        "name": "Multi-scale three-branch Transformer",
        "paper_title": "Multi-Scale Feature Fusion and Advanced Representation Learning for Multi Label Image "
        "Classification",
        "paper_authors": "Naikang Zhong, Xiao Lin, Wen Du, Jin Shi",
        "paper_url": "https://doi.org/10.32604/cmc.2025.059102",
        "summary": "ResNet layer3 and layer4 features are turned into three maps at 2H, H and H/2 by 1×1 and 3×3 "
        "stride-2 convolutions. A parameter-free hierarchical scale attention multiplies the maps (aligned by "
        "interpolation) into a shared map that is added back to each scale. Each branch gets a learned position "
        "embedding, is flattened and refined by a Transformer encoder; learnable label embeddings cross-attend to "
        "each branch's tokens in a decoder without self-attention. Encoder and decoder weights are shared across "
        "the three branches. The three per-label features are concatenated and a per-class linear layer gives each "
        "label's logit. Trained with the asymmetric loss.",
        "citation": "@article{zhong2025multiscale,\n  title={Multi-Scale Feature Fusion and Advanced Representation "
        "Learning for Multi Label Image Classification},\n  author={Zhong, Naikang and Lin, Xiao and Du, Wen and "
        "Shi, Jin},\n  journal={Computers, Materials \\& Continua},\n  year={2025},\n"
        "  doi={10.32604/cmc.2025.059102}\n}",
    }

    backbone: str = "resnet101"
    image_size: int = 448
    loss: str = "asl"
    loss_reduction: str = "mean"
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float | None = 0.05
    hidden_size: int | None = None
    fusion_mode: int = 3
    scale_attention: bool = True
    interpolation: str = "bilinear"
    global_feature_enhancement: bool = True
    num_encoder_layers: int = 2
    region_selection: bool = True
    num_decoder_layers: int = 3
    decoder_self_attention: str | list[bool] | tuple[bool, ...] = "none"
    share_branch_weights: bool = True
    classifier: str = "group_wise"
    num_attention_heads: int = 8
    intermediate_size: int = 2048
    dropout: float = 0.1
    hidden_act: str = "relu"

    def __post_init__(self, **kwargs):
        # Old names (attribute_map) given as keyword arguments or read from an old config.json: set the new fields
        # first, refusing an old and a new name with different values.
        pop_renamed_fields(self, kwargs)
        super().__post_init__(**kwargs)

    def _check_fields(self) -> None:
        super()._check_fields()
        check_choices(
            ("fusion_mode", self.fusion_mode, FUSION_MODES),
            ("interpolation", self.interpolation, INTERPOLATION_MODES),
            ("classifier", self.classifier, CLASSIFIERS),
            ("hidden_act", self.hidden_act, ACTIVATIONS),
        )
        if list(self.out_indices) in _AUTO_OUT_INDICES:
            self.out_indices = default_out_indices(self.fusion_mode)
        needed = fusion_mode_num_inputs(self.fusion_mode)
        if len(self.out_indices) != needed:
            raise ValueError(f"out_indices={self.out_indices} names {len(self.out_indices)} backbone stages but "
                             f"fusion_mode={self.fusion_mode} reads {needed} "
                             f"(e.g. {default_out_indices(self.fusion_mode)})")
        for name in ("num_encoder_layers", "num_decoder_layers", "num_attention_heads", "intermediate_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size is not None:
            if self.hidden_size < 1:
                raise ValueError(f"hidden_size must be >= 1 (or None for the backbone's channels // 4), "
                                 f"got {self.hidden_size}")
            if self.hidden_size % self.num_attention_heads:
                raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                                 f"num_attention_heads={self.num_attention_heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if isinstance(self.decoder_self_attention, str):
            if self.decoder_self_attention not in SELF_ATTENTION_MODES:
                raise ValueError(f"decoder_self_attention={self.decoder_self_attention!r} is not one of "
                                 f"{SELF_ATTENTION_MODES} (or a list of one bool per decoder layer)")
        else:
            self.decoder_self_attention = [bool(flag) for flag in self.decoder_self_attention]
        try:
            self_attention_layers(self.decoder_self_attention, self.num_decoder_layers)
        except ValueError as err:
            raise ValueError(f"decoder_self_attention={self.decoder_self_attention!r} with "
                             f"num_decoder_layers={self.num_decoder_layers}: {err}") from err

    @property
    def decoder_self_attention_layers(self) -> list[bool]:
        """Per-decoder-layer self-attention flags of ``decoder_self_attention``."""
        return self_attention_layers(self.decoder_self_attention, self.num_decoder_layers)


__all__ = ["MultiScaleThreeBranchConfig"]
