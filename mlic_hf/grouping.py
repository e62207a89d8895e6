"""Backward-compatible alias of :mod:`mlic_hf.models.multilabel_vpt.grouping` (ML-VPT's CO / DC label grouping).

The code lives with the ML-VPT method in ``mlic_hf/models/multilabel_vpt/grouping.py``; this module is kept so that
``from mlic_hf.grouping import compute_label_groups, groups_from_dataset, LabelGroups`` keeps working. Its public
names are the very objects of the new module.
"""

from .models.multilabel_vpt.grouping import *  # noqa: F401,F403
from .models.multilabel_vpt.grouping import __all__  # noqa: F401
