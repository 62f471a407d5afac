"""An ASE calculator around a golf Potential, so ASE's optimizers and dynamics can use any golf model."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import Calculator, all_changes

from golf.batch import Batch
from golf.models.potential import Potential

__all__ = ["GolfCalculator"]


class GolfCalculator(Calculator):
    """ASE calculator: energy (eV) and forces (eV/Angstrom) of one molecule from a Potential.

    Args:
        model: a golf Potential (e.g. from ``golf.models.load_model``); its device and dtype are used.
        check_elements: refuse atoms with elements the model never saw (golf.errors.InputError).
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, model: Potential, check_elements: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.check = check_elements

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        numbers = np.asarray(self.atoms.get_atomic_numbers(), dtype=np.int64)
        if self.check:
            self.model.check_elements(numbers)
        dev, dt = self.model.device, self.model.dtype
        batch = Batch(
            torch.as_tensor(numbers, device=dev),
            torch.as_tensor(self.atoms.get_positions(), dtype=dt, device=dev),
            torch.zeros(len(numbers), dtype=torch.long, device=dev),
            1,
        )
        energy, forces = self.model.energy_and_forces(batch)
        self.results["energy"] = float(energy.detach()[0])
        self.results["free_energy"] = self.results["energy"]
        self.results["forces"] = forces.detach().cpu().double().numpy()
