"""What a checkpoint needs beyond the model: RNG states in checkpoint-safe form, the sample order of an epoch
and the position inside it (:class:`EpochProgress`), so a run stopped mid-epoch resumes at the same step.

Mid-epoch resume reproduces the uninterrupted run exactly because nothing in an epoch depends on history
that the checkpoint does not hold: the sample order is a function of ``(seed, epoch, rank)``
(:func:`epoch_order`); augmentation draws from ``numpy.random.default_rng([seed, epoch, index])`` per sample
(``data/base.py``), so which loader worker makes a batch, and how many workers there are, does not matter;
the loader's own base seed comes from a generator seeded by ``(seed, epoch)``, not from the global RNG; and
the rest (optimizer, scheduler, EMA, the loss's buffers such as online smoothing's matrix, the running
means of the epoch and the accumulation counter) is saved.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from torch.utils.data import DistributedSampler


def rng_state() -> dict[str, Any]:
    """torch, numpy and python RNG states as plain values (loadable with ``weights_only=True``)."""
    # legacy=True gives the tuple (name, key, pos, has_gauss, cached_gaussian) for the global MT19937 generator
    np_state = cast(tuple[str, np.ndarray, int, int, float], np.random.get_state(legacy=True))
    py_state = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": [py_state[0], list(py_state[1]), py_state[2]],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state((n[0], n[1].numpy().astype(np.uint32), *n[2:]))
    p = state["python"]
    random.setstate((p[0], tuple(p[1]), p[2]))
    if state.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The generator of an epoch's shuffle (and of the loader's worker base seed): ``seed + epoch``."""
    return torch.Generator().manual_seed(seed + epoch)


def epoch_order(dataset: Any, seed: int, epoch: int, rank: int = 0, world_size: int = 1) -> list[int]:
    """The sample indices this rank trains on in ``epoch``, in order.

    One process: ``torch.randperm`` from :func:`epoch_generator` (what ``DataLoader(shuffle=True,
    generator=...)`` draws). Several: ``DistributedSampler(shuffle=True, seed=seed)`` at ``epoch``.
    """
    if world_size > 1:
        sampler: DistributedSampler[int] = DistributedSampler(dataset, world_size, rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        return list(sampler)
    return torch.randperm(len(dataset), generator=epoch_generator(seed, epoch)).tolist()


@dataclass
class EpochProgress:
    """Where training is inside an epoch, and the epoch's running figures so far.

    ``batch`` is the next batch to train (``0`` at the epoch start, the number of batches once all are
    trained and only the end of the epoch is left); ``last_opt_step`` the global batch index ``ni`` of the
    last optimizer step (the gradient-accumulation counter: a step happens once ``ni - last_opt_step``
    reaches the accumulation). A checkpoint is only written right after an optimizer step, so no
    accumulated gradient is ever pending in one.
    """

    epoch: int
    batch: int = 0
    last_opt_step: int = -1
    mloss: torch.Tensor = field(default_factory=lambda: torch.zeros(3))  # running mean of (box, obj, cls)
    norms: list[float] = field(default_factory=list)  # gradient norm of each optimizer step
    clipped: int = 0  # steps whose norm exceeded --clip-grad
    vclip: list[float] = field(default_factory=lambda: [0.0, 0.0])  # elements clipped by value, elements
    consecutive: int = 0  # consecutive non-finite losses

    def state(self) -> dict[str, Any]:
        d = asdict(self)
        d["mloss"] = self.mloss.detach().cpu().clone()
        return d

    @classmethod
    def from_state(cls, state: dict[str, Any], device: torch.device | str = "cpu") -> EpochProgress:
        names = set(cls.__dataclass_fields__)
        unknown = sorted(set(state) - names)
        if unknown:
            raise ValueError(f"epoch progress has unknown key(s) {unknown}")
        s = dict(state)
        s["mloss"] = torch.as_tensor(s.get("mloss", torch.zeros(3))).to(device)
        s["norms"] = [float(x) for x in s.get("norms", [])]
        s["vclip"] = [float(x) for x in s.get("vclip", [0.0, 0.0])]
        return cls(**s)
