"""Tiny configurations of every registered method, small enough for fast CPU tests.

Each method's test folder (``tests/models/<method>/``) holds its own ``tiny_config.py`` (``MODEL_TYPE`` and
``TINY_CONFIG``); this module collects them. Every method registered in ``mlic_hf.METHODS`` must have one (a test
enforces it)."""

import importlib
import pkgutil
from pathlib import Path

import torch

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


def tiny_model(model_type: str, **overrides):
    """A registered method's model from its tiny config (and ``overrides``), seeded: the same weights every call."""
    import mlic_hf

    config_class, model_class = mlic_hf.REGISTERED_METHODS[model_type]
    torch.manual_seed(0)
    return model_class(tiny_config(config_class, **overrides))


def tiny_batch(batch_size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``TINY_IMAGE_SIZE`` images and multi-hot labels (each label on with probability 1/2), from ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(batch_size, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE, generator=generator)
    labels = (torch.rand(batch_size, len(TINY_LABELS), generator=generator) > 0.5).float()
    return pixel_values, labels


def case_id(case: tuple[str, dict]) -> str:
    """Test id of a ``(model_type, config overrides)`` case: the type followed by the override values."""
    model_type, overrides = case
    return model_type + "".join(f"-{v}" for v in overrides.values())
