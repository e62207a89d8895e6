"""FSDP2 with 2 CPU processes (gloo) for every method: its Transformer layers are the shard units, the parameters are
sharded, a few AdamW steps train, the gathered full state dict is a checkpoint ``from_pretrained`` loads, and the
result equals one process training on the same global batches; so does the weight EMA, sharded like the parameters
(``tests/training/fsdp_driver.py``)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import mlic_hf

from ..models.method_facts import facts_for, method_ids

REPO = Path(__file__).resolve().parents[2]
DRIVER = REPO / "tests" / "training" / "fsdp_driver.py"
METHOD_TYPES = method_ids()


def _run(launcher: list[str], method: str, output_dir: Path) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    result = subprocess.run([*launcher, str(DRIVER), method, str(output_dir)], env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads((output_dir / "fsdp_run.json").read_text())


def _without_key_bias(name: str, value: torch.Tensor) -> torch.Tensor:
    """An attention in-projection's bias without its key third: a softmax over keys is invariant to the key bias, so
    its gradient is zero up to rounding, and Adam, which divides by the gradient's size, turns that rounding (which
    differs between one process and two) into steps of the learning rate's size (measured: up to 2.6e-4 in
    Query2Label's tiny model, the query and value thirds within 1e-7)."""
    if name.endswith(("qkv.bias", "in_proj_bias")):
        third = value.shape[0] // 3
        return torch.cat([value[:third], value[2 * third:]])
    return value


@pytest.mark.parametrize("method", METHOD_TYPES)
def test_fsdp_two_processes_train_save_and_match_one_process(method, tmp_path):
    single = _run([sys.executable], method, tmp_path / "single")
    port = str(29560 + METHOD_TYPES.index(method))
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", port]
    sharded = _run(torchrun, method, tmp_path / "fsdp")

    # the units each method is sharded at (its ``_no_split_modules``; none: one root unit)
    assert sharded["world_size"] == 2 and sharded["units"] == sorted(facts_for(method).fsdp_units)
    assert sharded["sharded_parameters"] > 0
    assert sharded["losses"] == pytest.approx(single["losses"], rel=1e-5)

    auto = mlic_hf.AutoModelForMultiLabelImageClassification
    one, two = auto.from_pretrained(tmp_path / "single"), auto.from_pretrained(tmp_path / "fsdp")
    config_class, model_class = mlic_hf.REGISTERED_METHODS[method]
    initial = model_class(one.config).state_dict()  # any init: only "training moved the weights" is read
    one_state, two_state = one.state_dict(), two.state_dict()
    assert one_state.keys() == two_state.keys()
    moved = max((one_state[k].float() - initial[k].float()).abs().max().item()
                for k in one_state if one_state[k].is_floating_point() and "num_batches" not in k)
    assert moved > 1e-4, "the runs did not train"
    for name in one_state:
        torch.testing.assert_close(_without_key_bias(name, two_state[name]),
                                   _without_key_bias(name, one_state[name]), rtol=1e-4, atol=1e-5, msg=name)

    from safetensors.torch import load_file

    assert sharded["ema_sharded"] > 0 and single["ema_sharded"] == 0
    torch.testing.assert_close(torch.tensor(sharded["ema_logits"]), torch.tensor(single["ema_logits"]),
                               rtol=1e-4, atol=1e-5)
    ema_one, ema_two = load_file(tmp_path / "single" / "ema.safetensors"), load_file(tmp_path / "fsdp" / "ema.safetensors")
    assert ema_one.keys() == ema_two.keys() and int(ema_two["__num_updates__"]) == 3
    for name in ema_one:
        torch.testing.assert_close(_without_key_bias(name, ema_two[name]), _without_key_bias(name, ema_one[name]),
                                   rtol=1e-4, atol=1e-5, msg=name)
    reloaded = load_file(tmp_path / "fsdp" / "ema_reloaded.safetensors")  # load() re-shards, save() gathers
    for name in ema_two:
        assert torch.equal(reloaded[name], ema_two[name]), name
