"""A batch of conformations as flat torch tensors (TorchSim / schnetpack style).

Shape vocabulary used across golf: N atoms in the batch, B molecules, M max atoms per molecule,
H L-BFGS history. ``mol_idx`` [N] maps every atom to its molecule (0..B-1, non-decreasing).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

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
