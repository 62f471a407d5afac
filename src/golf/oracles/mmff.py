"""MMFF94 through RDKit: the cheap surrogate oracle of GOLF.

The bond graph comes from ``Conformation.molblock`` (sanitized, hydrogens explicit); coordinates come
from ``Conformation.positions`` -- nothing is re-embedded. When a conformation carries no mol block,
bonds are perceived from the coordinates with ``rdDetermineBonds`` (charge from ``conf.charge``).

The MMFF typing and force-field setup is cached per mol block (an LRU of ``cache_size`` entries),
so repeated calls on the same molecule (every step of the GOLF loop, ~100 molecules) only pay for the
energy/gradient evaluation. The cached force field evaluates energies at arbitrary coordinates via
``ForceField.CalcEnergy(positions)`` / ``CalcGrad(positions)``.

Units: RDKit returns kcal/mol and kcal/mol/A; they are converted to eV and eV/A here.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np

from golf.conformation import Conformation
from golf.errors import InputError
from golf.oracles.base import Oracle, OracleResult
from golf.units import KCAL_MOL_TO_EV

_DEFAULT_CACHE_SIZE = 4096


def _build_force_field(conf: Conformation, variant: str, nonbonded_thresh: float):
    """The MMFF force field of a conformation's molecule (``golf.chem``); InputError if MMFF can't type it.

    With a mol block its bonds are used as they are (atoms must match ``conf.numbers``); without one
    bonds are perceived from the coordinates.
    """
    from golf.chem import conformation_to_mol, mmff_force_field

    mol = conformation_to_mol(conf, strict=bool(conf.molblock))
    return mmff_force_field(mol, variant, nonbonded_thresh)[1]


class MMFFOracle(Oracle):
    """RDKit MMFF94 (or MMFF94s) energies in eV and forces in eV/A.

    Args:
        variant: "MMFF94" (default) or "MMFF94s".
        nonbonded_thresh: non-bonded cutoff used by RDKit when the force field is set up (Angstrom);
            the default 100 A covers every pair of the drug-like molecules golf handles.
        cache_size: number of molecules whose force-field setup is kept.
    """

    name = "mmff"
    needs_bond_orders = True

    def __init__(
        self, variant: str = "MMFF94", nonbonded_thresh: float = 100.0, cache_size: int = _DEFAULT_CACHE_SIZE
    ) -> None:
        if variant not in ("MMFF94", "MMFF94s"):
            raise ValueError(f"unknown MMFF variant {variant!r} (MMFF94 or MMFF94s)")
        self.variant = variant
        self.nonbonded_thresh = float(nonbonded_thresh)
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[str, Any] = OrderedDict()

    @property
    def settings(self) -> dict[str, Any]:
        return {"variant": self.variant, "nonbonded_thresh": self.nonbonded_thresh}

    def _force_field(self, conf: Conformation):
        """Cached force field for the molecule (keyed by mol block); an exception object if setup failed."""
        key = conf.molblock
        if key is not None and key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        try:
            entry: Any = _build_force_field(conf, self.variant, self.nonbonded_thresh)
        except InputError as exc:
            entry = exc
        if key is not None:  # without a mol block bonds depend on the geometry: no caching
            self._cache[key] = entry
            if len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return entry

    def _compute(self, conf: Conformation) -> OracleResult:
        ff = self._force_field(conf)
        if isinstance(ff, Exception):
            return OracleResult.failure(f"MMFF: {ff}")
        pos = conf.positions.reshape(-1).tolist()
        energy = ff.CalcEnergy(pos) * KCAL_MOL_TO_EV
        grad = np.asarray(ff.CalcGrad(pos), dtype=np.float64).reshape(-1, 3)
        return OracleResult(ok=True, energy=float(energy), forces=-grad * KCAL_MOL_TO_EV)

    def energy(self, conf: Conformation) -> float:
        """MMFF energy in eV (NaN if the molecule can't be typed or the geometry is invalid)."""
        if conf.geometry_problem() is not None:
            return float("nan")
        ff = self._force_field(conf)
        if isinstance(ff, Exception):
            return float("nan")
        try:
            return float(ff.CalcEnergy(conf.positions.reshape(-1).tolist()) * KCAL_MOL_TO_EV)
        except Exception:
            return float("nan")


_DEFAULT_ORACLE: MMFFOracle | None = None


def mmff_energies(confs: Sequence[Conformation], oracle: MMFFOracle | None = None) -> np.ndarray:
    """MMFF94 energies of many conformations, shape [B], in eV; NaN where MMFF fails.

    Uses a module-level cached ``MMFFOracle`` (so force-field setups are reused across calls)
    unless ``oracle`` is given.
    """
    global _DEFAULT_ORACLE
    if oracle is None:
        if _DEFAULT_ORACLE is None:
            _DEFAULT_ORACLE = MMFFOracle()
        oracle = _DEFAULT_ORACLE
    return np.array([oracle.energy(c) for c in confs], dtype=np.float64)


def mmff_minimize(confs: Sequence[Conformation], max_iters: int,
                  variant: str = "MMFF94") -> tuple[list[Conformation], np.ndarray]:
    """Relax conformers of one molecule with RDKit's MMFF94 minimizer (``MMFFOptimizeMoleculeConfs``).

    Args:
        confs: conformers of ONE molecule, [n, 3] A each (bond graph as ``golf.chem.conformation_to_mol``: the
            mol block, else perceived).
        max_iters: minimizer iterations per conformer (RDKit's BFGS; a conformer not converged by then
            is returned where it stopped).
        variant: "MMFF94" or "MMFF94s".

    Returns the relaxed conformations (same order, metadata kept) and their MMFF energies [B] in eV.
    Raises InputError when MMFF cannot type the molecule. Typing is done once for all conformers, the
    minimization runs in RDKit's C++ loop: this is the cheap stage in front of a model relaxation.
    """
    from rdkit.Chem import rdForceFieldHelpers

    from golf.chem import conformation_to_mol

    if not confs:
        return [], np.zeros(0)
    mol = conformation_to_mol(confs[0], strict=True)  # InputError for an unusable mol block
    if not rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol):
        raise InputError("MMFF94 cannot assign atom types to this molecule")
    for c in confs[1:]:
        mol.AddConformer(conformation_to_mol(c, strict=True).GetConformer(), assignId=True)
    out = rdForceFieldHelpers.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=int(max_iters),
                                                        mmffVariant=variant)
    if any(flag == -1 for flag, _ in out):
        raise InputError("MMFF94 force field setup failed")
    relaxed = [c.with_positions(np.array(rc.GetPositions(), dtype=np.float64))
               for c, rc in zip(confs, mol.GetConformers())]
    return relaxed, np.array([e for _, e in out], dtype=np.float64) * KCAL_MOL_TO_EV


__all__ = ["MMFFOracle", "mmff_energies", "mmff_minimize"]
