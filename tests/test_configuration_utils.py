"""check_config_keys: unknown config keys are an error that names close matches."""

import dataclasses
import json

import pytest

import mlic_hf
from mlic_hf import MLICConfig, MultiScaleThreeBranchConfig, ResNetProbabilisticConfig, TwoStageIRPEConfig
from mlic_hf.configuration_utils import check_config_keys, config_keys
from mlic_hf.losses import LOSS_CONFIG_DEFAULTS, REDUCTIONS, loss_names

from .models.method_facts import registered_methods

CONFIG_CLASSES = [config_class for config_class, _ in registered_methods()]


def test_unknown_key_raises_with_the_close_match():
    with pytest.raises(ValueError) as err:
        check_config_keys(TwoStageIRPEConfig, {"hiden_size": 256}, source="config_overrides")
    message = str(err.value)
    assert message.startswith("config_overrides: unknown field 'hiden_size' for mlic-two-stage-irpe (did you mean "
                              "'hidden_size'")
    assert "known fields: hidden_size, " in message and "\n" not in message
    assert "intermediate_size" in message and "(old names)" in message  # the method's fields and its old names
    assert "num_labels" not in message  # transformers' own fields are accepted, not listed


def test_every_unknown_key_is_named():
    # the issue's example: M1 has no hidden_size / intermediate_size, the overrides would change nothing
    with pytest.raises(ValueError) as err:
        check_config_keys(ResNetProbabilisticConfig, ["hidden_size", "dropout", "intermediate_size", "dropuot"],
                          source="config_overrides")
    message = str(err.value)
    assert message.startswith("config_overrides: unknown fields for mlic-resnet-probabilistic: 'hidden_size'")
    assert "'intermediate_size'" in message and "'dropuot' (did you mean 'dropout'?)" in message
    unknown_part = message.split("; known fields")[0]
    assert unknown_part.count("'dropout'") == 1  # only as the suggestion: dropout is M1's field


def test_no_close_match_gives_no_suggestion():
    with pytest.raises(ValueError, match=r"^config: unknown field 'zzz' for mlic-ml-vpt; known fields: "):
        check_config_keys(mlic_hf.MultiLabelVPTConfig, ["zzz"])


def test_the_issue_example_is_accepted_for_m2():
    check_config_keys(TwoStageIRPEConfig, {"hidden_size": 256, "intermediate_size": 1024}, "config_overrides")


def test_old_names_are_accepted_and_suggested_as_new_names():
    check_config_keys(TwoStageIRPEConfig, ["d_model", "dim_feedforward", "activation"])
    check_config_keys(MultiScaleThreeBranchConfig, ["dim_feedforward", "activation"])
    with pytest.raises(ValueError, match=r"'d_modle' for mlic-two-stage-irpe \(did you mean 'hidden_size'\?\)"):
        check_config_keys(TwoStageIRPEConfig, ["d_modle"])
    with pytest.raises(ValueError, match="unknown field 'd_model'"):  # M4 never had d_model
        check_config_keys(MultiScaleThreeBranchConfig, ["d_model"])


def test_pretrained_config_kwargs_are_accepted():
    check_config_keys(TwoStageIRPEConfig, ["id2label", "label2id", "num_labels", "return_dict", "output_hidden_states",
                                           "output_attentions", "problem_type", "dtype", "name_or_path"])
    keys = config_keys(TwoStageIRPEConfig)
    assert "num_labels" in keys["transformers"] and "hidden_size" in keys["method"]
    assert "loss" in keys["shared"] and "loss" not in keys["method"]  # overridden defaults stay shared fields
    assert keys["old names"] == ["d_model", "dim_feedforward", "activation"]
    with pytest.raises(ValueError, match="unknown field '_attn_implementation'"):
        check_config_keys(TwoStageIRPEConfig, ["_attn_implementation"])


@pytest.mark.parametrize("config_class", CONFIG_CLASSES, ids=lambda c: c.model_type)
def test_every_field_of_every_method_is_accepted(config_class, tmp_path):
    own = [f.name for f in dataclasses.fields(config_class)]
    shared = [f.name for f in dataclasses.fields(MLICConfig)]
    assert set(shared) <= set(own)
    check_config_keys(config_class, own + list(config_class.attribute_map))
    # every key of a saved config.json but model_type (which selects the class)
    config_class().save_pretrained(tmp_path)
    check_config_keys(config_class, json.loads((tmp_path / "config.json").read_text()).keys() - {"model_type"})
    with pytest.raises(ValueError, match=f"unknown field 'not_a_field' for {config_class.model_type}"):
        check_config_keys(config_class, own + ["not_a_field"])


def test_loss_fields_are_checked_against_the_loss_registry():
    # the valid values are the registry's (mlic_hf.losses), with the messages of before
    with pytest.raises(ValueError, match=r"^loss='asll' is not one of \('bce', 'focal', 'asl', 'apl'\)$"):
        MLICConfig(loss="asll")
    with pytest.raises(ValueError, match=r"^loss_reduction='median' is not one of "
                                         r"\('none', 'sum', 'mean', 'batch_mean'\)$"):
        MLICConfig(loss_reduction="median")
    for name in loss_names():
        assert MLICConfig(loss=name).loss == name
    for reduction in REDUCTIONS:
        assert MLICConfig(loss_reduction=reduction).loss_reduction == reduction
    # every loss field is a shared key, with the registry's default
    assert set(LOSS_CONFIG_DEFAULTS) <= set(config_keys(MLICConfig)["shared"])
    config = MLICConfig()
    assert {field: getattr(config, field) for field in LOSS_CONFIG_DEFAULTS} == LOSS_CONFIG_DEFAULTS
