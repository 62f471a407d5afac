"""An ASE calculator around a golf Potential, so ASE's optimizers and dynamics can use any golf model."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from ase.calculators.calculator import CalculationFailed, Calculator, all_changes

from golf.batch import Batch
from golf.conformation import Conformation
from golf.errors import GolfError
from golf.models.potential import Potential

__all__ = ["GolfCalculator", "GolfCalculationFailed"]


class GolfCalculationFailed(GolfError, CalculationFailed):
    """The model cannot give an energy for these atoms (non-finite coordinates or model output).

    Both a ``golf.errors.GolfError`` (one line) and ASE's ``CalculationFailed``, so ASE code and golf
    code catch it as they catch their own.
    """


class GolfCalculator(Calculator):
    """ASE calculator: energy (eV) and forces (eV/Angstrom) of one molecule from a Potential.

    Args:
        model: a golf Potential (e.g. from ``golf.models.load_model``); its device and dtype are used.
        check_elements: refuse atoms with elements the model never saw (golf.errors.InputError).

    Raises (from ``calculate``, i.e. ``atoms.get_potential_energy()`` etc.):
        GolfCalculationFailed: non-finite coordinates, or a non-finite energy or force from the model
            (e.g. atoms on top of each other); nothing is stored as a result then.
    """

    implemented_properties = ["energy", "forces"]

    def __init__(self, model: Potential, check_elements: bool = True, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.model = model
        self.check = check_elements

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes) -> None:
        super().calculate(atoms, properties, system_changes)
        numbers = np.asarray(self.atoms.get_atomic_numbers(), dtype=np.int64)
        positions = np.asarray(self.atoms.get_positions(), dtype=np.float64)
        bad = np.flatnonzero(~np.isfinite(positions).all(-1))
        if len(bad):
            raise GolfCalculationFailed(
                f"GolfCalculator: non-finite coordinates on {len(bad)} atom(s) (first: atom {int(bad[0])}, "
                f"{positions[bad[0]].tolist()}); no energy computed"
            )
        if self.check:
            self.model.check_elements(numbers)
        dev, dt = self.model.device, self.model.dtype
        batch = Batch(
            torch.as_tensor(numbers, device=dev),
            torch.as_tensor(positions, dtype=dt, device=dev),
            torch.zeros(len(numbers), dtype=torch.long, device=dev),
            1,
        )
        energy, forces = self.model.energy_and_forces(batch)
        e = float(energy.detach()[0])
        f = forces.detach().cpu().double().numpy()
        if not (np.isfinite(e) and np.isfinite(f).all()):
            what = "energy" if not np.isfinite(e) else "forces"
            hint = Conformation(numbers, positions).geometry_problem() if len(numbers) else None
            raise GolfCalculationFailed(
                f"GolfCalculator: the model gave non-finite {what} for these atoms"
                + (f" ({hint})" if hint else "")
            )
        self.results["energy"] = e
        self.results["free_energy"] = e
        self.results["forces"] = f
