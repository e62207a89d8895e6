"""Tests of `mlic_hf.losses`.

Every value is compared with an independent, literal float64 evaluation of the paper formula (written with
``torch.sigmoid`` / ``torch.log``), never with the library's own output.
"""

from __future__ import annotations

import inspect
import math
import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mlic_hf.losses import (
    LOSS_CONFIG_DEFAULTS,
    LOSSES,
    AsymmetricLoss,
    AsymmetricPolynomialLoss,
    BCELoss,
    FocalLoss,
    LossSpec,
    asymmetric_loss,
    asymmetric_polynomial_loss,
    binary_cross_entropy_loss,
    build_loss,
    focal_loss,
    get_loss_spec,
    loss_from_config,
    loss_help,
    loss_names,
    reduce_loss,
    register_loss,
    unregister_loss,
)


REDUCTIONS = ["none", "sum", "mean", "batch_mean"]


# ----------------------------------------------------------------------------------------------------------
# Literal reference formulas (float64)
# ----------------------------------------------------------------------------------------------------------


def ref_bce(x, y):
    p = torch.sigmoid(x)
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def ref_focal(x, y, gamma=2.0, alpha=None):
    p = torch.sigmoid(x)
    a_pos, a_neg = (1.0, 1.0) if alpha is None else (alpha, 1 - alpha)
    return -(a_pos * y * (1 - p) ** gamma * torch.log(p) + a_neg * (1 - y) * p**gamma * torch.log(1 - p))


def _shifted(p, clip):
    return p if not clip else torch.clamp(p - clip, min=0)


def ref_asl(x, y, gamma_neg=4.0, gamma_pos=0.0, clip=0.05, detach_weights=False):
    p = torch.sigmoid(x)
    p_m = _shifted(p, clip)
    w_pos = (1 - p) ** gamma_pos
    w_neg = p_m**gamma_neg
    if detach_weights:
        w_pos, w_neg = w_pos.detach(), w_neg.detach()
    return -(y * w_pos * torch.log(p) + (1 - y) * w_neg * torch.log(1 - p_m))


def ref_apl(
    x, y, gamma_pos=0.0, gamma_neg=2.0, threshold=0.05, alpha1=0.0, alpha2=1.75, beta1=1.0, detach_weights=False
):
    # M2 paper eq. 8 (with the shifted p_res inside the negative log, as in ASL / the official APL code).
    p = torch.sigmoid(x)
    p_res = _shifted(p, threshold)
    w_pos = (1 - p) ** gamma_pos
    w_neg = p_res**gamma_neg
    if detach_weights:
        w_pos, w_neg = w_pos.detach(), w_neg.detach()
    pos = -torch.log(p) + (alpha1 - 1) * (1 - p) + (alpha2 - 0.5) * (1 - p) ** 2
    neg = -torch.log(1 - p_res) + (beta1 - 1) * p_res
    return y * w_pos * pos + (1 - y) * w_neg * neg


def ref_official_apl(x, y, gamma_neg=2.0, gamma_pos=0.0, clip=0.05, eps=1e-8):
    """Official APL code (LUMIA-Group/APL) formulation written out, element-wise, hard labels."""
    epsilon_pos, epsilon_neg, epsilon_pos_pow = 1.0, 0.0, -2.5
    xs_pos = torch.sigmoid(x)
    xs_neg = torch.clamp(1 - xs_pos + clip, max=1)
    pos_c = torch.clamp(xs_pos, min=eps)
    los_pos = y * (torch.log(pos_c) + epsilon_pos * (1 - pos_c) + epsilon_pos_pow * 0.5 * (1 - pos_c) ** 2)
    los_neg = (1 - y) * (torch.log(torch.clamp(xs_neg, min=eps)) + epsilon_neg * torch.clamp(xs_neg, min=eps))
    pt = xs_pos * y + xs_neg * (1 - y)
    one_sided_w = (1 - pt) ** (gamma_pos * y + gamma_neg * (1 - y))
    return -(los_pos + los_neg) * one_sided_w


def ref_reduce(loss, reduction):
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.sum() / loss.numel()
    return loss.sum(dim=1).mean()


# (function, reference, hyper-parameters) cases; the references take the same keyword names except ASL/APL
# margin names, which are identical here.
CASES = {
    "bce": (binary_cross_entropy_loss, ref_bce, {}),
    "focal": (focal_loss, ref_focal, {"gamma": 2.0, "alpha": None}),
    "focal_alpha": (focal_loss, ref_focal, {"gamma": 1.5, "alpha": 0.25}),
    "asl": (asymmetric_loss, ref_asl, {"gamma_neg": 4.0, "gamma_pos": 0.0, "clip": 0.05}),
    "asl_pos_gamma": (asymmetric_loss, ref_asl, {"gamma_neg": 3.0, "gamma_pos": 1.0, "clip": 0.1}),
    "asl_noclip": (asymmetric_loss, ref_asl, {"gamma_neg": 2.0, "gamma_pos": 1.0, "clip": 0.0}),
    "apl": (asymmetric_polynomial_loss, ref_apl, {}),
    "apl_custom": (
        asymmetric_polynomial_loss,
        ref_apl,
        {"gamma_pos": 1.0, "gamma_neg": 3.0, "threshold": 0.1, "alpha1": 2.0, "alpha2": -1.0, "beta1": 3.0},
    ),
    "apl_nothreshold": (
        asymmetric_polynomial_loss,
        ref_apl,
        {"gamma_pos": 0.0, "gamma_neg": 2.0, "threshold": None, "alpha1": 0.5, "alpha2": 1.0, "beta1": 2.0},
    ),
}


def _inputs(seed=0, dtype=torch.float64, soft=True):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(4, 5, generator=g, dtype=torch.float64) * 8 - 4
    y = (torch.rand(4, 5, generator=g) > 0.5).to(torch.float64)
    if soft:
        y[0, :3] = torch.tensor([0.3, 0.7, 0.5], dtype=torch.float64)
    # Keep p away from the kinks p = 0.05 / 0.1 of the clipped losses (for finite differences).
    for m in (0.05, 0.1):
        kink = math.log(m / (1 - m))
        near = (x - kink).abs() < 0.05
        x = torch.where(near, x + 0.2, x)
    return x.to(dtype), y.to(dtype)


# ----------------------------------------------------------------------------------------------------------
# Values vs. the literal formulas
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference_float32(case, reduction):
    fn, ref, hyper = CASES[case]
    x, y = _inputs(seed=1)
    expected = ref_reduce(ref(x, y, **hyper), reduction)
    out = fn(x.float(), y.float(), reduction=reduction, **hyper)
    assert out.dtype == torch.float32
    assert out.shape == expected.shape
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference_float64(case, reduction):
    # float64 input is kept in float64, so the agreement is essentially exact.
    fn, ref, hyper = CASES[case]
    x, y = _inputs(seed=2)
    out = fn(x, y, reduction=reduction, **hyper)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref_reduce(ref(x, y, **hyper), reduction), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", list(CASES))
def test_modules_match_reference(case):
    fn, ref, hyper = CASES[case]
    cls = {
        binary_cross_entropy_loss: BCELoss,
        focal_loss: FocalLoss,
        asymmetric_loss: AsymmetricLoss,
        asymmetric_polynomial_loss: AsymmetricPolynomialLoss,
    }[fn]
    x, y = _inputs(seed=3)
    module = cls(reduction="batch_mean", **hyper)
    expected = ref(x, y, **hyper).sum(dim=1).mean()
    torch.testing.assert_close(module(x.float(), y.float()).double(), expected, rtol=1e-6, atol=1e-7)


def test_hand_computed_values():
    # BCE, logits [[0, 0]], labels [[1, 0]]: p = 0.5, each element is -log 0.5 = log 2 = 0.693147...
    #   sum = 2 log 2 = 1.386294, mean = log 2, batch_mean (sum over labels / 1 sample) = 2 log 2.
    x = torch.zeros(1, 2)
    y = torch.tensor([[1.0, 0.0]])
    assert binary_cross_entropy_loss(x, y, reduction="mean").item() == pytest.approx(0.6931471805599453, rel=1e-6)
    assert binary_cross_entropy_loss(x, y, reduction="sum").item() == pytest.approx(1.3862943611198906, rel=1e-6)
    assert binary_cross_entropy_loss(x, y, reduction="batch_mean").item() == pytest.approx(1.3862943611198906)
    # Focal, logit 0, label 1, gamma 2, alpha 0.25: 0.25 * (1 - 0.5)^2 * log 2 = 0.0625 * 0.693147 = 0.0433217.
    x1, y1 = torch.zeros(1, 1), torch.ones(1, 1)
    assert focal_loss(x1, y1, gamma=2.0, alpha=0.25).item() == pytest.approx(0.04332169878499658, rel=1e-6)
    # ASL (defaults), logit 0, label 0: p_m = 0.5 - 0.05 = 0.45, 0.45^4 = 0.04100625,
    #   -log(1 - 0.45) = -log 0.55 = 0.597837 -> 0.04100625 * 0.597837 = 0.0245151.
    assert asymmetric_loss(x1, 1 - y1).item() == pytest.approx(0.02451505351223516, rel=1e-6)
    # ASL positive with gamma_pos = 0: -log 0.5 = log 2.
    assert asymmetric_loss(x1, y1).item() == pytest.approx(math.log(2), rel=1e-6)
    # APL (defaults alpha1=0, alpha2=1.75, gamma_pos=0), logit 0, label 1:
    #   -log 0.5 + (0 - 1) * 0.5 + (1.75 - 0.5) * 0.25 = 0.693147 - 0.5 + 0.3125 = 0.505647.
    assert asymmetric_polynomial_loss(x1, y1).item() == pytest.approx(0.5056471805599453, rel=1e-6)
    # APL (defaults gamma_neg=2, threshold=0.05), logit 0, label 0: 0.45^2 * (-log 0.55) = 0.2025 * 0.597837.
    assert asymmetric_polynomial_loss(x1, 1 - y1).item() == pytest.approx(0.2025 * 0.5978370007556204, rel=1e-6)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_bce_matches_torch(reduction):
    x, y = _inputs(seed=4, dtype=torch.float32)
    w = torch.rand(4, 5, generator=torch.Generator().manual_seed(0))
    expected = F.binary_cross_entropy_with_logits(x, y, reduction=reduction)
    torch.testing.assert_close(binary_cross_entropy_loss(x, y, reduction=reduction), expected)
    expected_w = F.binary_cross_entropy_with_logits(x, y, weight=w, reduction=reduction)
    torch.testing.assert_close(binary_cross_entropy_loss(x, y, weight=w, reduction=reduction), expected_w)
    torch.testing.assert_close(BCELoss(reduction=reduction)(x, y), expected)


def test_reduce_loss_table():
    loss = torch.arange(6.0).reshape(2, 3)  # rows sum to 3 and 12
    assert torch.equal(reduce_loss(loss, "none"), loss)
    assert reduce_loss(loss, "sum").item() == 15.0
    assert reduce_loss(loss, "mean").item() == 2.5
    assert reduce_loss(loss, "batch_mean").item() == 7.5
    with pytest.raises(ValueError, match="avg"):
        reduce_loss(loss, "avg")


# ----------------------------------------------------------------------------------------------------------
# APL special cases
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gammas,clip", [((4.0, 0.0), 0.05), ((2.0, 1.0), 0.1), ((3.0, 2.0), 0.0)])
def test_apl_reduces_to_asl(gammas, clip):
    gamma_neg, gamma_pos = gammas
    x, y = _inputs(seed=5, dtype=torch.float32)
    apl = asymmetric_polynomial_loss(
        x, y, reduction="none", gamma_pos=gamma_pos, gamma_neg=gamma_neg, threshold=clip,
        alpha1=1.0, alpha2=0.5, beta1=1.0,
    )
    # Literal ASL formula, independent of the library.
    expected = ref_asl(x.double(), y.double(), gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)
    torch.testing.assert_close(apl.double(), expected, rtol=1e-6, atol=1e-7)
    asl = asymmetric_loss(x, y, reduction="none", gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip)
    torch.testing.assert_close(apl, asl, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("gammas", [(2.0, 0.0), (4.0, 1.0)])
def test_apl_defaults_equal_official_code(gammas):
    gamma_neg, gamma_pos = gammas
    x, y = _inputs(seed=6, soft=False)
    expected = ref_official_apl(x, y, gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=0.05)
    out = asymmetric_polynomial_loss(x.float(), y.float(), reduction="none", gamma_neg=gamma_neg, gamma_pos=gamma_pos)
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-7)
    # The official code returns -loss.sum(), i.e. reduction="sum".
    out_sum = AsymmetricPolynomialLoss(gamma_neg=gamma_neg, gamma_pos=gamma_pos, reduction="sum")(x, y)
    torch.testing.assert_close(out_sum, expected.sum(), rtol=1e-10, atol=0)


def test_apl_defaults():
    m = AsymmetricPolynomialLoss()
    assert (m.gamma_pos, m.gamma_neg, m.threshold) == (0.0, 2.0, 0.05)
    assert (m.alpha1, m.alpha2, m.beta1) == (0.0, 1.75, 1.0)
    assert m.focal_no_grad is True
    a = AsymmetricLoss()
    assert (a.gamma_neg, a.gamma_pos, a.clip, a.eps, a.focal_no_grad) == (4.0, 0.0, 0.05, 1e-8, True)


# ----------------------------------------------------------------------------------------------------------
# Numerical stability
# ----------------------------------------------------------------------------------------------------------

ALL_LOSSES = {
    "bce": (binary_cross_entropy_loss, {}),
    "focal": (focal_loss, {"gamma": 2.0, "alpha": 0.25}),
    "focal_frac_gamma": (focal_loss, {"gamma": 0.5}),
    "asl": (asymmetric_loss, {}),
    "asl_full_grad": (asymmetric_loss, {"focal_no_grad": False, "gamma_pos": 1.0}),
    "asl_noclip_frac_gamma": (
        asymmetric_loss,
        {"clip": 0.0, "gamma_pos": 0.5, "gamma_neg": 0.5, "focal_no_grad": False},
    ),
    "asl_frac_gamma": (asymmetric_loss, {"gamma_neg": 0.5, "gamma_pos": 0.5, "focal_no_grad": False}),
    "apl": (asymmetric_polynomial_loss, {}),
    "apl_full_grad": (asymmetric_polynomial_loss, {"focal_no_grad": False, "gamma_pos": 1.0}),
    "apl_nothreshold": (asymmetric_polynomial_loss, {"threshold": None, "focal_no_grad": False}),
}


@pytest.mark.parametrize("logit", [50.0, -50.0, 1e4, -1e4])
@pytest.mark.parametrize("label", [0.0, 1.0])
@pytest.mark.parametrize("case", list(ALL_LOSSES))
def test_extreme_logits_finite(case, label, logit):
    fn, hyper = ALL_LOSSES[case]
    x = torch.full((2, 3), logit, requires_grad=True)
    y = torch.full((2, 3), label)
    loss = fn(x, y, reduction="sum", **hyper)
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "fn,hyper,logit,label,expected",
    [
        # -log(1 - sigmoid(x)) = softplus(x) ~= x for large x.
        (binary_cross_entropy_loss, {}, 50.0, 0.0, 50.0),
        (binary_cross_entropy_loss, {}, 1e4, 0.0, 1e4),
        (binary_cross_entropy_loss, {}, -1e4, 1.0, 1e4),
        (binary_cross_entropy_loss, {}, 50.0, 1.0, 0.0),
        # focal: p^2 -> 1, -log(1 - p) ~= x.
        (focal_loss, {"gamma": 2.0}, 1e4, 0.0, 1e4),
        (focal_loss, {"gamma": 2.0}, -1e4, 0.0, 0.0),
        # ASL positive, gamma_pos = 0: -log p = -logsigmoid(x) = 1e4 (no eps clamp of log p).
        (asymmetric_loss, {}, -1e4, 1.0, 1e4),
        # ASL negative, p = 1: p_m = 0.95, 0.95^4 * -log(0.05) = 2.440043 (bounded by the margin).
        (asymmetric_loss, {}, 1e4, 0.0, 0.95**4 * -math.log(0.05)),
        # ASL negative without clip: -log(1 - p) ~= x.
        (asymmetric_loss, {"clip": 0.0}, 50.0, 0.0, 50.0),
        # APL positive, p = 0: -log p + (0 - 1) * 1 + (1.75 - 0.5) * 1 = 1e4 + 0.25.
        (asymmetric_polynomial_loss, {}, -1e4, 1.0, 1e4 + 0.25),
        # APL negative, p = 1: 0.95^2 * -log(0.05).
        (asymmetric_polynomial_loss, {}, 1e4, 0.0, 0.95**2 * -math.log(0.05)),
        (asymmetric_polynomial_loss, {}, 1e4, 1.0, 0.0),
    ],
)
def test_extreme_logit_limits(fn, hyper, logit, label, expected):
    out = fn(torch.tensor([[logit]]), torch.tensor([[label]]), reduction="sum", **hyper)
    assert out.item() == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_extreme_bce_gradient_limit():
    # d/dx softplus(x) = sigmoid(x) -> 1 at x = 50 (label 0); -sigmoid(-x) -> -1 at x = -1e4 (label 1).
    x = torch.tensor([[50.0, -1e4]], requires_grad=True)
    binary_cross_entropy_loss(x, torch.tensor([[0.0, 1.0]]), reduction="sum").backward()
    torch.testing.assert_close(x.grad, torch.tensor([[1.0, -1.0]]))


# ----------------------------------------------------------------------------------------------------------
# Gradients
# ----------------------------------------------------------------------------------------------------------

GRAD_CASES = {
    "bce": (binary_cross_entropy_loss, {}),
    "focal": (focal_loss, {"gamma": 2.0, "alpha": 0.25}),
    "asl": (asymmetric_loss, {"gamma_neg": 4.0, "gamma_pos": 1.0, "clip": 0.05, "focal_no_grad": False}),
    "asl_noclip": (asymmetric_loss, {"gamma_neg": 2.0, "gamma_pos": 1.0, "clip": None, "focal_no_grad": False}),
    "apl": (asymmetric_polynomial_loss, {"focal_no_grad": False, "gamma_pos": 1.0}),
    "apl_custom": (
        asymmetric_polynomial_loss,
        {"focal_no_grad": False, "gamma_neg": 3.0, "threshold": 0.1, "alpha1": 2.0, "alpha2": -1.0, "beta1": 3.0},
    ),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradcheck_float64(case):
    fn, hyper = GRAD_CASES[case]
    x, y = _inputs(seed=7)
    x.requires_grad_(True)
    w = torch.rand(4, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: fn(t, y, weight=w, reduction="batch_mean", **hyper), (x,))


@pytest.mark.parametrize(
    "fn,ref,hyper",
    [
        (asymmetric_loss, ref_asl, {"gamma_neg": 4.0, "gamma_pos": 1.0, "clip": 0.05}),
        (asymmetric_loss, ref_asl, {"gamma_neg": 2.0, "gamma_pos": 2.0, "clip": 0.0}),
        (asymmetric_polynomial_loss, ref_apl, {"gamma_neg": 2.0, "gamma_pos": 1.0, "threshold": 0.05}),
        (asymmetric_polynomial_loss, ref_apl, {"gamma_neg": 3.0, "gamma_pos": 2.0, "threshold": 0.1, "beta1": 2.0}),
    ],
)
@pytest.mark.parametrize("focal_no_grad", [True, False])
def test_focal_no_grad_gradient(fn, ref, hyper, focal_no_grad):
    x, y = _inputs(seed=8)
    # Library gradient (float32 compute).
    x32 = x.float().requires_grad_(True)
    fn(x32, y.float(), reduction="sum", focal_no_grad=focal_no_grad, **hyper).backward()
    # Reference: literal formula, focusing weights detached iff focal_no_grad.
    x64 = x.clone().requires_grad_(True)
    ref(x64, y, detach_weights=focal_no_grad, **hyper).sum().backward()
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-5, atol=1e-6)
    # The two variants really differ (so the test can tell them apart).
    x_other = x.clone().requires_grad_(True)
    ref(x_other, y, detach_weights=not focal_no_grad, **hyper).sum().backward()
    assert not torch.allclose(x_other.grad, x64.grad, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("loss_cls", [AsymmetricLoss, AsymmetricPolynomialLoss])
def test_focal_no_grad_is_scoped(loss_cls):
    x, y = _inputs(seed=9, dtype=torch.float32)
    x.requires_grad_(True)
    module = loss_cls(focal_no_grad=True)
    with torch.no_grad():
        out = module(x, y)
        assert not torch.is_grad_enabled()
    assert not out.requires_grad
    assert out.grad_fn is None
    assert torch.is_grad_enabled()
    # Outside no_grad it builds a graph and leaves grad mode enabled.
    out = module(x, y)
    assert out.requires_grad
    assert torch.is_grad_enabled()
    # Also when grad mode is disabled globally (not via a context manager).
    torch.set_grad_enabled(False)
    try:
        out = module(x, y)
        assert not torch.is_grad_enabled()
        assert not out.requires_grad
    finally:
        torch.set_grad_enabled(True)


# ----------------------------------------------------------------------------------------------------------
# Weights / ignore mask
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", list(ALL_LOSSES))
def test_weight_mask_ignores_elements(case):
    fn, hyper = ALL_LOSSES[case]
    x, y = _inputs(seed=10, dtype=torch.float32)
    mask = torch.ones(4, 5)
    mask[1, 2] = 0
    mask[3, 0] = 0
    x1 = x.clone().requires_grad_(True)
    out1 = fn(x1, y, weight=mask, reduction="batch_mean", **hyper)
    out1.backward()
    x2 = x.clone()
    x2[1, 2] = 37.0
    x2[3, 0] = -1e4
    out2 = fn(x2, y, weight=mask, reduction="batch_mean", **hyper)
    assert out1.item() == out2.item()
    assert x1.grad[1, 2] == 0 and x1.grad[3, 0] == 0
    # Unmasked elements keep the gradient they have without any weight.
    x3 = x.clone().requires_grad_(True)
    fn(x3, y, reduction="batch_mean", **hyper).backward()
    torch.testing.assert_close(x1.grad, x3.grad * mask)
    assert x3.grad[1, 2] != 0 or x3.grad[3, 0] != 0


def test_weight_scales_elementwise():
    x, y = _inputs(seed=11)
    w = torch.rand(4, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    per_class = torch.tensor([0.0, 1.0, 2.0, 0.5, 1.0], dtype=torch.float64)
    for weight in (w, per_class, w.bool()):
        out = asymmetric_loss(x, y, weight=weight, reduction="mean")
        expected = (ref_asl(x, y) * weight.double()).mean()
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=0)


# ----------------------------------------------------------------------------------------------------------
# Dtypes
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", ["bce", "focal", "asl", "apl"])
def test_low_precision_input_gives_float32(case, dtype):
    fn, ref, hyper = CASES[case]
    x, y = _inputs(seed=12)
    x_low = x.to(dtype)
    out = fn(x_low, y.to(dtype), reduction="mean", **hyper)
    assert out.dtype == torch.float32
    # Reference on the rounded logits in float64: the loss itself is computed in float32.
    expected = ref(x_low.double(), y.to(dtype).double(), **hyper).mean()
    torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-7)


def test_integer_and_bool_labels():
    x, y = _inputs(seed=13, dtype=torch.float32, soft=False)
    expected = ref_bce(x.double(), y.double()).mean()
    for labels in (y.long(), y.bool()):
        out = binary_cross_entropy_loss(x, labels)
        assert out.dtype == torch.float32
        torch.testing.assert_close(out.double(), expected, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", [binary_cross_entropy_loss, focal_loss, asymmetric_loss, asymmetric_polynomial_loss])
def test_shape_mismatch_raises(fn):
    with pytest.raises(ValueError, match=r"\(4, 5\).*\(4, 6\)"):
        fn(torch.zeros(4, 5), torch.zeros(4, 6))


def test_bad_weight_shape_raises():
    with pytest.raises(ValueError, match=r"weight.*\(3,\)"):
        binary_cross_entropy_loss(torch.zeros(4, 5), torch.zeros(4, 5), weight=torch.ones(3))
    with pytest.raises(ValueError, match="weight"):
        binary_cross_entropy_loss(torch.zeros(4, 5), torch.zeros(4, 5), weight=torch.ones(2, 4, 5))


@pytest.mark.parametrize("fn", [binary_cross_entropy_loss, focal_loss, asymmetric_loss, asymmetric_polynomial_loss])
def test_unknown_reduction_raises(fn):
    with pytest.raises(ValueError, match=r"'avg'.*'batch_mean'"):
        fn(torch.zeros(2, 3), torch.zeros(2, 3), reduction="avg")


@pytest.mark.parametrize("cls", [BCELoss, FocalLoss, AsymmetricLoss, AsymmetricPolynomialLoss])
def test_module_unknown_reduction_raises(cls):
    with pytest.raises(ValueError, match="elementwise"):
        cls(reduction="elementwise")


@pytest.mark.parametrize(
    "factory,match",
    [
        (lambda: FocalLoss(gamma=-1.0), r"gamma.*-1\.0"),
        (lambda: FocalLoss(alpha=1.5), r"alpha.*1\.5"),
        (lambda: AsymmetricLoss(gamma_neg=-2.0), r"gamma_neg.*-2\.0"),
        (lambda: AsymmetricLoss(clip=1.2), r"clip.*1\.2"),
        (lambda: AsymmetricLoss(eps=0.0), r"eps.*0\.0"),
        (lambda: AsymmetricPolynomialLoss(threshold=-0.1), r"threshold.*-0\.1"),
        (lambda: AsymmetricPolynomialLoss(gamma_pos=-3.0), r"gamma_pos.*-3\.0"),
        (lambda: AsymmetricPolynomialLoss(alpha1="x"), r"alpha1.*'x'"),
        (lambda: asymmetric_loss(torch.zeros(1, 1), torch.zeros(1, 1), clip=2.0), r"clip.*2\.0"),
    ],
)
def test_bad_hyper_parameters_raise(factory, match):
    with pytest.raises(ValueError, match=match):
        factory()


def test_build_loss():
    assert set(LOSSES) == {"bce", "focal", "asl", "apl"}
    m = build_loss("asl", reduction="sum", gamma_neg=3.0, clip=0.1)
    assert type(m) is AsymmetricLoss
    assert (m.gamma_neg, m.gamma_pos, m.clip, m.reduction) == (3.0, 0.0, 0.1, "sum")
    assert type(build_loss("APL")) is AsymmetricPolynomialLoss
    assert build_loss("bce").reduction == "mean"
    with pytest.raises(ValueError, match=r"'focall'.*'bce'.*'focal'.*'asl'.*'apl'"):
        build_loss("focall")
    with pytest.raises(TypeError, match="gamma_neg"):
        build_loss("focal", gamma_neg=2.0)
    with pytest.raises(ValueError, match="median"):
        build_loss("bce", reduction="median")


def test_extra_repr():
    assert "gamma_neg=4.0" in repr(AsymmetricLoss())
    assert "clip=0.05" in repr(AsymmetricLoss())
    assert "alpha2=1.75" in repr(AsymmetricPolynomialLoss())
    assert "threshold=0.05" in repr(AsymmetricPolynomialLoss())
    assert "alpha=None" in repr(FocalLoss())
    assert "reduction='batch_mean'" in repr(BCELoss(reduction="batch_mean"))


# ----------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------


def test_loss_config_defaults():
    assert LOSS_CONFIG_DEFAULTS == {
        "loss": "bce",
        "loss_reduction": "batch_mean",
        "focal_gamma": 2.0,
        "focal_alpha": None,
        "asl_gamma_neg": 4.0,
        "asl_gamma_pos": 0.0,
        "asl_clip": 0.05,
        "asl_eps": 1e-8,
        "asl_focal_no_grad": True,
        "asl_clamp_probabilities": False,
        "apl_gamma_neg": 2.0,
        "apl_gamma_pos": 0.0,
        "apl_threshold": 0.05,
        "apl_alpha1": 0.0,
        "apl_alpha2": 1.75,
        "apl_beta1": 1.0,
        "apl_eps": 1e-8,
        "apl_focal_no_grad": True,
    }


def test_loss_from_config_asl():
    cfg = types.SimpleNamespace(
        loss="asl", loss_reduction="sum", asl_gamma_neg=3.0, asl_clip=0.1, asl_focal_no_grad=False,
        focal_gamma=7.0, apl_gamma_neg=9.0,  # fields of other losses are ignored
    )
    m = loss_from_config(cfg)
    assert type(m) is AsymmetricLoss
    hyper = (m.gamma_neg, m.gamma_pos, m.clip, m.eps, m.focal_no_grad, m.reduction)
    assert hyper == (3.0, 0.0, 0.1, 1e-8, False, "sum")
    x, y = _inputs(seed=14)
    expected = ref_asl(x, y, gamma_neg=3.0, gamma_pos=0.0, clip=0.1).sum()
    torch.testing.assert_close(m(x, y), expected, rtol=1e-10, atol=0)


def test_loss_from_config_apl_and_focal_and_default():
    cfg = types.SimpleNamespace(loss="apl", apl_alpha1=1.0, apl_alpha2=0.5, apl_beta1=2.0, apl_threshold=None)
    m = loss_from_config(cfg)
    assert type(m) is AsymmetricPolynomialLoss
    assert (m.alpha1, m.alpha2, m.beta1, m.threshold, m.gamma_neg, m.gamma_pos) == (1.0, 0.5, 2.0, None, 2.0, 0.0)
    assert m.reduction == "batch_mean"
    x, y = _inputs(seed=15)
    expected = ref_apl(x, y, alpha1=1.0, alpha2=0.5, beta1=2.0, threshold=None).sum(dim=1).mean()
    torch.testing.assert_close(m(x, y), expected, rtol=1e-10, atol=0)

    f = loss_from_config(types.SimpleNamespace(loss="focal", loss_reduction="mean", focal_alpha=0.25))
    assert type(f) is FocalLoss
    assert (f.gamma, f.alpha, f.reduction) == (2.0, 0.25, "mean")

    b = loss_from_config(types.SimpleNamespace())
    assert type(b) is BCELoss
    assert b.reduction == "batch_mean"

    with pytest.raises(ValueError, match="'nope'"):
        loss_from_config(types.SimpleNamespace(loss="nope"))


# ----------------------------------------------------------------------------------------------------------
# Ignored labels (label < 0)
# ----------------------------------------------------------------------------------------------------------

MODULE_OF = {
    binary_cross_entropy_loss: BCELoss,
    focal_loss: FocalLoss,
    asymmetric_loss: AsymmetricLoss,
    asymmetric_polynomial_loss: AsymmetricPolynomialLoss,
}
CONFIG_KEY_OF = {binary_cross_entropy_loss: "bce", focal_loss: "focal", asymmetric_loss: "asl",
                 asymmetric_polynomial_loss: "apl"}
# (row, column) of the ignored entries; row 0 also holds soft labels 0.3 / 0.7 / 0.5 in columns 0-2.
IGNORED = [(0, 3), (1, 0), (1, 4), (3, 2)]


def _with_ignored(y, value=-1.0):
    y = y.clone()
    for i, j in IGNORED:
        y[i, j] = value
    return y


def _per_element_reference(ref, x, y, weight, hyper):
    """The element-wise loss written out entry by entry: 0 where the label is < 0, else the literal formula times
    the weight (the weight is broadcast by hand)."""
    out = torch.zeros_like(x, dtype=torch.float64)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            if y[i, j] < 0:
                continue
            w = 1.0 if weight is None else (weight[j] if weight.dim() == 1 else weight[i, j])
            out[i, j] = ref(x[i, j].double(), y[i, j].double(), **hyper) * w
    return out


@pytest.mark.parametrize("weight_kind", [None, "full", "per_class"])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_negative_labels_are_ignored(case, reduction, weight_kind):
    fn, ref, hyper = CASES[case]
    x, y = _inputs(seed=20)
    weight = {
        None: None,
        "full": torch.rand(4, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64) + 0.5,
        "per_class": torch.tensor([0.5, 1.0, 2.0, 1.5, 0.25], dtype=torch.float64),
    }[weight_kind]
    y_ignored = _with_ignored(y)
    expected = ref_reduce(_per_element_reference(ref, x, y_ignored, weight, hyper), reduction)
    out = fn(x, y_ignored, weight=weight, reduction=reduction, **hyper)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
    # The same as setting those labels to 0 and their weight to 0 (what compute_loss used to do by hand).
    y_zeroed = _with_ignored(y, 0.0)
    mask = (y_ignored >= 0).double()
    masked_weight = mask if weight is None else weight * mask
    torch.testing.assert_close(out, fn(x, y_zeroed, weight=masked_weight, reduction=reduction, **hyper))
    # And the -1 entries really are treated differently from labels (the check can tell the two apart).
    if reduction != "none":
        assert not torch.allclose(out, fn(x, y_zeroed, weight=weight, reduction=reduction, **hyper))


def test_negative_label_example_asl():
    # One element, label -1, logit 2: ignored -> exactly 0 (it used to give a negative loss). Next to it a label-0
    # element with logit 0: p_m = 0.45, 0.45^4 * -log(0.55) = 0.0245151 (hand value of test_hand_computed_values);
    # "mean" divides by both elements, "batch_mean" by the one sample.
    x = torch.tensor([[2.0, 0.0]])
    y = torch.tensor([[-1.0, 0.0]])
    assert asymmetric_loss(x, y, reduction="none").tolist()[0][0] == 0.0
    assert asymmetric_loss(x, y, reduction="mean").item() == pytest.approx(0.02451505351223516 / 2, rel=1e-6)
    assert asymmetric_loss(x, y, reduction="batch_mean").item() == pytest.approx(0.02451505351223516, rel=1e-6)


@pytest.mark.parametrize("case", list(ALL_LOSSES))
def test_ignored_entries_get_zero_gradient(case):
    fn, hyper = ALL_LOSSES[case]
    x, y = _inputs(seed=21, dtype=torch.float32)
    y_ignored = _with_ignored(y)
    # Extreme logits on ignored entries must not leak NaN / inf into the value or the gradients.
    for (i, j), logit in zip(IGNORED, [1e4, -1e4, 37.0, -50.0]):
        x[i, j] = logit
    x1 = x.clone().requires_grad_(True)
    out = fn(x1, y_ignored, reduction="batch_mean", **hyper)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(x1.grad).all()
    for i, j in IGNORED:
        assert x1.grad[i, j].item() == 0.0
    # Other entries keep the gradient of the unmasked loss; the value does not depend on the ignored logits.
    x2 = x.clone().requires_grad_(True)
    fn(x2, _with_ignored(y, 0.0), reduction="batch_mean", **hyper).backward()
    keep = (y_ignored >= 0).float()
    torch.testing.assert_close(x1.grad, x2.grad * keep)
    x3 = x.clone()
    for i, j in IGNORED:
        x3[i, j] = 0.0
    assert fn(x3, y_ignored, reduction="batch_mean", **hyper).item() == out.item()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_negative_labels_function_module_config_agree(case, reduction):
    fn, ref, hyper = CASES[case]
    x, y = _inputs(seed=22, dtype=torch.float32)
    y_ignored = _with_ignored(y)
    w = torch.rand(5, generator=torch.Generator().manual_seed(4))
    expected = fn(x, y_ignored, weight=w, reduction=reduction, **hyper)
    key = CONFIG_KEY_OF[fn]
    config = types.SimpleNamespace(loss=key, loss_reduction=reduction, **{f"{key}_{k}": v for k, v in hyper.items()})
    modules = [
        MODULE_OF[fn](reduction=reduction, **hyper),
        build_loss(key, reduction=reduction, **hyper),
        loss_from_config(config),
    ]
    for module in modules:
        assert torch.equal(module(x, y_ignored, w), expected)
    # independent value check (float64 per-element reference)
    ref_value = ref_reduce(_per_element_reference(ref, x.double(), y_ignored.double(), w.double(), hyper), reduction)
    torch.testing.assert_close(expected.double(), ref_value, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(ALL_LOSSES))
def test_fully_ignored_batch_is_zero(case, reduction):
    fn, hyper = ALL_LOSSES[case]
    x = torch.tensor([[1e4, -1e4, 0.0], [50.0, -50.0, 3.0]], requires_grad=True)
    y = torch.full((2, 3), -1.0)
    out = fn(x, y, reduction=reduction, **hyper)
    assert torch.equal(out, torch.zeros_like(out))
    out.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize("case", list(CASES))
def test_minus_100_and_integer_labels_like_minus_1(case):
    fn, ref, hyper = CASES[case]
    x, y = _inputs(seed=23, dtype=torch.float32, soft=False)
    minus_1 = fn(x, _with_ignored(y, -1.0), reduction="none", **hyper)
    assert torch.equal(fn(x, _with_ignored(y, -100.0), reduction="none", **hyper), minus_1)
    assert torch.equal(fn(x, _with_ignored(y, -1.0).long(), reduction="none", **hyper), minus_1)
    assert torch.equal(fn(x, _with_ignored(y, -100.0).long(), reduction="none", **hyper), minus_1)


@pytest.mark.parametrize("logits_dtype", [torch.float32, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("name", list(LOSSES))
def test_direct_call_equals_former_compute_loss(name, logits_dtype):
    # MLICPreTrainedModel.compute_loss masked labels < 0 itself before calling the loss. That code, written out here,
    # must give bit-identical values and gradients to the direct call, so compute_loss can simply call the loss.
    loss_fn = loss_from_config(types.SimpleNamespace(loss=name))  # default reduction "batch_mean"
    x, y = _inputs(seed=24, dtype=torch.float32)
    x = x.to(logits_dtype)
    labels = _with_ignored(y)

    def former_compute_loss(logits, labels):
        labels = labels.to(device=logits.device, dtype=torch.float32)
        weight = None
        if (labels < 0).any():
            weight = (labels >= 0).float()
            labels = labels.clamp(min=0)
        return loss_fn(logits, labels, weight=weight)

    for lab in (labels, y):  # with and without ignored entries
        x1 = x.clone().requires_grad_(True)
        x2 = x.clone().requires_grad_(True)
        old, new = former_compute_loss(x1, lab), loss_fn(x2, lab)
        assert torch.equal(old, new)
        old.backward()
        new.backward()
        assert torch.equal(x1.grad, x2.grad)


# ----------------------------------------------------------------------------------------------------------
# Registry
# ----------------------------------------------------------------------------------------------------------


@pytest.fixture
def restore_loss_registry():
    """Puts the registry (and the config defaults derived from it) back as it was, whatever the test did."""
    saved_losses, saved_defaults = dict(LOSSES), dict(LOSS_CONFIG_DEFAULTS)
    yield
    LOSSES.clear()
    LOSSES.update(saved_losses)
    LOSS_CONFIG_DEFAULTS.clear()
    LOSS_CONFIG_DEFAULTS.update(saved_defaults)


def scaled_bce_loss(logits, labels, *, weight=None, reduction="mean", scale=1.0):
    """A scratch loss for the registry tests: ``scale`` times the BCE."""
    return scale * binary_cross_entropy_loss(logits, labels, weight=weight, reduction=reduction)


class ScaledBCELoss(nn.Module):
    def __init__(self, scale=1.0, reduction="mean"):
        super().__init__()
        self.scale, self.reduction = scale, reduction

    def forward(self, logits, labels, weight=None):
        return scaled_bce_loss(logits, labels, weight=weight, reduction=self.reduction, scale=self.scale)


def _scratch_spec(**changes):
    fields = dict(name="scaled_bce", function=scaled_bce_loss, module=ScaledBCELoss, config_prefix="sbce",
                  defaults={"scale": 1.0}, display_name="Scaled BCE (registry test)")
    return LossSpec(**{**fields, **changes})


def test_builtin_registry():
    assert loss_names() == ("bce", "focal", "asl", "apl")
    assert {name: spec.module for name, spec in LOSSES.items()} == {
        "bce": BCELoss, "focal": FocalLoss, "asl": AsymmetricLoss, "apl": AsymmetricPolynomialLoss}
    assert LOSSES["asl"].function is asymmetric_loss and LOSSES["asl"].config_prefix == "asl"
    assert LOSSES["apl"].display_name == "Asymmetric polynomial loss, APL (Huang et al., 2023)"
    assert get_loss_spec("ASL") is LOSSES["asl"]
    assert LOSSES["asl"].config_fields["asl_clip"] == "clip"
    assert loss_help() == (
        "Loss, one of: bce = Binary cross-entropy; focal = Focal loss (Lin et al., 2017); asl = Asymmetric loss, ASL "
        "(Ridnik et al., 2021); apl = Asymmetric polynomial loss, APL (Huang et al., 2023)."
    )


def test_a_loss_registered_in_one_place_is_known_everywhere(restore_loss_registry, tmp_path):
    from mlic_hf import MLICConfig
    from mlic_hf.configuration_utils import check_config_keys
    from mlic_hf.hub import card

    with pytest.raises(ValueError, match=r"loss='scaled_bce' is not one of \('bce', 'focal', 'asl', 'apl'\)"):
        MLICConfig(loss="scaled_bce")
    register_loss(_scratch_spec())  # the only edit
    assert LOSS_CONFIG_DEFAULTS["sbce_scale"] == 1.0
    # a config accepts the name and its prefixed field (also as --config_overrides), and keeps them when saved
    config = MLICConfig(loss="scaled_bce", sbce_scale=3.0, num_labels=5)
    check_config_keys(MLICConfig, {"loss": "scaled_bce", "sbce_scale": 3.0}, source="config_overrides")
    config.save_pretrained(tmp_path)
    assert MLICConfig.from_pretrained(tmp_path).sbce_scale == 3.0
    # the loss is built with the config's value and the config's reduction
    module = loss_from_config(config)
    assert type(module) is ScaledBCELoss and (module.scale, module.reduction) == (3.0, "batch_mean")
    x, y = _inputs(seed=30)
    torch.testing.assert_close(module(x, y), 3.0 * ref_bce(x, y).sum(dim=1).mean(), rtol=1e-10, atol=0)
    assert loss_from_config({"loss": "scaled_bce"}).scale == 1.0  # a missing field means the spec's default
    assert build_loss("Scaled_BCE", scale=2.0).scale == 2.0
    # the model card names it by its display name and lists its settings
    name, rows = card._loss_info(config)
    assert name == "Scaled BCE (registry test)"
    assert rows == [("`loss`", "`scaled_bce`"), ("`loss_reduction`", "`batch_mean`"), ("`sbce_scale`", "`3.0`")]
    # the --loss help lists it, after the built-in losses
    assert loss_names() == ("bce", "focal", "asl", "apl", "scaled_bce")
    assert loss_help().endswith("; scaled_bce = Scaled BCE (registry test).")


def test_the_registry_is_restored(restore_loss_registry):
    register_loss(_scratch_spec())
    assert "sbce_scale" in LOSS_CONFIG_DEFAULTS
    assert unregister_loss("scaled_bce").name == "scaled_bce"
    assert loss_names() == ("bce", "focal", "asl", "apl") and "sbce_scale" not in LOSS_CONFIG_DEFAULTS
    with pytest.raises(ValueError, match=r"Unknown loss name 'scaled_bce'; valid names are 'bce', 'focal'"):
        unregister_loss("scaled_bce")
    with pytest.raises(ValueError, match="'bce' is the default `loss`"):
        unregister_loss("bce")


def test_register_loss_rejects_clashes(restore_loss_registry):
    register_loss(_scratch_spec())
    with pytest.raises(ValueError, match=r"'scaled_bce' is already registered; pass replace=True"):
        register_loss(_scratch_spec())
    replacement = register_loss(_scratch_spec(display_name="Scaled BCE v2"), replace=True)
    assert LOSSES["scaled_bce"] is replacement and loss_names()[-1] == "scaled_bce"
    with pytest.raises(ValueError, match=r"config field 'focal_gamma' .* already a field of loss 'focal'"):
        register_loss(LossSpec("focal_v2", focal_loss, FocalLoss, config_prefix="focal", defaults={"gamma": 1.0}))
    with pytest.raises(ValueError, match="register_loss expects a LossSpec, got str"):
        register_loss("asl")
    assert loss_names() == ("bce", "focal", "asl", "apl", "scaled_bce")  # nothing registered by the failure


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"name": "Scaled"}, r"`name` must be a non-empty lower-case string, got 'Scaled'"),
        ({"name": ""}, r"`name` must be a non-empty lower-case string"),
        ({"function": None}, r"'scaled_bce': `function` must be callable, got None"),
        ({"module": scaled_bce_loss}, r"`module` must be an nn.Module subclass"),
        ({"config_prefix": "s-bce"}, r"`config_prefix` must be a Python identifier, got 's-bce'"),
        ({"defaults": [("scale", 1.0)]}, r"`defaults` must be a mapping hyper-parameter -> default, got list"),
        ({"defaults": {"weight": 1.0}}, r"hyper-parameter 'weight' of `defaults` must be an identifier other than"),
        ({"defaults": {"reduction": "sum"}}, r"hyper-parameter 'reduction' of `defaults` must be an identifier"),
        ({"defaults": {"gamma": 1.0}}, r"`function` does not accept the keyword argument\(s\) 'gamma'"),
        ({"display_name": ""}, r"`display_name` must be a non-empty string"),
    ],
)
def test_bad_loss_spec_raises(changes, match):
    with pytest.raises(ValueError, match=match):
        _scratch_spec(**changes)


def test_loss_spec_defaults_are_read_only_and_derived_fields_default_to_the_name():
    spec = LossSpec("scaled_bce", scaled_bce_loss, ScaledBCELoss, defaults={"scale": 2.0})
    assert (spec.config_prefix, spec.display_name) == ("scaled_bce", "scaled_bce")
    assert spec.config_defaults == {"scaled_bce_scale": 2.0}
    with pytest.raises(TypeError):
        spec.defaults["scale"] = 3.0
    assert hash(spec) == hash(LossSpec("scaled_bce", scaled_bce_loss, ScaledBCELoss, defaults={"scale": 2.0}))


_CALL_ARGUMENTS = ("logits", "labels", "weight", "reduction")


@pytest.mark.parametrize("name", list(LOSSES))
def test_spec_defaults_are_the_keyword_defaults(name):
    spec = LOSSES[name]
    for target in (spec.function, spec.module):
        parameters = inspect.signature(target).parameters.values()
        keyword_defaults = {p.name: p.default for p in parameters if p.name not in _CALL_ARGUMENTS}
        assert keyword_defaults == dict(spec.defaults), target
        assert list(keyword_defaults) == list(spec.defaults), target  # same order as the signature
    assert {field: LOSS_CONFIG_DEFAULTS[field] for field in spec.config_fields} == spec.config_defaults


def test_config_fields_default_to_the_registry():
    import dataclasses

    from mlic_hf import MLICConfig

    defaults = {f.name: f.default for f in dataclasses.fields(MLICConfig)}
    assert {field: defaults[field] for field in LOSS_CONFIG_DEFAULTS} == LOSS_CONFIG_DEFAULTS


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", list(LOSSES))
def test_spec_module_computes_its_function(name, reduction):
    spec = LOSSES[name]
    x, y = _inputs(seed=31)
    labels = _with_ignored(y)
    weight = torch.linspace(0.5, 1.5, x.shape[1], dtype=torch.float64)
    expected = spec.function(x, labels, weight=weight, reduction=reduction)
    assert torch.equal(spec.module(reduction=reduction)(x, labels, weight), expected)
    assert torch.equal(build_loss(name, reduction=reduction)(x, labels, weight), expected)
