"""Multi-label classification losses.

Every loss is available both as a pure function
``f(logits, labels, *, weight=None, reduction="mean", **hyper)`` and as an ``nn.Module`` wrapper whose
``__init__`` takes the hyper-parameters and whose ``forward(logits, labels, weight=None)`` evaluates the
loss:

=================================  ================================  ======================================
function                           module                            reference
=================================  ================================  ======================================
:func:`binary_cross_entropy_loss`  :class:`BCELoss`                  sigmoid binary cross-entropy
:func:`focal_loss`                 :class:`FocalLoss`                Lin et al., ICCV 2017 (sigmoid form)
:func:`asymmetric_loss`            :class:`AsymmetricLoss`           ASL, Ridnik et al., ICCV 2021
:func:`asymmetric_polynomial_loss` :class:`AsymmetricPolynomialLoss` APL, Huang et al., ICASSP 2023
=================================  ================================  ======================================

Inputs
    ``logits`` are raw scores of any shape, typically ``(batch_size, num_labels)``. ``labels`` must have the
    same shape and hold multi-hot targets; soft labels in ``[0, 1]`` are allowed (the formulas are applied
    literally with ``y`` and ``1 - y``). ``weight`` is an optional tensor broadcastable to the logits' shape
    (e.g. ``(B, C)`` or ``(C,)``) that multiplies the element-wise loss before the reduction; a weight of 0
    ignores an element.

Ignored labels
    Every entry with ``label < 0`` (e.g. ``-1`` for the "difficult" objects of Pascal VOC, or ``-100`` for a
    partially annotated data set) is ignored, by every function and module here, in one place
    (:func:`_prepare`): its weight is 0 (multiplied with the user ``weight``, if any) and its label is
    clamped to 0 for the computation, so it contributes exactly 0 to the loss, exactly 0 to the gradient
    of its logit, and no NaN / inf whatever its logit. A call with labels ``-1`` is therefore identical to
    the call with those labels set to 0 and ``weight`` multiplied by the mask ``labels >= 0``. As for any
    zero weight, an ignored entry still counts in the denominator of ``"mean"`` (see Reductions); with
    every entry ignored the loss is 0.

Precision
    Losses are computed from logits in *at least* float32: half / bfloat16 (and integer / boolean labels or
    weights) are upcast to float32, float64 inputs are kept in float64 (so ``torch.autograd.gradcheck``
    works). The returned loss has that compute dtype. ``log p`` and ``log(1 - p)`` are evaluated as
    ``F.logsigmoid(x)`` and ``F.logsigmoid(-x)``; ``eps`` only clamps the argument of a logarithm of a
    *shifted* probability (``log(1 - p_m)`` in ASL / APL), so logits of +-1e4 give finite losses and
    gradients.

Reductions (argument ``reduction``, implemented once in :func:`reduce_loss`)

    ==================  =======================================  ==============================================
    ``reduction``       result                                   corresponds to
    ==================  =======================================  ==============================================
    ``"none"``          element-wise loss, same shape as logits  --
    ``"sum"``           sum over batch and labels                ``-loss.sum()`` of the official ASL / APL code
    ``"mean"``          mean over all ``B * C`` elements         ``nn.BCEWithLogitsLoss`` default; equivalently
                                                                 the mean over labels then over the batch
                                                                 (APL / M2 eq. 8 divides by ``C``)
    ``"batch_mean"``    sum over labels, mean over batch         the "probabilistic" ResNet-101 baseline's BCE
                                                                 (eq. 2: ``-1/N sum_i sum_j ...``)
    ==================  =======================================  ==============================================

    The normalisation ignores ``weight`` (and the ``label < 0`` mask): a masked element still counts in the
    denominator of ``"mean"``, exactly like ``nn.BCEWithLogitsLoss(weight=...)``. For inputs with more than
    two dimensions, ``"batch_mean"`` sums over every dimension but the first.

Registry
    Each loss is declared once, as a :class:`LossSpec` (name, function, module, config prefix, hyper-parameter
    defaults, display name) passed to :func:`register_loss`. :data:`LOSSES` maps the short names (built in:
    ``"bce"``, ``"focal"``, ``"asl"``, ``"apl"``, in this order) to the specs, and everything else reads it:
    :func:`build_loss` instantiates a loss by name; :func:`loss_from_config` builds one from the flat config
    attributes ``loss``, ``loss_reduction`` and ``f"{config_prefix}_{param}"`` (e.g. ``asl_clip``), whose
    defaults :data:`LOSS_CONFIG_DEFAULTS` lists; ``MLICConfig`` accepts the names of :func:`loss_names` and the
    reductions of :data:`REDUCTIONS`; model cards show the display name and the CLI's ``--loss`` help is
    :func:`loss_help`. A loss of one's own is therefore one call, e.g.::

        register_loss(LossSpec("my_loss", my_loss_fn, MyLoss, defaults={"scale": 1.0}, display_name="My loss"))

    after which ``MLICConfig(loss="my_loss", my_loss_scale=2.0)`` trains with it (the call must run before a
    config naming the loss is built or loaded).
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn


__all__ = [
    "REDUCTIONS",
    "LOSSES",
    "LOSS_CONFIG_DEFAULTS",
    "reduce_loss",
    "binary_cross_entropy_loss",
    "focal_loss",
    "asymmetric_loss",
    "asymmetric_polynomial_loss",
    "BCELoss",
    "FocalLoss",
    "AsymmetricLoss",
    "AsymmetricPolynomialLoss",
    "LossSpec",
    "register_loss",
    "unregister_loss",
    "get_loss_spec",
    "loss_names",
    "loss_help",
    "build_loss",
    "loss_from_config",
]

REDUCTIONS: tuple[str, ...] = ("none", "sum", "mean", "batch_mean")
"""Valid values of the ``reduction`` argument."""

# --------------------------------------------------------------------------------------------------------
# Default hyper-parameters
# --------------------------------------------------------------------------------------------------------

# Each dict is the single source of a loss's defaults: the keyword defaults of its function and module, and the
# `defaults` of its LossSpec in the registry (hence the config defaults).

# Focal loss (Lin et al. 2017): gamma = 2; alpha = None means no alpha-balancing (both sides weighted by 1).
FOCAL_DEFAULTS: dict[str, Any] = {"gamma": 2.0, "alpha": None}

# ASL training defaults of the paper / official code (Ridnik et al. 2021).
ASL_DEFAULTS: dict[str, Any] = {
    "gamma_neg": 4.0,
    "gamma_pos": 0.0,
    "clip": 0.05,
    "eps": 1e-8,
    "focal_no_grad": True,
    "clamp_probabilities": False,
}

# APL: gamma_pos = 0, gamma_neg = 2 as in the paper; threshold = the ASL clip of the official code; alpha1,
# alpha2 and beta1 are the effective values of the official code (LUMIA-Group/APL, APLloss.py), whose
# epsilon_pos = 1.0, epsilon_pos_pow = -2.5, epsilon_neg = 0.0 map to
#   alpha1 = 1 - epsilon_pos = 0.0,  alpha2 = 1/2 - epsilon_pos_pow / 2 = 1.75,  beta1 = 1.0.
APL_DEFAULTS: dict[str, Any] = {
    "gamma_pos": 0.0,
    "gamma_neg": 2.0,
    "threshold": 0.05,
    "alpha1": 0.0,
    "alpha2": 1.75,
    "beta1": 1.0,
    "eps": 1e-8,
    "focal_no_grad": True,
}


# --------------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------------


def _validate_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"Unknown `reduction`={reduction!r}; valid values are {', '.join(map(repr, REDUCTIONS))}.")


def reduce_loss(loss: torch.Tensor, reduction: str) -> torch.Tensor:
    """Reduces an element-wise loss of shape ``(B, C, ...)``.

    Args:
        loss (`torch.Tensor`): Element-wise loss, first dimension = batch.
        reduction (`str`): One of ``"none"`` (return ``loss`` unchanged), ``"sum"`` (sum of all elements),
            ``"mean"`` (mean of all elements) or ``"batch_mean"`` (sum over all dimensions but the first, then
            mean over the first one).

    Returns:
        `torch.Tensor`: The reduced loss (a scalar unless ``reduction="none"``).

    Raises:
        ValueError: If ``reduction`` is not one of :data:`REDUCTIONS`.
    """
    _validate_reduction(reduction)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    if reduction == "mean":
        return loss.mean()
    # batch_mean
    if loss.dim() == 0:
        return loss
    return loss.sum() / loss.shape[0]


def _compute_dtype(logits: torch.Tensor) -> torch.dtype:
    """float64 stays float64; everything else (half, bfloat16, float32, ints) is computed in float32."""
    return torch.float64 if logits.dtype == torch.float64 else torch.float32


def _prepare(
    logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None, reduction: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Validates the inputs, casts them to the compute dtype and applies the ``label < 0`` ignore rule.

    This is the single place where ignored labels are handled: entries with ``labels < 0`` get weight 0
    (times the user ``weight``) and label 0, so the loss formulas never see a negative label. The mask is
    applied unconditionally (no ``.any()`` host sync); for labels ``>= 0`` it multiplies by exactly 1.
    """
    if not isinstance(logits, torch.Tensor):
        raise ValueError(f"`logits` must be a torch.Tensor, got {type(logits).__name__}.")
    if not isinstance(labels, torch.Tensor):
        raise ValueError(f"`labels` must be a torch.Tensor, got {type(labels).__name__}.")
    if logits.shape != labels.shape:
        raise ValueError(
            f"`logits` and `labels` must have the same shape, got logits shape {tuple(logits.shape)} and labels "
            f"shape {tuple(labels.shape)}."
        )
    _validate_reduction(reduction)
    dtype = _compute_dtype(logits)
    logits = logits.to(dtype)
    labels = labels.to(device=logits.device, dtype=dtype)
    if weight is not None:
        if not isinstance(weight, torch.Tensor):
            weight = torch.as_tensor(weight)
        try:
            broadcast = torch.broadcast_shapes(weight.shape, logits.shape)
        except RuntimeError:
            broadcast = None
        if broadcast != logits.shape:
            raise ValueError(
                f"`weight` of shape {tuple(weight.shape)} is not broadcastable to the logits shape "
                f"{tuple(logits.shape)}."
            )
        weight = weight.to(device=logits.device, dtype=dtype)
    # Ignore rule (module docstring, "Ignored labels"): weight 0 and label 0 where label < 0.
    # (A NaN label is not < 0: it is kept and propagates, as before.)
    ignored = labels < 0
    labels = labels.masked_fill(ignored, 0.0)
    mask = (~ignored).to(dtype)
    weight = mask if weight is None else weight * mask
    return logits, labels, weight


def _finish(loss: torch.Tensor, weight: torch.Tensor | None, reduction: str) -> torch.Tensor:
    if weight is not None:
        loss = loss * weight
    return reduce_loss(loss, reduction)


def _check_non_negative(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"`{name}` must be a non-negative number, got {value!r}.")


def _check_probability_margin(name: str, value: float | None) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be None or a number in [0, 1), got {value!r}.")


def _check_eps(value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 < value < 1.0:
        raise ValueError(f"`eps` must be a number in (0, 1), got {value!r}.")


def _check_number(name: str, value: float) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise ValueError(f"`{name}` must be a number, got {value!r}.")


def _check_focal(gamma: float, alpha: float | None) -> None:
    _check_non_negative("gamma", gamma)
    if alpha is not None and (
        not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not 0.0 <= alpha <= 1.0
    ):
        raise ValueError(f"`alpha` must be None or a number in [0, 1], got {alpha!r}.")


def _check_asymmetric(gamma_neg: float, gamma_pos: float, margin_name: str, margin: float | None, eps: float) -> None:
    _check_non_negative("gamma_neg", gamma_neg)
    _check_non_negative("gamma_pos", gamma_pos)
    _check_probability_margin(margin_name, margin)
    _check_eps(eps)


def _pow_log(log_base: torch.Tensor, gamma: float) -> torch.Tensor:
    """``exp(gamma * log_base)``, i.e. ``base ** gamma`` from a (stable) log of the base; 1 when gamma == 0."""
    if gamma == 0:
        return torch.ones_like(log_base)
    return torch.exp(gamma * log_base)


def _safe_pow(base: torch.Tensor, gamma: float) -> torch.Tensor:
    """``base ** gamma`` for ``base >= 0`` with a finite gradient at ``base == 0`` for any ``gamma >= 0``."""
    if gamma == 0:
        return torch.ones_like(base)
    positive = base > 0
    safe_base = torch.where(positive, base, torch.ones_like(base))
    return torch.where(positive, safe_base.pow(gamma), torch.zeros_like(base))


def _asymmetric_terms(
    logits: torch.Tensor, margin: float | None, eps: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Shared pieces of ASL / APL.

    Returns ``(log_p, one_minus_p, p_m, log_one_minus_p_m)`` where ``p_m = max(p - margin, 0)``.
    """
    log_p = F.logsigmoid(logits)
    one_minus_p = torch.sigmoid(-logits)  # accurate 1 - p, also for large positive logits
    if margin is None or margin == 0:
        p_m = torch.sigmoid(logits)
        log_one_minus_p_m = F.logsigmoid(-logits)
    else:
        p_m = (torch.sigmoid(logits) - margin).clamp(min=0)
        # 1 - p_m = min(1 - p + margin, 1) >= margin, so the eps clamp only guards pathological margins.
        log_one_minus_p_m = torch.log((one_minus_p + margin).clamp(max=1).clamp(min=eps))
    return log_p, one_minus_p, p_m, log_one_minus_p_m


def _asymmetric_focusing(
    logits: torch.Tensor, margin: float | None, gamma_pos: float, gamma_neg: float, focal_no_grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Focusing weights ``(1 - p) ** gamma_pos`` and ``p_m ** gamma_neg``.

    With ``focal_no_grad=True`` they are computed from detached logits, i.e. treated as constants by autograd.
    This is scoped: unlike the official ASL / APL code (``torch.set_grad_enabled(False)`` ...
    ``torch.set_grad_enabled(True)``), the global grad mode is never touched, so calling the loss under
    ``torch.no_grad()`` (e.g. during ``Trainer.evaluate``) builds no graph.
    """
    x = logits.detach() if focal_no_grad else logits
    w_pos = _pow_log(F.logsigmoid(-x), gamma_pos)
    if margin is None or margin == 0:
        w_neg = _pow_log(F.logsigmoid(x), gamma_neg)
    else:
        w_neg = _safe_pow((torch.sigmoid(x) - margin).clamp(min=0), gamma_neg)
    return w_pos, w_neg


# --------------------------------------------------------------------------------------------------------
# Functional API
# --------------------------------------------------------------------------------------------------------


def binary_cross_entropy_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Sigmoid binary cross-entropy, :math:`L = -[y \log p + (1 - y) \log(1 - p)]` with ``p = sigmoid(logits)``.

    Args:
        logits (`torch.Tensor`): Raw scores, shape ``(B, C)`` (any shape is accepted).
        labels (`torch.Tensor`): Multi-hot (or soft, in ``[0, 1]``) targets of the same shape. Entries
            ``< 0`` (e.g. ``-1`` for VOC "difficult", ``-100``) are ignored: weight 0 (times ``weight``), zero
            gradient to their logits, still counted in the ``"mean"`` denominator (see "Ignored labels" in the
            module docstring).
        weight (`torch.Tensor`, *optional*): Per-element weights broadcastable to ``logits.shape``; 0 ignores
            an element.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.

    Returns:
        `torch.Tensor`: The loss in float32 (float64 if ``logits`` is float64).
    """
    logits, labels, weight = _prepare(logits, labels, weight, reduction)
    loss = -(labels * F.logsigmoid(logits) + (1 - labels) * F.logsigmoid(-logits))
    return _finish(loss, weight, reduction)


def focal_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    gamma: float = FOCAL_DEFAULTS["gamma"],
    alpha: float | None = FOCAL_DEFAULTS["alpha"],
) -> torch.Tensor:
    r"""Sigmoid focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017).

    .. math::
        L = -[\alpha\, y (1 - p)^\gamma \log p + (1 - \alpha)(1 - y)\, p^\gamma \log(1 - p)]

    Args:
        logits (`torch.Tensor`): Raw scores, shape ``(B, C)``.
        labels (`torch.Tensor`): Multi-hot (or soft, in ``[0, 1]``) targets of the same shape. Entries
            ``< 0`` (e.g. ``-1`` for VOC "difficult", ``-100``) are ignored: weight 0 (times ``weight``), zero
            gradient to their logits, still counted in the ``"mean"`` denominator (see "Ignored labels" in the
            module docstring).
        weight (`torch.Tensor`, *optional*): Per-element weights broadcastable to ``logits.shape``.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
        gamma (`float`, *optional*, defaults to 2.0): Focusing parameter (``gamma=0`` gives BCE).
        alpha (`float`, *optional*): Weight of the positive term in ``[0, 1]`` (``1 - alpha`` for the negative
            term). ``None`` disables alpha-balancing (both terms weighted by 1).

    Returns:
        `torch.Tensor`: The loss in float32 (float64 if ``logits`` is float64).
    """
    _check_focal(gamma, alpha)
    logits, labels, weight = _prepare(logits, labels, weight, reduction)
    log_p = F.logsigmoid(logits)
    log_1mp = F.logsigmoid(-logits)
    # (1 - p)^gamma and p^gamma from the stable logs (finite gradients for any gamma >= 0).
    pos = labels * _pow_log(log_1mp, gamma) * log_p
    neg = (1 - labels) * _pow_log(log_p, gamma) * log_1mp
    if alpha is not None:
        pos = alpha * pos
        neg = (1 - alpha) * neg
    return _finish(-(pos + neg), weight, reduction)


def asymmetric_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    gamma_neg: float = ASL_DEFAULTS["gamma_neg"],
    gamma_pos: float = ASL_DEFAULTS["gamma_pos"],
    clip: float | None = ASL_DEFAULTS["clip"],
    eps: float = ASL_DEFAULTS["eps"],
    focal_no_grad: bool = ASL_DEFAULTS["focal_no_grad"],
    clamp_probabilities: bool = ASL_DEFAULTS["clamp_probabilities"],
) -> torch.Tensor:
    r"""Asymmetric loss (ASL, Ridnik et al., "Asymmetric Loss For Multi-Label Classification", ICCV 2021).

    With ``p = sigmoid(logits)`` and the shifted negative probability ``p_m = max(p - clip, 0)``:

    .. math::
        L_+ = (1 - p)^{\gamma_+} \log p, \quad L_- = p_m^{\gamma_-} \log(1 - p_m), \quad
        L = -(y L_+ + (1 - y) L_-)

    For hard labels this is the official ASL code (up to its ``eps`` clamp of ``log p``, which we replace by
    the exact ``logsigmoid``); for soft labels the two terms are weighted by ``y`` and ``1 - y`` literally.

    Args:
        logits (`torch.Tensor`): Raw scores, shape ``(B, C)``.
        labels (`torch.Tensor`): Multi-hot (or soft, in ``[0, 1]``) targets of the same shape. Entries
            ``< 0`` (e.g. ``-1`` for VOC "difficult", ``-100``) are ignored: weight 0 (times ``weight``), zero
            gradient to their logits, still counted in the ``"mean"`` denominator (see "Ignored labels" in the
            module docstring).
        weight (`torch.Tensor`, *optional*): Per-element weights broadcastable to ``logits.shape``.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
        gamma_neg (`float`, *optional*, defaults to 4.0): Focusing parameter of the negatives.
        gamma_pos (`float`, *optional*, defaults to 0.0): Focusing parameter of the positives.
        clip (`float`, *optional*, defaults to 0.05): Probability margin ``m`` in ``[0, 1)``; ``0`` or ``None``
            disables the shift.
        eps (`float`, *optional*, defaults to 1e-8): Lower clamp of ``1 - p_m`` inside the log.
        focal_no_grad (`bool`, *optional*, defaults to `True`): Treat the focusing weights ``(1 - p)^gamma_pos``
            and ``p_m^gamma_neg`` as constants (no gradient through them), as the official code does. Scoped:
            the global grad mode is never changed.
        clamp_probabilities (`bool`, *optional*, defaults to `False`): Compute the logs as the official ASL code
            and the ML-VPT authors' copy of it do (``AsymmetricLossOptimized``, ``losses/aslloss.py:150-151`` of
            github.com/yu-gi-oh-leilei/ML-VPT): ``log(max(p, eps))`` and ``log(max(1 - p_m, eps))``, instead of the
            exact ``logsigmoid``. With their ``eps=1e-5`` an element's loss is capped at ``-log(1e-5) ≈ 11.5`` and a
            label beyond the clamp gets no gradient.

    Returns:
        `torch.Tensor`: The loss in float32 (float64 if ``logits`` is float64).
    """
    _check_asymmetric(gamma_neg, gamma_pos, "clip", clip, eps)
    logits, labels, weight = _prepare(logits, labels, weight, reduction)
    if clamp_probabilities:
        p = torch.sigmoid(logits)
        q = 1 - p if clip is None or clip == 0 else (1 - p + clip).clamp(max=1)
        log_p, log_1m_pm = torch.log(p.clamp(min=eps)), torch.log(q.clamp(min=eps))
    else:
        log_p, _, _, log_1m_pm = _asymmetric_terms(logits, clip, eps)
    w_pos, w_neg = _asymmetric_focusing(logits, clip, gamma_pos, gamma_neg, focal_no_grad)
    loss = -(labels * w_pos * log_p + (1 - labels) * w_neg * log_1m_pm)
    return _finish(loss, weight, reduction)


def asymmetric_polynomial_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    *,
    weight: torch.Tensor | None = None,
    reduction: str = "mean",
    gamma_pos: float = APL_DEFAULTS["gamma_pos"],
    gamma_neg: float = APL_DEFAULTS["gamma_neg"],
    threshold: float | None = APL_DEFAULTS["threshold"],
    alpha1: float = APL_DEFAULTS["alpha1"],
    alpha2: float = APL_DEFAULTS["alpha2"],
    beta1: float = APL_DEFAULTS["beta1"],
    eps: float = APL_DEFAULTS["eps"],
    focal_no_grad: bool = APL_DEFAULTS["focal_no_grad"],
) -> torch.Tensor:
    r"""Asymmetric polynomial loss (APL, Huang et al., ICASSP 2023; eq. 8 of the M2 paper).

    With ``p = sigmoid(logits)`` and ``p_res = max(p - threshold, 0)``:

    .. math::
        L = y (1 - p)^{\gamma_+} \left[-\log p + (\alpha_1 - 1)(1 - p) + (\alpha_2 - \tfrac12)(1 - p)^2\right]
          + (1 - y)\, p_{res}^{\gamma_-} \left[-\log(1 - p_{res}) + (\beta_1 - 1) p_{res}\right]

    ``-log p`` has the Taylor series ``sum_j (1 - p)^j / j``; ``alpha_j`` replace its first two coefficients
    (1 and 1/2) and ``beta_1`` the first coefficient of the negative side. With ``alpha1=1, alpha2=0.5,
    beta1=1`` APL is exactly :func:`asymmetric_loss` with ``clip=threshold``.

    The defaults ``alpha1=0.0, alpha2=1.75, beta1=1.0`` are the *effective* values of the official code
    (LUMIA-Group/APL, ``APLloss.py``), which computes ``-[log p + eps_pos (1 - p) + eps_pos_pow * 0.5 *
    (1 - p)^2]`` on positives and adds ``eps_neg * (1 - p_m)`` on negatives with ``eps_pos=1.0,
    eps_pos_pow=-2.5, eps_neg=0.0``: ``alpha1 - 1 = -eps_pos``, ``alpha2 - 1/2 = -eps_pos_pow / 2`` and no
    negative polynomial term (``beta1 = 1``).

    Args:
        logits (`torch.Tensor`): Raw scores, shape ``(B, C)``.
        labels (`torch.Tensor`): Multi-hot (or soft, in ``[0, 1]``) targets of the same shape. Entries
            ``< 0`` (e.g. ``-1`` for VOC "difficult", ``-100``) are ignored: weight 0 (times ``weight``), zero
            gradient to their logits, still counted in the ``"mean"`` denominator (see "Ignored labels" in the
            module docstring).
        weight (`torch.Tensor`, *optional*): Per-element weights broadcastable to ``logits.shape``.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
        gamma_pos (`float`, *optional*, defaults to 0.0): Focusing parameter of the positives.
        gamma_neg (`float`, *optional*, defaults to 2.0): Focusing parameter of the negatives.
        threshold (`float`, *optional*, defaults to 0.05): Probability threshold ``p_th`` in ``[0, 1)`` (the ASL
            clip); ``0`` or ``None`` disables the shift.
        alpha1 (`float`, *optional*, defaults to 0.0): First positive Taylor coefficient.
        alpha2 (`float`, *optional*, defaults to 1.75): Second positive Taylor coefficient.
        beta1 (`float`, *optional*, defaults to 1.0): First negative Taylor coefficient.
        eps (`float`, *optional*, defaults to 1e-8): Lower clamp of ``1 - p_res`` inside the log.
        focal_no_grad (`bool`, *optional*, defaults to `True`): Treat the focusing weights as constants (scoped,
            see :func:`asymmetric_loss`).

    Returns:
        `torch.Tensor`: The loss in float32 (float64 if ``logits`` is float64).
    """
    _check_asymmetric(gamma_neg, gamma_pos, "threshold", threshold, eps)
    _check_number("alpha1", alpha1)
    _check_number("alpha2", alpha2)
    _check_number("beta1", beta1)
    logits, labels, weight = _prepare(logits, labels, weight, reduction)
    log_p, one_minus_p, p_res, log_1m_pres = _asymmetric_terms(logits, threshold, eps)
    w_pos, w_neg = _asymmetric_focusing(logits, threshold, gamma_pos, gamma_neg, focal_no_grad)
    pos = -log_p + (alpha1 - 1.0) * one_minus_p + (alpha2 - 0.5) * one_minus_p.square()
    # The M2 paper prints -log(1 - p) in the negative term; like ASL and the official APL code we use the
    # shifted probability -log(1 - p_res) (identical when threshold = 0).
    neg = -log_1m_pres + (beta1 - 1.0) * p_res
    loss = labels * w_pos * pos + (1 - labels) * w_neg * neg
    return _finish(loss, weight, reduction)


# --------------------------------------------------------------------------------------------------------
# Module API
# --------------------------------------------------------------------------------------------------------


class _MultiLabelLoss(nn.Module):
    """Base class: stores ``reduction`` and formats hyper-parameters in ``extra_repr``.

    ``forward(logits, labels, weight=None)`` calls the functional form, so labels ``< 0`` are ignored exactly
    as there (see "Ignored labels" in the module docstring).
    """

    _hyper_names: tuple[str, ...] = ()
    _loss_fn: Callable[..., torch.Tensor]

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        _validate_reduction(reduction)
        self.reduction = reduction

    def _hyper(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._hyper_names}

    def extra_repr(self) -> str:
        items = {**self._hyper(), "reduction": self.reduction}
        return ", ".join(f"{key}={value!r}" for key, value in items.items())

    def forward(
        self, logits: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor | None = None
    ) -> torch.Tensor:
        # the functional form of the subclass, with its hyper-parameters
        return type(self)._loss_fn(logits, labels, weight=weight, reduction=self.reduction, **self._hyper())


class BCELoss(_MultiLabelLoss):
    """Module wrapper of :func:`binary_cross_entropy_loss`.

    Args:
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
    """

    _loss_fn = staticmethod(binary_cross_entropy_loss)


class FocalLoss(_MultiLabelLoss):
    """Module wrapper of :func:`focal_loss`.

    Args:
        gamma (`float`, *optional*, defaults to 2.0): Focusing parameter.
        alpha (`float`, *optional*): Positive-term weight in ``[0, 1]``; ``None`` disables alpha-balancing.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
    """

    _loss_fn = staticmethod(focal_loss)

    _hyper_names = ("gamma", "alpha")

    def __init__(
        self,
        gamma: float = FOCAL_DEFAULTS["gamma"],
        alpha: float | None = FOCAL_DEFAULTS["alpha"],
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        _check_focal(gamma, alpha)
        self.gamma = gamma
        self.alpha = alpha



class AsymmetricLoss(_MultiLabelLoss):
    """Module wrapper of :func:`asymmetric_loss` (ASL).

    Args:
        gamma_neg (`float`, *optional*, defaults to 4.0): Focusing parameter of the negatives.
        gamma_pos (`float`, *optional*, defaults to 0.0): Focusing parameter of the positives.
        clip (`float`, *optional*, defaults to 0.05): Probability margin; ``0`` / ``None`` disables it.
        eps (`float`, *optional*, defaults to 1e-8): Clamp inside ``log(1 - p_m)``.
        focal_no_grad (`bool`, *optional*, defaults to `True`): No gradient through the focusing weights.
        clamp_probabilities (`bool`, *optional*, defaults to `False`): The official code's clamped logs.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
    """

    _loss_fn = staticmethod(asymmetric_loss)

    _hyper_names = ("gamma_neg", "gamma_pos", "clip", "eps", "focal_no_grad", "clamp_probabilities")

    def __init__(
        self,
        gamma_neg: float = ASL_DEFAULTS["gamma_neg"],
        gamma_pos: float = ASL_DEFAULTS["gamma_pos"],
        clip: float | None = ASL_DEFAULTS["clip"],
        eps: float = ASL_DEFAULTS["eps"],
        focal_no_grad: bool = ASL_DEFAULTS["focal_no_grad"],
        clamp_probabilities: bool = ASL_DEFAULTS["clamp_probabilities"],
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        _check_asymmetric(gamma_neg, gamma_pos, "clip", clip, eps)
        self.clamp_probabilities = bool(clamp_probabilities)
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip
        self.eps = eps
        self.focal_no_grad = bool(focal_no_grad)



class AsymmetricPolynomialLoss(_MultiLabelLoss):
    """Module wrapper of :func:`asymmetric_polynomial_loss` (APL).

    Args:
        gamma_pos (`float`, *optional*, defaults to 0.0): Focusing parameter of the positives.
        gamma_neg (`float`, *optional*, defaults to 2.0): Focusing parameter of the negatives.
        threshold (`float`, *optional*, defaults to 0.05): Probability threshold ``p_th`` (the ASL clip).
        alpha1 (`float`, *optional*, defaults to 0.0): First positive Taylor coefficient (official code value).
        alpha2 (`float`, *optional*, defaults to 1.75): Second positive Taylor coefficient (official code value).
        beta1 (`float`, *optional*, defaults to 1.0): First negative Taylor coefficient (official code value).
        eps (`float`, *optional*, defaults to 1e-8): Clamp inside ``log(1 - p_res)``.
        focal_no_grad (`bool`, *optional*, defaults to `True`): No gradient through the focusing weights.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
    """

    _loss_fn = staticmethod(asymmetric_polynomial_loss)

    _hyper_names = ("gamma_pos", "gamma_neg", "threshold", "alpha1", "alpha2", "beta1", "eps", "focal_no_grad")

    def __init__(
        self,
        gamma_pos: float = APL_DEFAULTS["gamma_pos"],
        gamma_neg: float = APL_DEFAULTS["gamma_neg"],
        threshold: float | None = APL_DEFAULTS["threshold"],
        alpha1: float = APL_DEFAULTS["alpha1"],
        alpha2: float = APL_DEFAULTS["alpha2"],
        beta1: float = APL_DEFAULTS["beta1"],
        eps: float = APL_DEFAULTS["eps"],
        focal_no_grad: bool = APL_DEFAULTS["focal_no_grad"],
        reduction: str = "mean",
    ) -> None:
        super().__init__(reduction)
        _check_asymmetric(gamma_neg, gamma_pos, "threshold", threshold, eps)
        _check_number("alpha1", alpha1)
        _check_number("alpha2", alpha2)
        _check_number("beta1", beta1)
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.threshold = threshold
        self.alpha1 = alpha1
        self.alpha2 = alpha2
        self.beta1 = beta1
        self.eps = eps
        self.focal_no_grad = bool(focal_no_grad)



# --------------------------------------------------------------------------------------------------------
# Registry and config
# --------------------------------------------------------------------------------------------------------

# Config fields every loss shares; a loss's own fields are f"{config_prefix}_{param}".
_SHARED_CONFIG_DEFAULTS: dict[str, Any] = {"loss": "bce", "loss_reduction": "batch_mean"}

# Arguments of every loss call, so never hyper-parameters (nor config fields).
_CALL_ARGUMENTS: tuple[str, ...] = ("logits", "labels", "weight", "reduction")


@dataclasses.dataclass(frozen=True)
class LossSpec:
    """One loss of the registry, declared once: :func:`register_loss` makes it known to the whole library.

    Args:
        name (`str`): Short lower-case name: the value of the ``loss`` config field and of ``--loss``.
        function (`Callable`): Functional form, ``function(logits, labels, *, weight=None, reduction="mean",
            **hyper)``.
        module (`type[nn.Module]`): Module form; ``module(reduction=..., **hyper)`` builds it and its
            ``forward(logits, labels, weight=None)`` evaluates it.
        config_prefix (`str`, *optional*): Prefix of the loss's flat config fields; defaults to ``name``.
        defaults (`Mapping[str, Any]`, *optional*): Hyper-parameter -> default value (the keyword arguments
            :func:`build_loss` accepts, in the order model cards list them). The config field of ``param`` is
            ``f"{config_prefix}_{param}"``. Stored as a read-only copy.
        display_name (`str`, *optional*): Human-readable name for model cards and the ``--loss`` help; defaults
            to ``name``.

    Raises:
        ValueError: If a field has the wrong type or form, or ``function`` / ``module`` does not accept
            ``reduction`` and every hyper-parameter as keyword arguments.
    """

    name: str
    function: Callable[..., torch.Tensor]
    module: type[nn.Module]
    config_prefix: str | None = None
    # hash=False: a mapping is unhashable, the other fields identify the spec anyway
    defaults: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    display_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name or self.name != self.name.lower():
            raise ValueError(f"LossSpec `name` must be a non-empty lower-case string, got {self.name!r}.")
        if not isinstance(self.defaults, Mapping):
            raise ValueError(
                f"LossSpec {self.name!r}: `defaults` must be a mapping hyper-parameter -> default, got "
                f"{type(self.defaults).__name__}."
            )
        # frozen dataclass: derived values are filled in through object.__setattr__
        object.__setattr__(self, "defaults", MappingProxyType(dict(self.defaults)))
        object.__setattr__(self, "config_prefix", self.name if self.config_prefix is None else self.config_prefix)
        object.__setattr__(self, "display_name", self.name if self.display_name is None else self.display_name)
        _check_spec(self)

    @property
    def config_fields(self) -> dict[str, str]:
        """Flat config field -> hyper-parameter, e.g. ``{"asl_clip": "clip", ...}`` for ASL."""
        return {f"{self.config_prefix}_{param}": param for param in self.defaults}

    @property
    def config_defaults(self) -> dict[str, Any]:
        """Flat config field -> default value, e.g. ``{"asl_clip": 0.05, ...}`` for ASL."""
        return {field: self.defaults[param] for field, param in self.config_fields.items()}


def _check_spec(spec: LossSpec) -> None:
    """The checks of :class:`LossSpec` beyond ``name`` and ``defaults``' type (see its docstring)."""
    where = f"LossSpec {spec.name!r}"
    if not callable(spec.function):
        raise ValueError(f"{where}: `function` must be callable, got {spec.function!r}.")
    if not (isinstance(spec.module, type) and issubclass(spec.module, nn.Module)):
        raise ValueError(f"{where}: `module` must be an nn.Module subclass, got {spec.module!r}.")
    # the prefix and the hyper-parameters make up attribute names of a config
    if not isinstance(spec.config_prefix, str) or not spec.config_prefix.isidentifier():
        raise ValueError(f"{where}: `config_prefix` must be a Python identifier, got {spec.config_prefix!r}.")
    for param in spec.defaults:
        if not isinstance(param, str) or not param.isidentifier() or param in _CALL_ARGUMENTS:
            raise ValueError(
                f"{where}: hyper-parameter {param!r} of `defaults` must be an identifier other than "
                f"{', '.join(map(repr, _CALL_ARGUMENTS))}."
            )
    if not isinstance(spec.display_name, str) or not spec.display_name:
        raise ValueError(f"{where}: `display_name` must be a non-empty string, got {spec.display_name!r}.")
    wanted = ("reduction", *spec.defaults)
    _check_accepts(spec.function, wanted, f"{where}: `function`")
    _check_accepts(spec.module, wanted, f"{where}: `module`")


def _check_accepts(target: Callable[..., Any], names: tuple[str, ...], where: str) -> None:
    """Raises a ValueError unless ``target`` accepts every one of ``names`` as a keyword argument."""
    try:
        parameters = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (some builtins): trust the caller
        return
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return
    keywords = {p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    missing = [name for name in names if name not in keywords]
    if missing:
        raise ValueError(
            f"{where} does not accept the keyword argument(s) {', '.join(map(repr, missing))}; it must accept "
            f"`reduction` and every hyper-parameter of `defaults`."
        )


LOSSES: dict[str, LossSpec] = {}
"""The registry: short loss name -> :class:`LossSpec`, in registration order. Change it only through
:func:`register_loss` / :func:`unregister_loss`, which keep :data:`LOSS_CONFIG_DEFAULTS` in step."""

LOSS_CONFIG_DEFAULTS: dict[str, Any] = {}
"""Flat config field names read by :func:`loss_from_config` and their defaults: ``loss``, ``loss_reduction`` and
the ``f"{config_prefix}_{param}"`` fields of every registered loss. Derived from :data:`LOSSES`."""


def _refresh_config_defaults() -> None:
    # In place: modules that imported the dict by name see later registrations too.
    LOSS_CONFIG_DEFAULTS.clear()
    LOSS_CONFIG_DEFAULTS.update(_SHARED_CONFIG_DEFAULTS)
    for spec in LOSSES.values():
        LOSS_CONFIG_DEFAULTS.update(spec.config_defaults)


def register_loss(spec: LossSpec, *, replace: bool = False) -> LossSpec:
    """Adds a loss to :data:`LOSSES`: from then on configs accept ``loss=spec.name`` and its prefixed fields,
    :func:`build_loss` / :func:`loss_from_config` build it, and model cards and :func:`loss_help` name it.

    Args:
        spec (`LossSpec`): The loss.
        replace (`bool`, *optional*, defaults to `False`): Replace a loss registered under the same name (it keeps
            its position in the registry order).

    Returns:
        `LossSpec`: ``spec``.

    Raises:
        ValueError: If ``spec`` is not a :class:`LossSpec`, its name is taken and ``replace`` is false, or one of
            its config fields is already a field of another loss (the fields of all losses share one flat config
            namespace).
    """
    if not isinstance(spec, LossSpec):
        raise ValueError(f"register_loss expects a LossSpec, got {type(spec).__name__}.")
    if spec.name in LOSSES and not replace:
        raise ValueError(f"A loss named {spec.name!r} is already registered; pass replace=True to replace it.")
    # (`loss` / `loss_reduction` cannot clash: LossSpec forbids a hyper-parameter named `reduction`.)
    owners: dict[str, str] = {}
    for other in LOSSES.values():
        if other.name != spec.name:
            owners.update({field: f"loss {other.name!r}" for field in other.config_fields})
    for field in spec.config_fields:
        if field in owners:
            raise ValueError(
                f"Loss {spec.name!r}: config field {field!r} (config_prefix {spec.config_prefix!r}) is already a "
                f"field of {owners[field]}; choose another `config_prefix`."
            )
    LOSSES[spec.name] = spec
    _refresh_config_defaults()
    return spec


def unregister_loss(name: str) -> LossSpec:
    """Removes a loss from :data:`LOSSES` (case-insensitive name) and returns its spec.

    Raises:
        ValueError: If no loss of that name is registered, or it is the default loss ``"bce"``.
    """
    spec = get_loss_spec(name)
    if spec.name == _SHARED_CONFIG_DEFAULTS["loss"]:
        raise ValueError(f"Loss {spec.name!r} is the default `loss` of every config and cannot be unregistered.")
    del LOSSES[spec.name]
    _refresh_config_defaults()
    return spec


def get_loss_spec(name: str) -> LossSpec:
    """The registered :class:`LossSpec` of ``name`` (case-insensitive).

    Raises:
        ValueError: If no loss of that name is registered; the message lists the registered names.
    """
    key = name.lower() if isinstance(name, str) else name
    if key not in LOSSES:
        raise ValueError(f"Unknown loss name {name!r}; valid names are {', '.join(map(repr, LOSSES))}.")
    return LOSSES[key]


def loss_names() -> tuple[str, ...]:
    """The registered loss names, in registration order (the valid values of the ``loss`` config field)."""
    return tuple(LOSSES)


def loss_help() -> str:
    """One sentence naming every registered loss with its display name, for the ``--loss`` help of the CLI."""
    listing = "; ".join(f"{spec.name} = {spec.display_name}" for spec in LOSSES.values())
    return f"Loss, one of: {listing}."


# One declaration per loss; the display names are those of the model cards.
register_loss(LossSpec("bce", binary_cross_entropy_loss, BCELoss, display_name="Binary cross-entropy"))
register_loss(
    LossSpec("focal", focal_loss, FocalLoss, defaults=FOCAL_DEFAULTS, display_name="Focal loss (Lin et al., 2017)")
)
register_loss(
    LossSpec(
        "asl", asymmetric_loss, AsymmetricLoss, defaults=ASL_DEFAULTS,
        display_name="Asymmetric loss, ASL (Ridnik et al., 2021)",
    )
)
register_loss(
    LossSpec(
        "apl", asymmetric_polynomial_loss, AsymmetricPolynomialLoss, defaults=APL_DEFAULTS,
        display_name="Asymmetric polynomial loss, APL (Huang et al., 2023)",
    )
)


def build_loss(name: str, reduction: str = "mean", **kwargs: Any) -> nn.Module:
    """Instantiates a loss module by its short name.

    Args:
        name (`str`): A key of :data:`LOSSES` (built in: ``"bce"``, ``"focal"``, ``"asl"``, ``"apl"``),
            case-insensitive.
        reduction (`str`, *optional*, defaults to ``"mean"``): See :func:`reduce_loss`.
        **kwargs: Hyper-parameters of the selected loss, i.e. keys of its :attr:`LossSpec.defaults` (e.g.
            ``gamma_neg=4.0`` for ``"asl"``); the others keep their defaults.

    Returns:
        `nn.Module`: The loss module.

    Raises:
        ValueError: If ``name`` or ``reduction`` is unknown or a hyper-parameter value is invalid.
        TypeError: If a keyword argument is not a hyper-parameter of the selected loss.
    """
    spec = get_loss_spec(name)
    accepted = list(spec.defaults)
    unknown = [key for key in kwargs if key not in accepted]
    if unknown:
        raise TypeError(
            f"Unknown keyword argument(s) {', '.join(map(repr, unknown))} for loss {name!r}; accepted: "
            f"{', '.join(map(repr, accepted)) or 'none'}."
        )
    return spec.module(reduction=reduction, **kwargs)


def _config_get(config: Any, key: str, default: Any) -> Any:
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def loss_from_config(config: Any) -> nn.Module:
    """Builds the loss described by the flat attributes of ``config``.

    Reads ``config.loss`` (name) and ``config.loss_reduction``, then only the fields of the selected loss
    (``f"{config_prefix}_{param}"``, e.g. ``asl_*`` for ``"asl"``; see :data:`LOSS_CONFIG_DEFAULTS`). A missing
    attribute (or a ``None`` ``loss`` / ``loss_reduction``) falls back to :data:`LOSS_CONFIG_DEFAULTS`, whose
    hyper-parameter values are the losses' own defaults. An explicit ``None`` hyper-parameter is passed through
    (e.g. ``asl_clip=None`` disables clipping, ``focal_alpha=None`` disables alpha-balancing).

    Args:
        config: A `transformers.PretrainedConfig`, any object with attributes, or a mapping.

    Returns:
        `nn.Module`: The loss module.
    """
    name = _config_get(config, "loss", None)
    name = LOSS_CONFIG_DEFAULTS["loss"] if name is None else name
    reduction = _config_get(config, "loss_reduction", None)
    reduction = LOSS_CONFIG_DEFAULTS["loss_reduction"] if reduction is None else reduction
    spec = get_loss_spec(name)
    kwargs = {param: _config_get(config, field, spec.defaults[param]) for field, param in spec.config_fields.items()}
    return build_loss(spec.name, reduction=reduction, **kwargs)
