"""`AutoModelForMultiLabelImageClassification` and the registration of mlic_hf methods with transformers."""

from __future__ import annotations

from collections import OrderedDict

from transformers import AutoConfig, AutoImageProcessor, AutoModelForImageClassification
from transformers.models.auto.auto_factory import _BaseAutoModelClass, _LazyAutoMapping, auto_class_update
from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

#: transformers-style lazy mapping config class -> model class; filled by :func:`register_method`.
MODEL_FOR_MULTI_LABEL_IMAGE_CLASSIFICATION_MAPPING = _LazyAutoMapping(CONFIG_MAPPING_NAMES, OrderedDict())


class AutoModelForMultiLabelImageClassification(_BaseAutoModelClass):
    """Auto class for multi-label image classifiers: ``from_pretrained``, ``from_config`` and ``register`` behave as
    in :class:`transformers.AutoModelForImageClassification`. ``import mlic_hf`` registers every mlic_hf method."""

    _model_mapping = MODEL_FOR_MULTI_LABEL_IMAGE_CLASSIFICATION_MAPPING


AutoModelForMultiLabelImageClassification = auto_class_update(
    AutoModelForMultiLabelImageClassification, head_doc="multi-label image classification"
)

#: model_type -> (config class, model class) of every registered mlic_hf method.
REGISTERED_METHODS: dict[str, tuple[type, type]] = {}


def register_method(config_class: type, model_class: type) -> None:
    """Register a method with ``AutoConfig``, ``AutoModelForMultiLabelImageClassification``,
    ``AutoModelForImageClassification`` and (for its image processor) ``AutoImageProcessor``. Idempotent."""
    from .image_processing import MLICImageProcessor

    model_type = config_class.model_type
    if not model_type.startswith("mlic-"):
        raise ValueError(f"mlic_hf model_type names start with 'mlic-', got {model_type!r}")
    if model_type in REGISTERED_METHODS:
        if REGISTERED_METHODS[model_type] == (config_class, model_class):
            return
        raise ValueError(f"model_type {model_type!r} is already registered to {REGISTERED_METHODS[model_type]}")
    AutoConfig.register(model_type, config_class, exist_ok=True)
    AutoModelForMultiLabelImageClassification.register(config_class, model_class, exist_ok=True)
    AutoModelForImageClassification.register(config_class, model_class, exist_ok=True)
    AutoImageProcessor.register(config_class, image_processor_classes={"pil": MLICImageProcessor, "torchvision": MLICImageProcessor}, exist_ok=True)
    REGISTERED_METHODS[model_type] = (config_class, model_class)
