"""Post-hoc confidence calibrators for detections: temperature, Platt and isotonic, global or per class.

Each maps a detection's final confidence ``p`` (objectness x class score, after NMS) to a calibrated one,
fitted on detections labelled 1 (matches a ground truth at IoU >= 0.5) or 0 (see ``tools/calibrate.py``),
following Kuzucu et al. 2024 ("On Calibration of Object Detectors: Pitfalls, Evaluation and Baselines",
ECCV), who fit them on detections above the operating threshold of a held-out split:

* ``temperature`` (Guo et al. 2017): ``sigmoid(logit(p) / T)``, one parameter, fitted by binary
  cross entropy (convex in ``1 / T``; Newton's method).
* ``platt`` (Platt 1999): ``sigmoid(a * logit(p) + b)``, fitted the same way.
* ``isotonic`` (Zadrozny and Elkan 2002): the non-decreasing step fit of the labels on ``p`` by the
  pool-adjacent-violators algorithm (PAV), evaluated by linear interpolation between the centres of its
  blocks (constant beyond the ends).

All three are non-decreasing in ``p``, so within one class the ranking, and so the AP, is unchanged (isotonic
can tie neighbours, which moves AP slightly); ``per_class`` fits one map per class (classes with fewer than
``min_count`` detections or with only one label use the global map), which can reorder across classes.

Where it applies: after NMS, to the final confidence (``apply_calibrator``). NMS and its ``conf_thres``
therefore see the raw scores, and the boxes kept are exactly the uncalibrated ones; a deployment threshold
(e.g. 0.25) is then a threshold on calibrated scores. The state (:meth:`Calibrator.state`) is a plain dict, so
it lives in a checkpoint under ``"calibrator"`` and loads with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .cocojson import class_indices

__all__ = ["METHODS", "Calibrator", "apply_calibrator", "calibrate_results", "carried_calibrator", "fit_calibrator"]

METHODS = ("temperature", "platt", "isotonic")
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # overflow-free


def _fit_logistic(x: np.ndarray, y: np.ndarray, l2: float = 1e-4, iters: int = 100) -> np.ndarray:
    """``argmin_w mean BCE(sigmoid(x @ w), y) + l2 * |w|^2`` by Newton steps with step halving (x ``[n, d]``)."""
    w = np.zeros(x.shape[1])
    w[0] = 1.0  # start at the identity map

    def objective(v: np.ndarray) -> float:
        z = x @ v
        return float(np.mean(np.logaddexp(0.0, z) - y * z) + l2 * v @ v)

    f = objective(w)
    for _ in range(iters):
        p = _sigmoid(x @ w)
        grad = x.T @ (p - y) / len(y) + 2 * l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x / len(y) + 2 * l2 * np.eye(len(w))
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-8 and objective(w - t * step) > f:
            t *= 0.5
        new = objective(w - t * step)
        if new > f:
            break
        w, done = w - t * step, f - new < 1e-12
        f = new
        if done:
            break
    return w


def _pav(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pool adjacent violators: the non-decreasing least-squares fit of ``y`` on ``x``.

    Returns the blocks' weighted-mean ``x`` (strictly increasing knots) and their fitted values.
    """
    ux, inv, cnt = np.unique(x, return_inverse=True, return_counts=True)  # ties pooled first
    sy = np.bincount(inv, weights=y)
    vals: list[float] = []  # stack of blocks: mean value, weight, sum of x
    wts: list[float] = []
    xs: list[float] = []
    for k in range(len(ux)):
        v, w, sx = sy[k] / cnt[k], float(cnt[k]), ux[k] * cnt[k]
        while vals and vals[-1] >= v:  # violator: merge with the previous block
            pv, pw, psx = vals.pop(), wts.pop(), xs.pop()
            v, w, sx = (pv * pw + v * w) / (pw + w), pw + w, psx + sx
        vals.append(v)
        wts.append(w)
        xs.append(sx)
    return np.array(xs) / np.array(wts), np.array(vals)


def _fit_one(method: str, p: np.ndarray, y: np.ndarray) -> dict:
    if method == "temperature":
        a = _fit_logistic(_logit(p)[:, None], y)[0]
        return {"T": float(1.0 / max(a, 1e-3))}  # a <= 0 would invert the ranking: keep the map increasing
    if method == "platt":
        z = _logit(p)
        a, b = _fit_logistic(np.stack([z, np.ones_like(z)], 1), y)
        return {"a": float(max(a, 0.0)), "b": float(b)}
    knots, values = _pav(np.asarray(p, dtype=np.float64), y)
    return {"x": knots.tolist(), "y": values.tolist()}


def _apply_one(method: str, params: dict, p: np.ndarray) -> np.ndarray:
    if method == "temperature":
        return _sigmoid(_logit(p) / params["T"])
    if method == "platt":
        return _sigmoid(params["a"] * _logit(p) + params["b"])
    return np.interp(np.asarray(p, dtype=np.float64), params["x"], params["y"])


@dataclass
class Calibrator:
    """A fitted calibrator: ``method``, the global parameters and, when ``per_class``, per-class ones."""

    method: str
    params: dict
    per_class: bool = False
    classes: dict[int, dict] = field(default_factory=dict)
    info: dict = field(default_factory=dict)

    def __call__(self, scores: np.ndarray, cls: np.ndarray | None = None) -> np.ndarray:
        """Calibrated ``scores`` (``float64``, same shape); ``cls`` (class indices) is needed when per class."""
        p = np.asarray(scores, dtype=np.float64)
        out = _apply_one(self.method, self.params, p)
        if self.per_class and self.classes:
            if cls is None:
                raise ValueError("a per-class calibrator needs the class index of every score")
            c = np.asarray(cls).astype(np.int64)
            for k, params in self.classes.items():
                m = c == k
                if m.any():
                    out[m] = _apply_one(self.method, params, p[m])
        return np.clip(out, 0.0, 1.0)

    def state(self) -> dict:
        """Plain-dict form for a checkpoint (``Calibrator.from_state`` reads it back)."""
        return {
            "method": self.method,
            "params": dict(self.params),
            "per_class": self.per_class,
            "classes": {str(k): dict(v) for k, v in self.classes.items()},
            "info": dict(self.info),
        }

    @classmethod
    def from_state(cls, state: Any) -> Calibrator:
        if (
            not isinstance(state, dict)
            or state.get("method") not in METHODS
            or not isinstance(state.get("params"), dict)
        ):
            raise ValueError(f"not a calibrator state (needs 'method' in {METHODS} and 'params'): {state!r:.200}")
        classes = {int(k): dict(v) for k, v in (state.get("classes") or {}).items()}
        return cls(
            state["method"], dict(state["params"]), bool(state.get("per_class")), classes, dict(state.get("info") or {})
        )

    def describe(self) -> str:
        what = f"{self.method}{' per class' if self.per_class else ''}"
        if self.method == "temperature":
            what += f" (T {self.params['T']:.3f})"
        elif self.method == "platt":
            what += f" (a {self.params['a']:.3f}, b {self.params['b']:.3f})"
        else:
            what += f" ({len(self.params['x'])} steps)"
        n = self.info.get("n")
        return what + (f", fitted on {n} detections of {self.info.get('source', '?')}" if n is not None else "")


def fit_calibrator(
    scores: Sequence[float] | np.ndarray,
    labels: Sequence[int] | np.ndarray,
    method: str = "isotonic",
    cls: Sequence[int] | np.ndarray | None = None,
    per_class: bool = False,
    min_count: int = 20,
    info: dict | None = None,
) -> Calibrator:
    """Fit ``method`` on detection confidences ``scores`` in [0, 1] and their 1/0 ``labels``."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    p = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels, dtype=np.float64).ravel()
    if p.shape != y.shape or not len(p):
        raise ValueError(f"need as many labels as scores, at least one; got {p.shape} scores and {y.shape} labels")
    if p.min() < 0 or p.max() > 1 or not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("scores must be in [0, 1] and labels 0 or 1")
    if per_class and cls is None:
        raise ValueError("per_class needs cls, the class index of every detection")
    classes: dict[int, dict] = {}
    if per_class:
        c = np.asarray(cls).astype(np.int64).ravel()
        for k in np.unique(c).tolist():
            m = c == k
            if m.sum() >= min_count and 0 < y[m].sum() < m.sum():
                classes[int(k)] = _fit_one(method, p[m], y[m])
    meta = {"n": int(len(p)), "positives": int(y.sum()), **(info or {})}
    return Calibrator(method, _fit_one(method, p, y), per_class, classes, meta)


def carried_calibrator(state: dict | None, disabled: bool = False) -> Calibrator | None:
    """The calibrator whose ``state`` a checkpoint or ONNX export carries; None when it carries none or the user
    asked for raw scores (``disabled``: ``--no-calibrator``)."""
    return None if state is None or disabled else Calibrator.from_state(state)


def apply_calibrator(calibrator: Calibrator | dict | None, scores: Any, cls: Any = None) -> Any:
    """Calibrated copy of the array ``scores`` (``cls``: class indices alike), same dtype.

    ``calibrator``: a :class:`Calibrator`, its ``state()`` dict (as stored in a checkpoint) or None (returns
    ``scores`` unchanged). Apply it to the final confidences after NMS; a model's detection tensors go through
    :func:`tools.inference.postprocess.calibrate_detections`, which calls this.
    """
    if calibrator is None:
        return scores
    cal = calibrator if isinstance(calibrator, Calibrator) else Calibrator.from_state(calibrator)
    return cal(np.asarray(scores), None if cls is None else np.asarray(cls)).astype(np.asarray(scores).dtype)


def calibrate_results(results: list[dict], calibrator: Calibrator | dict | None, cat_ids: Sequence[Any]) -> list[dict]:
    """COCO results with calibrated ``score`` (``category_id`` mapped to the class index by ``cat_ids``)."""
    if calibrator is None or not results:
        return list(results)
    scores = np.array([r["score"] for r in results], dtype=np.float64)
    new = apply_calibrator(calibrator, scores, class_indices(results, cat_ids))
    return [{**r, "score": float(s)} for r, s in zip(results, new)]
