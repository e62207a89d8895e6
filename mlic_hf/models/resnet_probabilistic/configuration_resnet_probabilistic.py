"""Configuration of the ResNet-101 "probabilistic" baseline (M1)."""

from __future__ import annotations

from huggingface_hub.dataclasses import strict

from ...configuration_utils import MLICConfig


@strict
class ResNetProbabilisticConfig(MLICConfig):
    r"""Configuration of [`ResNetProbabilisticForMultiLabelImageClassification`]: a CNN backbone, global average
    pooling, one linear layer and a per-label sigmoid — each label an independent Bernoulli variable,
    P(y_i | x) = σ(f(x)_i) (eq. 1 of Singh, Kumar & Kumar, "Supervised Multilabel Image Classification Using Residual
    Networks with Probabilistic Reasoning"), trained with binary cross-entropy summed over labels and averaged over
    the batch (eq. 2). Defaults reproduce the paper: ResNet-101, 448×448 input, 80 MS-COCO labels, BCE.

    Args:
        dropout (`float`, defaults to 0.0):
            Dropout on the pooled feature before the linear classifier (the paper uses none).
        All shared fields (backbone, out_indices, image size, loss, ...) are documented in [`MLICConfig`].
    """

    model_type = "mlic-resnet-probabilistic"
    #: used by the generated model cards
    method_info = {
        "name": "ResNet-101 probabilistic baseline",
        "paper_title": "Supervised Multilabel Image Classification Using Residual Networks with Probabilistic "
        "Reasoning",
        "paper_authors": "Lokender Singh, Saksham Kumar, Chandan Kumar",
        "paper_url": None,
        "summary": "A CNN backbone, global average pooling and one linear layer; each label is an independent "
        "Bernoulli variable P(y_i|x) = sigmoid(f(x)_i), trained with binary cross-entropy.",
        "citation": "@misc{singh2025probabilistic,\n  title={Supervised Multilabel Image Classification Using Residual "
        "Networks with Probabilistic Reasoning},\n  author={Singh, Lokender and Kumar, Saksham and Kumar, Chandan},"
        "\n  year={2025}\n}",
    }

    backbone: str = "resnet101"
    out_indices: list[int] | tuple[int, ...] = (-1,)
    image_size: int = 448
    loss: str = "bce"
    loss_reduction: str = "batch_mean"
    dropout: float = 0.0

    def _check_fields(self) -> None:
        super()._check_fields()
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if len(self.out_indices) != 1:
            raise ValueError(f"the probabilistic baseline pools one feature map: out_indices={self.out_indices}")


__all__ = ["ResNetProbabilisticConfig"]
