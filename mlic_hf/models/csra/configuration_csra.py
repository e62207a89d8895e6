"""Configuration of CSRA, class-specific residual attention (Zhu & Wu, ICCV 2021)."""

from __future__ import annotations

from typing import ClassVar

from huggingface_hub.dataclasses import strict

from ...configuration_utils import MLICConfig

#: The temperature of every head for a number of heads, as the official code fixes them (``MHA.temp_settings`` in
#: ``pipeline/csra.py`` of github.com/Kevinz-code/CSRA); :data:`MAX_POOLING` marks max pooling (T -> infinity).
OFFICIAL_TEMPERATURES: dict[int, tuple[float, ...]] = {
    1: (1.0,),
    2: (1.0, 99.0),
    4: (1.0, 2.0, 4.0, 99.0),
    6: (1.0, 2.0, 3.0, 4.0, 5.0, 99.0),
    8: (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 99.0),
}
#: A head with this temperature pools by maximum (the limit T -> infinity), the official code's marker value.
MAX_POOLING = 99.0


@strict
class CSRAConfig(MLICConfig):
    r"""Configuration of [`CSRAForMultiLabelImageClassification`]: a backbone's last feature map and the class-specific
    residual attention head of Zhu & Wu, "Residual Attention: A Simple but Effective Method for Multi-Label
    Recognition" (ICCV 2021). For label i with classifier m_i and the feature vectors x_1..x_HW of the map, each head
    scores s_ij = m_i^T x_j / ||m_i||, and its logit is

        mean_j s_ij + λ · Σ_j s_ij · softmax_j(T · s_ij)

    (global average pooling plus λ times the class-specific attention pooling with temperature T; T -> ∞ is max
    pooling); the logits of several heads, each with its own classifier and temperature, are summed. The division by
    ||m_i|| and the absence of a bias are the official code's (``pipeline/csra.py``); the paper writes the logit as
    m_i^T (g + λ a_i) without them. Defaults are the official COCO setting of the paper's ResNet-101 result
    (83.3 mAP at 448 px): 4 heads, λ = 0.5, BCE averaged over batch and labels.

    Args:
        num_heads (`int`, defaults to 4):
            Number of heads. With ``temperatures`` unset, one of 1, 2, 4, 6, 8: the official temperature table
            (:data:`OFFICIAL_TEMPERATURES`; VOC 2007 uses 1 head, COCO 4 with ResNet-101, 6 and 8 with other backbones).
        lam (`float`, defaults to 0.5):
            λ, the weight of the attention term (the official settings: 0.1 on VOC 2007, 0.5 on COCO, 0.3 on
            WIDER-Attribute). ``lam=0`` with one head is global average pooling and a (normalised, bias-free) linear
            classifier.
        temperatures (`list[float]`, *optional*):
            Each head's softmax temperature T (``num_heads`` values, each > 0; 99 means max pooling, as in the
            official code). ``None``: the official table for ``num_heads``.
        All shared fields (backbone, image size, loss, ...) are documented in [`MLICConfig`].
    """

    model_type = "mlic-csra"
    method_info: ClassVar[dict] = {
        "name": "CSRA (class-specific residual attention)",
        "paper_title": "Residual Attention: A Simple but Effective Method for Multi-Label Recognition",
        "paper_authors": "Ke Zhu, Jianxin Wu",
        "paper_url": "https://arxiv.org/abs/2108.02456",
        "summary": "Global average pooling plus lambda times a class-specific attention pooling of the last feature "
        "map (softmax over positions with temperature T, max pooling as T grows), summed over heads with different "
        "temperatures.",
        "citation": "@inproceedings{zhu2021residual,\n  title={Residual Attention: A Simple but Effective Method for "
        "Multi-Label Recognition},\n  author={Zhu, Ke and Wu, Jianxin},\n  booktitle={ICCV},\n  pages={184--193},\n"
        "  year={2021}\n}",
    }

    backbone: str = "resnet101"
    out_indices: list[int] | tuple[int, ...] = (-1,)
    image_size: int = 448
    loss: str = "bce"
    loss_reduction: str = "mean"
    num_heads: int = 4
    lam: float = 0.5
    temperatures: list[float] | tuple[float, ...] | None = None

    def _check_fields(self) -> None:
        super()._check_fields()
        if len(self.out_indices) != 1:
            raise ValueError(f"CSRA pools one feature map: out_indices={self.out_indices}")
        if isinstance(self.num_heads, bool) or not isinstance(self.num_heads, int) or self.num_heads < 1:
            raise ValueError(f"num_heads must be a whole number >= 1, got {self.num_heads!r}")
        if not self.lam >= 0.0:
            raise ValueError(f"lam (λ) must be >= 0, got {self.lam}")
        if self.temperatures is None:
            if self.num_heads not in OFFICIAL_TEMPERATURES:
                raise ValueError(
                    f"num_heads={self.num_heads} has no official temperature table (it has "
                    f"{sorted(OFFICIAL_TEMPERATURES)}): pass temperatures, one per head")
        else:
            self.temperatures = [float(t) for t in self.temperatures]
            if len(self.temperatures) != self.num_heads:
                raise ValueError(f"temperatures needs one value per head ({self.num_heads}), got {self.temperatures}")
            if not all(t > 0 for t in self.temperatures):
                raise ValueError(f"temperatures must all be > 0, got {self.temperatures}")

    @property
    def head_temperatures(self) -> tuple[float, ...]:
        """Each head's temperature: ``temperatures``, or the official table for ``num_heads``."""
        if self.temperatures is not None:
            return tuple(self.temperatures)
        return OFFICIAL_TEMPERATURES[self.num_heads]


__all__ = ["CSRAConfig"]
