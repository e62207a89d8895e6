"""Tiny configurations of every registered method, small enough for fast CPU tests.

A method's tiny config is part of its test facts (``MethodTestFacts.tiny_config``, see
``tests/models/method_facts.py``; for a method in ``mlic_hf/models/<package>/`` it lives in
``tests/models/<package>/tiny_config.py``, imported by ``tests/models/<package>/facts.py``); this module reads them
for every method in ``mlic_hf.REGISTERED_METHODS``. A registered method without facts is an error, not a method left
out."""

from collections.abc import Iterator, Mapping

import torch

from .method_facts import registered_facts, tiny_config_of

TINY_IMAGE_SIZE = 64
TINY_LABELS = {0: "person", 1: "dog", 2: "cat", 3: "car"}


class _TinyConfigs(Mapping):
    """model_type -> tiny config keyword arguments (a fresh copy on every access), of every registered method, read
    from the methods' test facts when asked (so a method registered after this module is imported is included)."""

    def __getitem__(self, model_type: str) -> dict:
        return tiny_config_of(model_type)

    def __iter__(self) -> Iterator[str]:
        return iter(registered_facts())

    def __len__(self) -> int:
        return len(registered_facts())

    def __repr__(self) -> str:
        return f"TINY_CONFIGS({dict(self)!r})"


TINY_CONFIGS: Mapping[str, dict] = _TinyConfigs()


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
