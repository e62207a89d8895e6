"""iRPE: the piecewise index function, product buckets, and the attention against slow references."""

import math

import pytest
import torch
from torch.nn import functional as F

from mlic_hf.models.two_stage_irpe.irpe import IRPEAttention, IRPEEncoderLayer, piecewise_index, product_bucket_ids

ALPHA, BETA, GAMMA = 1.9, 3.8, 15.2


def g_direct(x: int, alpha=ALPHA, beta=BETA, gamma=GAMMA) -> int:
    """The piecewise index function written out for one integer (reference: iRPE paper, eq. 18, and its code)."""
    if abs(x) <= alpha:
        return x
    value = round(alpha + math.log(abs(x) / alpha) / math.log(gamma / alpha) * (beta - alpha))
    return int(math.copysign(min(value, beta), x))  # int() truncates 3.8 to 3, as the reference's cast does


def test_piecewise_index_matches_the_formula():
    xs = torch.arange(-40, 41)
    got = piecewise_index(xs, ALPHA, BETA, GAMMA).tolist()
    assert got == [g_direct(int(x)) for x in xs]
    assert got[40 - 1:40 + 2] == [-1, 0, 1]  # exact near zero
    assert max(got) == 3 and min(got) == -3  # clipped at floor(beta)
    assert piecewise_index(torch.tensor([2, 3, 5, 8, 15]), ALPHA, BETA, GAMMA).tolist() == [2, 2, 3, 3, 3]
    with pytest.raises(ValueError, match="alpha < beta < gamma"):
        piecewise_index(xs, 4.0, 3.8, 15.2)


@pytest.mark.parametrize("height, width", [(1, 5), (3, 4), (7, 7), (14, 14)])
def test_product_bucket_ids_match_a_direct_loop(height, width):
    ids = product_bucket_ids(height, width)
    assert ids.shape == (height * width, height * width)
    for i in range(height * width):
        for j in range(0, height * width, max(1, height * width // 13)):
            ri, ci, rj, cj = i // width, i % width, j // width, j % width
            expected = (g_direct(ri - rj) + 3) * 7 + (g_direct(ci - cj) + 3)
            assert ids[i, j].item() == expected
    assert ids.diagonal().eq(3 * 7 + 3).all()
    assert product_bucket_ids(height, width) is ids  # cached


def _reference_attention(module: IRPEAttention, x, height, width):
    """Eqs. 3-5 with explicit loops over heads, i and j (slow, obviously correct)."""
    batch, length, d = x.shape
    heads, dh = module.num_heads, module.head_dim
    q, k, v = module.qkv(x).view(batch, length, 3, heads, dh).unbind(2)
    ids = product_bucket_ids(height, width)
    tables = {p: module.rpe_tables[p] for p in module.rpe_on}
    out = torch.zeros(batch, length, heads, dh, dtype=x.dtype)
    for b in range(batch):
        for h in range(heads):
            def table(p):
                t = tables[p]
                return t[0] if t.shape[0] == 1 else t[h]
            e = torch.zeros(length, length, dtype=x.dtype)
            for i in range(length):
                for j in range(length):
                    value = q[b, i, h] @ k[b, j, h]
                    if "k" in tables:
                        value = value + q[b, i, h] @ table("k")[ids[i, j]]
                    if "q" in tables:
                        value = value + k[b, j, h] @ table("q")[ids[i, j]]
                    e[i, j] = value / math.sqrt(dh)
            a = e.softmax(-1)
            for i in range(length):
                for j in range(length):
                    vec = v[b, j, h] + (table("v")[ids[i, j]] if "v" in tables else 0)
                    out[b, i, h] += a[i, j] * vec
    return module.out_proj(out.reshape(batch, length, d))


@pytest.mark.parametrize("rpe_on", [("q", "k", "v"), ("k",), ("q",), ("v",), ("q", "k")])
@pytest.mark.parametrize("shared_heads", [True, False])
def test_attention_equals_slow_reference(rpe_on, shared_heads):
    torch.manual_seed(0)
    module = IRPEAttention(8, 2, rpe_on=rpe_on, shared_heads=shared_heads).double().eval()
    with torch.no_grad():
        for table in module.rpe_tables.values():
            table.normal_()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    torch.testing.assert_close(module(x, 2, 3), _reference_attention(module, x, 2, 3))


def test_zero_tables_equal_standard_attention():
    torch.manual_seed(1)
    irpe = IRPEAttention(16, 4, rpe_on=("q", "k", "v")).eval()
    plain = IRPEAttention(16, 4, rpe_on=()).eval()
    plain.load_state_dict({k: v for k, v in irpe.state_dict().items() if not k.startswith("rpe_tables")})
    x = torch.randn(3, 12, 16)
    torch.testing.assert_close(irpe(x, 3, 4), plain(x, 3, 4), rtol=1e-5, atol=1e-6)
    # and the plain path is PyTorch's scaled dot-product attention
    q, k, v = plain.qkv(x).view(3, 12, 3, 4, 4).permute(2, 0, 3, 1, 4)
    expected = plain.out_proj(F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(3, 12, 16))
    torch.testing.assert_close(plain(x, 3, 4), expected)


def test_encoder_layer_gradients_reach_the_tables():
    layer = IRPEEncoderLayer(16, 4, dim_feedforward=32, dropout=0.0)
    with torch.no_grad():
        for table in layer.self_attn.rpe_tables.values():
            table.normal_(std=0.1)
    out = layer(torch.randn(2, 9, 16), 3, 3)
    out.square().mean().backward()
    for name, parameter in layer.named_parameters():
        assert parameter.grad is not None and torch.any(parameter.grad != 0), name
    with pytest.raises(ValueError, match="height\\*width"):
        layer(torch.randn(2, 9, 16), 2, 3)
    with pytest.raises(ValueError, match="subset"):
        IRPEAttention(16, 4, rpe_on=("x",))


def test_bucket_cache_is_a_bounded_lru():
    from mlic_hf.models.two_stage_irpe import irpe

    irpe.clear_bucket_cache()
    assert len(irpe._BUCKET_CACHE) == 0
    bound = irpe.BUCKET_CACHE_SIZE
    assert bound == 8
    grids = [(1, n) for n in range(2, bound + 5)]  # bound + 3 distinct grids
    first = {}
    for step, (h, w) in enumerate(grids):
        first[(h, w)] = product_bucket_ids(h, w)
        if step >= 1:
            assert product_bucket_ids(*grids[0]) is first[grids[0]]  # touch grid 0: it stays most recently used
        assert len(irpe._BUCKET_CACHE) == min(step + 1, bound)
    cached = [key[:2] for key in irpe._BUCKET_CACHE]
    # grid 0 was kept by the touches; grids 1-3 were the least recently used and were evicted, in that order
    assert cached == grids[4:] + [grids[0]]  # least recently used first
    for h, w in grids[1:4]:
        again = product_bucket_ids(h, w)  # recomputed: a new tensor with the same values
        assert again is not first[(h, w)]
        assert torch.equal(again, first[(h, w)])
        assert len(irpe._BUCKET_CACHE) == bound
    # results match the direct formula whatever was evicted
    ids = product_bucket_ids(3, 4)
    for i in range(12):
        for j in range(12):
            expected = (g_direct(i // 4 - j // 4) + 3) * 7 + (g_direct(i % 4 - j % 4) + 3)
            assert ids[i, j].item() == expected
    # device=None and "cpu" share one entry
    assert product_bucket_ids(3, 4, device="cpu") is ids
    irpe.clear_bucket_cache()
    assert len(irpe._BUCKET_CACHE) == 0
    assert torch.equal(product_bucket_ids(3, 4), ids)


@pytest.mark.parametrize("height, width", [(1, 5), (3, 4), (2, 9), (7, 7), (20, 20)])
def test_transposed_bucket_is_the_mirrored_bucket(height, width):
    # bucket(j, i) = 48 - bucket(i, j): the relative position changes sign and g is odd.
    ids = product_bucket_ids(height, width)
    assert torch.equal(ids.T, 48 - ids)


def _official_q_reference(module: IRPEAttention, x, height, width):
    """The official iRPE convention for the q term, written out with loops: k_j · R[bucket(j, i)] with the official
    table R = our table flipped along the bucket axis (k and v terms as in eq. 3-5, bucket(i, j))."""
    batch, length, d = x.shape
    heads, dh = module.num_heads, module.head_dim
    q, k, v = module.qkv(x).view(batch, length, 3, heads, dh).unbind(2)
    ids = product_bucket_ids(height, width)
    official_q = module.rpe_tables["q"].flip(1)  # (heads or 1, buckets, head_dim), bucket axis reversed
    out = torch.zeros(batch, length, heads, dh, dtype=x.dtype)
    for b in range(batch):
        for h in range(heads):
            def table(p):
                t = official_q if p == "q" else module.rpe_tables[p]
                return t[0] if t.shape[0] == 1 else t[h]
            e = torch.zeros(length, length, dtype=x.dtype)
            for i in range(length):
                for j in range(length):
                    value = q[b, i, h] @ k[b, j, h]
                    value = value + q[b, i, h] @ table("k")[ids[i, j]]
                    value = value + k[b, j, h] @ table("q")[ids[j, i]]  # official: bucket(j, i)
                    e[i, j] = value / math.sqrt(dh)
            a = e.softmax(-1)
            for i in range(length):
                for j in range(length):
                    out[b, i, h] += a[i, j] * (v[b, j, h] + table("v")[ids[i, j]])
    return module.out_proj(out.reshape(batch, length, d))


@pytest.mark.parametrize("shared_heads", [True, False])
def test_q_table_equals_flipped_official_table(shared_heads):
    torch.manual_seed(3)
    height, width = 2, 5  # |Δcol| up to 4 reaches the logarithmic part of g
    module = IRPEAttention(8, 2, rpe_on=("q", "k", "v"), shared_heads=shared_heads).double().eval()
    with torch.no_grad():
        for table in module.rpe_tables.values():
            table.normal_()
    x = torch.randn(2, height * width, 8, dtype=torch.float64)
    with torch.no_grad():
        ours = module(x, height, width)
        torch.testing.assert_close(ours, _official_q_reference(module, x, height, width))
        # The flip matters: the official indexing without the flip gives something else.
        unflipped = module.rpe_tables["q"].detach().clone()
        module.rpe_tables["q"].copy_(unflipped.flip(1))  # so that the reference's flip cancels out
        wrong = _official_q_reference(module, x, height, width)
        module.rpe_tables["q"].copy_(unflipped)
    assert not torch.allclose(ours, wrong, atol=1e-3)


def test_reset_parameters_zeroes_the_tables():
    module = IRPEAttention(8, 2)
    with torch.no_grad():
        for table in module.rpe_tables.values():
            table.fill_(float("nan"))
    module.rpe_tables.reset_parameters()
    assert all(torch.equal(t, torch.zeros_like(t)) for t in module.rpe_tables.values())
