"""A work-around for wrong convolution weight gradients under bf16 autocast on CPUs.

torch 2.14's CPU bf16 convolution (oneDNN) returns a wrong weight gradient when the input is narrower than the
stride (width or height < stride, kernel > 1): non-finite values or finite garbage at the taps that only see padding,
depending on what the memory held before (so a run may fail or not, or train on wrong gradients without a sign). The
forward pass and the input gradient are right. Measured here: 38 of 40 random cases of a 3×3 stride-2 convolution on
a 4×1 input; width 1 or 2 below stride 2 or 3, kernel 3 or 5, all wrong; wider inputs, stride 1 and 1×1 kernels
right (``tests/training/test_cpu_bf16.py`` checks that the bug is still there). Related upstream report:
pytorch/pytorch#169688 (strided bf16 convolutions on CPU).

Such maps appear at small image sizes only: M4's stride-2 branch on a 1×1 ``layer4`` map (32 px inputs), a ResNet's
own stride-2 convolutions at 16 px. :func:`guard_cpu_bf16_convolutions` makes the strided convolutions of a model
run in float32 for those inputs only (everything else keeps bf16); :class:`~mlic_hf.training.MLICTrainer` applies it
when it trains with ``--bf16`` on a CPU.
"""

from __future__ import annotations

import logging
import types

import torch
from torch import nn

logger = logging.getLogger(__name__)


def needs_float32(conv: nn.Conv2d, x: torch.Tensor) -> bool:
    """Whether ``conv`` on ``x`` would get a wrong weight gradient: CPU bf16 autocast and an input narrower than the
    stride."""
    return (x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
            and (x.shape[-2] < conv.stride[0] or x.shape[-1] < conv.stride[1]))


def _guarded_forward(self: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    if needs_float32(self, x):
        with torch.autocast("cpu", enabled=False):
            return type(self).forward(self, x.float())
    return type(self).forward(self, x)


def guard_cpu_bf16_convolutions(model: nn.Module) -> int:
    """Make every strided convolution of ``model`` with a kernel wider than 1 compute in float32 when its input is
    narrower than its stride under CPU bf16 autocast (see the module docstring); returns how many it guards. Other
    inputs, other dtypes and other devices are unaffected. The guard is a bound method, so ``copy.deepcopy`` of the
    model keeps it for the copy."""
    guarded = 0
    for module in model.modules():
        if (isinstance(module, nn.Conv2d) and max(module.stride) > 1 and max(module.kernel_size) > 1
                and "forward" not in vars(module)):
            module.forward = types.MethodType(_guarded_forward, module)
            guarded += 1
    return guarded
