"""Closed-form (focal) BCE-with-logits values and gradients, for the fused loss path.

The same element-wise loss as :func:`detloss.terms.bce_terms`, with targets that broadcast (a class-target
row ``Tensor[nc]`` or a Python float) and with the derivative written out, so the fused path needs no
autograd graph over the objectness grid or the class rows. Both take ``pos_weight`` and the focal
parameters as Python floats (reading them from a device tensor would be a host sync).

Value (torch's ``binary_cross_entropy_with_logits``): ``(1 - t) x - w log sigmoid(x)``, ``w = 1 + (pw - 1) t``.
Gradient: ``(pw t + 1 - t) sigmoid(x) - pw t`` (``sigmoid(x) - t`` when ``pw = 1``).
Focal (Lin et al. 2017): ``L = bce * a_t * m**gamma`` with ``a_t = t alpha + (1 - t)(1 - alpha)``,
``m = 1 - p_t = t (1 - s) + (1 - t) s``, ``s = sigmoid(x)``; ``dL/dx = a_t (bce' m**gamma + bce gamma
m**(gamma - 1) dm/dx)``, ``dm/dx = (1 - 2t) s (1 - s)``. Where ``m == 0`` the second term is taken as 0
(autograd through ``m**gamma`` gives NaN there when gamma < 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

Target = Tensor | float


def _plain_value(x: Tensor, t: Target, pw: float) -> Tensor:
    ls = F.logsigmoid(x)
    if pw != 1.0:
        ls = ls * ((pw - 1.0) * t + 1.0)
    return (1.0 - t) * x - ls


def _focal_factors(x: Tensor, t: Target, alpha: float) -> tuple[Tensor, Tensor | float, Tensor]:
    """``s = sigmoid(x)``, ``a_t`` and ``m = 1 - p_t`` as :func:`detloss.terms.bce_terms` computes them."""
    s = x.sigmoid()
    p_t = t * s + (1 - t) * (1 - s)
    return s, t * alpha + (1 - t) * (1 - alpha), 1.0 - p_t


def bce_value(x: Tensor, t: Target, pw: float = 1.0, gamma: float = 0.0, alpha: float = 0.25) -> Tensor:
    """Element-wise (focal) BCE with logits; ``t`` broadcasts against ``x``."""
    loss = _plain_value(x, t, pw)
    if gamma > 0:
        _, a_t, m = _focal_factors(x, t, alpha)
        loss = loss * a_t * m**gamma
    return loss


def bce_sum(x: Tensor, t: Tensor, pw: float = 1.0, gamma: float = 0.0, alpha: float = 0.25) -> Tensor:
    """``bce_value(x, t).sum()``; plain BCE as ``sum softplus(x) - t . x`` (two passes, one temporary)."""
    if pw == 1.0 and gamma <= 0 and t.shape == x.shape:
        return F.softplus(x).sum() - torch.dot(t.reshape(-1), x.reshape(-1))
    return bce_value(x, t, pw, gamma, alpha).sum()


def bce_grad(x: Tensor, t: Target, pw: float = 1.0, gamma: float = 0.0, alpha: float = 0.25) -> Tensor:
    """``d bce_value(x, t) / dx``, element-wise."""
    s = x.sigmoid()
    if pw == 1.0:
        g = s - t
    else:
        pt = pw * t
        g = (pt + 1.0 - t) * s - pt
    if gamma <= 0:
        return g
    _, a_t, m = _focal_factors(x, t, alpha)
    dm = (1.0 - 2.0 * t) * s * (1.0 - s)
    tail = torch.where(m > 0, m.clamp(min=torch.finfo(m.dtype).tiny) ** (gamma - 1.0) * dm, 0.0)
    return a_t * (g * m**gamma + _plain_value(x, t, pw) * gamma * tail)


def _row_fix(x: Tensor, tcls: Tensor) -> tuple[Tensor, Tensor]:
    ar = torch.arange(x.shape[0], device=x.device)
    return ar, x[ar, tcls]


def class_row_losses(
    x: Tensor, t_other: Target, t_true: Target, tcls: Tensor, pw: float = 1.0, gamma: float = 0.0, alpha: float = 0.25
) -> Tensor:
    """``Tensor[P]``: per row of class logits ``x`` (``[P, nc]``), the sum of the BCE terms with target ``t_other``
    (float or ``Tensor[nc]``) for every class but ``tcls``, whose target is ``t_true`` (float or ``Tensor[P]``).

    Plain BCE (``pw = 1``, no focal) needs no target tensor: ``bce(x, t) = softplus(x) - t x``, so a row sums to
    ``sum softplus(x) - sum t_other x - (t_true - t_other[y]) x_y``.
    """
    ar, x_y = _row_fix(x, tcls)
    if pw == 1.0 and gamma <= 0:
        t_y: Target
        if isinstance(t_other, Tensor):
            tx, t_y = x @ t_other, t_other[tcls]
        else:
            tx, t_y = x.sum(1) * t_other, t_other
        return F.softplus(x).sum(1) - tx - (t_true - t_y) * x_y
    v = bce_value(x, t_other, pw, gamma, alpha)
    v[ar, tcls] = bce_value(x_y, t_true, pw, gamma, alpha)
    return v.sum(1)


def class_grad_(
    x: Tensor, t_other: Target, t_true: Target, tcls: Tensor, pw: float = 1.0, gamma: float = 0.0, alpha: float = 0.25
) -> Tensor:
    """Overwrite ``x`` (a copy of class logits ``[P, nc]``) with ``d class_row_losses / dx``; returns ``x``."""
    ar, x_y = _row_fix(x, tcls)
    if pw == 1.0 and gamma <= 0:
        x.sigmoid_().sub_(t_other)
        x[ar, tcls] = x_y.sigmoid_().sub_(t_true)
        return x
    g_y = bce_grad(x_y, t_true, pw, gamma, alpha)
    x.copy_(bce_grad(x, t_other, pw, gamma, alpha))
    x[ar, tcls] = g_y
    return x
