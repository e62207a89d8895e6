"""Every method under autocast (what ``--bf16`` / ``--fp16`` train with), on CPU: logits close to float32's, the loss
in float32 and finite, finite float32 gradients for every trainable parameter; each method's variants whose layers
differ (``MethodTestFacts.mixed_precision_variants``) included."""

import pytest
import torch

from .method_facts import config_cases
from .tiny_configs import case_id, tiny_batch, tiny_model

CASES = config_cases(lambda facts: facts.mixed_precision_variants)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
#: max |logits(autocast) - logits(float32)| <= RELATIVE · max |logits(float32)| (and the same for the loss): bfloat16
#: keeps 8 significant bits (2^-9 relative rounding per operation), float16 11 bits (2^-12). Measured worst cases over
#: these tiny models: 1.8% (bf16) and 0.18% (fp16), both M4's; a mask turned NaN or an overflowing score is far out.
RELATIVE = {"bf16": 0.03, "fp16": 0.004}


@pytest.mark.parametrize("precision", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_autocast_logits_are_close_to_float32(case, precision):
    model = tiny_model(case[0], **case[1]).eval()
    pixel_values, labels = tiny_batch(4, seed=2)
    with torch.no_grad():
        reference = model(pixel_values, labels=labels)
        with torch.autocast("cpu", dtype=DTYPES[precision]):
            mixed = model(pixel_values, labels=labels)
    assert mixed.logits.dtype in (DTYPES[precision], torch.float32)
    assert mixed.loss.dtype == torch.float32  # the loss upcasts low-precision logits
    tolerance = RELATIVE[precision]
    error = (mixed.logits.float() - reference.logits).abs().max()
    assert error <= tolerance * reference.logits.abs().max(), f"logits off by {error:.2e}"
    assert (mixed.loss - reference.loss).abs() <= tolerance * reference.loss
    # the autocast logits really are computed in low precision (else the test would compare float32 with itself)
    assert not torch.equal(mixed.logits.float(), reference.logits)


@pytest.mark.parametrize("precision", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_autocast_training_step_has_a_float32_loss_and_finite_gradients(case, precision):
    model = tiny_model(case[0], **case[1]).train()
    pixel_values, labels = tiny_batch(4, seed=2)
    with torch.autocast("cpu", dtype=DTYPES[precision]):
        loss = model(pixel_values, labels=labels).loss
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    trainable = {name: p for name, p in model.named_parameters() if p.requires_grad}
    assert trainable
    for name, parameter in trainable.items():
        assert parameter.dtype == torch.float32, name  # autocast leaves the weights (and optimiser) in float32
        assert parameter.grad is not None and parameter.grad.dtype == torch.float32, name
        assert torch.isfinite(parameter.grad).all(), name
