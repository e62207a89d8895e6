"""CSRA: the heads against hand computations and against a transcription of the official module."""

import math

import pytest
import timm
import torch
from torch import nn

from mlic_hf import CSRAConfig, CSRAForMultiLabelImageClassification
from mlic_hf.models.csra.configuration_csra import OFFICIAL_TEMPERATURES


class OfficialCSRA(nn.Module):
    """A transcription, for this test, of the official head (github.com/Kevinz-code/CSRA, ``pipeline/csra.py``:
    ``CSRA`` and ``MHA``), written from reading it: one bias-free 1×1 convolution per head, scores divided by each
    class's weight norm, mean + lam * (max if T == 99 else softmax-weighted sum), heads summed."""

    def __init__(self, input_dim, num_classes, num_heads, lam):
        super().__init__()
        self.temps = OFFICIAL_TEMPERATURES[num_heads]
        self.lam = lam
        self.convs = nn.ModuleList(nn.Conv2d(input_dim, num_classes, 1, bias=False) for _ in self.temps)

    def forward(self, x):
        total = 0.0
        for conv, temp in zip(self.convs, self.temps):
            score = conv(x) / torch.norm(conv.weight, dim=1, keepdim=True).transpose(0, 1)
            score = score.flatten(2)
            base = torch.mean(score, dim=2)
            if temp == 99:
                att = torch.max(score, dim=2)[0]
            else:
                att = torch.sum(score * torch.softmax(score * temp, dim=2), dim=2)
            total = total + base + self.lam * att
        return total


def _model(**overrides):
    kwargs = {"backbone": "resnet18", "image_size": 64, "num_labels": 5, **overrides}
    return CSRAForMultiLabelImageClassification(CSRAConfig(**kwargs)).eval()


def test_defaults_are_the_official_coco_setting():
    config = CSRAConfig()
    assert (config.backbone, config.image_size, config.num_labels) == ("resnet101", 448, 80)
    assert (config.num_heads, config.lam) == (4, 0.5)
    assert config.head_temperatures == (1.0, 2.0, 4.0, 99.0)
    assert (config.loss, config.loss_reduction) == ("bce", "mean")  # F.binary_cross_entropy_with_logits, "mean"


def test_parameter_count_is_the_backbone_plus_one_bias_free_classifier_per_head():
    model = CSRAForMultiLabelImageClassification(CSRAConfig())
    headless = timm.create_model("resnet101", pretrained=False, num_classes=0)
    expected = sum(p.numel() for p in headless.parameters()) + 4 * 2048 * 80
    assert sum(p.numel() for p in model.parameters()) == expected


@pytest.mark.parametrize("num_heads", sorted(OFFICIAL_TEMPERATURES))
def test_equals_the_official_multi_head_module_with_copied_weights(num_heads):
    model = _model(num_heads=num_heads, lam=0.3)
    official = OfficialCSRA(model.backbone.channels[-1], 5, num_heads, 0.3).eval()
    for conv, head in zip(official.convs, model.heads):
        conv.weight.data.copy_(head.classifier.weight.data)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(x)[-1]
        torch.testing.assert_close(model(x).logits, official(features), rtol=1e-5, atol=1e-5)


def test_lambda_zero_with_one_head_is_average_pooling_and_a_normalised_linear_classifier():
    model = _model(num_heads=1, lam=0.0)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        pooled = model.backbone(x)[-1].mean(dim=(2, 3))
        weight = model.heads[0].classifier.weight.flatten(1)
        expected = pooled @ (weight / weight.norm(dim=1, keepdim=True)).T
        torch.testing.assert_close(model(x).logits, expected)


def test_a_max_pooling_head_is_the_limit_of_large_temperatures():
    x = torch.randn(2, 3, 64, 64)
    max_head = _model(num_heads=1, temperatures=[99.0], lam=1.0)
    hot = _model(num_heads=1, temperatures=[1e4], lam=1.0)
    hot.load_state_dict(max_head.state_dict())
    with torch.no_grad():
        scores_max = max_head(x, output_class_maps=True)
        scores_hot = hot(x, output_class_maps=True)
        features = max_head.backbone(x)[-1]
        weight = max_head.heads[0].classifier.weight.flatten(1)
        scores = torch.einsum("ck,bkhw->bchw", weight / weight.norm(dim=1, keepdim=True), features).flatten(2)
    torch.testing.assert_close(scores_max.logits, scores.mean(2) + scores.amax(2))
    torch.testing.assert_close(scores_hot.logits, scores_max.logits, rtol=1e-4, atol=1e-4)
    # the max-pooling head's map is one-hot at the maximum
    maps = scores_max.label_maps.flatten(2)
    assert torch.equal(maps.argmax(2), scores.argmax(2)) and torch.equal(maps.sum(2), torch.ones(2, 5))


def test_logit_is_mean_plus_lambda_times_attention_weighted_score_by_hand():
    model = _model(num_heads=1, temperatures=[2.0], lam=0.7, num_labels=1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(x)[-1][0]  # (d, h, w)
        weight = model.heads[0].classifier.weight.flatten()
        scores = [float(weight @ features[:, i, j]) / float(weight.norm())
                  for i in range(features.shape[1]) for j in range(features.shape[2])]
        exps = [math.exp(2.0 * s) for s in scores]
        expected = sum(scores) / len(scores) + 0.7 * sum(s * e for s, e in zip(scores, exps)) / sum(exps)
        assert model(x).logits.item() == pytest.approx(expected, rel=1e-5)


def test_label_maps_average_the_heads_attention():
    model = _model(num_heads=4)
    out = model(torch.randn(2, 3, 64, 64), output_class_maps=True)
    assert len(out.attentions) == 4
    torch.testing.assert_close(out.label_maps, torch.stack(out.attentions).mean(0))
    torch.testing.assert_close(out.label_maps.flatten(2).sum(2), torch.ones(2, 5))


@pytest.mark.parametrize("kwargs, message", [
    ({"num_heads": 3}, "num_heads=3 has no official temperature table"),
    ({"num_heads": 2, "temperatures": [1.0]}, "one value per head"),
    ({"num_heads": 1, "temperatures": [0.0]}, "must all be > 0"),
    ({"lam": -0.1}, "lam"),
    ({"out_indices": [-2, -1]}, "pools one feature map"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CSRAConfig(**kwargs)


def test_three_heads_with_own_temperatures():
    model = _model(num_heads=3, temperatures=[1.0, 5.0, 99.0])
    assert [head.temperature for head in model.heads] == [1.0, 5.0, 99.0]
