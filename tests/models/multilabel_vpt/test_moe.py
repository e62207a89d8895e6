"""Group-aware mixture of experts and dual heads (ML-VPT eqs. 11-16) against written-out references."""

import pytest
import torch
from torch.nn import functional as F

from mlic_hf.models.multilabel_vpt.moe import (
    DualGroupHead,
    GroupAwareMoE,
    fuse_dual_logits,
    group_prompt_layout,
    validate_label_groups,
)


def reference_moe(moe, tokens):
    """Eqs. 11-15 one class and one expert at a time."""
    batch, groups, experts, dim = tokens.shape
    act = {"relu": F.relu, "gelu": F.gelu}[moe.activation]
    out = torch.zeros(batch, len(moe.groups), dim)
    for k, t in enumerate(moe.groups):
        for b in range(batch):
            scores = torch.stack([tokens[b, t, e] @ moe.gate_weight[k, e] + moe.gate_bias[k, e] for e in range(experts)])
            w = torch.softmax(scores, dim=0)  # eq. 12
            for e in range(experts):
                i = t * experts + e
                z = tokens[b, t, e]
                expert = z + act(z @ moe.down_weight[i] + moe.down_bias[i]) @ moe.up_weight[i] + moe.up_bias[i]
                out[b, k] += w[e] * expert  # eq. 14
    return out


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_moe_matches_the_equations(activation):
    moe = GroupAwareMoE([0, 1, 1, 2, 0], num_groups=3, num_experts=2, dim=6, hidden_size=3, activation=activation)
    tokens = torch.randn(2, 3, 2, 6)
    features, gates = moe(tokens)
    assert features.shape == (2, 5, 6) and gates.shape == (2, 5, 2)
    torch.testing.assert_close(gates.sum(-1), torch.ones(2, 5))
    with torch.no_grad():
        torch.testing.assert_close(features, reference_moe(moe, tokens), rtol=1e-5, atol=1e-5)


def test_moe_parameter_count_and_shape_checks():
    moe = GroupAwareMoE(list(range(5)) * 16, num_groups=5, num_experts=3, dim=768, hidden_size=5)
    experts = 15 * (768 * 5 + 5 + 5 * 768 + 768)
    gates = 80 * 3 * (768 + 1)
    assert sum(p.numel() for p in moe.parameters()) == experts + gates
    with pytest.raises(ValueError, match="expects"):
        moe(torch.randn(1, 5, 2, 768))
    with pytest.raises(ValueError, match="group ids"):
        GroupAwareMoE([0, 3], num_groups=3, num_experts=1, dim=4)


def test_probability_fusion_is_the_papers_average():
    a = torch.tensor([-60.0, -3.0, 0.0, 2.0, 40.0])
    b = torch.tensor([55.0, 1.0, 0.0, -7.0, 45.0])
    fused = fuse_dual_logits(a, b)
    assert torch.isfinite(fused).all()
    torch.testing.assert_close(torch.sigmoid(fused), 0.5 * (torch.sigmoid(a) + torch.sigmoid(b)))
    torch.testing.assert_close(fuse_dual_logits(a, b, "logit"), 0.5 * (a + b))
    with pytest.raises(ValueError, match="fusion"):
        fuse_dual_logits(a, b, "max")


def test_dual_head_with_and_without_experts():
    kinds = {"co": [0, 0, 1], "dc": [1, 0, 1]}
    head = DualGroupHead(kinds, num_groups=2, tokens_per_group=2, dim=4)
    assert head.num_prompts == 8 and group_prompt_layout(2, 2, 2) == [0, 0, 1, 1, 2, 2, 3, 3]
    tokens = torch.randn(3, 8, 4)
    out = head(tokens)
    assert out["logits"].shape == (3, 3) and out["label_features"].shape == (3, 3, 8)
    co_features, _ = head.moe["co"](tokens[:, :4].reshape(3, 2, 2, 4))
    torch.testing.assert_close(out["co_logits"], head.heads["co"](co_features))
    torch.testing.assert_close(out["logits"], fuse_dual_logits(out["co_logits"], out["dc_logits"]))

    plain = DualGroupHead({"dc": [1, 0, 1]}, num_groups=2, tokens_per_group=2, dim=4, use_moe=False)
    out = plain(tokens[:, :4])
    mean = tokens[:, :4].reshape(3, 2, 2, 4).mean(2)[:, [1, 0, 1]]  # each label reads its group's mean token
    torch.testing.assert_close(out["logits"], plain.heads["dc"](mean))
    with pytest.raises(ValueError, match="prompt tokens"):
        plain(tokens)


def test_validate_label_groups_errors():
    assert validate_label_groups("co_groups", [0, 1, 1], 3, 2) == [0, 1, 1]
    with pytest.raises(ValueError, match="3 labels"):
        validate_label_groups("co_groups", [0, 1], 3, 2)
    with pytest.raises(ValueError, match=r"outside \[0, num_groups=2\)"):
        validate_label_groups("co_groups", [0, 1, 2], 3, 2)
    with pytest.raises(ValueError, match=r"groups \[2\] have no labels"):
        validate_label_groups("dc_groups", [0, 1, 1], 3, 3)
