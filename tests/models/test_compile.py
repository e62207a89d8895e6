"""``torch.compile`` (Trainer's ``--torch_compile``) of every method: one graph without breaks (training and
inference, label maps and activation checkpointing included), the same loss, gradients and logits as eager with
inductor, and no recompilation for a new batch of the same shape (that the guard works is shown in the cheapest
method's own tests)."""

import pytest
import torch

from .method_facts import config_cases, method_ids
from .tiny_configs import case_id, tiny_batch, tiny_model

#: every method, and the variants whose forward takes another path (``MethodTestFacts.compile_variants``)
CASES = config_cases(lambda facts: facts.compile_variants)
#: the cases of the methods with Transformer layers to checkpoint
CHECKPOINTING_CASES = config_cases(lambda facts: facts.compile_variants,
                                   where=lambda facts: facts.activation_checkpointing)
METHOD_TYPES = method_ids()
#: inductor reorders and fuses float32 arithmetic: |compiled - eager| <= 1e-4 · max(1, |eager|) on these models
#: (measured: below 1e-7 on the logits, 1e-6 on the gradients)
RTOL, ATOL = 1e-4, 1e-4


def _break_reasons(explanation) -> list[str]:
    reasons = []
    for reason in explanation.break_reasons:
        where = reason.user_stack[-1] if reason.user_stack else None
        at = f" at {where.filename}:{where.lineno}" if where is not None else ""
        reasons.append(" ".join(str(reason.reason).split())[:200] + at)
    return reasons


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_forward_is_one_graph_without_breaks(case, mode):
    model = getattr(tiny_model(case[0], **case[1]), mode)()
    pixel_values, labels = tiny_batch(2, seed=3)
    explanation = torch._dynamo.explain(model)(pixel_values, labels=labels)
    assert explanation.graph_break_count == 0, _break_reasons(explanation)
    assert explanation.graph_count == 1


@pytest.mark.parametrize("case", CHECKPOINTING_CASES, ids=case_id)
def test_label_maps_and_activation_checkpointing_compile_without_breaks(case):
    model = tiny_model(case[0], **case[1]).eval()
    pixel_values, labels = tiny_batch(2, seed=3)
    explanation = torch._dynamo.explain(model)(pixel_values, output_class_maps=True)
    assert explanation.graph_break_count == 0, _break_reasons(explanation)
    torch._dynamo.reset()
    model.train().activation_checkpointing_enable()
    explanation = torch._dynamo.explain(model)(pixel_values, labels=labels)
    assert explanation.graph_break_count == 0, _break_reasons(explanation)


@pytest.mark.parametrize("model_type", METHOD_TYPES)
def test_inductor_matches_eager_and_does_not_recompile(model_type):
    model = tiny_model(model_type).train()
    compiled = torch.compile(model)  # inductor, what --torch_compile uses
    pixel_values, labels = tiny_batch(2, seed=3)

    eager_loss = model(pixel_values, labels=labels).loss
    eager_grads = torch.autograd.grad(eager_loss, [p for p in model.parameters() if p.requires_grad])
    loss = compiled(pixel_values, labels=labels).loss
    grads = torch.autograd.grad(loss, [p for p in model.parameters() if p.requires_grad])
    torch.testing.assert_close(loss, eager_loss, rtol=RTOL, atol=ATOL)
    for grad, eager in zip(grads, eager_grads):
        torch.testing.assert_close(grad, eager, rtol=RTOL, atol=ATOL)

    other_pixels, other_labels = tiny_batch(2, seed=4)
    with torch.compiler.set_stance("fail_on_recompile"):  # a new batch of the same shape reuses the graph
        compiled(other_pixels, labels=other_labels).loss.backward()

    model.eval()
    with torch.no_grad():
        eager_logits = model(pixel_values).logits
        torch.testing.assert_close(compiled(pixel_values).logits, eager_logits, rtol=RTOL, atol=ATOL)
        with torch.compiler.set_stance("fail_on_recompile"):
            compiled(other_pixels)
