"""M2: two-stage Transformer with iRPE — paper defaults, label independence, ablation switches."""

import json

import pytest
import torch
from transformers import AutoConfig

from mlic_hf import TwoStageIRPEConfig, TwoStageIRPEForMultiLabelImageClassification

from ..tiny_configs import TINY_CONFIGS, TINY_LABELS


def tiny(**overrides):
    return TwoStageIRPEConfig(**{**TINY_CONFIGS["mlic-two-stage-irpe"], "id2label": dict(TINY_LABELS), **overrides})


def test_paper_defaults():
    config = TwoStageIRPEConfig()
    assert (config.backbone, config.image_size, config.num_labels) == ("resnet101", 448, 80)
    assert config.encoder == "irpe" and config.num_encoder_layers == 1 and config.num_decoder_layers == 2
    assert config.decoder_self_attention == "none"
    assert (config.irpe_alpha, config.irpe_beta, config.irpe_gamma) == (1.9, 3.8, 15.2)
    assert config.loss == "apl" and config.apl_gamma_pos == 0.0 and config.apl_gamma_neg == 2.0
    assert config.input_projection == "conv" and config.position_embedding == "learned"
    assert (config.hidden_size, config.num_attention_heads, config.intermediate_size, config.dropout,
            config.hidden_act) == (2048, 4, 8192, 0.1, "relu")


# --- transformers' field names; the old ones (d_model, dim_feedforward, activation) are still accepted -----------

OLD_NAMES = {"d_model": 64, "dim_feedforward": 128, "activation": "gelu"}
NEW_NAMES = {"hidden_size": 64, "intermediate_size": 128, "hidden_act": "gelu"}


def test_old_field_names_give_the_same_config():
    old, new = TwoStageIRPEConfig(**OLD_NAMES), TwoStageIRPEConfig(**NEW_NAMES)
    assert old.to_dict() == new.to_dict() == {**TwoStageIRPEConfig().to_dict(), **NEW_NAMES}
    assert (old.d_model, old.dim_feedforward, old.activation) == (64, 128, "gelu")  # attribute_map aliases
    old.d_model = 32
    assert old.hidden_size == 32 and "d_model" not in vars(old)
    with pytest.raises(ValueError, match="hidden_size=30 is not divisible"):
        TwoStageIRPEConfig(d_model=30)
    with pytest.raises(ValueError, match="hidden_act='tanh'"):
        TwoStageIRPEConfig(activation="tanh")
    with pytest.raises(ValueError, match="both hidden_size=512 and its old name d_model=256"):
        TwoStageIRPEConfig(hidden_size=512, d_model=256)


def test_config_json_with_old_names_loads_and_saves_new_names(tmp_path):
    tiny_without_renamed = {k: v for k, v in TINY_CONFIGS["mlic-two-stage-irpe"].items() if k not in NEW_NAMES}
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / "config.json").write_text(
        json.dumps({"model_type": "mlic-two-stage-irpe", **tiny_without_renamed, **OLD_NAMES}))
    config = AutoConfig.from_pretrained(tmp_path / "old")
    assert isinstance(config, TwoStageIRPEConfig)
    assert (config.hidden_size, config.intermediate_size, config.hidden_act) == (64, 128, "gelu")
    config.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())
    assert {k: saved[k] for k in NEW_NAMES} == NEW_NAMES and not set(OLD_NAMES) & set(saved)
    model = TwoStageIRPEForMultiLabelImageClassification(config)
    assert model.label_embeddings.weight.shape[1] == 64
    assert model.decoder.layers[0].linear1.out_features == 128


def _logits_after_changing_one_query(config):
    torch.manual_seed(0)
    model = TwoStageIRPEForMultiLabelImageClassification(config).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        before = model(x).logits
        model.label_embeddings.weight[1].add_(torch.randn(config.hidden_size))
        after = model(x).logits
    return before, after


def test_labels_are_independent_without_decoder_self_attention():
    before, after = _logits_after_changing_one_query(tiny(decoder_self_attention="none"))
    torch.testing.assert_close(before[:, [0, 2, 3]], after[:, [0, 2, 3]], rtol=0, atol=0)
    assert not torch.allclose(before[:, 1], after[:, 1])
    before, after = _logits_after_changing_one_query(tiny(decoder_self_attention="all"))
    assert not torch.allclose(before[:, [0, 2, 3]], after[:, [0, 2, 3]])


def test_irpe_encoder_with_zero_tables_equals_standard_encoder():
    torch.manual_seed(0)
    irpe = TwoStageIRPEForMultiLabelImageClassification(tiny(encoder="irpe")).eval()
    standard = TwoStageIRPEForMultiLabelImageClassification(tiny(encoder="standard")).eval()
    state = {k: v for k, v in irpe.state_dict().items() if "rpe_tables" not in k}
    assert standard.load_state_dict(state, strict=True)
    assert all(torch.count_nonzero(t) == 0 for t in irpe.encoder[0].self_attn.rpe_tables.values())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(irpe(x).logits, standard(x).logits, rtol=1e-5, atol=1e-5)
        irpe.encoder[0].self_attn.rpe_tables["k"].normal_(std=10.0)
        assert (irpe(x).logits - standard(x).logits).abs().max() > 1e-6


def _names(model, prefix):
    return {n for n, _ in model.named_parameters() if n.startswith(prefix)}


ABLATIONS = {
    "default": {},
    "encoder_standard": {"encoder": "standard"},
    "encoder_none": {"encoder": "none"},
    "irpe_k_only": {"irpe_on": ["k"]},
    "irpe_qv_per_head": {"irpe_on": ["q", "v"], "irpe_shared_heads": False},
    "two_encoder_layers": {"num_encoder_layers": 2},
    "decoder_sa_all": {"decoder_self_attention": "all"},
    "decoder_sa_second": {"decoder_self_attention": "second_only"},
    "identity_projection": {"input_projection": "identity", "hidden_size": 512},
    "sine_position": {"position_embedding": "sine"},
    "loss_bce": {"loss": "bce"},
    "loss_focal": {"loss": "focal"},
    "loss_asl": {"loss": "asl"},
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablation_switch_builds_trains_and_has_the_right_parameters(name):
    config = tiny(**ABLATIONS[name])
    torch.manual_seed(0)
    model = TwoStageIRPEForMultiLabelImageClassification(config).train()
    heads, head_dim = config.num_attention_heads, config.hidden_size // config.num_attention_heads
    # parameters the switch must add or remove
    tables = {n.split(".")[-1]: p.shape for n, p in model.named_parameters() if "rpe_tables" in n}
    expected_tables = {} if config.encoder != "irpe" else {
        p: (1 if config.irpe_shared_heads else heads, 49, head_dim) for p in config.irpe_on}
    assert {k: tuple(v) for k, v in tables.items()} == expected_tables
    assert len(model.encoder) == (0 if config.encoder == "none" else config.num_encoder_layers)
    self_attention = [layer.self_attn is not None for layer in model.decoder.layers]
    assert self_attention == {"none": [False, False], "all": [True, True], "second_only": [False, True]}[
        config.decoder_self_attention]
    assert bool(_names(model, "input_proj")) == (config.input_projection == "conv")
    assert bool(_names(model, "position")) == (config.position_embedding == "learned")
    assert type(model.loss_fn).__name__ == {"apl": "AsymmetricPolynomialLoss", "bce": "BCELoss",
                                            "focal": "FocalLoss", "asl": "AsymmetricLoss"}[config.loss]
    # one training step changes every parameter of the method's own layers
    own = {n: p.detach().clone() for n, p in model.named_parameters() if not n.startswith("backbone.")}
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x, labels = torch.randn(2, 3, 64, 64), torch.tensor([[1.0, 0, 1, 0], [0, 1, 0, 0]])
    loss = model(x, labels=labels).loss
    assert torch.isfinite(loss)
    loss.backward()
    optimizer.step()
    unchanged = [n for n, p in model.named_parameters() if n in own and torch.equal(p, own[n])]
    assert not unchanged, unchanged


def test_bad_switches_are_rejected():
    with pytest.raises(ValueError, match="encoder='transformer'"):
        tiny(encoder="transformer")
    with pytest.raises(ValueError, match="irpe_on"):
        tiny(irpe_on=["x"])
    with pytest.raises(ValueError, match="second_only"):
        tiny(num_decoder_layers=1, decoder_self_attention="second_only")
    with pytest.raises(ValueError, match="identity"):
        TwoStageIRPEForMultiLabelImageClassification(tiny(input_projection="identity"))
    with pytest.raises(ValueError, match="hidden_act='tanh'"):
        tiny(hidden_act="tanh")


def test_other_input_sizes_resize_the_learned_position_embedding():
    model = TwoStageIRPEForMultiLabelImageClassification(tiny()).eval()
    assert model.position.embedding.shape[-2:] == (2, 2)  # 64 px / stride 32
    with torch.no_grad():
        assert model(torch.randn(1, 3, 128, 96)).logits.shape == (1, 4)
