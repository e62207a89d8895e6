"""Prompt insertion and the group attention mask of mlic_hf.models.multilabel_vpt.prompts, on a tiny timm ViT."""

import math

import pytest
import timm
import torch

from mlic_hf.models.multilabel_vpt.prompts import (
    PromptTokens,
    check_vision_transformer,
    embed_tokens,
    prompt_attention_mask,
    run_prompted_blocks,
    vpt_init_bound,
)


def tiny_vit(depth=2):
    return timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, embed_dim=32, num_heads=2,
                             depth=depth, num_classes=0).eval()


def test_vpt_init_bound_and_range():
    assert vpt_init_bound(16, 768) == pytest.approx(math.sqrt(6 / (3 * 256 + 768)))
    assert vpt_init_bound((14, 14), 768) == pytest.approx(math.sqrt(6 / (3 * 196 + 768)))
    prompts = PromptTokens(5, 32, depth=3, patch_size=8)
    assert prompts.tokens.shape == (3, 5, 32)
    assert prompts.tokens.abs().max() <= prompts.bound
    assert prompts.tokens.std() > prompts.bound / 4  # really uniform over the range, not zeros
    assert prompts(1, batch_size=4).shape == (4, 5, 32)


def test_mask_values_by_hand():
    # [cls, p0(g0), p1(g0), p2(g1), patch, patch]
    mask = prompt_attention_mask(1, [0, 0, 1], num_patches=2, mode="group")
    blocked = torch.isinf(mask)
    expected = torch.zeros(6, 6, dtype=torch.bool)
    expected[1, 3] = expected[2, 3] = expected[3, 1] = expected[3, 2] = True
    assert torch.equal(blocked, expected)
    assert (mask[~blocked] == 0).all()
    own = torch.isinf(prompt_attention_mask(1, [0, 0, 1], 2, "self"))
    expected_self = torch.zeros(6, 6, dtype=torch.bool)
    expected_self[1:4, 1:4] = ~torch.eye(3, dtype=torch.bool)
    assert torch.equal(own, expected_self)
    assert prompt_attention_mask(1, [0, 1], 2, "none") is None
    with pytest.raises(ValueError, match="prompt_mask"):
        prompt_attention_mask(1, [0], 2, "diagonal")


def _block_outputs(block, tokens, prompt_values, groups, mode):
    """One block on [cls, prompts, patches]."""
    x = torch.cat([tokens[:, :1], prompt_values, tokens[:, 1:]], dim=1)
    mask = prompt_attention_mask(1, groups, tokens.shape[1] - 1, mode)
    with torch.no_grad():
        return block(x, attn_mask=mask) if mask is not None else block(x)


@pytest.mark.parametrize("mode", ["group", "self"])
def test_changing_one_groups_prompts_leaves_other_groups_unchanged(mode):
    vit = tiny_vit()
    tokens = embed_tokens(vit, torch.randn(2, 3, 32, 32))
    groups = [0, 0, 1, 1, 2, 2]
    prompts = torch.randn(2, 6, 32)
    changed = prompts.clone()
    changed[:, 2:4] += torch.randn(2, 2, 32)  # group 1 only
    block = vit.blocks[0]
    before = _block_outputs(block, tokens, prompts, groups, mode)
    after = _block_outputs(block, tokens, changed, groups, mode)
    other = [1, 2, 5, 6]  # positions of groups 0 and 2 (cls at 0)
    torch.testing.assert_close(after[:, other], before[:, other], rtol=0, atol=1e-6)
    # the class token and the patches do see the prompts
    assert not torch.allclose(after[:, 0], before[:, 0], atol=1e-4)
    assert not torch.allclose(after[:, 7:], before[:, 7:], atol=1e-4)
    # without the mask the other groups' prompts would change: the mask is what keeps them apart
    free_before = _block_outputs(block, tokens, prompts, groups, "none")
    free_after = _block_outputs(block, tokens, changed, groups, "none")
    assert not torch.allclose(free_after[:, other], free_before[:, other], atol=1e-4)


def test_self_mask_isolates_prompts_within_a_group():
    vit = tiny_vit()
    tokens = embed_tokens(vit, torch.randn(1, 3, 32, 32))
    prompts = torch.randn(1, 4, 32)
    changed = prompts.clone()
    changed[:, 0] += 5 * torch.randn(32)
    groups = [0, 0, 0, 0]
    same_group = _block_outputs(vit.blocks[0], tokens, changed, groups, "self")[:, 2:5]
    torch.testing.assert_close(same_group, _block_outputs(vit.blocks[0], tokens, prompts, groups, "self")[:, 2:5],
                               rtol=0, atol=1e-6)
    grouped = _block_outputs(vit.blocks[0], tokens, changed, groups, "group")[:, 2:5]
    assert (grouped - _block_outputs(vit.blocks[0], tokens, prompts, groups, "group")[:, 2:5]).abs().max() > 1e-5


def test_deep_prompts_match_a_written_out_loop():
    vit = tiny_vit(depth=3)
    tokens = embed_tokens(vit, torch.randn(2, 3, 32, 32))
    prompts = PromptTokens(4, 32, depth=3, patch_size=8)
    groups = [0, 0, 1, 1]
    mask = prompt_attention_mask(1, groups, tokens.shape[1] - 1, "group")
    with torch.no_grad():
        out, prompt_out = run_prompted_blocks(vit.blocks, tokens, prompts, 1, mask)
        x = tokens
        for i, block in enumerate(vit.blocks):  # eq. 4 / 8: fresh prompts before every block
            seq = torch.cat([x[:, :1], prompts.tokens[i].expand(2, -1, -1), x[:, 1:]], dim=1)
            seq = block(seq, attn_mask=mask)
            x = torch.cat([seq[:, :1], seq[:, 5:]], dim=1)
            last = seq[:, 1:5]
    assert out.shape == tokens.shape and prompt_out.shape == (2, 4, 32)
    torch.testing.assert_close(out, x)
    torch.testing.assert_close(prompt_out, last)


def test_shallow_prompts_flow_through_every_block():
    vit = tiny_vit(depth=2)
    tokens = embed_tokens(vit, torch.randn(1, 3, 32, 32))
    prompts = PromptTokens(3, 32, depth=1, patch_size=8)
    with torch.no_grad():
        out, prompt_out = run_prompted_blocks(vit.blocks, tokens, prompts, 1)
        seq = vit.blocks(torch.cat([tokens[:, :1], prompts.tokens[0][None], tokens[:, 1:]], dim=1))
    torch.testing.assert_close(prompt_out, seq[:, 1:4])
    torch.testing.assert_close(out, torch.cat([seq[:, :1], seq[:, 4:]], dim=1))
    with pytest.raises(ValueError, match="prompt sets"):
        run_prompted_blocks(vit.blocks, tokens, PromptTokens(3, 32, depth=3, patch_size=8), 1)


def test_only_vision_transformers_are_accepted():
    with pytest.raises(TypeError, match="VisionTransformer"):
        check_vision_transformer(torch.nn.Linear(2, 2))
    check_vision_transformer(tiny_vit())
