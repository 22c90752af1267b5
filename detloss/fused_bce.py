"""Closed-form (focal) BCE-with-logits values and gradients: the BCE kernel of the fused path (``impl="fused"``).

The same element-wise loss as :func:`detloss.terms.bce_terms`, with targets that broadcast (a class-target
row ``Tensor[nc]``, a ``Tensor[P, nc]`` or a Python float) and with the derivative written out, so the loss
needs no autograd graph over the objectness grid or the class rows. ``pos_weight`` and the focal parameters
are Python floats (reading them from a device tensor would be a host sync).

Value (torch's ``binary_cross_entropy_with_logits``): ``(1 - t) x - w log sigmoid(x)``, ``w = 1 + (pw - 1) t``.
Gradient: ``(pw t + 1 - t) sigmoid(x) - pw t`` (``sigmoid(x) - t`` when ``pw = 1``).
Plain BCE sums its ``softplus`` terms with :func:`softplus_sum` (vectorised ``sigmoid`` and ``log``).
Focal (factors of :func:`detloss.terms.focal_factors`): ``L = bce * a_t * m**gamma``; ``dL/dx = a_t (bce' m**gamma +
bce gamma m**(gamma - 1) dm/dx)``, ``dm/dx = (1 - 2t) s (1 - s)``. Where ``m == 0`` the second term is taken as 0
(autograd through ``m**gamma`` gives NaN there when gamma < 1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .terms import Target, focal_factors

TrueTarget = Target | None  # the true class's target; None: t_other there too


def _plain_value(x: Tensor, t: Target, pw: float) -> Tensor:
    ls = F.logsigmoid(x)
    if pw != 1.0:
        ls = ls * ((pw - 1.0) * t + 1.0)
    return (1.0 - t) * x - ls


SOFTPLUS_CHUNK = 1 << 17  # elements a block of softplus_sum on a CPU (its temporaries stay in cache)


def softplus_sum(x: Tensor, dim: int | None = None) -> Tensor:
    """``softplus(x).sum(dim)`` of ``x`` (every element when ``dim`` is None; else ``x`` is ``Tensor[P, nc]`` and
    ``dim`` is 1: a ``Tensor[P]`` of row sums), as ``sum max(x, 0) - sum log sigmoid(|x|)``:
    ``softplus(x) = max(x, 0) + log(1 + exp(-|x|))`` and ``log(1 + exp(-a)) = -log sigmoid(a)``.

    The same value from ATen's vectorised ``sigmoid`` and ``log``: ``softplus`` and ``log1p`` run element by element
    on the CPU (about 10 ns an element against 2-3 here, 2-core AVX-512 machine, fp32); the logs are summed as the
    log of products (:func:`_log_sigmoid_abs_sum`: one ``log`` per 120 elements, half the time again).
    ``sigmoid(|x|)`` lies in [0.5, 1], so its log is off by at most an ulp of 1 an element (6e-8 in fp32): the
    precision of torch's own
    ``binary_cross_entropy_with_logits``, which takes ``log(1 + exp(-|x|))`` the same way (only the value; the
    gradient, ``sigmoid(x) - t``, is computed apart).
    (``max(x, 0)`` is summed as such: ``(sum x + sum |x|) / 2`` would cancel catastrophically over the many large
    negative objectness logits.) On a CPU it runs in blocks of ``SOFTPLUS_CHUNK`` elements: temporaries of the
    whole ``[P, 80]`` class rows are fresh memory each call (page faults) and made the row sums 3x slower.
    """
    if dim is not None and (x.dim() != 2 or dim not in (1, -1)):
        raise ValueError(f"softplus_sum sums every element or the rows of a 2-D tensor, got dim={dim} of {x.dim()}-D")
    if x.device.type != "cpu" or x.numel() <= SOFTPLUS_CHUNK:
        return _softplus_block(x, dim)
    if dim is None:
        return torch.stack([_softplus_block(c, None) for c in x.reshape(-1).split(SOFTPLUS_CHUNK)]).sum()
    return torch.cat([_softplus_block(c, 1) for c in x.split(max(1, SOFTPLUS_CHUNK // x.shape[1]))])


PROD_GROUP = 120  # sigmoid(|x|) >= 1/2, so a product of 120 stays >= 2**-120, above fp32's smallest normal 2**-126


def _softplus_block(x: Tensor, dim: int | None) -> Tensor:
    relu = x.clamp(min=0).sum() if dim is None else x.clamp(min=0).sum(dim)
    return relu - _log_sigmoid_abs_sum(x.abs().sigmoid_(), dim)


def _log_sigmoid_abs_sum(s: Tensor, dim: int | None) -> Tensor:
    """``log(s).sum(dim)`` of ``s = sigmoid(|x|)`` in [1/2, 1], as the logs of products of up to ``PROD_GROUP``
    elements (in fp32 at least): one ``log`` per group, not per element (``log`` costs ~10x a multiply here). As
    precise as the sum of logs (measured against float64: the same error, ~1e-7 relative of the row sum)."""
    acc = torch.promote_types(s.dtype, torch.float32)
    if dim is None:
        flat = s.reshape(-1)
        whole = flat.numel() // PROD_GROUP * PROD_GROUP
        out = flat[:whole].view(-1, PROD_GROUP).prod(1, dtype=acc).log_().sum()
        return out + flat[whole:].to(acc).log_().sum() if whole < flat.numel() else out
    cols = s.shape[1]
    out = s[:, :PROD_GROUP].prod(1, dtype=acc).log_()
    for j in range(PROD_GROUP, cols, PROD_GROUP):
        out += s[:, j : j + PROD_GROUP].prod(1, dtype=acc).log_()
    return out


def bce_value(x: Tensor, t: Target, pw: float = 1.0, gamma: float = 0.0, alpha: float = 0.25) -> Tensor:
    """Element-wise (focal) BCE with logits; ``t`` broadcasts against ``x``."""
    loss = _plain_value(x, t, pw)
    if gamma > 0:
        _, a_t, m = focal_factors(x, t, alpha)
        loss = loss * a_t * m**gamma
    return loss


def bce_sum(x: Tensor, t: Tensor, pw: float = 1.0, gamma: float = 0.0, alpha: float = 0.25) -> Tensor:
    """``bce_value(x, t).sum()``; plain BCE as ``sum softplus(x) - t . x`` (:func:`softplus_sum`, one temporary)."""
    if pw == 1.0 and gamma <= 0 and t.shape == x.shape:
        return softplus_sum(x) - torch.dot(t.reshape(-1), x.reshape(-1))
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
    _, a_t, m = focal_factors(x, t, alpha)
    dm = (1.0 - 2.0 * t) * s * (1.0 - s)
    tail = torch.where(m > 0, m.clamp(min=torch.finfo(m.dtype).tiny) ** (gamma - 1.0) * dm, 0.0)
    return a_t * (g * m**gamma + _plain_value(x, t, pw) * gamma * tail)


def _at(t: Target, tcls: Tensor) -> Target:
    """``t`` (float, ``Tensor[nc]`` or ``Tensor[P, nc]``) at column ``tcls[i]`` of row ``i``."""
    if not isinstance(t, Tensor):
        return t
    return t[tcls] if t.dim() == 1 else _column(t, tcls)


def _column(x: Tensor, tcls: Tensor) -> Tensor:
    """``x[i, tcls[i]]`` (``Tensor[P]``) by ``gather``: advanced indexing with two index tensors is ~2.5x slower."""
    return x.gather(1, tcls[:, None]).squeeze(1)


def class_row_losses(
    x: Tensor, t_other: Target, t_true: TrueTarget, tcls: Tensor, pw: float = 1, gamma: float = 0, alpha: float = 0.25
) -> Tensor:
    """``Tensor[P]``: per row of class logits ``x`` (``[P, nc]``), the sum of the BCE terms with target ``t_other``
    (float, ``Tensor[nc]`` or ``Tensor[P, nc]``) for every class but ``tcls``, whose target is ``t_true`` (float or
    ``Tensor[P]``; ``None``: ``t_other`` there too).

    Plain BCE (``pw = 1``, no focal) needs no target tensor: ``bce(x, t) = softplus(x) - t x``, so a row sums to
    ``sum softplus(x) - sum t_other x - (t_true - t_other[y]) x_y``.
    """
    if pw == 1.0 and gamma <= 0:
        if not isinstance(t_other, Tensor):
            tx = x.sum(1) * t_other
        else:
            tx = x @ t_other if t_other.dim() == 1 else (x * t_other).sum(1)
        v = softplus_sum(x, 1) - tx
        return v if t_true is None else v - (t_true - _at(t_other, tcls)) * _column(x, tcls)
    v = bce_value(x, t_other, pw, gamma, alpha)
    if t_true is not None:
        v.scatter_(1, tcls[:, None], bce_value(_column(x, tcls), t_true, pw, gamma, alpha)[:, None])
    return v.sum(1)


def class_grad(
    x: Tensor,
    out: Tensor,
    t_other: Target,
    t_true: TrueTarget,
    tcls: Tensor,
    pw: float = 1,
    gamma: float = 0,
    alpha: float = 0.25,
) -> Tensor:
    """Write ``d class_row_losses / dx`` of class logits ``x`` (``[P, nc]``) into ``out`` (same shape; may be ``x``
    itself) and return it: one pass from the logits into the gradient's memory, no copy first."""
    g_y = None if t_true is None else bce_grad(_column(x, tcls), t_true, pw, gamma, alpha)
    if pw == 1.0 and gamma <= 0 and torch.compiler.is_compiling():
        out.copy_(x.sigmoid()).sub_(t_other)  # dynamo takes no strided out= tensor
    elif pw == 1.0 and gamma <= 0:
        torch.sigmoid(x, out=out).sub_(t_other)
    else:
        out.copy_(bce_grad(x, t_other, pw, gamma, alpha))
    if g_y is not None:
        out.scatter_(1, tcls[:, None], g_y.to(out.dtype)[:, None])
    return out
