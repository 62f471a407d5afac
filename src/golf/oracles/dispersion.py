"""Chai-Head-Gordon damped pairwise dispersion: the "-D" of wB97X-D (eV and Angstrom).

    E_disp = -s6 * sum_{i<j} C6_ij / r_ij^6 * f_damp(r_ij),
    f_damp(r) = 1 / (1 + a * (r / R_r)^-12),
    C6_ij = sqrt(C6_i * C6_j),      R_r = R0_i + R0_j,      a = 6.0,  s6 = 1.0,

with Grimme's D2 atomic C6 coefficients and van der Waals radii R0.

Sources:
    * J.-D. Chai and M. Head-Gordon, "Long-range corrected hybrid density functionals with damped
      atom-atom dispersion corrections", Phys. Chem. Chem. Phys. 10, 6615-6620 (2008)
      (damping function with a = 6.0; C6 and R_r from Grimme's DFT-D2).
    * S. Grimme, J. Comput. Chem. 27, 1787-1799 (2006), Table 1: C6 in J nm^6 mol^-1 and R0 in A
      (the published R0 already include Grimme's 1.1 scaling).
    * Psi4's implementation of "-CHG" (``psi4/src/psi4/libdisp/dispersion.cc``, ``Damping_CHG`` with
      ``d_ = 6.0``, ``C6_geom`` = geometric mean, ``RvdW = RvdW_D2[Zi] + RvdW_D2[Zj]``; tables in
      ``dispersion_defines.h`` in atomic units), which is the dispersion of Psi4's ``wB97X-D`` and hence
      of the GOLF paper's / nablaDFT's oracle. The tables below were checked against Psi4's
      atomic-unit tables (C6 [Hartree Bohr^6] = 17.34525 * C6 [J nm^6 mol^-1]; R0 [Bohr] = R0 [A] / 0.5291772).

Units: positions in Angstrom, energy in eV, gradient in eV/A. C6 are converted from J nm^6 mol^-1 to
eV A^6 with ``C6_J_NM6_MOL_TO_EV_ANG6`` (1 J/mol = 1/96485.33 eV per molecule; 1 nm^6 = 1e6 A^6).
No three-body term, no cutoff (all pairs; molecules here are small).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from ase import units as _ase

#: 1 J nm^6 mol^-1 in eV A^6 (= 1e-3 kJ/mol * 1e6 A^6) ~ 10.3643.
C6_J_NM6_MOL_TO_EV_ANG6: float = float(_ase.kJ / _ase.mol) * 1e-3 * 1e6

#: Grimme D2 atomic C6, J nm^6 mol^-1 (Grimme 2006, Table 1), by atomic number (H-Ar, Br, I).
D2_C6: dict[int, float] = {
    1: 0.14, 2: 0.08,
    3: 1.61, 4: 1.61, 5: 3.13, 6: 1.75, 7: 1.23, 8: 0.70, 9: 0.75, 10: 0.63,
    11: 5.71, 12: 5.71, 13: 10.79, 14: 9.23, 15: 7.84, 16: 5.57, 17: 5.07, 18: 4.61,
    35: 12.47, 53: 31.50,
}

#: Grimme D2 van der Waals radii R0, Angstrom (Grimme 2006, Table 1), by atomic number.
D2_R0: dict[int, float] = {
    1: 1.001, 2: 1.012,
    3: 0.825, 4: 1.408, 5: 1.485, 6: 1.452, 7: 1.397, 8: 1.342, 9: 1.287, 10: 1.243,
    11: 1.144, 12: 1.364, 13: 1.639, 14: 1.716, 15: 1.705, 16: 1.683, 17: 1.639, 18: 1.595,
    35: 1.749, 53: 1.892,
}

#: Chai-Head-Gordon damping steepness a and global scaling s6 of wB97X-D.
CHG_A: float = 6.0
CHG_S6: float = 1.0


def _tables(numbers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    missing = sorted({int(z) for z in numbers if int(z) not in D2_C6})
    if missing:
        raise ValueError(f"no Grimme-D2 C6/R0 for atomic numbers {missing}")
    c6 = np.array([D2_C6[int(z)] for z in numbers], dtype=np.float64) * C6_J_NM6_MOL_TO_EV_ANG6
    r0 = np.array([D2_R0[int(z)] for z in numbers], dtype=np.float64)
    return c6, r0


def chg_dispersion(
    numbers: Sequence[int] | np.ndarray,
    positions: np.ndarray,
    a: float = CHG_A,
    s6: float = CHG_S6,
) -> tuple[float, np.ndarray]:
    """Chai-Head-Gordon dispersion energy and its analytic gradient for one molecule.

    Args:
        numbers: atomic numbers [n].
        positions: Cartesian coordinates [n, 3], Angstrom.
        a: damping steepness (6.0 for wB97X-D).
        s6: global scaling (1.0 for wB97X-D).

    Returns:
        (energy in eV, gradient dE/dx [n, 3] in eV/A). Forces are minus the gradient.

    Raises:
        ValueError: for an element without D2 parameters, or coincident atoms.
    """
    z = np.asarray(numbers, dtype=np.int64).reshape(-1)
    x = np.asarray(positions, dtype=np.float64).reshape(len(z), 3)
    c6, r0 = _tables(z)
    i, j = np.triu_indices(len(z), k=1)  # [P]
    d = x[i] - x[j]  # [P, 3]
    r = np.linalg.norm(d, axis=1)  # [P]
    if np.any(r < 1e-8):
        raise ValueError("coincident atoms in dispersion")
    c6ij = np.sqrt(c6[i] * c6[j])
    rr = r0[i] + r0[j]
    u = (r / rr) ** -12  # (r/R_r)^-12
    f = 1.0 / (1.0 + a * u)
    rm6 = r**-6
    energy = -s6 * float(np.sum(c6ij * rm6 * f))
    # d f / d r = f^2 * a * 12 * (r/R_r)^-12 / r ;  d r^-6 / d r = -6 r^-7
    df = f * f * a * 12.0 * u / r
    de_dr = -s6 * c6ij * (-6.0 * rm6 / r * f + rm6 * df)  # [P]
    g_pair = (de_dr / r)[:, None] * d  # dE/dx_i for each pair; dE/dx_j = -that
    grad = np.zeros_like(x)
    np.add.at(grad, i, g_pair)
    np.add.at(grad, j, -g_pair)
    return energy, grad


__all__ = ["chg_dispersion", "D2_C6", "D2_R0", "CHG_A", "CHG_S6", "C6_J_NM6_MOL_TO_EV_ANG6"]
