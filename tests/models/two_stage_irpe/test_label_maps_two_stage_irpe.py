"""M2's label maps (the shared checks are in ``tests/models/test_label_maps.py``)."""

import torch

import mlic_hf

from ..tiny_configs import TINY_IMAGE_SIZE, tiny_config


def _model(config_class, model_class, **overrides):
    torch.manual_seed(0)
    return model_class(tiny_config(config_class, **overrides)).eval()


def test_m2_maps_are_the_last_decoder_layers_cross_attention():
    model = _model(mlic_hf.TwoStageIRPEConfig, mlic_hf.TwoStageIRPEForMultiLabelImageClassification)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE), output_attentions=True,
                    output_class_maps=True)
    torch.testing.assert_close(out.label_maps.flatten(2), out.attentions[-1])
