"""Per-label spatial maps (``output_class_maps=True`` / ``model.label_maps``) for every registered method; what a
method's maps are is its ``MethodTestFacts.label_maps`` (class activation maps or attention)."""

import pytest
import torch

from .method_facts import facts_for, method_ids, registered_methods
from .tiny_configs import TINY_IMAGE_SIZE, tiny_config

METHODS = registered_methods()
IDS = method_ids()


def _model(config_class, model_class, **overrides):
    torch.manual_seed(0)
    return model_class(tiny_config(config_class, **overrides)).eval()


@pytest.mark.parametrize("config_class, model_class", METHODS, ids=IDS)
def test_maps_per_label_on_the_feature_grid(config_class, model_class):
    model = _model(config_class, model_class)
    pixels = torch.randn(2, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE)
    with torch.no_grad():
        plain = model(pixel_values=pixels).logits
    model.train()
    out = model.label_maps(pixels)
    assert model.training  # label_maps runs in eval mode and restores the mode
    maps = out.label_maps
    assert maps.ndim == 4 and maps.shape[:2] == (2, model.config.num_labels) and torch.isfinite(maps).all()
    assert maps.shape[-1] > 1 and maps.shape[-2] > 1
    torch.testing.assert_close(out.logits, plain)  # asking for maps changes no prediction
    if facts_for(config_class.model_type).label_maps == "attention":  # non-negative, summing to 1 over the positions
        assert (maps >= 0).all()
        torch.testing.assert_close(maps.sum((-2, -1)), torch.ones(2, model.config.num_labels), atol=1e-5, rtol=0)
    else:  # class activation maps average exactly to the logits (GAP + linear)
        torch.testing.assert_close(maps.mean((-2, -1)), out.logits, atol=1e-5, rtol=1e-5)
    # different images give different maps (they depend on the image, not only on the label)
    assert not torch.allclose(maps[0], maps[1])


@pytest.mark.parametrize("config_class, model_class", METHODS, ids=IDS)
def test_trainer_sees_only_labels_as_label_inputs(config_class, model_class):
    """transformers' Trainer treats every forward argument whose name contains "label" as a label input (and skips
    the metrics when one is missing): the maps switch is ``output_class_maps`` for that reason."""
    from transformers.utils import find_labels

    assert find_labels(model_class) == ["labels"]


@pytest.mark.parametrize("config_class, model_class", METHODS, ids=IDS)
def test_maps_only_when_asked(config_class, model_class):
    model = _model(config_class, model_class)
    with torch.no_grad():
        out = model(pixel_values=torch.randn(1, 3, TINY_IMAGE_SIZE, TINY_IMAGE_SIZE))
    assert out.label_maps is None
