"""Tiny configurations of every registered method, small enough for fast CPU tests.

Each method's test folder (``tests/models/<method>/``) holds its own ``tiny_config.py`` (``MODEL_TYPE`` and
``TINY_CONFIG``); this module collects them. Every method registered in ``mlic_hf.METHODS`` must have one (a test
enforces it)."""

import importlib
import pkgutil
from pathlib import Path

TINY_IMAGE_SIZE = 64
TINY_LABELS = {0: "person", 1: "dog", 2: "cat", 3: "car"}


def _collect() -> dict[str, dict]:
    configs = {}
    for folder in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if folder.ispkg and (Path(__file__).parent / folder.name / "tiny_config.py").is_file():
            module = importlib.import_module(f"{__package__}.{folder.name}.tiny_config")
            configs[module.MODEL_TYPE] = dict(module.TINY_CONFIG)
    return configs


TINY_CONFIGS: dict[str, dict] = _collect()


def tiny_config(config_class, **overrides):
    kwargs = dict(TINY_CONFIGS[config_class.model_type])
    kwargs.setdefault("id2label", dict(TINY_LABELS))
    kwargs.update(overrides)
    return config_class(**kwargs)
