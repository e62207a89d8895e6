"""What the shared tests need to know about each registered method ("test facts"), and where they find it.

The shared suites (``tests/models/test_*.py``, ``tests/training/test_fsdp.py`` and its driver,
``tests/test_journeys.py``) parametrise over every method in ``mlic_hf.REGISTERED_METHODS`` through
:func:`registered_facts` and never name a method: whatever is particular to a method (its tiny config, the config variants whose forward takes another path, its
FSDP units, its kind of label maps, ...) is one :class:`MethodTestFacts` named ``FACTS`` in the method's ``facts``
module, beside its own tests:

* a method in ``mlic_hf/models/<package>/``: ``tests/models/<package>/facts.py`` (its tiny config stays in
  ``tests/models/<package>/tiny_config.py``, which ``tests/test_layout.py`` requires, and ``facts.py`` imports);
* a method registered from another package with ``mlic_hf.register_method``: the ``facts`` module of the package
  holding its model class (``<package>/facts.py`` beside ``<package>/modeling_*.py``);
* or anywhere else: :func:`register_facts` called before the tests are collected (e.g. by a pytest plugin, ``-p``).

A registered method without facts is an error (:class:`MissingMethodFacts`) when a shared test module is collected,
never a method silently left out.

A simple method (a CNN backbone and a head: no Transformer layers, class activation maps, timm backbone under
``backbone.``) needs only ``model_type`` and ``tiny_config``.
"""

from __future__ import annotations

import copy
import importlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: ``(model_type, config overrides)``: one parametrised case of a shared suite (``tiny_configs.case_id`` names it)
Case = tuple[str, dict]

LABEL_MAP_KINDS = ("cam", "attention")


@dataclass(frozen=True)
class MethodTestFacts:
    """The facts about one method that the shared tests check it against (every field but the first two has a
    default: the one of a simple method).

    Attributes:
        model_type: the config's ``model_type`` (``"mlic-..."``), the key of ``mlic_hf.REGISTERED_METHODS``.
        tiny_config: config keyword arguments of a model small enough for fast CPU tests, on
            ``tiny_configs.TINY_IMAGE_SIZE`` images (``tiny_configs.TINY_CONFIGS[model_type]``; ``tiny_model`` and
            ``tiny_config`` add the tiny label set).
        compile_variants: config overrides, besides the tiny config itself, whose forward takes another path and that
            ``tests/models/test_compile.py`` also compiles (one graph without breaks, label maps and checkpointing).
        mixed_precision_variants: the same for ``tests/models/test_mixed_precision.py`` (autocast bf16 / fp16).
        activation_checkpointing: the method has Transformer layers that ``activation_checkpointing_enable()``
            checkpoints (``supports_gradient_checkpointing``). Without them, enabling it must raise and the Trainer
            must reject ``--activation_checkpointing`` with "<model_type> has no Transformer layers".
        checkpointing_variants: config overrides, besides the tiny config, that
            ``tests/models/test_gradient_checkpointing.py`` also checks (only with ``activation_checkpointing``).
        fsdp_units: class names of the layers FSDP shards the tiny model at (its ``_no_split_modules`` present in it);
            empty: one root unit. Checked by ``tests/training/test_fsdp.py``.
        fsdp_overrides: tiny-config overrides of the model ``tests/training/fsdp_driver.py`` trains.
        label_maps: what ``model.label_maps`` gives: ``"cam"`` (class activation maps: a label's map averages to its
            logit) or ``"attention"`` (attention weights: non-negative, summing to 1 over the positions).
        pretrained_prefixes: parameter-name prefixes of the pretrained (timm) network the method builds on: not the
            method's own layers (which must all get a non-zero gradient and be initialised by ``_init_weights``).
        frozen_prefixes: parameter-name prefixes that must stay frozen (``requires_grad=False``) in the tiny model and
            in a checkpoint loaded from it.
        check_finetuned_on_new_labels: extra assertions of ``tests/test_journeys.py`` after a checkpoint of the method
            is fine-tuned on a dataset with another label set, called with the saved ``config.json`` (a dict), the
            ``mlic_hf`` log messages of the run, the number of training images and the number of new labels.
    """

    model_type: str
    tiny_config: Mapping[str, Any]
    compile_variants: tuple[Mapping[str, Any], ...] = ()
    mixed_precision_variants: tuple[Mapping[str, Any], ...] = ()
    activation_checkpointing: bool = False
    checkpointing_variants: tuple[Mapping[str, Any], ...] = ()
    fsdp_units: tuple[str, ...] = ()
    fsdp_overrides: Mapping[str, Any] = field(default_factory=dict)
    label_maps: str = "cam"
    pretrained_prefixes: tuple[str, ...] = ("backbone.",)
    frozen_prefixes: tuple[str, ...] = ()
    check_finetuned_on_new_labels: Callable[[dict, list[str], int, int], None] | None = None

    def __post_init__(self):
        problems = []
        if not isinstance(self.model_type, str) or not self.model_type.startswith("mlic-"):
            problems.append(f"model_type must be an mlic_hf model type ('mlic-...'), got {self.model_type!r}")
        if not isinstance(self.tiny_config, Mapping):
            problems.append("tiny_config must be a dict of config keyword arguments")
        if self.label_maps not in LABEL_MAP_KINDS:
            problems.append(f"label_maps must be one of {LABEL_MAP_KINDS}, got {self.label_maps!r}")
        if self.checkpointing_variants and not self.activation_checkpointing:
            problems.append("checkpointing_variants need activation_checkpointing=True")
        for name in ("compile_variants", "mixed_precision_variants", "checkpointing_variants", "fsdp_units",
                     "pretrained_prefixes", "frozen_prefixes"):
            if not isinstance(getattr(self, name), tuple):
                problems.append(f"{name} must be a tuple")
        if problems:
            raise ValueError(f"MethodTestFacts of {self.model_type!r}: " + "; ".join(problems))

    def cases(self, variants: tuple[Mapping[str, Any], ...] = ()) -> list[Case]:
        """The tiny config, then each of ``variants``, as ``(model_type, overrides)`` cases."""
        return [(self.model_type, {}), *((self.model_type, dict(v)) for v in variants)]


class MissingMethodFacts(RuntimeError):
    """A registered method has no (valid) test facts."""


#: facts given with :func:`register_facts`, by model type
_REGISTERED: dict[str, MethodTestFacts] = {}


def register_facts(facts: MethodTestFacts) -> None:
    """Give the facts of a method whose model class has no ``facts`` module beside it (call it before the shared tests
    are collected: from a pytest plugin or ``conftest.py``). They win over any ``facts`` module."""
    if not isinstance(facts, MethodTestFacts):
        raise TypeError(f"register_facts takes a MethodTestFacts, got {type(facts).__name__}")
    _REGISTERED[facts.model_type] = facts


def facts_module_names(model_class: type) -> list[str]:
    """Where the facts of the method of ``model_class`` are looked for (module names, in order)."""
    module = model_class.__module__
    parts = module.split(".")
    if parts[:2] == ["mlic_hf", "models"] and len(parts) > 2:
        return [f"{__package__}.{parts[2]}.facts"]
    loaded = sys.modules.get(module)
    package = getattr(loaded, "__package__", None) or module.rpartition(".")[0]
    return [f"{package}.facts"] if package else []


def _hint(model_type: str, model_class: type) -> str:
    places = " or ".join(f"{name.replace('.', '/')}.py" for name in facts_module_names(model_class))
    return (f"add {places or 'a facts module'} defining FACTS = MethodTestFacts(model_type={model_type!r}, "
            f"tiny_config={{...}}, ...) (see tests/models/method_facts.py), or call "
            f"tests.models.method_facts.register_facts(...) before the tests are collected")


def _load(model_type: str, model_class: type) -> MethodTestFacts:
    if model_type in _REGISTERED:
        return _REGISTERED[model_type]
    for name in facts_module_names(model_class):
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is not None and name.startswith(error.name) and name[len(error.name):][:1] in ("", "."):
                continue  # the facts module (or its package) does not exist; an import error inside it is raised
            raise
        facts = getattr(module, "FACTS", None)
        if not isinstance(facts, MethodTestFacts):
            raise MissingMethodFacts(f"{name} defines no FACTS = MethodTestFacts(...) for registered method "
                                     f"{model_type!r}: {_hint(model_type, model_class)}")
        if facts.model_type != model_type:
            raise MissingMethodFacts(f"{name}.FACTS is for {facts.model_type!r}, but the method of "
                                     f"{model_class.__module__}.{model_class.__qualname__} is {model_type!r}")
        return facts
    raise MissingMethodFacts(f"registered method {model_type!r} ({model_class.__module__}.{model_class.__qualname__})"
                             f" has no test facts, so the shared tests cannot cover it: "
                             f"{_hint(model_type, model_class)}")


def registered_facts() -> dict[str, MethodTestFacts]:
    """The facts of every method in ``mlic_hf.REGISTERED_METHODS``, by model type, in registration order; raises
    :class:`MissingMethodFacts` for a registered method without facts."""
    import mlic_hf

    return {model_type: _load(model_type, model_class)
            for model_type, (_, model_class) in mlic_hf.REGISTERED_METHODS.items()}


def facts_for(model_type: str) -> MethodTestFacts:
    """The facts of one registered method (``KeyError`` for a model type that is not registered)."""
    import mlic_hf

    _, model_class = mlic_hf.REGISTERED_METHODS[model_type]
    return _load(model_type, model_class)


def method_ids() -> list[str]:
    """The model type of every registered method (test ids), in registration order."""
    return list(registered_facts())


def registered_methods() -> list[tuple[type, type]]:
    """``(config class, model class)`` of every registered method, in registration order (their facts checked)."""
    import mlic_hf

    return [mlic_hf.REGISTERED_METHODS[model_type] for model_type in registered_facts()]


def config_cases(variants: Callable[[MethodTestFacts], tuple] = lambda facts: (),
                 where: Callable[[MethodTestFacts], bool] = lambda facts: True) -> list[Case]:
    """The ``(model_type, overrides)`` cases of every registered method for which ``where(facts)`` holds: its tiny
    config, then each of ``variants(facts)``."""
    return [case for facts in registered_facts().values() if where(facts) for case in facts.cases(variants(facts))]


def tiny_config_of(model_type: str) -> dict:
    """A copy of the tiny config of a registered method."""
    return copy.deepcopy(dict(facts_for(model_type).tiny_config))
