"""VPT / ML-VPT as PEFT methods on a timm ViT, LoRA on the same ViT, and the PEFT internals the registration uses.

If a PEFT release changes the internals mlic_hf.models.multilabel_vpt.peft_registry relies on,
``test_peft_internals_we_rely_on`` fails first and names what changed.
"""

import inspect
import json

import pytest
import timm
import torch
from peft import LoraConfig, PeftModel, get_peft_model

import mlic_hf.models.multilabel_vpt.peft_methods as pm
from mlic_hf.losses import asymmetric_loss

CO, DC = [0, 0, 1, 1, 2, 2], [0, 1, 2, 0, 1, 2]
PIXELS = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))


def make_vit(seed=0):
    torch.manual_seed(seed)
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, num_heads=2, depth=3,
                             num_classes=6).eval()


def mlvpt_config(**kwargs):
    return pm.MLVPTConfig(co_groups=CO, dc_groups=DC, num_groups=3, num_prompts_per_group=2, **kwargs)


def test_peft_internals_we_rely_on():
    from peft.mapping import PEFT_TYPE_TO_CONFIG_MAPPING, PEFT_TYPE_TO_PREFIX_MAPPING, PEFT_TYPE_TO_TUNER_MAPPING
    from peft.tuners.tuners_utils import BaseTuner
    from peft.utils import register_peft_method
    from peft.utils.peft_types import PeftType

    assert issubclass(PeftType, str), "PeftType is no longer a str enum"
    assert {"name", "config_cls", "model_cls", "prefix"} <= set(inspect.signature(register_peft_method).parameters)
    for hook in ("_create_and_replace", "_check_target_module_exists", "_prepare_adapter_config",
                 "_pre_injection_hook", "_mark_only_adapters_as_trainable", "_remove_adapter_name_from_key",
                 "_get_adapter_state_dict"):
        assert hasattr(BaseTuner, hook), f"peft.BaseTuner lost {hook}"
    for name, config_cls, model_cls, prefix in (("VPT", pm.VPTConfig, pm.VPTModel, "vptprompt_"),
                                                ("ML_VPT", pm.MLVPTConfig, pm.MLVPTModel, "mlvpt_")):
        member = PeftType(name)
        assert getattr(PeftType, name) is member and member in list(PeftType)
        assert PEFT_TYPE_TO_CONFIG_MAPPING[member] is config_cls
        assert PEFT_TYPE_TO_TUNER_MAPPING[member] is model_cls
        assert PEFT_TYPE_TO_PREFIX_MAPPING[member] == prefix
    # PeftModel.forward must call the (wrapped) base model: our adapters live inside the ViT's modules
    assert "get_base_model()(" in inspect.getsource(PeftModel.forward)


def test_ml_vpt_adapter_trains_only_its_parameters_and_the_base_stays_bit_identical():
    vit = make_vit()
    base = {k: v.clone() for k, v in vit.state_dict().items()}
    model = get_peft_model(vit, mlvpt_config())
    trainable = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("mlvpt_" in n for n in trainable)
    prompts = 3 * 12 * 32  # deep: 3 blocks x (2 kinds x 3 groups x 2 tokens) x 32
    experts = 2 * 6 * (32 * 5 + 5 + 5 * 32 + 32)
    gates = 2 * 6 * 2 * (32 + 1)
    heads = 2 * (6 * 32 + 6)
    assert sum(p.numel() for p in trainable.values()) == prompts + experts + gates + heads
    trainable_count, total = model.get_nb_trainable_parameters()
    assert trainable_count == prompts + experts + gates + heads
    assert total == trainable_count + sum(v.numel() for v in base.values())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    labels = torch.tensor([[1.0, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 0]])
    model.train()
    logits = model(PIXELS)
    out = pm.last_ml_vpt_outputs(model)
    assert torch.equal(out["logits"], logits)
    loss = asymmetric_loss(out["co_logits"], labels) + asymmetric_loss(out["dc_logits"], labels)  # eq. 17
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in trainable.values())
    before = {n: p.detach().clone() for n, p in trainable.items()}
    optimizer.step()
    for key, value in model.get_base_model().state_dict().items():
        if "mlvpt_" not in key:
            original = key.replace(".base_layer", "")
            assert torch.equal(value, base[original]), f"base weight {key} changed"
    assert any(not torch.equal(before[n], p) for n, p in trainable.items())


@pytest.mark.parametrize("make_config", [
    lambda: mlvpt_config(),
    lambda: mlvpt_config(prompt_mask="self", prompt_depth="shallow", use_moe=False, head_fusion="logit"),
    lambda: pm.VPTConfig(num_prompts=4),
    lambda: pm.VPTConfig(num_prompts=4, prompt_depth="shallow"),
], ids=["ml-vpt", "ml-vpt-ablations", "vpt-deep", "vpt-shallow"])
def test_adapter_save_load_round_trip_and_disable(make_config, tmp_path):
    vit = make_vit()
    with torch.no_grad():
        base_logits = vit(PIXELS)
    model = get_peft_model(vit, make_config()).eval()
    with torch.no_grad():
        for p in model.parameters():  # move away from the init so the round trip is meaningful
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
        logits = model(PIXELS)
        assert not torch.allclose(logits, base_logits)
        with model.disable_adapter():
            torch.testing.assert_close(model(PIXELS), base_logits, rtol=0, atol=0)
        torch.testing.assert_close(model(PIXELS), logits, rtol=0, atol=0)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    assert config["peft_type"] == make_config().peft_type.value
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "adapter_model.safetensors")
    trainable, _ = model.get_nb_trainable_parameters()
    assert sum(v.numel() for v in saved.values()) == trainable  # the adapter only, no base weights
    loaded = PeftModel.from_pretrained(make_vit(), tmp_path, adapter_name="reloaded").eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(PIXELS), logits, rtol=0, atol=0)


def test_vpt_trainable_parameters_deep_and_shallow(capsys):
    deep = get_peft_model(make_vit(), pm.VPTConfig(num_prompts=5))
    head = 6 * 32 + 6
    assert deep.get_nb_trainable_parameters()[0] == 3 * 5 * 32 + head
    shallow = get_peft_model(make_vit(), pm.VPTConfig(num_prompts=5, prompt_depth="shallow"))
    assert shallow.get_nb_trainable_parameters()[0] == 5 * 32 + head
    shallow.print_trainable_parameters()
    assert f"trainable params: {5 * 32 + head:,}" in capsys.readouterr().out


def test_lora_baseline_on_the_same_vit():
    vit = make_vit()
    model = get_peft_model(vit, LoraConfig(r=4, lora_alpha=8, target_modules=["qkv"], modules_to_save=["head"]))
    trainable, _ = model.get_nb_trainable_parameters()
    assert trainable == 3 * 4 * (32 + 3 * 32) + 6 * 32 + 6
    assert model(PIXELS).shape == (2, 6)


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(TypeError, match="VisionTransformer"):
        get_peft_model(torch.nn.Sequential(torch.nn.Linear(2, 2)), mlvpt_config())
    with pytest.raises(ValueError, match="co_groups and dc_groups"):
        pm.MLVPTConfig()
    with pytest.raises(ValueError, match="outside"):
        pm.MLVPTConfig(co_groups=[0, 5], dc_groups=[0, 1], num_groups=2)
    with pytest.raises(ValueError, match="prompt_mask"):
        mlvpt_config(prompt_mask="diagonal")
    with pytest.raises(ValueError, match="num_prompts"):
        pm.VPTConfig(num_prompts=0)
