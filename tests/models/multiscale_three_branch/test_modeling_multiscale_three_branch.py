"""M4: multi-scale three-branch Transformer — paper defaults and parameter counts (Table 7), the section 4.3 shape
walk-through, hierarchical scale attention against eqs. 2-5, and every ablation switch (Tables 4-7, Figure 5)."""

import json

import pytest
import torch
from torch.nn import functional as F
from transformers import AutoConfig

from mlic_hf import MultiScaleThreeBranchConfig, MultiScaleThreeBranchForMultiLabelImageClassification
from mlic_hf.layers.decoder import SELF_ATTENTION_MODES, LabelDecoder, self_attention_layers
from mlic_hf.models.multiscale_three_branch.multiscale import INTERPOLATION_MODES, HierarchicalScaleAttention, MultiScaleStem

from ..tiny_configs import TINY_CONFIGS, TINY_LABELS

Model = MultiScaleThreeBranchForMultiLabelImageClassification


def tiny(**overrides):
    return MultiScaleThreeBranchConfig(
        **{**TINY_CONFIGS["mlic-multiscale-three-branch"], "id2label": dict(TINY_LABELS), **overrides})


def count(module):
    return sum(p.numel() for p in module.parameters())


# --- paper defaults ---------------------------------------------------------------------------------------------


def test_paper_defaults():
    config = MultiScaleThreeBranchConfig()
    assert (config.backbone, config.image_size, config.num_labels) == ("resnet101", 448, 80)
    assert config.fusion_mode == 3 and config.out_indices == [-2, -1]  # layer3, layer4
    assert config.scale_attention and config.interpolation == "bilinear"
    assert config.global_feature_enhancement and config.num_encoder_layers == 2
    assert config.region_selection and config.num_decoder_layers == 3 and config.decoder_self_attention == "none"
    assert config.share_branch_weights and config.classifier == "group_wise"
    assert config.hidden_size is None  # = layer4 channels // 4 when the model is built
    assert (config.num_attention_heads, config.intermediate_size, config.dropout, config.hidden_act) == (
        8, 2048, 0.1, "relu")
    assert config.loss == "asl" and config.asl_gamma_pos == 0.0 and config.asl_gamma_neg == 4.0
    assert config.asl_clip == 0.05 and config.loss_reduction == "mean"


# Table 7: decoder self-attention per layer → parameters (M)
TABLE_7 = {"all": 72.7, "except_first": 71.7, "first_only": 70.6, "none": 69.5}


@pytest.fixture(scope="module")
def coco_model():
    """The paper's default model for COCO (ResNet-101, 80 labels, 448 px), random init."""
    torch.manual_seed(0)
    return Model(MultiScaleThreeBranchConfig(use_pretrained_backbone=False)).eval()


@pytest.mark.parametrize("mode", list(TABLE_7))
def test_parameter_count_matches_table_7(mode, coco_model):
    model = coco_model if mode == "none" else Model(MultiScaleThreeBranchConfig(decoder_self_attention=mode))
    total = count(model)
    assert abs(total / 1e6 - TABLE_7[mode]) / TABLE_7[mode] < 0.01, (mode, total)
    d = 512
    layers_with_self_attention = sum(self_attention_layers(mode, 3))
    assert total == count(coco_model) + layers_with_self_attention * (4 * d * d + 4 * d + 2 * d)
    assert model.config.hidden_size == d


def test_default_parameter_breakdown(coco_model):
    d, k = 512, 80
    assert count(coco_model.backbone) == 42_500_160  # timm resnet101 features_only (no fc)
    assert count(coco_model.stem) == (1024 * d + d) + (2048 * d + d) + (2048 * d * 9 + d)  # eq. 1
    assert count(coco_model.scale_attention) == 0
    assert count(coco_model.position) == d * (28 * 28 + 14 * 14 + 7 * 7)
    assert len(coco_model.branch_transformers) == 1  # shared by the three branches
    assert count(coco_model.classifier) == k * 3 * d + k


def test_stage_shapes_follow_section_4_3(coco_model):
    with torch.no_grad():
        out = coco_model(torch.randn(1, 3, 448, 448), output_hidden_states=True, output_attentions=True)
    shapes = lambda tensors: [tuple(t.shape) for t in tensors]  # noqa: E731
    assert shapes(out.feature_maps) == [(1, 1024, 28, 28), (1, 2048, 14, 14)]  # F1, F2
    assert shapes(out.extras["scales"]) == [(1, 512, 28, 28), (1, 512, 14, 14), (1, 512, 7, 7)]  # x1, x2, x3
    assert shapes(out.extras["scales_after_attention"]) == shapes(out.extras["scales"])
    assert shapes(out.extras["encoder_outputs"]) == [(1, 784, 512), (1, 196, 512), (1, 49, 512)]
    assert shapes(out.extras["branch_label_features"]) == [(1, 80, 512)] * 3  # Z_i
    assert tuple(out.label_features.shape) == (1, 80, 1536)  # Z' (the paper's "80 × 1532" is a typo)
    assert tuple(out.logits.shape) == (1, 80)
    assert shapes(out.attentions) == [(1, 80, 784)] * 3 + [(1, 80, 196)] * 3 + [(1, 80, 49)] * 3
    torch.testing.assert_close(out.label_features, torch.cat(out.extras["branch_label_features"], dim=-1))


# --- hierarchical scale attention and the fusion modes -----------------------------------------------------------


def hsa_reference(x1, x2, x3, mode):
    """Eqs. 2-5 written out."""
    kwargs = {"align_corners": False} if mode in ("bilinear", "bicubic") else {}
    h1, h2, h3 = x1.shape[-2:], x2.shape[-2:], x3.shape[-2:]
    x2p = F.interpolate(x2, size=h1, mode=mode, **kwargs)  # eq. 2
    x3p = F.interpolate(x3, size=h1, mode=mode, **kwargs)
    m = x1 * x2p * x3p  # eq. 3
    x1u, x2u, x3u = x1 + m, x2p + m, x3p + m  # eq. 4
    x2f = F.interpolate(x2u, size=h2, mode=mode, **kwargs)  # eq. 5
    x3f = F.interpolate(x3u, size=h3, mode=mode, **kwargs)
    return x1u, x2f, x3f


@pytest.mark.parametrize("mode", INTERPOLATION_MODES)
@pytest.mark.parametrize("sizes", [(28, 14, 7), (8, 4, 2), (4, 2, 1), (9, 5, 3)])
def test_hierarchical_scale_attention_matches_equations_2_to_5(mode, sizes):
    generator = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 6, s, s, generator=generator) for s in sizes]
    module = HierarchicalScaleAttention(mode)
    assert count(module) == 0
    got = module(maps)
    expected = hsa_reference(*maps, mode)
    for g, e, x in zip(got, expected, maps):
        assert g.shape == x.shape
        torch.testing.assert_close(g, e, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(got[0], maps[0])


def test_hierarchical_scale_attention_rejects_a_larger_later_map():
    with pytest.raises(ValueError, match="largest"):
        HierarchicalScaleAttention()([torch.randn(1, 2, 4, 4), torch.randn(1, 2, 8, 8), torch.randn(1, 2, 2, 2)])
    with pytest.raises(ValueError, match="interpolation='linear'"):
        HierarchicalScaleAttention("linear")


# mode → per branch (backbone map: 0 = shallowest read, kernel, stride); Table 5 as interpreted in the issue
STEM = {
    1: [(0, 1, 1), (0, 3, 2), (1, 3, 2)],  # layer3 1×1, layer3 3×3/2, layer4 3×3/2
    2: [(0, 3, 2), (1, 3, 2), (2, 3, 2)],  # layer2, layer3, layer4 each 3×3/2
    3: [(0, 1, 1), (1, 1, 1), (1, 3, 2)],  # layer3 1×1, layer4 1×1, layer4 3×3/2 (eq. 1)
}


@pytest.mark.parametrize("mode", [1, 2, 3])
def test_every_fusion_mode_gives_the_same_three_scales(mode):
    channels = {1: [1024, 2048], 2: [512, 1024, 2048], 3: [1024, 2048]}[mode]
    sides = {1: [28, 14], 2: [56, 28, 14], 3: [28, 14]}[mode]
    stem = MultiScaleStem(channels, 32, mode)
    for conv, (index, kernel, stride) in zip(stem.convs, STEM[mode]):
        assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == (
            channels[index], 32, (kernel, kernel), (stride, stride), (kernel // 2, kernel // 2))
    maps = [torch.randn(1, c, s, s) for c, s in zip(channels, sides)]
    assert [tuple(x.shape) for x in stem(maps)] == [(1, 32, 28, 28), (1, 32, 14, 14), (1, 32, 7, 7)]
    assert stem.output_sizes(sides) == [28, 14, 7]
    with pytest.raises(ValueError, match="reads"):
        MultiScaleStem(channels[:1], 32, mode)


# --- decoder self-attention modes (shared with M2) ---------------------------------------------------------------


def test_decoder_self_attention_modes():
    assert set(SELF_ATTENTION_MODES) >= {"none", "all", "second_only", "first_only", "except_first"}
    assert self_attention_layers("none", 3) == [False, False, False]
    assert self_attention_layers("all", 3) == [True, True, True]
    assert self_attention_layers("second_only", 3) == [False, True, False]  # M2's Table V setting, unchanged
    assert self_attention_layers("first_only", 3) == [True, False, False]
    assert self_attention_layers("except_first", 3) == [False, True, True]
    assert self_attention_layers([True, False, True], 3) == [True, False, True]
    with pytest.raises(ValueError, match="except_first"):
        self_attention_layers("except_first", 1)
    with pytest.raises(ValueError, match="2 self-attention flags for 3"):
        self_attention_layers([True, False], 3)
    decoder = LabelDecoder(16, 2, 3, 32, 0.0, "except_first")
    assert [layer.self_attn is not None for layer in decoder.layers] == [False, True, True]


# --- every switch: builds, trains, has exactly the expected parameters -------------------------------------------


def expected_parameters(config, backbone_channels, backbone_parameters):
    """The whole model's parameter count from the architecture, written out independently of the model code."""
    d, k, f = config.hidden_size, config.num_labels, config.intermediate_size
    channels = backbone_channels[-len(config.out_indices):]
    stem = sum(channels[i] * d * kernel * kernel + d for i, kernel, _ in STEM[config.fusion_mode])
    sides = [config.image_size // 16, config.image_size // 32, -(-config.image_size // 64)]  # 2H, H, H/2
    position = d * sum(s * s for s in sides)
    attention, norm, ffn = 4 * d * d + 4 * d, 2 * d, 2 * d * f + f + d
    encoder = config.num_encoder_layers * (attention + norm + ffn + norm) if config.global_feature_enhancement else 0
    decoder = 0
    if config.region_selection:
        flags = self_attention_layers(config.decoder_self_attention, config.num_decoder_layers)
        decoder = k * d + sum((attention + norm) * sa + attention + norm + ffn + norm for sa in flags)
    transformers = (1 if config.share_branch_weights else 3) * (encoder + decoder)
    if not config.region_selection:
        head = 3 * d * k + k
    else:
        head = 3 * d * k + k if config.classifier == "group_wise" else 3 * d + 1
    return backbone_parameters + stem + position + transformers + head


SWITCHES = {
    "default": {},
    "fusion_mode_1": {"fusion_mode": 1},
    "fusion_mode_2": {"fusion_mode": 2},
    **{f"interpolation_{mode}": {"interpolation": mode} for mode in INTERPOLATION_MODES},
    "no_scale_attention": {"scale_attention": False},
    "no_encoder": {"global_feature_enhancement": False},
    "no_decoder": {"region_selection": False},
    "no_encoder_no_decoder": {"global_feature_enhancement": False, "region_selection": False},
    **{f"encoder_layers_{m}": {"num_encoder_layers": m} for m in (1, 3)},
    **{f"decoder_layers_{n}": {"num_decoder_layers": n} for n in (1, 2)},
    **{f"decoder_sa_{mode}": {"decoder_self_attention": mode} for mode in ("all", "except_first", "first_only",
                                                                           "second_only")},
    "decoder_sa_flags": {"decoder_self_attention": [True, False, True]},
    "unshared": {"share_branch_weights": False},
    "unshared_sa_all": {"share_branch_weights": False, "decoder_self_attention": "all"},
    "shared_linear_classifier": {"classifier": "shared_linear"},
    "gelu": {"hidden_act": "gelu"},
    "explicit_out_indices": {"out_indices": [3, 4]},
    "loss_bce": {"loss": "bce"},
}


@pytest.mark.parametrize("name", list(SWITCHES))
def test_switch_builds_trains_and_has_the_expected_parameters(name):
    config = tiny(**SWITCHES[name])
    torch.manual_seed(0)
    model = Model(config).train()
    backbone_channels = {2: 128, 3: 256, 4: 512}  # resnet18 layer2-4
    channels = [backbone_channels[i] for i in (2, 3, 4)]
    assert count(model) == expected_parameters(config, channels, count(model.backbone))
    assert len(model.branch_transformers) == (1 if config.share_branch_weights else 3)
    assert (model.scale_attention is None) != config.scale_attention
    for transformer in model.branch_transformers:
        assert len(transformer.encoder) == (config.num_encoder_layers if config.global_feature_enhancement else 0)
        if config.region_selection:
            assert [layer.self_attn is not None for layer in transformer.decoder.layers] == (
                self_attention_layers(config.decoder_self_attention, config.num_decoder_layers))
        else:
            assert transformer.decoder is None and transformer.label_embeddings is None
    # one training step changes every parameter of the method's own layers
    own = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("backbone.")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, labels = torch.randn(2, 3, 64, 64), torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    out = model(x, labels=labels, output_hidden_states=True)
    assert out.logits.shape == (2, 4) and torch.isfinite(out.loss)
    assert [tuple(t.shape[-2:]) for t in out.extras["scales"]] == [(4, 4), (2, 2), (1, 1)]
    out.loss.backward()
    optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if n in own and torch.equal(p, own[n])]
    assert not unchanged, unchanged


def _tiny_count(**overrides):
    return count(Model(tiny(**overrides)))


def test_parameter_deltas_of_the_switches():
    base = _tiny_count()
    d = 16
    model = Model(tiny())
    shared = count(model.branch_transformers[0])
    assert _tiny_count(share_branch_weights=False) - base == 2 * shared  # unsharing: 2 more encoders + decoders
    sa = 4 * d * d + 4 * d + 2 * d  # one decoder self-attention layer (MHA + LayerNorm)
    for mode, layers in (("first_only", 1), ("except_first", 2), ("all", 3), ([True, False, True], 2)):
        assert _tiny_count(decoder_self_attention=mode) - base == layers * sa
    assert _tiny_count(scale_attention=False) == base
    for mode in INTERPOLATION_MODES:
        assert _tiny_count(interpolation=mode) == base
    encoder_layer = count(model.branch_transformers[0].encoder[0])
    assert _tiny_count(num_encoder_layers=3) - base == encoder_layer
    assert base - _tiny_count(global_feature_enhancement=False) == 2 * encoder_layer


def test_weights_are_shared_across_branches():
    model = Model(tiny())
    assert model.branch_transformer(0) is model.branch_transformer(1) is model.branch_transformer(2)
    unshared = Model(tiny(share_branch_weights=False))
    assert len({id(unshared.branch_transformer(i)) for i in range(3)}) == 3


def test_labels_are_independent_without_decoder_self_attention():
    torch.manual_seed(0)
    model = Model(tiny()).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x).logits
        model.branch_transformers[0].label_embeddings.weight[1].add_(torch.randn(16))
        after = model(x).logits
    torch.testing.assert_close(before[:, [0, 2, 3]], after[:, [0, 2, 3]], rtol=0, atol=0)
    assert not torch.allclose(before[:, 1], after[:, 1])


def test_without_region_selection_logits_come_from_pooled_branches():
    model = Model(tiny(region_selection=False)).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 64, 64), output_hidden_states=True, output_attentions=True)
    assert out.label_features is None and out.attentions is None
    pooled = torch.cat([t.mean(dim=1) for t in out.extras["encoder_outputs"]], dim=-1)
    torch.testing.assert_close(out.extras["pooled_features"], pooled)
    torch.testing.assert_close(out.logits, model.classifier(pooled))


def test_without_scale_attention_the_scales_pass_unchanged():
    model = Model(tiny(scale_attention=False)).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 64, 64), output_hidden_states=True)
    for before, after in zip(out.extras["scales"], out.extras["scales_after_attention"]):
        assert before is after


def test_other_input_sizes_resize_the_position_embeddings():
    model = Model(tiny()).eval()
    assert [tuple(p.embedding.shape[-2:]) for p in model.position] == [(4, 4), (2, 2), (1, 1)]
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 96)).logits.shape == (1, 4)


# --- config ------------------------------------------------------------------------------------------------------


def test_out_indices_follow_the_fusion_mode_and_round_trip(tmp_path):
    assert tiny(fusion_mode=2).out_indices == [-3, -2, -1]
    assert tiny(fusion_mode=1).out_indices == [-2, -1]
    assert tiny(fusion_mode=2, out_indices=[-2, -1]).out_indices == [-3, -2, -1]  # a mode default: re-derived
    assert tiny(out_indices=[3, 4]).out_indices == [3, 4]
    config = tiny(fusion_mode=2, decoder_self_attention=(True, False, True))
    assert config.decoder_self_attention == [True, False, True]
    model = Model(config)
    assert model.backbone.channels == [128, 256, 512] and config.hidden_size == 16
    model.save_pretrained(tmp_path)
    reloaded = MultiScaleThreeBranchConfig.from_pretrained(tmp_path)
    assert (reloaded.fusion_mode, reloaded.out_indices, reloaded.decoder_self_attention) == (
        2, [-3, -2, -1], [True, False, True])


def test_hidden_size_defaults_to_a_quarter_of_the_deepest_channels():
    config = tiny(hidden_size=None, num_attention_heads=4)
    model = Model(config)
    assert config.hidden_size == 512 // 4 and model.stem.convs[0].out_channels == 128
    with pytest.raises(ValueError, match="num_attention_heads=3"):
        Model(tiny(hidden_size=None, num_attention_heads=3))


@pytest.mark.parametrize("overrides, message", [
    ({"fusion_mode": 4}, r"fusion_mode=4 is not one of \(1, 2, 3\)"),
    ({"interpolation": "linear"}, "interpolation='linear' is not one of"),
    ({"classifier": "mlp"}, "classifier='mlp' is not one of"),
    ({"hidden_act": "tanh"}, "hidden_act='tanh'"),
    ({"activation": "tanh"}, "hidden_act='tanh'"),  # the old name
    ({"intermediate_size": 0}, "intermediate_size must be >= 1"),
    ({"decoder_self_attention": "sometimes"}, "decoder_self_attention='sometimes' is not one of"),
    ({"decoder_self_attention": [True, False]}, "2 self-attention flags for 3 decoder layers"),
    ({"decoder_self_attention": "except_first", "num_decoder_layers": 1}, "needs at least 2 decoder layers"),
    ({"hidden_size": 15}, "hidden_size=15 is not divisible by num_attention_heads=2"),
    ({"hidden_size": 0}, "hidden_size must be >= 1"),
    ({"num_encoder_layers": 0}, "num_encoder_layers must be >= 1"),
    ({"num_decoder_layers": 0}, "num_decoder_layers must be >= 1"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"),
    ({"out_indices": [1, 2, 3]}, "fusion_mode=3 reads 2"),
    ({"fusion_mode": 2, "out_indices": [3, 4]}, "fusion_mode=2 reads 3"),
])
def test_config_validation_errors(overrides, message):
    with pytest.raises(ValueError, match=message):
        tiny(**overrides)


# --- transformers' field names; the old ones (dim_feedforward, activation) are still accepted ----------------------

OLD_NAMES = {"dim_feedforward": 48, "activation": "gelu"}
NEW_NAMES = {"intermediate_size": 48, "hidden_act": "gelu"}


def test_old_field_names_give_the_same_config():
    old, new = MultiScaleThreeBranchConfig(**OLD_NAMES), MultiScaleThreeBranchConfig(**NEW_NAMES)
    assert old.to_dict() == new.to_dict() == {**MultiScaleThreeBranchConfig().to_dict(), **NEW_NAMES}
    assert (old.dim_feedforward, old.activation) == (48, "gelu")  # attribute_map aliases
    old.activation = "relu"
    assert old.hidden_act == "relu" and "activation" not in vars(old)
    with pytest.raises(ValueError, match="both intermediate_size=64 and its old name dim_feedforward=48"):
        MultiScaleThreeBranchConfig(intermediate_size=64, dim_feedforward=48)


def test_config_json_with_old_names_loads_and_saves_new_names(tmp_path):
    tiny_without_renamed = {k: v for k, v in TINY_CONFIGS["mlic-multiscale-three-branch"].items()
                            if k not in NEW_NAMES}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(
        json.dumps({"model_type": "mlic-multiscale-three-branch", **tiny_without_renamed, **OLD_NAMES}))
    config = AutoConfig.from_pretrained(tmp_path / "old")
    assert isinstance(config, MultiScaleThreeBranchConfig)
    assert (config.intermediate_size, config.hidden_act) == (48, "gelu")
    config.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())
    assert {k: saved[k] for k in NEW_NAMES} == NEW_NAMES and not set(OLD_NAMES) & set(saved)
    model = Model(config)
    assert model.branch_transformers[0].decoder.layers[0].linear1.out_features == 48


def test_shallow_to_deep_out_indices_are_required():
    with pytest.raises(ValueError, match="shallow to deep"):
        Model(tiny(out_indices=[4, 3]))


def test_m4_preset():
    from mlic_hf.training import parse_args

    model_args, data_args, training_args = parse_args(["--preset", "m4"])
    assert model_args.method == "mlic-multiscale-three-branch"
    assert (model_args.backbone, model_args.image_size, model_args.loss) == ("resnet101", 448, "asl")
    assert training_args.learning_rate == 1e-4 and training_args.weight_decay == 1e-2
    assert training_args.num_train_epochs == 80
    assert data_args.rand_augment == "rand-m9-mstd0.5" and data_args.cutout == 0.5
