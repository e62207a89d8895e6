"""Every mlic_hf method: one sub-package each (``mlic_hf/models/<method>/``), registered with the Auto classes by
``import mlic_hf``.

Adding a method is its folder (configuration, modeling, the layers only it uses, ``preset.py``, and an ``__init__``
defining ``METHOD = (ConfigClass, ModelClass)``, ``PRESETS`` and ``__all__``) plus one line in
:data:`METHOD_PACKAGES`. Its public names are re-exported here and from ``mlic_hf``.
"""

from __future__ import annotations

import importlib

#: The method sub-packages, in registration order.
METHOD_PACKAGES = (
    "resnet_probabilistic",
    "two_stage_irpe",
    "multiscale_three_branch",
    "multilabel_vpt",
)

_PACKAGES = [importlib.import_module(f".{name}", __name__) for name in METHOD_PACKAGES]
_PER_PACKAGE = ("METHOD", "PRESETS")

#: (config class, model class) of every method, in the order they are registered.
METHODS: list[tuple[type, type]] = [package.METHOD for package in _PACKAGES]

#: ``--preset`` name -> recipe, from every method's ``preset.py``.
METHOD_PRESETS: dict[str, dict] = {name: recipe for package in _PACKAGES for name, recipe in package.PRESETS.items()}

_EXPORTS = {name: getattr(package, name) for package in _PACKAGES for name in package.__all__
            if name not in _PER_PACKAGE}
globals().update(_EXPORTS)

__all__ = ["METHODS", "METHOD_PACKAGES", "METHOD_PRESETS", *sorted(_EXPORTS)]
