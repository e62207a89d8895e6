"""ML-Decoder against timm's ``MLDecoder`` (the official head's math) with copied weights, and its own facts."""

import pytest
import torch
from timm.layers.ml_decoder import MLDecoder

from mlic_hf import MLDecoderConfig, MLDecoderForMultiLabelImageClassification


def _model(num_labels=10, **overrides):
    kwargs = {"backbone": "resnet18", "image_size": 64, "num_labels": num_labels, "hidden_size": 64,
              "intermediate_size": 2048, "num_attention_heads": 8, **overrides}
    return MLDecoderForMultiLabelImageClassification(MLDecoderConfig(**kwargs)).eval()


def _copy_into_timm(model) -> MLDecoder:
    """timm's MLDecoder (the official zsl=0 head, attributes on the module instead of under ``decoder.``) holding our
    weights: the mapping a conversion of official checkpoints uses."""
    config = model.config
    head = MLDecoder(config.num_labels, num_of_groups=config.num_groups, decoder_embedding=config.hidden_size,
                     initial_num_features=model.backbone.channels[-1]).eval()
    layer, ours = head.decoder.layers[0], model.layers[0]
    pairs = [(head.embed_standart, model.input_proj), (layer.multihead_attn, ours.cross_attn),
             (layer.linear1, ours.linear1), (layer.linear2, ours.linear2), (layer.norm1, ours.norm1),
             (layer.norm2, ours.norm2), (layer.norm3, ours.norm3)]
    with torch.no_grad():
        for theirs, mine in pairs:
            theirs.load_state_dict(mine.state_dict())
        head.query_embed.weight.copy_(model.queries.weight)
        head.duplicate_pooling.copy_(model.classifier.weight)
        head.duplicate_pooling_bias.copy_(model.classifier.bias)
    return head


def _timm_forward(head: MLDecoder, features: torch.Tensor) -> torch.Tensor:
    """timm's ``MLDecoder.forward`` step by step, calling its decoder layer directly: under torch 2.14
    ``nn.TransformerDecoder`` reads ``layers[0].self_attn``, which ``TransformerDecoderLayerOptimal`` lacks."""
    tokens = torch.relu(head.embed_standart(features.flatten(2).transpose(1, 2)))
    tgt = head.query_embed.weight.unsqueeze(1).expand(-1, features.shape[0], -1)
    h = head.decoder.layers[0](tgt, tokens.transpose(0, 1)).transpose(0, 1)
    out = torch.zeros(h.shape[0], h.shape[1], head.duplicate_factor)
    for i in range(head.embed_len_decoder):
        out[:, i, :] = h[:, i, :] @ head.duplicate_pooling[i]
    return out.flatten(1)[:, : head.num_classes] + head.duplicate_pooling_bias


@pytest.mark.parametrize("num_groups", [-1, 20, 30, 7])
def test_equals_timm_ml_decoder_with_copied_weights(num_groups):
    num_labels = 30
    model = _model(num_labels=num_labels, num_groups=num_groups)
    head = _copy_into_timm(model)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(x)[-1]
        torch.testing.assert_close(model(x).logits, _timm_forward(head, features), rtol=1e-5, atol=1e-5)


def test_query_count_and_labels_per_query_follow_the_official_rules():
    assert (MLDecoderConfig(num_labels=80).num_queries, MLDecoderConfig(num_labels=80).labels_per_query) == (80, 1)
    assert MLDecoderConfig(num_labels=9605).num_queries == 100  # -1: 100 queries
    assert MLDecoderConfig(num_labels=9605).labels_per_query == 97
    assert MLDecoderConfig(num_labels=10, num_groups=3).labels_per_query == 4  # 12 outputs, the first 10 kept


def test_defaults_are_the_official_coco_setting():
    config = MLDecoderConfig()
    assert (config.backbone, config.image_size, config.num_labels) == ("tresnet_l", 448, 80)
    assert (config.hidden_size, config.intermediate_size, config.num_attention_heads) == (768, 2048, 8)
    assert (config.num_decoder_layers, config.dropout, config.learnable_queries) == (1, 0.1, False)
    assert (config.loss, config.loss_reduction, config.asl_gamma_neg, config.asl_gamma_pos, config.asl_clip) == (
        "asl", "sum", 4.0, 0.0, 0.05)


def test_queries_are_fixed_standard_normal_unless_learnable():
    model = _model(num_groups=5)
    assert not model.queries.weight.requires_grad
    assert 0.7 < model.queries.weight.std().item() < 1.3  # N(0, 1), as nn.Embedding initialises the official ones
    assert _model(num_groups=5, learnable_queries=True).queries.weight.requires_grad


def test_not_ml_decoder_without_the_relu():
    """The ReLU after the input projection is part of the head (M2 without an encoder lacks it)."""
    model = _model(num_groups=-1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        features = model.backbone(x)[-1]
        tokens = model.input_proj(features.flatten(2).transpose(1, 2))
        assert (tokens < 0).any()  # the ReLU has something to remove
        queries = model.queries(1)
        without_relu, _ = model.layers[0](queries, tokens)
        assert not torch.allclose(model.classifier(without_relu), model(x).logits)


def test_label_maps_are_the_scoring_query_s_attention():
    model = _model(num_labels=6, num_groups=3)  # labels (0, 1), (2, 3), (4, 5) share a query
    out = model(torch.randn(2, 3, 64, 64), output_class_maps=True, output_attentions=True)
    maps = out.label_maps.flatten(2)
    torch.testing.assert_close(maps.sum(2), torch.ones(2, 6))
    for label in range(6):
        torch.testing.assert_close(maps[:, label], out.attentions[-1][:, label // 2])


def test_the_layer_doubles_the_queries_in_evaluation():
    """The official layer adds dropout(queries) to the queries (no self-attention): doubled in eval mode."""
    model = _model()
    layer, queries, memory = model.layers[0], torch.randn(2, 5, 64), torch.randn(2, 9, 64)
    with torch.no_grad():
        out, _ = layer(queries, memory)
        doubled = layer.norm1(2 * queries)
        attended, _ = layer.cross_attn(doubled, memory, memory)
        step = layer.norm2(doubled + attended)
        expected = layer.norm3(step + layer.linear2(torch.relu(layer.linear1(step))))
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("kwargs, message", [
    ({"num_groups": 0}, "num_groups must be -1"),
    ({"num_groups": -2}, "num_groups must be -1"),
    ({"hidden_size": 30, "num_attention_heads": 8}, "divisible by num_attention_heads"),
    ({"dropout": 1.0}, "dropout must be in"),
    ({"out_indices": [-2, -1]}, "reads one feature map"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        MLDecoderConfig(**kwargs)
