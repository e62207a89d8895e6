"""Registration of mlic_hf's prompt-tuning methods (VPT, ML-VPT) with PEFT — the only module touching PEFT internals.

PEFT has no public API for methods defined outside its code base: :func:`peft.utils.register_peft_method` accepts a
method only if its name is already a member of the ``PeftType`` enum. This module adds the member to the enum and
then calls ``register_peft_method``; after that ``get_peft_model``, ``PeftModel.save_pretrained`` /
``from_pretrained`` and ``print_trainable_parameters`` work as for built-in methods.
``tests/models/multilabel_vpt/test_peft_methods.py`` checks every PEFT internal used here, so a PEFT release that
changes them fails loudly there.
"""

from __future__ import annotations

import logging

logger = logging.getLogger(__name__)


class PeftInternalsChanged(RuntimeError):
    """PEFT's internals no longer match what this registration relies on (pin peft or update this module)."""


def add_peft_type(name: str):
    """Add ``name`` to ``peft.utils.peft_types.PeftType`` (a ``str`` enum) and return the member (idempotent)."""
    import peft
    from peft.utils.peft_types import PeftType

    if name in PeftType.__members__:
        return PeftType[name]
    try:
        member = str.__new__(PeftType, name)
        member._name_ = name
        member._value_ = name
        PeftType._member_map_[name] = member
        PeftType._member_names_.append(name)
        PeftType._value2member_map_[name] = member
        type.__setattr__(PeftType, name, member)
    except (AttributeError, TypeError) as err:
        raise PeftInternalsChanged(
            f"cannot add {name!r} to PEFT's PeftType enum (peft {peft.__version__}): {err}"
        ) from err
    if PeftType(name) is not member or getattr(PeftType, name) is not member or member not in list(PeftType):
        raise PeftInternalsChanged(f"PeftType did not accept the new member {name!r} (peft {peft.__version__})")
    return member


def register_method(name: str, config_cls: type, model_cls: type, prefix: str) -> None:
    """Make the PEFT method ``name`` (lower case, e.g. ``"ml_vpt"``) known to PEFT (idempotent)."""
    import peft
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING

    peft_type = add_peft_type(name.upper())
    if PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type) is config_cls:
        return
    try:
        from peft.utils import register_peft_method
    except ImportError as err:
        raise PeftInternalsChanged(f"peft {peft.__version__} has no peft.utils.register_peft_method") from err
    register_peft_method(name=name, config_cls=config_cls, model_cls=model_cls, prefix=prefix)
    logger.debug("registered PEFT method %s (prefix %s)", name, prefix)


__all__ = ["PeftInternalsChanged", "add_peft_type", "register_method"]
