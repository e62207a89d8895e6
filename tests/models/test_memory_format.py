"""``--channels_last`` (the model converted to ``torch.channels_last``, what the Trainer does with it): every method
gives the same logits and gradients as in the default memory format, with its convolution weights channels-last."""

import pytest
import torch
from torch import nn

from .method_facts import method_ids, registered_methods
from .tiny_configs import tiny_batch, tiny_model

METHOD_IDS = method_ids()


@pytest.mark.parametrize("method", registered_methods(), ids=METHOD_IDS)
def test_channels_last_gives_the_same_logits_and_gradients(method):
    model = tiny_model(method[0].model_type).train()
    pixel_values, labels = tiny_batch(2, seed=5)

    def step(memory_format):
        model.zero_grad(set_to_none=True)
        out = model(pixel_values.contiguous(memory_format=memory_format), labels=labels)
        out.loss.backward()
        return out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    state = {k: v.clone() for k, v in model.state_dict().items()}  # BatchNorm statistics move in train mode
    logits, grads = step(torch.contiguous_format)
    model.load_state_dict(state)
    model.to(memory_format=torch.channels_last)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight.shape[-1] > 1]
    assert convs and all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    logits_cl, grads_cl = step(torch.channels_last)
    torch.testing.assert_close(logits_cl, logits, rtol=1e-4, atol=1e-5)
    assert grads_cl.keys() == grads.keys()
    for name in grads:
        torch.testing.assert_close(grads_cl[name], grads[name], rtol=1e-3, atol=1e-5, msg=name)
