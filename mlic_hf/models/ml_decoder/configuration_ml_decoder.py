"""Configuration of ML-Decoder (Ridnik et al., WACV 2023)."""

from __future__ import annotations

from typing import ClassVar

from huggingface_hub.dataclasses import strict

from ...configuration_utils import MLICConfig

#: queries when ``num_groups`` is -1 ("full decoding" in the official code): 100, or one per label if fewer
DEFAULT_GROUPS = 100


@strict
class MLDecoderConfig(MLICConfig):
    r"""Configuration of [`MLDecoderForMultiLabelImageClassification`]: a backbone's last feature map read by
    ML-Decoder (Ridnik, Sharir, Ben-Cohen, Ben-Baruch, Noy, "ML-Decoder: Scalable and Versatile Classification Head",
    WACV 2023): the spatial tokens projected to ``hidden_size`` with a ReLU; ``num_groups`` group queries, fixed
    (not trained) by default; one Transformer decoder layer without self-attention (cross-attention to the tokens,
    FFN); and group fully-connected pooling: query g's output gives the logits of labels g·k .. g·k + k - 1 through its
    own ``hidden_size × k`` matrix, k = ceil(num_labels / num_groups). The cost grows with the number of queries, not
    of labels. Defaults follow the official code (github.com/Alibaba-MIIL/ML_Decoder, ``src_files/ml_decoder``,
    ``train.py``) for its COCO result (90.0 mAP with TResNet-L at 448 px): ASL (γ- 4, γ+ 0, clip 0.05) summed.

    Args:
        num_groups (`int`, defaults to -1):
            Number of queries (groups of labels); -1 is the official default, 100 queries (at most one per label).
            ``num_groups == num_labels`` is one query per label (the paper's "full" decoding).
        hidden_size (`int`, defaults to 768):
            Width of the decoder (the official ``decoder_embedding``).
        intermediate_size (`int`, defaults to 2048):
            Width of the decoder layer's FFN.
        num_attention_heads (`int`, defaults to 8):
            Heads of the cross-attention.
        num_decoder_layers (`int`, defaults to 1):
            Decoder layers (the official code fixes 1).
        dropout (`float`, defaults to 0.1):
            Dropout of the decoder layer. The official layer, having no self-attention, adds ``dropout(queries)`` to
            the queries where self-attention's output would be: in evaluation the queries are doubled before the
            first LayerNorm; it is reproduced here.
        learnable_queries (`bool`, defaults to `False`):
            Train the queries. The paper fixes them (random, not trained: the decoder learns to read with them); the
            official code's ``query_embed.requires_grad_(False)``.
        All shared fields (backbone, image size, loss, ...) are documented in [`MLICConfig`].

    The official zero-shot mode (``zsl=1``: queries from 300-d word vectors of the label names, one shared group
    matrix) needs word vectors of the labels, which are not available offline here; it is not implemented.
    """

    model_type = "mlic-ml-decoder"
    method_info: ClassVar[dict] = {
        "name": "ML-Decoder",
        "paper_title": "ML-Decoder: Scalable and Versatile Classification Head",
        "paper_authors": "Tal Ridnik, Gilad Sharir, Avi Ben-Cohen, Emanuel Ben-Baruch, Asaf Noy",
        "paper_url": "https://arxiv.org/abs/2111.12933",
        "summary": "Spatial features projected with a ReLU, a fixed set of group queries, one cross-attention-only "
        "decoder layer and group fully-connected pooling: the cost grows with the number of queries, not of labels.",
        "citation": "@inproceedings{ridnik2023ml,\n  title={ML-Decoder: Scalable and Versatile Classification Head},\n"
        "  author={Ridnik, Tal and Sharir, Gilad and Ben-Cohen, Avi and Ben-Baruch, Emanuel and Noy, Asaf},\n"
        "  booktitle={WACV},\n  pages={32--41},\n  year={2023}\n}",
    }

    backbone: str = "tresnet_l"
    out_indices: list[int] | tuple[int, ...] = (-1,)
    image_size: int = 448
    loss: str = "asl"
    loss_reduction: str = "sum"
    num_groups: int = -1
    hidden_size: int = 768
    intermediate_size: int = 2048
    num_attention_heads: int = 8
    num_decoder_layers: int = 1
    dropout: float = 0.1
    learnable_queries: bool = False

    def _check_fields(self) -> None:
        super()._check_fields()
        if len(self.out_indices) != 1:
            raise ValueError(f"ML-Decoder reads one feature map: out_indices={self.out_indices}")
        if self.num_groups == 0 or self.num_groups < -1:
            raise ValueError(f"num_groups must be -1 (the default {DEFAULT_GROUPS} queries) or >= 1, "
                             f"got {self.num_groups}")
        for name in ("hidden_size", "intermediate_size", "num_attention_heads", "num_decoder_layers"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                             f"({self.num_attention_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def num_queries(self) -> int:
        """The number of group queries: ``num_groups`` (100 for -1), at most one per label."""
        return min(DEFAULT_GROUPS if self.num_groups < 0 else self.num_groups, self.num_labels)

    @property
    def labels_per_query(self) -> int:
        """k: how many labels each query's output scores (``ceil(num_labels / num_queries)``)."""
        return -(-self.num_labels // self.num_queries)


__all__ = ["MLDecoderConfig"]
