"""A batch of conformations as flat torch tensors (TorchSim / schnetpack style).

Shape vocabulary used across golf: N atoms in the batch, B molecules, M max atoms per molecule,
H L-BFGS history. ``mol_idx`` [N] maps every atom to its molecule (0..B-1, non-decreasing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import numpy as np
import torch

from golf.conformation import Conformation


@dataclass
class Batch:
    """Many conformations of different sizes in one set of tensors.

    Attributes:
        numbers: atomic numbers [N], int64.
        positions: coordinates in Angstrom [N, 3].
        mol_idx: molecule index of every atom [N], int64, non-decreasing, values 0..B-1.
        n_mols: B.
    """

    numbers: torch.Tensor
    positions: torch.Tensor
    mol_idx: torch.Tensor
    n_mols: int

    @classmethod
    def from_conformations(
        cls,
        confs: Sequence[Conformation],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> "Batch":
        counts = [c.n_atoms for c in confs]
        numbers = torch.as_tensor(np.concatenate([c.numbers for c in confs]), device=device)
        positions = torch.as_tensor(
            np.concatenate([c.positions for c in confs]), dtype=dtype, device=device
        )
        mol_idx = torch.repeat_interleave(
            torch.arange(len(confs), device=device), torch.as_tensor(counts, device=device)
        )
        return cls(numbers.long(), positions, mol_idx, len(confs))

    @property
    def n_atoms(self) -> torch.Tensor:
        """Atoms per molecule [B], int64."""
        return torch.bincount(self.mol_idx, minlength=self.n_mols)

    @property
    def device(self) -> torch.device:
        return self.positions.device

    def with_positions(self, positions: torch.Tensor) -> "Batch":
        return Batch(self.numbers, positions, self.mol_idx, self.n_mols)

    def select(self, mol_mask: torch.Tensor) -> "Batch":
        """The sub-batch of molecules where ``mol_mask`` [B] (bool) is true, re-indexed 0..B'-1."""
        atom_mask = mol_mask[self.mol_idx]
        new_index = torch.cumsum(mol_mask.long(), 0) - 1  # [B] old -> new molecule index
        return Batch(
            self.numbers[atom_mask],
            self.positions[atom_mask],
            new_index[self.mol_idx[atom_mask]],
            int(mol_mask.sum()),
        )

    def split(self, per_atom: torch.Tensor) -> list[torch.Tensor]:
        """Split a per-atom tensor [N, ...] into a list of B per-molecule tensors."""
        return list(torch.split(per_atom, self.n_atoms.tolist()))


class EnergyForces(Protocol):
    """Anything that gives energies and forces for a batch: an NNP, or an oracle behind an adapter.

    Returns energy [B] in eV and forces [N, 3] in eV/Angstrom, detached, on the batch's device.
    """

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]: ...


# ---------------------------------------------------------------------------------------------------------------
# batch sizing by memory

#: Peak memory of one PaiNN energy + force evaluation (forward and position backward, no create_graph), bytes
#: per neighbour pair (i != j within the cutoff) and per atom, for n_atom_basis = 128, 3 interactions, float32.
#: Measured: GOLF-10k, 1 torch thread, growth of the process's peak resident size (``ru_maxrss``) over one
#: ``Potential.energy_and_forces`` call in a fresh process, six batches of the drugs of
#: ``bench/bench_conformers.py --drugs`` (240-6520 atoms, 3.8k-146k pairs, 91 MB-3.6 GB); least squares
#: fit, residuals within 12% (largest on the smallest batch). bench/bench_memory.py repeats the measurement.
PAINN_PAIR_BYTES = 24_100
PAINN_ATOM_BYTES = 34_900
#: the reference width of the constants above: n_atom_basis * n_interactions * bytes per float.
_PAINN_REFERENCE = 128 * 3 * 4
#: Optimizer state per molecule of n atoms: L-BFGS history and a dense preconditioner (3n x 3n, a few copies).
OPTIM_BYTES_PER_ATOM = 2 * 100 * 3 * 8
OPTIM_BYTES_PER_DOF2 = 4 * 8
#: Default memory budget of one batch (bytes), beyond the process's fixed cost (libraries, model).
DEFAULT_MEMORY_BUDGET = 768 * 2**20
#: Resident size of a process that has imported torch and loaded a PaiNN, before any batch (233 MiB by
#: bench/bench_memory.py on Linux, CPU build of torch 2.13): what each relaxation process beyond the first adds
#: (golf.runs.relax_pool).
PROCESS_BYTES = 240 * 2**20
#: At most this fraction of the memory currently available on the device is planned for.
AVAILABLE_FRACTION = 0.5
#: Pairs are counted at the start; relaxations compact molecules a little.
PAIR_MARGIN = 1.15


def memory_scale(model: Any) -> float:
    """Memory of ``model`` per pair and per atom relative to the measured reference (PaiNN, 128 features,
    3 interactions, float32): features x interactions x bytes per float / (128 x 3 x 4); 1 when unknown."""
    config = getattr(model, "config", None)
    hp = config.get("hparams", {}) if isinstance(config, dict) else {}
    try:
        width = int(hp.get("n_atom_basis", 128)) * int(hp.get("n_interactions", 3))
        itemsize = torch.empty(0, dtype=getattr(model, "dtype", torch.float32)).element_size()
    except (TypeError, ValueError):
        return 1.0
    return max(width * itemsize / _PAINN_REFERENCE, 1e-3)


def count_pairs(numbers_or_batch: Batch, cutoff: float = 5.0) -> list[int]:
    """Neighbour pairs (ordered, i != j, closer than ``cutoff`` A) of every molecule of a batch, from its
    current positions; molecules one at a time, so memory stays O(largest molecule squared)."""
    pos = numbers_or_batch.positions.detach()
    out: list[int] = []
    for p in numbers_or_batch.split(pos):
        n = p.shape[0]
        if n == 0:
            out.append(0)
            continue
        d2 = (p[:, None, :] - p[None, :, :]).square().sum(-1)
        out.append(int((d2 < cutoff * cutoff).sum()) - n)
    return out


def available_bytes(device: torch.device | str = "cpu") -> int | None:
    """Memory free for new allocations on ``device`` (bytes): the OS's available memory on CPU, the CUDA
    driver's free memory on a GPU; None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except (RuntimeError, AssertionError):
            return None
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except (ImportError, OSError):
        return None


def auto_batch_size(
    n_atoms_per_conf: Sequence[int],
    n_pairs_per_conf: Sequence[int] | None = None,
    device: torch.device | str = "cpu",
    budget_bytes: int | None = None,
    scale: float = 1.0,
) -> int:
    """How many conformations to evaluate (or relax) at once so one energy + force evaluation stays within a
    memory budget.

    The memory of a conformation is ``scale * (PAINN_PAIR_BYTES * pairs + PAINN_ATOM_BYTES * atoms)`` plus
    the optimizer state; the batch is sized for the most expensive conformations (any of them may be
    active together in a streamed relaxation), so every batch fits.

    Args:
        n_atoms_per_conf: atoms of every conformation.
        n_pairs_per_conf: neighbour pairs of every conformation (``count_pairs``); None: estimated as
            min(n - 1, 32) pairs per atom (dense for small molecules, drug-like density otherwise).
        device: where the evaluation runs (its free memory caps the budget).
        budget_bytes: memory for the batch (bytes); None: ``DEFAULT_MEMORY_BUDGET``. Either way at most
            ``AVAILABLE_FRACTION`` of the memory available now.
        scale: model size relative to the measured reference (``memory_scale(model)``).

    Returns:
        at least 1 and at most the number of conformations (1 for none).
    """
    atoms = np.asarray(n_atoms_per_conf, dtype=np.float64).reshape(-1)
    if atoms.size == 0:
        return 1
    if n_pairs_per_conf is None:
        pairs = atoms * np.clip(atoms - 1, 0, 32)
    else:
        pairs = np.asarray(n_pairs_per_conf, dtype=np.float64).reshape(-1)
        if pairs.shape != atoms.shape:
            raise ValueError(f"{pairs.size} pair counts for {atoms.size} conformations")
    cost = scale * (PAINN_PAIR_BYTES * PAIR_MARGIN * pairs + PAINN_ATOM_BYTES * atoms)
    cost += OPTIM_BYTES_PER_ATOM * atoms + OPTIM_BYTES_PER_DOF2 * (3 * atoms) ** 2
    budget = float(DEFAULT_MEMORY_BUDGET if budget_bytes is None else budget_bytes)
    free = available_bytes(device)
    if free is not None:
        budget = min(budget, AVAILABLE_FRACTION * free)
    worst_first = np.cumsum(np.sort(cost)[::-1])
    return int(min(atoms.size, max(1, int(np.searchsorted(worst_first, budget, side="right")))))
