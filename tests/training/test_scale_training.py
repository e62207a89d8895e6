"""The scale features through ``scripts/train.py``'s arguments, on CPU: mixed precision (``--bf16``, ``--fp16``),
activation checkpointing and ``--torch_compile`` train every method they apply to."""

import numpy as np
import pytest
import torch

import mlic_hf
from mlic_hf.training import parse_args, run_training

from ..models.method_facts import registered_facts, registered_methods
from .test_training import REPO, _argv, _losses, data_cache  # noqa: F401 (fixture)

METHOD_IDS = [config_class.model_type for config_class, _ in registered_methods()]
# the methods with Transformer layers to checkpoint (their facts say so)
CHECKPOINTING_IDS = [model_type for model_type, facts in registered_facts().items() if facts.activation_checkpointing]


def _autocast_dtypes(monkeypatch) -> list[torch.dtype]:
    """Record the dtype of every autocast region the run enters (where the forward runs)."""
    seen = []
    original = torch.autocast.__enter__

    def enter(self):
        seen.append(self.fast_dtype)
        return original(self)

    monkeypatch.setattr(torch.autocast, "__enter__", enter)
    return seen


@pytest.mark.parametrize("method", [m for m, _ in registered_methods()], ids=METHOD_IDS)
def test_bf16_run_per_method(method, tmp_path, data_cache, monkeypatch):
    seen = _autocast_dtypes(monkeypatch)
    out = tmp_path / "run"
    # 32 px: the tiny ResNet-18's layer4 maps are 1x1, narrower than M4's stride-2 branch, whose bf16 weight gradient
    # torch gets wrong on CPU (non-finite in about a third of runs) unless the trainer's guard computes it in float32
    args = parse_args(_argv(out, data_cache, method.model_type, max_steps=2, eval_strategy="no", save_strategy="no",
                            bf16="true", image_size=32))
    result = run_training(*args)
    assert torch.bfloat16 in seen, "no bf16 autocast region was entered"
    losses = _losses(result["trainer"])
    assert len(losses) == 2 and all(np.isfinite(v) for v in losses.values())
    model = result["trainer"].model
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay float32
    assert np.isfinite(result["metrics"]["mAP"])


def test_fp16_on_cpu_is_one_clear_error_not_a_silent_float32_run(tmp_path, data_cache):
    # fp16 autocast itself is tested per method in tests/models/test_mixed_precision.py; through the Trainer it
    # needs a GPU, where accelerate adds the loss scaler
    args = parse_args(_argv(tmp_path / "run", data_cache, max_steps=1, eval_strategy="no", fp16="true"))
    with pytest.raises(ValueError, match="--fp16 needs a GPU.*use --bf16 on CPU"):
        run_training(*args)


def test_torch_compile_run_trains_saves_and_reloads(tmp_path, data_cache):
    """``--torch_compile`` through the Trainer (M2: iRPE encoder and label decoder): the forward really runs as a
    compiled graph, and the saved model has plain parameter names (no ``_orig_mod.``), loading with from_pretrained
    to the same predictions as the trained model."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    out = tmp_path / "run"
    args = parse_args(_argv(out, data_cache, "mlic-two-stage-irpe", max_steps=2, eval_strategy="steps",
                            eval_steps=2, save_strategy="steps", save_steps=2, torch_compile="true"))
    result = run_training(*args)
    torch._dynamo.reset()
    assert counters["stats"]["unique_graphs"] >= 1, "nothing was compiled"
    assert len(_losses(result["trainer"])) == 2 and np.isfinite(result["metrics"]["mAP"])
    loaded = mlic_hf.AutoModelForMultiLabelImageClassification.from_pretrained(out).eval()
    trained = result["trainer"].accelerator.unwrap_model(result["trainer"].model).eval()
    assert loaded.state_dict().keys() == trained.state_dict().keys()
    pixel_values = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(pixel_values).logits, trained(pixel_values).logits)


@pytest.mark.parametrize("method", [mlic_hf.REGISTERED_METHODS[t][0] for t in CHECKPOINTING_IDS], ids=CHECKPOINTING_IDS)
def test_activation_checkpointing_run_per_method(method, tmp_path, data_cache):
    out = tmp_path / "run"
    args = parse_args(_argv(out, data_cache, method.model_type, max_steps=2, eval_strategy="no", save_strategy="no",
                            activation_checkpointing="true"))
    result = run_training(*args)
    model = result["trainer"].accelerator.unwrap_model(result["trainer"].model)
    assert model.is_activation_checkpointing
    assert len(_losses(result["trainer"])) == 2 and np.isfinite(result["metrics"]["mAP"])


ACCELERATE_CONFIGS = {"multi_gpu.yaml": "MULTI_GPU", "multi_node.yaml": "MULTI_GPU", "fsdp.yaml": "FSDP",
                      "deepspeed_zero2.yaml": "DEEPSPEED"}


@pytest.mark.parametrize("name", ACCELERATE_CONFIGS)
def test_shipped_accelerate_configs_load_and_are_documented(name):
    from accelerate.commands.config.config_args import load_config_from_file

    path = REPO / "configs" / "accelerate" / name
    config = load_config_from_file(str(path))  # accelerate's own loader: what `accelerate launch` reads
    assert config.distributed_type.value == ACCELERATE_CONFIGS[name]
    assert config.mixed_precision == "no"  # precision comes from train.py's --bf16 / --fp16
    assert f"accelerate launch --config_file configs/accelerate/{name}" in path.read_text()
    assert f"`{name}`" in (REPO / "docs" / "scale.md").read_text()  # the page on scaling out documents each
    if name == "multi_node.yaml":
        assert config.num_machines > 1 and config.main_process_ip
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_version"] == 2
        assert config.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"  # from_pretrained loads the result
    if name == "deepspeed_zero2.yaml":
        assert config.deepspeed_config["zero_stage"] == 2


def test_an_fsdp_launch_that_accelerate_runs_as_ddp_is_announced():
    from mlic_hf.training.trainer import fsdp_fallback

    message = fsdp_fallback({"ACCELERATE_USE_FSDP": "true"}, "MULTI_CPU")
    assert "FSDP was requested" in message and "MULTI_CPU" in message
    assert fsdp_fallback({"ACCELERATE_USE_FSDP": "true"}, "FSDP") is None
    assert fsdp_fallback({}, "MULTI_CPU") is None


def test_a_machine_without_accelerator_trains_on_the_cpu(tmp_path, monkeypatch):
    """Without a GPU the CPU is the device, said explicitly (``use_cpu``): transformers alone refuses --bf16 there,
    and under torchrun sets up no data-parallel training (tested end to end in test_streaming_training.py)."""
    from mlic_hf.training import MLICTrainingArguments
    from mlic_hf.training import arguments

    monkeypatch.setattr(arguments, "_has_accelerator", lambda: False)
    args = MLICTrainingArguments(output_dir=str(tmp_path), bf16=True)  # transformers alone refuses this
    assert args.use_cpu and args.bf16 and args.mixed_precision == "bf16"
    assert MLICTrainingArguments(output_dir=str(tmp_path)).use_cpu
    monkeypatch.setattr(arguments, "_has_accelerator", lambda: True)
    assert not MLICTrainingArguments(output_dir=str(tmp_path), bf16=False).use_cpu
