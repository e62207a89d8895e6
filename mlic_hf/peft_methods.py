"""Backward-compatible alias of :mod:`mlic_hf.models.multilabel_vpt.peft_methods` (VPT / ML-VPT as PEFT methods).

The code lives with the ML-VPT method in ``mlic_hf/models/multilabel_vpt/peft_methods.py``; this module is kept so
that ``import mlic_hf.peft_methods`` (which registers both methods with PEFT) and
``from mlic_hf.peft_methods import MLVPTConfig, VPTConfig, last_ml_vpt_outputs`` keep working. Its public names are
the very objects of the new module.
"""

from .models.multilabel_vpt.peft_methods import *  # noqa: F401,F403
from .models.multilabel_vpt.peft_methods import __all__  # noqa: F401
