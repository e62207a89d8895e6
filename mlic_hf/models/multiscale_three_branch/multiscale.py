"""Multi-scale feature extraction and hierarchical scale attention of M4 (Zhong et al., CMC 2025, sections 3.1-3.2).

:class:`MultiScaleStem` turns backbone feature maps into three maps of one width at three scales (2H, H, H/2 for a
layer4 map of H×H: 28×28, 14×14, 7×7 for ResNet-101 at 448 px) by one of the paper's three fusion modes (Table 5).
Table 5 only lists which convolutions act on which layer; the interpretation implemented here keeps the same three
scales in every mode, so that the rest of the model (position embeddings, branches) is identical across modes:

====  ===========================================  ============================================  =====================
mode  branch 1 (2H)                                branch 2 (H)                                  branch 3 (H/2)
====  ===========================================  ============================================  =====================
1     layer3, 1×1                                  layer3, 3×3 stride 2                          layer4, 3×3 stride 2
2     layer2, 3×3 stride 2                         layer3, 3×3 stride 2                          layer4, 3×3 stride 2
3     layer3, 1×1                                  layer4, 1×1                                   layer4, 3×3 stride 2
====  ===========================================  ============================================  =====================

Mode 3 is the paper's method (eq. 1). Every 3×3 convolution has padding 1 (output ⌈n/2⌉); every convolution has a
bias and no normalisation or activation (the paper names none).

:class:`HierarchicalScaleAttention` is parameter-free (eqs. 2-5): the smaller maps are interpolated up to the largest
(x1), multiplied element-wise into ``m = x1 ⊙ x2' ⊙ x3'``, ``m`` is added to each (aligned) map, and the maps are
interpolated back to their own sizes: ``x1_final = x1 + m``, ``x_i_final = Interpolate(x_i' + m, size_i)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

#: Interpolation modes of the hierarchical scale attention (Table 6); ``align_corners=False`` where it applies.
INTERPOLATION_MODES = ("nearest", "bilinear", "bicubic", "area")

#: Fusion modes (Table 5): per branch (index into the stem's input maps, kernel size, stride). The input maps are the
#: backbone stages in order, shallow first: (layer3, layer4) for modes 1 and 3, (layer2, layer3, layer4) for mode 2.
FUSION_MODES: dict[int, tuple[tuple[int, int, int], ...]] = {
    1: ((0, 1, 1), (0, 3, 2), (1, 3, 2)),
    2: ((0, 3, 2), (1, 3, 2), (2, 3, 2)),
    3: ((0, 1, 1), (1, 1, 1), (1, 3, 2)),
}


def fusion_mode_num_inputs(mode: int) -> int:
    """How many backbone stages (the deepest ones) a fusion mode reads: 2 for modes 1 and 3, 3 for mode 2."""
    if mode not in FUSION_MODES:
        raise ValueError(f"fusion_mode={mode!r} is not one of {tuple(FUSION_MODES)}")
    return 1 + max(index for index, _, _ in FUSION_MODES[mode])


def interpolate(x: torch.Tensor, size: tuple[int, int], mode: str) -> torch.Tensor:
    """``F.interpolate`` to ``size`` with ``align_corners=False`` for bilinear/bicubic; identity at the same size."""
    if mode not in INTERPOLATION_MODES:
        raise ValueError(f"interpolation={mode!r} is not one of {INTERPOLATION_MODES}")
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    align_corners = False if mode in ("bilinear", "bicubic") else None
    return F.interpolate(x, size=tuple(size), mode=mode, align_corners=align_corners)


def conv_output_size(size: int, kernel: int, stride: int) -> int:
    """Output side of a convolution with padding ``kernel // 2`` (1×1: ``size``; 3×3 stride 2: ``⌈size/2⌉``)."""
    padding = kernel // 2
    return (size + 2 * padding - kernel) // stride + 1


class MultiScaleStem(nn.Module):
    """The fusion mode's convolutions: backbone maps (shallow first) → three maps of ``out_channels``.

    Args:
        in_channels: channels of the backbone maps it reads (2 for modes 1 and 3, 3 for mode 2).
        out_channels: width of every output map (the paper's d_model/4, 512 for ResNet-101).
        fusion_mode: 1, 2 or 3 (Table 5; see the module docstring).
    """

    def __init__(self, in_channels: Sequence[int], out_channels: int, fusion_mode: int = 3) -> None:
        super().__init__()
        needed = fusion_mode_num_inputs(fusion_mode)
        if len(in_channels) != needed:
            raise ValueError(f"fusion_mode={fusion_mode} reads {needed} backbone maps, got {len(in_channels)} "
                             f"(channels {list(in_channels)})")
        self.fusion_mode = fusion_mode
        self.spec = FUSION_MODES[fusion_mode]
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels[index], out_channels, kernel_size=kernel, stride=stride, padding=kernel // 2)
            for index, kernel, stride in self.spec
        )

    def output_sizes(self, input_sizes: Sequence[int]) -> list[int]:
        """Side of each output map for input maps of the given sides."""
        return [conv_output_size(input_sizes[index], kernel, stride) for index, kernel, stride in self.spec]

    def forward(self, feature_maps: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        needed = fusion_mode_num_inputs(self.fusion_mode)
        if len(feature_maps) != needed:
            raise ValueError(f"fusion_mode={self.fusion_mode} needs {needed} feature maps, got {len(feature_maps)}")
        return [conv(feature_maps[index]) for conv, (index, _, _) in zip(self.convs, self.spec)]


class HierarchicalScaleAttention(nn.Module):
    """Parameter-free cross-scale fusion (eqs. 2-5) of maps of equal width; the first map is the largest.

    Args:
        mode: interpolation of the up- and down-sampling, one of :data:`INTERPOLATION_MODES` (default bilinear).
    """

    def __init__(self, mode: str = "bilinear") -> None:
        super().__init__()
        if mode not in INTERPOLATION_MODES:
            raise ValueError(f"interpolation={mode!r} is not one of {INTERPOLATION_MODES}")
        self.mode = mode

    def forward(self, scales: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        largest = tuple(scales[0].shape[-2:])
        if any(x.shape[-2] > largest[0] or x.shape[-1] > largest[1] for x in scales[1:]):
            raise ValueError(f"the first map must be the largest, got sizes {[tuple(x.shape[-2:]) for x in scales]}")
        aligned = [scales[0]] + [interpolate(x, largest, self.mode) for x in scales[1:]]  # eq. 2
        shared = aligned[0]
        for x in aligned[1:]:
            shared = shared * x  # eq. 3: m = x1 ⊙ x2' ⊙ x3'
        updated = [x + shared for x in aligned]  # eq. 4
        return [updated[0]] + [interpolate(u, tuple(x.shape[-2:]), self.mode)  # eq. 5
                               for u, x in zip(updated[1:], scales[1:])]

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


__all__ = [
    "FUSION_MODES",
    "INTERPOLATION_MODES",
    "HierarchicalScaleAttention",
    "MultiScaleStem",
    "conv_output_size",
    "fusion_mode_num_inputs",
    "interpolate",
]
