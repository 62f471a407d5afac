"""How far to trust a neural-network relaxation: one number per relaxed structure, high = distrust.

The signal is the surrogate's verdict: RDKit's MMFF94 relaxes the NNP's final structure (with the
molecule's own bond graph) to convergence, and the energy it gains is returned. A good NNP minimum
lies close to a minimum of any sensible force field, so MMFF gains little (a few kcal/mol of
torsional and non-bonded disagreement); an NNP that stretched a bond, bent an angle or
pyramidalised an atom the way DFT would not (the failures the official checkpoints share, e.g.
every one of them stretches a thiocarbonyl C=S) leaves a strained structure that MMFF relaxes with
a large drop. A structure that fell apart gets +inf.

Validation (``bench/trust.py``: 6 official checkpoints x 15 NCI molecules of the paper-table
benchmark, bad = E_res > 1 kcal/mol at wB97X-D/def2-SVP or fell apart; 38 bad of 90): ROC AUC 0.90,
95% bootstrap interval over molecules [0.76, 0.98]; 0.75 comparing only relaxations of the same
molecule; 0.77 [0.58, 0.93] without the 4 molecules every model gets wrong. No other candidate
measured there did better (spread of the official models' forces and energies, which share their
blind spots; GFN2-xTB forces; MMFF bond-length changes; the model's own residual force). The
sample is small and strongly correlated within a molecule: treat the number as a ranking, not a
calibrated probability. On that benchmark no good relaxation had a drop above 7.5 kcal/mol and
every bad one had more than 2 kcal/mol.

The bond graph must come from the input molecule (``Conformation.molblock``, as every golf
relaxation carries it): bonds perceived at the relaxed structure would adopt the model's errors.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from golf.conformation import Conformation
from golf.errors import InputError
from golf.units import KCAL_MOL_TO_EV

#: What sends a conformation to the genuine oracle in the GOLF loop (``golf.loop``): the official
#: surrogate rule, the trust signal at the step limit, or both.
TRIGGERS = ("surrogate", "signal", "both")
#: Trust-signal threshold of the "signal"/"both" triggers: 2 kcal/mol, the largest drop below which the
#: validation set (bench/results/trust.json) held no bad relaxation.
SIGNAL_THRESHOLD: float = 2.0 * KCAL_MOL_TO_EV

#: MMFF94 minimiser iterations (RDKit BFGS); drug-sized molecules converge in a few hundred.
MAX_ITERATIONS: int = 2000


def _mol_and_props(conf: Conformation, cache: dict[str, Any]) -> tuple[Any, Any]:
    """RDKit molecule of the conformation's bond graph at its coordinates, and its MMFF typing
    (cached per mol block: typing is the slow part)."""
    from golf.chem import conformation_to_mol, mmff_force_field

    if not conf.molblock:
        raise InputError("no bond graph (mol block): the MMFF trust signal needs the input molecule's bonds")
    mol = conformation_to_mol(conf, strict=True)
    props = cache.get(conf.molblock)
    if props is None:
        props, _ = mmff_force_field(mol)
        cache[conf.molblock] = props
    return mol, props


def _fell_apart(conf: Conformation, mol: Any) -> bool:
    """More fragments at the coordinates than the bond graph has (``golf.evaluation.scoring``'s criterion)."""
    from rdkit import Chem

    from golf.conformation import n_fragments

    return n_fragments(conf.numbers, conf.positions) > len(Chem.GetMolFrags(mol))


def mmff_energy_drop_one(conf: Conformation, max_iterations: int = MAX_ITERATIONS) -> float:
    """MMFF94 energy drop (eV, >= 0) when MMFF relaxes ``conf`` from its coordinates; +inf if the
    structure fell apart.

    Args:
        conf: a relaxed structure (Angstrom) carrying its molecule's mol block.
        max_iterations: MMFF minimiser iterations (a minimisation cut short gives a lower bound).

    Raises InputError when the conformation has no mol block, its geometry cannot be computed, or
    MMFF94 cannot type the molecule.
    """
    return _drop(conf, int(max_iterations), {})


def _drop(conf: Conformation, max_iterations: int, cache: dict[str, Any]) -> float:
    from golf.chem import mmff_force_field

    problem = conf.geometry_problem()
    if problem is not None:
        raise InputError(f"bad geometry: {problem}")
    mol, props = _mol_and_props(conf, cache)
    if _fell_apart(conf, mol):
        return float("inf")
    _, ff = mmff_force_field(mol, props=props)
    ff.Initialize()
    e_start = ff.CalcEnergy()
    ff.Minimize(maxIts=max_iterations)
    # BFGS never ends above its start; max() only guards the sign of a zero drop
    return max(0.0, float(e_start - ff.CalcEnergy())) * KCAL_MOL_TO_EV


def mmff_energy_drop(confs: Sequence[Conformation], max_iterations: int = MAX_ITERATIONS) -> np.ndarray:
    """The trust signal of each relaxed structure: MMFF94 energy drop, eV [C] (high = distrust).

    One value per conformation, in order: the energy MMFF94 gains relaxing the structure from its
    coordinates with the molecule's bond graph (``mmff_energy_drop_one``), +inf for a structure
    that fell apart, NaN for one it cannot be computed for (no mol block, bad geometry, untypable
    by MMFF; ``mmff_energy_drop_one`` raises the reason). Deterministic. Runs per structure on the
    CPU (RDKit), ~10-100 ms for a drug-sized molecule; typing is shared by conformations of the same
    molecule.
    """
    cache: dict[str, Any] = {}
    out = np.full(len(confs), np.nan, dtype=np.float64)
    for k, conf in enumerate(confs):
        try:
            out[k] = _drop(conf, int(max_iterations), cache)
        except InputError:
            pass
    return out
