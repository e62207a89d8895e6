"""Kept for backward compatibility: the code lives in :mod:`mlic_hf.training.experiment` (import from there or from
:mod:`mlic_hf.training`)."""

from .training.experiment import *  # noqa: F403
from .training.experiment import __all__  # noqa: F401
