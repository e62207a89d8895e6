"""M4's label maps (the shared checks are in ``tests/models/test_label_maps.py``)."""

import pytest
import torch

import mlic_hf

from ..tiny_configs import TINY_IMAGE_SIZE, tiny_config


def _model(config_class, model_class, **overrides):
    torch.manual_seed(0)
    return model_class(tiny_config(config_class, **overrides)).eval()


def test_m4_maps_average_the_branches_and_need_region_selection():
    config_class, model_class = mlic_hf.MultiScaleThreeBranchConfig, \
        mlic_hf.MultiScaleThreeBranchForMultiLabelImageClassification
    out = _model(config_class, model_class).label_maps(torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    branches = out.extras["branch_label_maps"]
    assert len(branches) == 3 and out.label_maps.shape[-2:] == max(b.shape[-2:] for b in branches)
    largest = [b for b in branches if b.shape[-2:] == out.label_maps.shape[-2:]]
    assert largest  # the common grid is one branch's own
    with pytest.raises(ValueError, match="region_selection"):
        _model(config_class, model_class, region_selection=False).label_maps(
            torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
