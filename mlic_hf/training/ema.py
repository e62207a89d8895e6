"""The exponential moving average (EMA) of a model's weights that training evaluates beside the raw model, and the
file it is checkpointed in (``ema.safetensors``)."""

from __future__ import annotations

import contextlib
import weakref

import torch
from torch import nn

EMA_WEIGHTS_NAME = "ema.safetensors"


# Where a live tensor sits: its module's ``_parameters`` or ``_buffers`` dict and its attribute name there.
_Slot = tuple[dict, str]


def _state_dict_slots(model: nn.Module) -> dict[str, tuple[_Slot, bool]]:
    """Every ``state_dict`` entry of ``model`` that is a module's parameter or buffer, by ``state_dict`` name:
    (its slot, whether it is a parameter). Tied tensors appear under each of their names."""
    owners: dict[int, tuple[_Slot, bool]] = {}
    for module in model.modules():
        for store, is_parameter in ((module._parameters, True), (module._buffers, False)):
            for attr, tensor in store.items():
                if tensor is not None:
                    owners.setdefault(id(tensor), ((store, attr), is_parameter))
    state = model.state_dict(keep_vars=True)  # keep_vars: the Parameter objects, whose identity finds the owner
    return {name: owners[id(tensor)] for name, tensor in state.items() if id(tensor) in owners}


def _averaged_names(slots: dict[str, tuple[_Slot, bool]]) -> list[str]:
    """Names of the tensors worth averaging: trainable parameters and floating-point buffers, each tensor once
    (under its first name when tied)."""
    names, seen = [], set()
    for name, ((store, attr), is_parameter) in slots.items():
        tensor = store[attr]
        keep = tensor.requires_grad if is_parameter else tensor.is_floating_point()
        if keep and id(tensor) not in seen:
            seen.add(id(tensor))
            names.append(name)
    return names


class ModelEMA:
    """Exponential moving average of a model's trainable parameters and floating-point buffers (float32 shadows).

    What is averaged, keyed by ``state_dict`` names: every parameter with ``requires_grad=True`` and every
    floating-point buffer of the ``state_dict`` (BatchNorm running statistics move in train mode even in a frozen
    backbone; buffers are small). Frozen parameters are left out because their average is themselves: with
    ``--preset m3`` (prompt tuning of a frozen ViT-B/16) they are ~86 M of ~87 M weights that would otherwise be
    lerped at every step and cloned at every evaluation. ``swapped_into`` and ``copy_to`` therefore leave frozen
    parameters (and integer buffers such as ``num_batches_tracked``) as they are. The set is fixed when the EMA is
    built: freeze or unfreeze before. A parameter tied under several names is averaged once, under its first name.

    ``shadow`` maps those ``state_dict`` names to the float32 averages; ``save``/``load`` write and read them (with
    ``num_updates``) as safetensors, the ``ema.safetensors`` of checkpoints.

    Under FSDP2 the model's parameters become ``DTensor`` shards after the EMA is built (the Trainer shards the model
    when training starts); each shadow then takes its parameter's layout at the next update, so every process keeps
    only its shard of the average. ``save`` gathers the full tensors (a collective: every process calls it).
    """

    def __init__(self, model: nn.Module, decay: float = 0.9997, warmup: bool = True) -> None:
        self.decay, self.warmup = decay, warmup
        self.num_updates = 0
        slots = _state_dict_slots(model)
        names = _averaged_names(slots)
        self._bind(model, slots, names)
        self.shadow: dict[str, torch.Tensor] = {
            name: tensor.detach().to(torch.float32, copy=True) for name, tensor in zip(names, self._live(model))
        }

    def current_decay(self) -> float:
        """``decay``, or during warm-up min(decay, (1 + t) / (10 + t)) after t updates."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    # --- live tensors -------------------------------------------------------------------------------------------
    def _bind(self, model: nn.Module, slots: dict[str, tuple[_Slot, bool]], names: list[str]) -> None:
        missing = [name for name in names if name not in slots]
        if missing:
            raise ValueError(f"the model lacks {len(missing)} of the EMA's tensors: {_short_list(missing)}")
        self._model = weakref.ref(model)
        self._slots = [slots[name][0] for name in names]

    def _live(self, model: nn.Module) -> list[torch.Tensor]:
        """The model's current tensors, in ``shadow`` order.

        The slots (the owning modules' parameter/buffer dicts) are resolved once per model object; reading the
        tensor from its slot at every call follows ``.to()``, which may put new tensors into those dicts (always for
        buffers), at the cost of one dict lookup per tensor."""
        if self._model() is not model:
            self._bind(model, _state_dict_slots(model), list(self.shadow))
        return [store[attr] for store, attr in self._slots]

    def _live_as_shadows(self, model: nn.Module) -> list[torch.Tensor]:
        """The live tensors as float32 on the shadows' devices (foreach ops need matching tensors; no copy when
        they already match, the usual case)."""
        live = self._live(model)
        self._match_sharding(live)
        pairs = zip(live, self.shadow.values())
        return [t if t.dtype == s.dtype and t.device == s.device else t.to(s.device, s.dtype) for t, s in pairs]

    def _match_sharding(self, live: list[torch.Tensor]) -> None:
        """Shard each full shadow like its live tensor once FSDP has made that a ``DTensor`` (no communication:
        every process holds the same full shadow and keeps its own shard)."""
        from torch.distributed.tensor import DTensor

        for (name, shadow), tensor in zip(list(self.shadow.items()), live):
            if isinstance(tensor, DTensor) and not isinstance(shadow, DTensor):
                self.shadow[name] = _distribute_like(shadow.to(tensor.device), tensor)

    # --- averaging and swapping ---------------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """One EMA step toward ``model``'s current weights (a single foreach lerp over all averaged tensors)."""
        weight = 1.0 - self.current_decay()
        live = self._live_as_shadows(model)
        for shadows, tensors in _by_kind(list(self.shadow.values()), live):
            torch._foreach_lerp_(shadows, tensors, weight)
        self.num_updates += 1

    @contextlib.contextmanager
    def swapped_into(self, model: nn.Module):
        """Temporarily load the EMA weights into ``model`` (restored afterwards); only the averaged tensors are
        backed up and swapped."""
        live = self._live(model)
        backup = [tensor.detach().clone() for tensor in live]
        self.copy_to(model)  # shards the shadows like ``live`` first, if FSDP has sharded it
        try:
            yield model
        finally:
            with torch.no_grad():
                _copy(live, backup)

    @torch.no_grad()
    def copy_to(self, model: nn.Module) -> None:
        """Overwrite ``model``'s averaged tensors with the EMA (cast to their dtype and device)."""
        live = self._live(model)
        self._match_sharding(live)
        _copy(live, list(self.shadow.values()))

    # --- files --------------------------------------------------------------------------------------------------
    def save(self, path: str, write: bool = True) -> None:
        """Write the full averages and ``num_updates`` to ``path`` (safetensors). Sharded (FSDP) averages are
        gathered first, a collective: call it in every process, with ``write`` true in the one that writes."""
        from safetensors.torch import save_file
        from torch.distributed.tensor import DTensor

        tensors = {k: (v.full_tensor() if isinstance(v, DTensor) else v).contiguous().cpu()
                   for k, v in self.shadow.items()}
        tensors["__num_updates__"] = torch.tensor([self.num_updates], dtype=torch.int64)
        if write:
            save_file(tensors, path)

    def load(self, path: str) -> None:
        """Load a file written by :meth:`save`. Extra tensors are ignored (files of older versions, which averaged
        every floating tensor of the ``state_dict``, hold the frozen parameters too)."""
        from safetensors.torch import load_file

        tensors = load_file(path)
        missing = sorted({*self.shadow, "__num_updates__"} - set(tensors))
        if missing:
            raise ValueError(f"{path}: the EMA state lacks {len(missing)} needed tensors: {_short_list(missing)}")
        wrong = [k for k, v in self.shadow.items() if tensors[k].shape != v.shape]  # a DTensor's shape is the full one
        if wrong:
            raise ValueError(f"{path}: EMA tensors of the wrong shape: {_short_list(wrong)}")
        from torch.distributed.tensor import DTensor

        for key, shadow in self.shadow.items():
            full = tensors[key].to(shadow.device)
            shadow.copy_(_distribute_like(full, shadow) if isinstance(shadow, DTensor) else full)
        self.num_updates = int(tensors["__num_updates__"].item())


def _by_kind(first: list[torch.Tensor], second: list[torch.Tensor]):
    """The pairs of ``first`` and ``second`` as foreach-ready lists, split into plain tensors and ``DTensor`` shards
    (a foreach op takes one kind; FSDP shards parameters, not buffers). Empty groups are left out: foreach ops reject
    empty lists."""
    from torch.distributed.tensor import DTensor

    groups: dict[bool, tuple[list, list]] = {}
    for a, b in zip(first, second):
        pair = groups.setdefault(isinstance(a, DTensor), ([], []))
        pair[0].append(a)
        pair[1].append(b)
    return list(groups.values())


def _copy(targets: list[torch.Tensor], sources: list[torch.Tensor]) -> None:
    """``targets[i].copy_(sources[i])``: one foreach copy for plain tensors, one by one for ``DTensor`` shards
    (DTensor has no foreach copy)."""
    from torch.distributed.tensor import DTensor

    for group_targets, group_sources in _by_kind(targets, sources):
        if isinstance(group_targets[0], DTensor):
            for target, source in zip(group_targets, group_sources):
                target.copy_(source)
        else:
            torch._foreach_copy_(group_targets, group_sources)


def _distribute_like(full: torch.Tensor, like) -> torch.Tensor:
    """``full`` (the same on every process) as a ``DTensor`` with ``like``'s mesh and placements, each process
    keeping its own shard (``src_data_rank=None``: no scatter)."""
    from torch.distributed.tensor import distribute_tensor

    return distribute_tensor(full, like.device_mesh, like.placements, src_data_rank=None)


def _short_list(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")
