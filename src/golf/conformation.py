"""The unit of work of golf: one conformation of one molecule.

A ``Conformation`` is plain NumPy data (no torch, no RDKit objects) so it pickles cheaply to oracle
worker processes. Bonds travel as an RDKit V2000/V3000 mol block (``molblock``) because the MMFF
surrogate and SDF output need them; positions in the mol block are ignored, ``positions`` rules.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: Elements golf supports by default (those of the GOLF paper / nablaDFT).
SUPPORTED_ELEMENTS: tuple[int, ...] = (1, 6, 7, 8, 9, 16, 17, 35)

#: Two atoms closer than this (Angstrom) make a geometry invalid.
MIN_INTERATOMIC_DISTANCE: float = 0.5


@dataclass
class Conformation:
    """One conformation.

    Attributes:
        numbers: atomic numbers, shape [n], int64.
        positions: Cartesian coordinates in Angstrom, shape [n, 3], float64.
        smiles: canonical SMILES of the molecule, if known.
        mol_id: identifier of the molecule (shared by all its conformations), -1 if unknown.
        conf_id: index of this conformation within its molecule, -1 if unknown.
        charge: total charge (e).
        multiplicity: spin multiplicity 2S+1.
        molblock: RDKit mol block carrying the bond graph (positions in it are not used).
        info: free-form extra metadata (JSON-serialisable values).
    """

    numbers: np.ndarray
    positions: np.ndarray
    smiles: str | None = None
    mol_id: int = -1
    conf_id: int = -1
    charge: int = 0
    multiplicity: int = 1
    molblock: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.numbers = np.asarray(self.numbers, dtype=np.int64).reshape(-1)
        self.positions = np.asarray(self.positions, dtype=np.float64).reshape(-1, 3)
        if len(self.numbers) != len(self.positions):
            raise ValueError(
                f"{len(self.numbers)} atomic numbers but {len(self.positions)} positions"
            )

    @property
    def n_atoms(self) -> int:
        return int(len(self.numbers))

    def with_positions(self, positions: np.ndarray) -> "Conformation":
        """A copy with new coordinates (Angstrom, [n, 3]); metadata is shared by value."""
        return Conformation(
            numbers=self.numbers.copy(),
            positions=np.array(positions, dtype=np.float64).reshape(-1, 3),
            smiles=self.smiles,
            mol_id=self.mol_id,
            conf_id=self.conf_id,
            charge=self.charge,
            multiplicity=self.multiplicity,
            molblock=self.molblock,
            info=dict(self.info),
        )

    def geometry_problem(self) -> str | None:
        """Why this geometry cannot be computed (NaN/inf coordinates, overlapping atoms), or None."""
        if self.n_atoms == 0:
            return "no atoms"
        if not np.all(np.isfinite(self.positions)):
            return "non-finite coordinates"
        if self.n_atoms > 1:
            d = np.linalg.norm(self.positions[:, None, :] - self.positions[None, :, :], axis=-1)
            d[np.diag_indices_from(d)] = np.inf
            i, j = np.unravel_index(np.argmin(d), d.shape)
            if d[i, j] < MIN_INTERATOMIC_DISTANCE:
                return (
                    f"atoms {int(i)} and {int(j)} are {d[i, j]:.3f} A apart "
                    f"(< {MIN_INTERATOMIC_DISTANCE} A)"
                )
        return None


#: Atoms closer than this multiple of the sum of their covalent radii count as connected when
#: fragments are counted; 2x flags only molecules that really fell apart (a C-C bond beyond 3 A).
FRAGMENT_BOND_SCALE: float = 2.0


def n_fragments(numbers: np.ndarray, positions: np.ndarray, scale: float = FRAGMENT_BOND_SCALE) -> int:
    """Connected components of the graph "d_ij < scale * (r_cov,i + r_cov,j)".

    Args:
        numbers: atomic numbers [n]; positions: [n, 3] Angstrom (ASE covalent radii, Angstrom).
    """
    from ase.data import covalent_radii
    from scipy.sparse.csgraph import connected_components

    x = np.asarray(positions, dtype=np.float64)
    r = covalent_radii[np.asarray(numbers, dtype=np.int64)]
    d = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=-1)
    return int(connected_components(d < scale * (r[:, None] + r[None, :]), directed=False)[0])
