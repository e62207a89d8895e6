"""Every mlic_hf method: one sub-package each (``mlic_hf/models/<method>/``), registered with the Auto classes by
``import mlic_hf``.

Adding a method is its folder (configuration, modeling, the layers only it uses, ``preset.py``, and an ``__init__``
defining ``METHOD = (ConfigClass, ModelClass)``, ``PRESETS`` and ``__all__``), one line in :data:`METHOD_PACKAGES`,
and its public names imported below and listed in ``__all__`` (by name, so that type checkers and IDEs see them;
``mlic_hf`` re-exports them; ``tests/test_layout.py`` names any that are missing).
"""

from __future__ import annotations

import importlib

from .resnet_probabilistic import (
    ResNetProbabilisticConfig,
    ResNetProbabilisticForMultiLabelImageClassification,
    ResNetProbabilisticPreTrainedModel,
)
from .two_stage_irpe import (
    TwoStageIRPEConfig,
    TwoStageIRPEForMultiLabelImageClassification,
    TwoStageIRPEPreTrainedModel,
)
from .multiscale_three_branch import (
    MultiScaleThreeBranchConfig,
    MultiScaleThreeBranchForMultiLabelImageClassification,
    MultiScaleThreeBranchPreTrainedModel,
)
from .multilabel_vpt import (
    MultiLabelVPTConfig,
    MultiLabelVPTForMultiLabelImageClassification,
    MultiLabelVPTPreTrainedModel,
)
from .csra import CSRAConfig, CSRAForMultiLabelImageClassification, CSRAPreTrainedModel
from .ml_decoder import MLDecoderConfig, MLDecoderForMultiLabelImageClassification, MLDecoderPreTrainedModel
from .query2label import Query2LabelConfig, Query2LabelForMultiLabelImageClassification, Query2LabelPreTrainedModel

#: The method sub-packages, in registration order.
METHOD_PACKAGES = (
    "resnet_probabilistic",
    "two_stage_irpe",
    "multiscale_three_branch",
    "multilabel_vpt",
    "csra",
    "ml_decoder",
    "query2label",
)

_PACKAGES = [importlib.import_module(f".{name}", __name__) for name in METHOD_PACKAGES]

#: (config class, model class) of every method, in the order they are registered.
METHODS: list[tuple[type, type]] = [package.METHOD for package in _PACKAGES]

#: ``--preset`` name -> recipe, from every method's ``preset.py``.
METHOD_PRESETS: dict[str, dict] = {name: recipe for package in _PACKAGES for name, recipe in package.PRESETS.items()}

__all__ = [
    "CSRAConfig",
    "CSRAForMultiLabelImageClassification",
    "CSRAPreTrainedModel",
    "METHODS",
    "METHOD_PACKAGES",
    "METHOD_PRESETS",
    "MLDecoderConfig",
    "MLDecoderForMultiLabelImageClassification",
    "MLDecoderPreTrainedModel",
    "MultiLabelVPTConfig",
    "MultiLabelVPTForMultiLabelImageClassification",
    "MultiLabelVPTPreTrainedModel",
    "MultiScaleThreeBranchConfig",
    "MultiScaleThreeBranchForMultiLabelImageClassification",
    "MultiScaleThreeBranchPreTrainedModel",
    "Query2LabelConfig",
    "Query2LabelForMultiLabelImageClassification",
    "Query2LabelPreTrainedModel",
    "ResNetProbabilisticConfig",
    "ResNetProbabilisticForMultiLabelImageClassification",
    "ResNetProbabilisticPreTrainedModel",
    "TwoStageIRPEConfig",
    "TwoStageIRPEForMultiLabelImageClassification",
    "TwoStageIRPEPreTrainedModel",
]
