"""Input checks at the public boundary of the loss: clear ``ValueError`` messages, one sync at most."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

BOX_TOL = 0.01  # boxes may stick out of [0, 1] by this much (rounding in label files)


def check_preds(preds: Sequence[Tensor], nl: int, na: int, nc: int) -> list[Tensor]:
    """Shape, dtype and device checks of the per-level head outputs ``Tensor[bs, na, ny, nx, 5 + nc]``."""
    if isinstance(preds, Tensor) or not isinstance(preds, (list, tuple)):
        raise ValueError(f"preds must be a list of {nl} per-level tensors, got {type(preds).__name__}")
    if len(preds) != nl:
        raise ValueError(f"expected {nl} prediction levels (one per anchor level), got {len(preds)}")
    bs = None
    for i, p in enumerate(preds):
        if not isinstance(p, Tensor):
            raise ValueError(f"preds[{i}] must be a torch.Tensor, got {type(p).__name__}")
        if p.dim() != 5:
            raise ValueError(f"preds[{i}] must be 5-D (bs, na, ny, nx, 5 + nc), got shape {tuple(p.shape)}")
        if not p.is_floating_point():
            raise ValueError(f"preds[{i}] must be a floating-point tensor (logits), got {p.dtype}")
        if p.shape[1] != na:
            raise ValueError(f"preds[{i}] has {p.shape[1]} anchors on dim 1, the loss has {na} per level")
        if p.shape[4] != 5 + nc:
            raise ValueError(
                f"preds[{i}] has {p.shape[4]} channels on the last dim, expected 5 + num_classes = {5 + nc}"
            )
        if p.shape[2] < 1 or p.shape[3] < 1:
            raise ValueError(f"preds[{i}] has an empty grid {tuple(p.shape[2:4])}")
        if bs is None:
            bs = p.shape[0]
        elif p.shape[0] != bs:
            raise ValueError(f"preds[{i}] has batch size {p.shape[0]}, preds[0] has {bs}")
        if p.device != preds[0].device:
            raise ValueError(f"preds[{i}] is on {p.device}, preds[0] on {preds[0].device}")
    return list(preds)


def check_targets_shape(targets: Tensor, device: torch.device) -> None:
    """``targets`` is a floating-point ``Tensor[n, 6]`` ``[image, class, cx, cy, w, h]`` on ``device``."""
    _check_rows_shape(targets, "targets", ("n", "[image, class, cx, cy, w, h]"), "", device)


def check_ignore_shape(ignore: Tensor, device: torch.device) -> None:
    """``ignore`` is a floating-point ``Tensor[m, 5]`` ``[image, cx, cy, w, h]`` on ``device``."""
    _check_rows_shape(ignore, "ignore", ("m", "[image, cx, cy, w, h]"), " or None", device)


def _check_rows_shape(t: Tensor, name: str, rows: tuple[str, str], alt: str, device: torch.device) -> None:
    """Type, 2-D shape ``(rows[0], columns of the layout rows[1])``, floating dtype and device of ``t``."""
    n, layout = rows
    cols = layout.count(",") + 1
    if not isinstance(t, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor [{n}, {cols}]{alt}, got {type(t).__name__}")
    if t.dim() != 2 or t.shape[1] != cols:
        raise ValueError(f"{name} must have shape ({n}, {cols}) {layout}, got {tuple(t.shape)}")
    if not t.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got {t.dtype}")
    if t.device != device:
        are, them = ("are", "them") if name.endswith("s") else ("is", "it")
        raise ValueError(f"{name} {are} on {t.device} but preds on {device}; move {them} to the same device")


_REASONS = (
    "non-finite value (NaN or inf)",
    "image index not an integer in [0, batch size)",
    "class id not an integer in [0, num_classes)",
    "width or height <= 0",
    "box outside the normalised [0, 1] image",
)


def check_targets_values(targets: Tensor, bs: int, nc: int, tol: float = BOX_TOL) -> None:
    """Value checks of ``[image, class, cx, cy, w, h]`` rows; a single host sync when all is well."""
    _check_rows(targets, targets, bs, nc, tol, "targets", "[image, class, cx, cy, w, h]")


def check_ignore_values(ignore: Tensor, bs: int, tol: float = BOX_TOL) -> None:
    """Value checks of ignore regions ``[image, cx, cy, w, h]`` (the target rules, without a class)."""
    as_targets = torch.cat((ignore[:, :1], torch.zeros_like(ignore[:, :1]), ignore[:, 1:]), 1)
    _check_rows(as_targets, ignore, bs, None, tol, "ignore regions", "[image, cx, cy, w, h]")


def _check_rows(t6: Tensor, shown: Tensor, bs: int, nc: int | None, tol: float, what: str, layout: str) -> None:
    """Check ``t6`` ``[n, 6]`` target rows (class not checked when ``nc`` is None); the error names ``what``
    and prints the first bad row of ``shown`` (the caller's own rows, in ``layout``)."""
    if t6.shape[0] == 0:
        return
    t = t6.detach().double()
    finite = torch.isfinite(t).all(1)
    t = torch.where(finite[:, None], t, torch.zeros_like(t))
    img, cls, cx, cy, w, h = t.unbind(1)
    bad = torch.stack(
        (
            ~finite,
            (img != img.round()) | (img < 0) | (img >= bs),
            (cls != cls.round()) | (cls < 0) | (cls >= (nc if nc is not None else 1)),
            (w <= 0) | (h <= 0),
            (cx - w / 2 < -tol) | (cy - h / 2 < -tol) | (cx + w / 2 > 1 + tol) | (cy + h / 2 > 1 + tol),
        ),
        1,
    )  # [n, 5]
    if not bool(bad.any()):
        return
    rows = bad.any(1).nonzero().flatten().tolist()
    r = rows[0]
    reason = _REASONS[int(bad[r].nonzero()[0])]
    sizes = f"batch size {bs}" + (f", num_classes {nc}" if nc is not None else "")
    raise ValueError(
        f"invalid {what}: {len(rows)} bad row(s), first row {r} {shown[r].tolist()}: {reason} "
        f"({sizes}; rows are {layout} normalised to 0..1)"
    )


def parse_anchors(anchors: object) -> Tensor:
    """Anchors per level in pixels: ``[[w, h, w, h, ...], ...]`` (yolov5 YAML), ``[[[w, h], ...], ...]`` or a tensor."""
    try:
        a = torch.as_tensor(anchors, dtype=torch.float32) if not isinstance(anchors, Tensor) else anchors.float()
    except (TypeError, ValueError) as e:
        raise ValueError(f"anchors must be numbers per level (all levels the same length): {e}") from None
    if a.dim() == 2 and a.shape[1] % 2 == 0:
        a = a.view(a.shape[0], -1, 2)
    if a.dim() != 3 or a.shape[2] != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"anchors must have shape (levels, anchors, 2) in pixels, got {tuple(a.shape)}")
    if not torch.isfinite(a).all() or (a <= 0).any():
        raise ValueError("anchors must be finite and > 0 (pixels)")
    return a
