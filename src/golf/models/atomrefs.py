"""Per-element reference energies (atomrefs) fitted by linear least squares.

E_mol ~ sum_Z count_Z(mol) * atomref[Z]; the NNP then only learns the remainder.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

__all__ = ["fit_atomrefs", "element_counts"]

N_ELEMENTS = 119


def element_counts(numbers_list: Sequence[np.ndarray]) -> np.ndarray:
    """Element-count matrix [B, 119] (int64) of B molecules."""
    counts = np.zeros((len(numbers_list), N_ELEMENTS), dtype=np.int64)
    for b, numbers in enumerate(numbers_list):
        z = np.asarray(numbers, dtype=np.int64).reshape(-1)
        np.add.at(counts[b], z, 1)
    return counts


def fit_atomrefs(numbers_list: Sequence[np.ndarray], energies: np.ndarray) -> np.ndarray:
    """Least-squares atomrefs from molecules and their energies.

    Args:
        numbers_list: B arrays of atomic numbers.
        energies: [B] energies in eV.

    Returns:
        [119] float64, eV per atom of each element; elements that never occur get 0.
        When the counts are collinear (e.g. one conformer family) the minimum-norm solution is returned.
    """
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    if len(numbers_list) != len(energies):
        raise ValueError(f"{len(numbers_list)} molecules but {len(energies)} energies")
    refs = np.zeros(N_ELEMENTS, dtype=np.float64)
    if len(energies) == 0:
        return refs
    counts = element_counts(numbers_list)
    seen = np.flatnonzero(counts.sum(0))
    coef, *_ = np.linalg.lstsq(counts[:, seen].astype(np.float64), energies, rcond=None)
    refs[seen] = coef
    return refs
