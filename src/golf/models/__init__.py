"""golf neural network potentials (torch): PaiNN and SchNet representations, the ``Potential`` wrapper
(atomwise MLP + atomrefs, energies in eV, forces by autograd), checkpoints (golf and official
GOLF/schnetpack), an EnergyForces provider and an ASE calculator."""
from __future__ import annotations

from golf.models.atomrefs import fit_atomrefs
from golf.models.checkpoint import load_model, save_model
from golf.models.painn import PaiNN
from golf.models.potential import ModelEnergyForces, Potential, build_model
from golf.models.schnet import SchNet

__all__ = [
    "PaiNN",
    "SchNet",
    "Potential",
    "build_model",
    "ModelEnergyForces",
    "fit_atomrefs",
    "save_model",
    "load_model",
    "GolfCalculator",
    "GolfCalculationFailed",
]


def __getattr__(name: str):
    if name in ("GolfCalculator", "GolfCalculationFailed"):  # imports ASE's calculator machinery lazily
        from golf.models import calculator

        return getattr(calculator, name)
    raise AttributeError(f"module 'golf.models' has no attribute {name!r}")
