"""Gradient checkpointing (``model.activation_checkpointing_enable()``, Trainer's ``--gradient_checkpointing``) of every
method with Transformer layers: the same loss and gradients, the layers recomputed in the backward pass, fewer
activations kept for it; and one clear error for every method without any (``MethodTestFacts.activation_checkpointing``
false)."""

import re

import pytest
import torch
from torch import nn

import mlic_hf
from mlic_hf.training import MLICTrainingArguments
from mlic_hf.training.trainer import MLICTrainer

from .method_facts import config_cases, registered_facts
from .tiny_configs import case_id, tiny_batch, tiny_config, tiny_model

#: (model_type, config overrides): every method that checkpoints, and the variants whose layers differ
CASES = config_cases(lambda facts: facts.checkpointing_variants, where=lambda facts: facts.activation_checkpointing)
#: the methods without Transformer layers
WITHOUT_LAYERS = [model_type for model_type, facts in registered_facts().items() if not facts.activation_checkpointing]


def _step(model):
    """Loss, gradients, Linear forward calls and bytes of activations kept for the backward pass, of one step.

    Kept activations are the tensors autograd saves, outside parameters (a checkpointed layer saves only its input:
    torch's checkpoint packs the rest itself, so the outer hook does not see it)."""
    pixel_values, labels = tiny_batch(3, seed=1)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    calls = [0]
    handles = [m.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
               for m in model.modules() if isinstance(m, nn.Linear)]
    model.zero_grad(set_to_none=True)
    torch.manual_seed(0)  # the same dropout masks in both runs (checkpoint replays the RNG state)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        loss = model(pixel_values, labels=labels).loss
    loss.backward()
    for handle in handles:
        handle.remove()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    return loss.detach(), grads, calls[0], sum(saved.values())


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_checkpointing_gives_the_same_gradients_and_keeps_fewer_activations(case):
    model = tiny_model(case[0], **case[1]).train()
    assert model.supports_gradient_checkpointing and not model.is_activation_checkpointing
    assert model._no_split_modules  # the layers FSDP shards at (TRANSFORMER_BASED_WRAP)
    loss, grads, calls, kept = _step(model)
    model.activation_checkpointing_enable()
    assert model.is_activation_checkpointing
    loss_ckpt, grads_ckpt, calls_ckpt, kept_ckpt = _step(model)

    torch.testing.assert_close(loss_ckpt, loss)
    assert grads_ckpt.keys() == grads.keys() and grads
    for name in grads:
        torch.testing.assert_close(grads_ckpt[name], grads[name], rtol=1e-5, atol=1e-6, msg=name)
    assert calls_ckpt > calls, "no layer was recomputed in the backward pass"
    assert kept_ckpt < kept, f"checkpointing kept {kept_ckpt} bytes of activations, not fewer than {kept}"

    # inference is untouched, and it switches off again
    pixel_values, _ = tiny_batch(3, seed=1)
    with torch.no_grad():
        logits_ckpt = model.eval()(pixel_values).logits
        model.activation_checkpointing_disable()
        torch.testing.assert_close(model(pixel_values).logits, logits_ckpt)
    assert not model.is_activation_checkpointing
    assert _step(model.train())[2] == calls


@pytest.mark.parametrize("model_type", WITHOUT_LAYERS)
def test_the_method_without_transformer_layers_says_so(model_type):
    config_class, model_class = mlic_hf.REGISTERED_METHODS[model_type]
    model = model_class(tiny_config(config_class))
    assert not model.supports_gradient_checkpointing
    with pytest.raises(ValueError, match="does not support"):
        model.activation_checkpointing_enable()


@pytest.mark.parametrize("model_type", WITHOUT_LAYERS)
def test_the_trainer_rejects_gradient_checkpointing_for_that_method_before_training(model_type, tmp_path):
    config_class, model_class = mlic_hf.REGISTERED_METHODS[model_type]
    model = model_class(tiny_config(config_class))
    args = MLICTrainingArguments(output_dir=str(tmp_path), gradient_checkpointing=True, use_cpu=True,
                                 eval_strategy="no")
    with pytest.raises(ValueError, match=r"--activation_checkpointing \(--gradient_checkpointing\): "
                                         f"{re.escape(model_type)} has no Transformer layers"):
        MLICTrainer(model=model, args=args)
    args = MLICTrainingArguments(output_dir=str(tmp_path), activation_checkpointing=True, use_cpu=True,
                                 eval_strategy="no")
    with pytest.raises(ValueError, match="has no Transformer layers"):
        MLICTrainer(model=model, args=args)
