"""Configuration of Query2Label (Liu et al., 2021): a Transformer decoder whose label queries read a backbone's last
feature map."""

from __future__ import annotations

from typing import ClassVar

from huggingface_hub.dataclasses import strict

from ...configuration_utils import MLICConfig, check_choices
from ...layers.decoder import SELF_ATTENTION_MODES

POSITION_EMBEDDINGS = ("sine", "none")


@strict
class Query2LabelConfig(MLICConfig):
    r"""Configuration of [`Query2LabelForMultiLabelImageClassification`]: Liu, Zhang, Yang, Su and Zhu, "Query2Label:
    A Simple Transformer Way to Multi-Label Classification" (2021). A backbone's last feature map (optionally through
    a 1×1 convolution) with a fixed 2-D sine position embedding passes a Transformer encoder; learnable label
    embeddings query it in a Transformer decoder; a per-class linear layer (``GroupWiseLinear``) scores each label's
    output; trained with the asymmetric loss.

    Defaults are the official training command of the paper's ResNet-101 COCO result (84.9 mAP at 448 px;
    github.com/SlongLiu/query2labels, README and ``main_mlc.py``): 1 encoder and 2 decoder layers, width 2048 (the
    backbone's channels, so no input projection), 4 heads, FFN 8192, dropout 0.1, post-norm layers, no decoder
    self-attention, post-norm layers, and ASL with γ- = 2, γ+ = 0, no clip, log clamp 1e-5 and focusing weights
    without gradient. The
    official loss is the sum over batch and labels divided by both, times 1000: ``loss_reduction="mean"`` here,
    the same up to the factor 1000 that Adam's updates do not see.

    How the model feeds its Transformer is the official code's (DETR's): the encoder adds the position embedding to
    its queries and keys but not to its values; the decoder starts from zeros and adds the label embeddings to the
    queries of every attention of every layer, the position embedding to the keys of the cross-attention only, and
    normalises its output (a final LayerNorm). The backbone is the official ResNet one: batch norms frozen (their
    ImageNet statistics and affine parameters are buffers) and the stem and first stage not trained.

    Args:
        hidden_size (`int`, defaults to 2048): the Transformer width. Without ``input_projection`` it must equal the
            backbone's channels (2048 for ResNet-101, 320 for EfficientNet-Lite0).
        input_projection (`bool`, defaults to `False`): a 1×1 convolution from the backbone's channels to
            ``hidden_size`` (the official ``--keep_input_proj``; off by default).
        num_encoder_layers (`int`, defaults to 1): encoder layers (``--enc_layers``; 0: the decoder reads the
            backbone's features directly).
        num_decoder_layers (`int`, defaults to 2): decoder layers (``--dec_layers``).
        num_attention_heads (`int`, defaults to 4): heads of every attention (``--nheads``).
        intermediate_size (`int`, defaults to 8192): FFN width of every layer (``--dim_feedforward``).
        dropout (`float`, defaults to 0.1): dropout of attention weights, residual branches and FFN (``--dropout``).
        pre_norm (`bool`, defaults to `False`): LayerNorm on each sub-layer's input, and one after the encoder (the
            official ``--pre_norm``, DETR's ``normalize_before``). The official pre-norm decoder layer reads the
            self-attention modules that its default setting deletes, so it runs only with ``decoder_self_attention=
            "all"``; here every setting runs.
        hidden_act (`str`, defaults to `"relu"`): FFN activation, ``"relu"`` or ``"gelu"``.
        position_embedding (`str`, defaults to `"sine"`): ``"sine"`` (the official and only one: DETR's normalised
            2-D sine, with its channel order) or ``"none"`` (an ablation: no position information).
        decoder_self_attention (`str`, defaults to `"none"`): self-attention among the label queries, per layer: the
            official default removes it in every layer; ``"first_only"`` is ``--keep_first_self_attn_dec``,
            ``"except_first"`` is ``--keep_other_self_attn_dec`` and ``"all"`` both (and M4's ``"second_only"``).
        frozen_batch_norm (`bool`, defaults to `True`): replace the backbone's batch norms by frozen ones (timm's
            ``FrozenBatchNorm2d``), as the official ResNet backbone builds them.
        frozen_backbone_stride (`int`, *optional*, defaults to 4): backbone parameters up to and including its
            feature stage of this stride are not trained (4: ResNet's stem and ``layer1``, as the official code
            trains only ``layer2``-``layer4``); ``None`` trains the whole backbone.
        All shared fields (backbone, image size, loss, ...) are documented in [`MLICConfig`].
    """

    model_type = "mlic-query2label"
    method_info: ClassVar[dict] = {
        "name": "Query2Label",
        "paper_title": "Query2Label: A Simple Transformer Way to Multi-Label Classification",
        "paper_authors": "Shilong Liu, Lei Zhang, Xiao Yang, Hang Su, Jun Zhu",
        "paper_url": "https://arxiv.org/abs/2107.10834",
        "summary": "Learnable label embeddings query the position-encoded last feature map of a backbone in a "
        "Transformer decoder (after a one-layer encoder); each label's output is scored by its own linear classifier. "
        "Trained with the asymmetric loss.",
        "citation": "@article{liu2021query2label,\n  title={Query2Label: A Simple Transformer Way to Multi-Label "
        "Classification},\n  author={Liu, Shilong and Zhang, Lei and Yang, Xiao and Su, Hang and Zhu, Jun},\n"
        "  journal={arXiv preprint arXiv:2107.10834},\n  year={2021}\n}",
    }

    backbone: str = "resnet101"
    out_indices: list[int] | tuple[int, ...] = (-1,)
    image_size: int = 448
    loss: str = "asl"
    loss_reduction: str = "mean"
    asl_gamma_neg: float = 2.0
    asl_gamma_pos: float = 0.0
    asl_clip: float | None = 0.0
    asl_eps: float = 1e-5
    hidden_size: int = 2048
    input_projection: bool = False
    num_encoder_layers: int = 1
    num_decoder_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 8192
    dropout: float = 0.1
    pre_norm: bool = False
    hidden_act: str = "relu"
    position_embedding: str = "sine"
    decoder_self_attention: str = "none"
    frozen_batch_norm: bool = True
    frozen_backbone_stride: int | None = 4

    def _check_fields(self) -> None:
        super()._check_fields()
        check_choices(
            ("position_embedding", self.position_embedding, POSITION_EMBEDDINGS),
            ("decoder_self_attention", self.decoder_self_attention, SELF_ATTENTION_MODES),
            ("hidden_act", self.hidden_act, ("relu", "gelu")),
        )
        if len(self.out_indices) != 1:
            raise ValueError(f"Query2Label reads one feature map: out_indices={self.out_indices}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size={self.hidden_size} is not divisible by "
                             f"num_attention_heads={self.num_attention_heads}")
        if self.position_embedding == "sine" and self.hidden_size % 4:
            raise ValueError(f"the sine position embedding needs hidden_size divisible by 4, got {self.hidden_size}")
        if self.num_encoder_layers < 0 or self.num_decoder_layers < 1:
            raise ValueError(f"Query2Label needs num_encoder_layers >= 0 and num_decoder_layers >= 1, got "
                             f"{self.num_encoder_layers} and {self.num_decoder_layers}")
        if self.decoder_self_attention in ("second_only", "except_first") and self.num_decoder_layers < 2:
            raise ValueError(f"decoder_self_attention={self.decoder_self_attention!r} needs num_decoder_layers >= 2")
        if self.frozen_backbone_stride is not None and self.frozen_backbone_stride < 1:
            raise ValueError(f"frozen_backbone_stride must be a stride >= 1 or None, got {self.frozen_backbone_stride}")


__all__ = ["Query2LabelConfig"]
