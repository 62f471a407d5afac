"""Named unit constants. Inside golf everything is eV, Angstrom and eV/Angstrom (ASE's units);
these constants convert only at the edges (Hartree from quantum chemistry codes and official
checkpoints, Bohr for tblite/PySCF input, kcal/mol in reports)."""
from __future__ import annotations

from ase import units as _ase

HARTREE_TO_EV: float = float(_ase.Hartree)  # 27.211386... eV
BOHR_TO_ANG: float = float(_ase.Bohr)  # 0.529177... A
ANG_TO_BOHR: float = 1.0 / BOHR_TO_ANG
KCAL_MOL_TO_EV: float = float(_ase.kcal / _ase.mol)  # 0.0433641... eV
EV_TO_KCAL_MOL: float = 1.0 / KCAL_MOL_TO_EV  # 23.0605... kcal/mol
HARTREE_PER_BOHR_TO_EV_PER_ANG: float = HARTREE_TO_EV / BOHR_TO_ANG
