"""Building blocks shared by the mlic_hf methods (backbones, heads, attention, ...)."""

from .backbone import EFFICIENTNET_LITE0_PYPI, TimmBackbone, convert_efficientnet_lite0_state_dict

__all__ = ["EFFICIENTNET_LITE0_PYPI", "TimmBackbone", "convert_efficientnet_lite0_state_dict"]
