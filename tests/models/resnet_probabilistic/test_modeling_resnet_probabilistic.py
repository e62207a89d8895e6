"""M1: ResNet-101 "probabilistic" baseline (backbone -> GAP -> linear -> per-label sigmoid, BCE)."""

import math

import pytest
import timm
import torch

from mlic_hf import ResNetProbabilisticConfig, ResNetProbabilisticForMultiLabelImageClassification


def test_paper_defaults():
    config = ResNetProbabilisticConfig()
    assert config.backbone == "resnet101"
    assert config.image_size == 448
    assert config.num_labels == 80  # MS-COCO 2014
    assert config.loss == "bce" and config.loss_reduction == "batch_mean"
    assert config.problem_type == "multi_label_classification"
    assert config.use_pretrained_backbone is False


def test_parameter_count_is_resnet101_plus_one_linear_layer():
    model = ResNetProbabilisticForMultiLabelImageClassification(ResNetProbabilisticConfig())
    headless = timm.create_model("resnet101", pretrained=False, num_classes=0)
    expected = sum(p.numel() for p in headless.parameters()) + 2048 * 80 + 80
    assert sum(p.numel() for p in model.parameters()) == expected == 42_664_080


def test_forward_is_sigmoid_of_linear_on_global_average_pool():
    config = ResNetProbabilisticConfig(backbone="resnet18", image_size=64, num_labels=5)
    model = ResNetProbabilisticForMultiLabelImageClassification(config).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model(x, output_hidden_states=True)
        features = model.backbone.body(x)[-1]
        pooled = features.mean(dim=(2, 3))
        expected = pooled @ model.classifier.weight.T + model.classifier.bias
    torch.testing.assert_close(out.logits, expected)
    assert torch.equal(out.feature_maps[-1], features)


def test_bce_loss_is_equation_2():
    """L = -1/N sum_i sum_j [y log p + (1-y) log(1-p)], written out by hand."""
    config = ResNetProbabilisticConfig(backbone="resnet18", image_size=64, num_labels=2)
    model = ResNetProbabilisticForMultiLabelImageClassification(config).eval()
    x = torch.randn(2, 3, 64, 64)
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    out = model(x, labels=labels)
    total = 0.0
    for i in range(2):
        for j in range(2):
            p = 1.0 / (1.0 + math.exp(-out.logits[i, j].item()))
            y = labels[i, j].item()
            total += -(y * math.log(p) + (1 - y) * math.log(1 - p))
    assert out.loss.item() == pytest.approx(total / 2, rel=1e-5)

