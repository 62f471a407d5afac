"""The GOLF replay buffer: the fixed initial dataset D0 plus the genuine-oracle conformations
collected during training.

As the official ``GOLF/replay_buffer.py`` (``ReplayBuffer.sample``): a batch holds
``int(batch_size * (1 - initial_conf_pct))`` new conformations, drawn without replacement, and the
rest from D0, also without replacement. The GOLF loop trains only once ``ready(batch_size)``: at
least ``batch_size`` new conformations exist (official ``main.py``, ``update_condition``), so the new
share never repeats a conformation. Before any new data exists (plain fine-tuning) every item comes
from D0. ``capacity`` (optional) keeps only the most recent ``capacity`` new conformations eligible,
like the official code's ring buffer.

golf's option beyond the official buffer (``golf adapt``): a third source, ``generic`` conformations
(e.g. the starting model's own chemistry), from which ``int(batch_size * generic_pct)`` items of every
batch are drawn once new data exists, taken out of the new share; they keep a fine-tuned model good
outside the data it is adapted to. ``generic_pct = 0`` (the default) is the official buffer.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.dataset import LabelledData, collate_arrays


class ReplayBuffer:
    """D0 + new oracle data.

    Args:
        initial: the initial labelled dataset (not modified).
        initial_conf_pct: fraction of every batch drawn from ``initial`` once new data exists.
        capacity: how many of the newest added conformations are sampled from (None: all).
        generic: optional generic labelled conformations (not modified); generic_pct: fraction of every
            batch drawn from them once new data exists (``initial_conf_pct + generic_pct <= 1``).
    """

    def __init__(self, initial: LabelledData, initial_conf_pct: float = 0.1, capacity: int | None = None,
                 generic: LabelledData | None = None, generic_pct: float = 0.0) -> None:
        if not 0.0 <= initial_conf_pct <= 1.0:
            raise ValueError("initial_conf_pct must be in [0, 1]")
        if not 0.0 <= generic_pct <= 1.0 - initial_conf_pct:
            raise ValueError("generic_pct must be in [0, 1 - initial_conf_pct]")
        if generic_pct > 0 and (generic is None or len(generic) == 0):
            raise ValueError("generic_pct > 0 needs generic conformations")
        self.initial = initial
        self.initial_conf_pct = float(initial_conf_pct)
        self.capacity = capacity
        self.generic = generic if generic is not None else LabelledData()
        self.generic_pct = float(generic_pct)
        self.new = LabelledData()

    def __len__(self) -> int:
        """Conformations eligible for sampling (initial + eligible new)."""
        return len(self.initial) + self.n_new

    @property
    def n_new(self) -> int:
        n = len(self.new)
        return n if self.capacity is None else min(n, self.capacity)

    @property
    def n_added(self) -> int:
        """All conformations ever added (including ones aged out by ``capacity``)."""
        return len(self.new)

    def add(self, conf: Conformation, energy: float, forces: np.ndarray) -> None:
        """Add one genuine-oracle conformation: energy eV, forces [n,3] eV/A."""
        self.new.append(conf, energy, forces)

    def ready(self, batch_size: int) -> bool:
        """At least ``batch_size`` new conformations: training on the buffer may start."""
        return self.n_new >= batch_size

    def split_sizes(self, batch_size: int) -> tuple[int, int, int]:
        """(items from initial, items from new, items from generic) in a batch of ``batch_size``."""
        if self.n_new == 0:
            return batch_size, 0, 0
        n_generic = int(batch_size * self.generic_pct)
        if len(self.initial) == 0:
            return 0, batch_size - n_generic, n_generic
        n_new = int(batch_size * (1.0 - self.initial_conf_pct))  # official: int(), i.e. floor
        return batch_size - n_new, n_new - n_generic, n_generic

    def sample(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Indices (into ``initial``, into ``new``, into ``generic``) of a batch of ``batch_size``
        conformations. The generic draw comes last, so ``generic_pct = 0`` draws what the official
        buffer draws from the same generator.

        Raises ValueError when the new share is larger than the new data (see ``ready``).
        """
        n_init, n_new, n_generic = self.split_sizes(batch_size)
        if n_init and len(self.initial) == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        if n_new > self.n_new:
            raise ValueError(f"a batch needs {n_new} new conformations without replacement; the buffer has {self.n_new}")
        init_idx = _choice(rng, len(self.initial), n_init)
        lo = len(self.new) - self.n_new
        new_idx = lo + _choice(rng, self.n_new, n_new)
        generic_idx = _choice(rng, len(self.generic), n_generic)
        return init_idx, new_idx, generic_idx

    def sample_batch(
        self,
        batch_size: int,
        rng: np.random.Generator,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """A collated (Batch, energy [B] eV, forces [N,3] eV/A): initial items first, then new, then
        generic."""
        init_idx, new_idx, generic_idx = self.sample(batch_size, rng)
        parts = []
        if len(init_idx):
            parts.append(self.initial.gather(init_idx))
        if len(new_idx):
            parts.append(self.new.gather(new_idx))
        if len(generic_idx):
            parts.append(self.generic.gather(generic_idx))
        return collate_arrays(parts, device, dtype)

    def state_dict(self) -> dict[str, Any]:
        """The new data and settings (the initial data is rebuilt from its db on resume)."""
        return {
            "initial_conf_pct": self.initial_conf_pct,
            "capacity": self.capacity,
            "n_initial": len(self.initial),
            "generic_pct": self.generic_pct,
            "n_generic": len(self.generic),
            "new": self.new.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["n_initial"] != len(self.initial):
            raise ValueError(
                f"replay state was saved with {state['n_initial']} initial conformations, "
                f"this buffer has {len(self.initial)}"
            )
        if state.get("n_generic", 0) != len(self.generic):
            raise ValueError(f"replay state was saved with {state.get('n_generic', 0)} generic conformations, "
                             f"this buffer has {len(self.generic)}")
        self.initial_conf_pct = float(state["initial_conf_pct"])
        self.generic_pct = float(state.get("generic_pct", 0.0))
        self.capacity = state["capacity"]
        self.new = LabelledData.from_state_dict(state["new"])


def _choice(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    if k == 0 or n == 0:
        return np.zeros(0, dtype=np.int64)
    return rng.choice(n, size=k, replace=k > n).astype(np.int64)
