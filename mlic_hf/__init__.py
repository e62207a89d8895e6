"""mlic_hf: multi-label image classification methods as Hugging Face models.

``import mlic_hf`` registers every method's config with ``AutoConfig`` and its model with
``AutoModelForMultiLabelImageClassification`` and ``AutoModelForImageClassification`` (and its image processor with
``AutoImageProcessor``), so checkpoints load through the Auto classes and ``pipeline("image-classification")``.
"""

from .auto import (
    REGISTERED_METHODS,
    AutoModelForMultiLabelImageClassification,
    register_method,
)
from .configuration_utils import MLICConfig
from .image_processing import MLICImageProcessor, load_image, to_rgb_array
from .modeling_utils import CheckpointLoadError, MLICPreTrainedModel, MultiLabelImageClassifierOutput
from . import models
# every method's public classes and the registry: a star import of a literal __all__, which type checkers follow
from .models import *  # noqa: F403
from .models import METHODS
from .pipelines import MultiLabelImageClassificationPipeline, multilabel_pipeline, register_pipeline

__version__ = "0.1.0"

for _config_class, _model_class in METHODS:
    register_method(_config_class, _model_class)
register_pipeline()

__all__ = [
    "AutoModelForMultiLabelImageClassification",
    "CheckpointLoadError",
    "MLICConfig",
    "MLICImageProcessor",
    "MLICPreTrainedModel",
    "MultiLabelImageClassificationPipeline",
    "MultiLabelImageClassifierOutput",
    "REGISTERED_METHODS",
    "load_image",
    "multilabel_pipeline",
    "register_method",
    "register_pipeline",
    "to_rgb_array",
]
__all__ += models.__all__  # a form type checkers read: the method names are listed once, in models
