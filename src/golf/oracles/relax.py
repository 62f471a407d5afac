"""Relax a conformation to an oracle's own minimum (the reference optimum used in evaluation).

Optimizer: ASE's ``LBFGS`` (no line search). Why L-BFGS: it is the optimizer the GOLF paper uses for
its reference optima and for the batched model relaxations golf evaluates, so reference and model
minima are found the same way; it needs exactly one oracle call per step (the trajectory below is one
entry per oracle call) and its memory is bounded, unlike BFGS's dense 3N x 3N Hessian.
Convergence criterion: max per-atom |force| < ``fmax`` (eV/A, default ``golf.thresholds.ORACLE_FMAX``), within
``max_steps`` optimizer steps.

The oracle sits behind a small ASE ``Calculator`` adapter; an oracle failure mid-way (SCF not
converged, atoms collapsing) stops the relaxation and returns ``RelaxResult(ok=False, reason=...)``
with everything computed so far (last good geometry, trajectory).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from golf.conformation import Conformation
from golf.thresholds import ORACLE_FMAX, ORACLE_MAX_STEPS

if TYPE_CHECKING:  # annotations only: golf.oracles.base imports this module
    from golf.oracles.base import Oracle


@dataclass
class RelaxResult:
    """An oracle relaxation of one conformation to its own minimum.

    Attributes:
        ok: whether the relaxation produced a valid final structure (converged or not).
        converged: whether max |force| < fmax was reached within the step limit.
        positions: final coordinates in Angstrom [n, 3].
        energy: final energy in eV.
        forces: final forces in eV/Angstrom [n, 3].
        n_steps: optimizer steps taken.
        trajectory_positions: coordinates at every step [T, n, 3] (Angstrom), first = start.
        trajectory_energies: energies at every step [T] (eV).
        trajectory_forces: forces at every step [T, n, 3] (eV/Angstrom).
        reason: failure reason when not ok.
    """

    ok: bool
    converged: bool = False
    positions: np.ndarray | None = None
    energy: float | None = None
    forces: np.ndarray | None = None
    n_steps: int = 0
    trajectory_positions: np.ndarray | None = None
    trajectory_energies: np.ndarray | None = None
    trajectory_forces: np.ndarray | None = None
    reason: str = ""
    seconds: float = 0.0


class OracleFailed(RuntimeError):
    """Raised inside the ASE adapter when the oracle returns a failure result."""


def _make_calculator(oracle: Oracle, conf: Conformation):
    from ase.calculators.calculator import Calculator, all_changes

    class OracleCalculator(Calculator):
        """ASE calculator calling ``oracle.compute``; records every evaluated point."""

        implemented_properties = ["energy", "forces"]

        def __init__(self) -> None:
            super().__init__()
            self.positions: list[np.ndarray] = []
            self.energies: list[float] = []
            self.forces: list[np.ndarray] = []

        def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
            super().calculate(atoms, properties, system_changes)
            pos = np.array(self.atoms.positions, dtype=np.float64)
            res = oracle.compute(conf.with_positions(pos))
            if not res.ok:
                raise OracleFailed(res.reason or "oracle failed")
            self.positions.append(pos)
            self.energies.append(float(res.energy))
            self.forces.append(np.asarray(res.forces, dtype=np.float64))
            self.results = {"energy": float(res.energy), "forces": np.array(res.forces, dtype=np.float64)}

    return OracleCalculator()


def relax_with_oracle(
    oracle: Oracle, conf: Conformation, fmax: float = ORACLE_FMAX, max_steps: int = ORACLE_MAX_STEPS
) -> RelaxResult:
    """Relax ``conf`` with ASE LBFGS on ``oracle``'s energy surface.

    Args:
        oracle: any golf oracle.
        conf: starting conformation (Angstrom).
        fmax: convergence threshold on the max per-atom force norm, eV/A.
        max_steps: optimizer step limit.

    Returns:
        RelaxResult with final positions [n,3] A, energy eV, forces [n,3] eV/A, ``converged``,
        ``n_steps`` and the trajectory (positions [T,n,3], energies [T], forces [T,n,3]; first = start).
        ``ok=False`` with a reason if the oracle failed (the partial trajectory is kept).
    """
    from ase import Atoms
    from ase.optimize import LBFGS

    t0 = time.perf_counter()
    problem = conf.geometry_problem()
    if problem is not None:
        return RelaxResult(ok=False, reason=f"bad geometry: {problem}", seconds=time.perf_counter() - t0)
    atoms = Atoms(numbers=conf.numbers, positions=conf.positions)
    calc = _make_calculator(oracle, conf)
    atoms.calc = calc
    opt = LBFGS(atoms, logfile=None)
    reason = ""
    ok = True
    try:
        opt.run(fmax=fmax, steps=max_steps)
    except OracleFailed as exc:
        ok = False
        reason = f"oracle failed during relaxation at step {max(len(calc.energies) - 1, 0)}: {exc}"
    except Exception as exc:  # optimizer numerical trouble etc.
        ok = False
        reason = f"relaxation failed: {type(exc).__name__}: {exc}".splitlines()[0]

    seconds = time.perf_counter() - t0
    if not calc.energies:
        return RelaxResult(ok=False, reason=reason or "no oracle evaluation succeeded", seconds=seconds)
    traj_pos = np.stack(calc.positions)
    traj_e = np.array(calc.energies, dtype=np.float64)
    traj_f = np.stack(calc.forces)
    final_f = traj_f[-1]
    converged = bool(ok and np.max(np.linalg.norm(final_f, axis=1)) < fmax)
    return RelaxResult(
        ok=ok,
        converged=converged,
        positions=traj_pos[-1].copy(),
        energy=float(traj_e[-1]),
        forces=final_f.copy(),
        n_steps=int(opt.nsteps),
        trajectory_positions=traj_pos,
        trajectory_energies=traj_e,
        trajectory_forces=traj_f,
        reason=reason if not ok else ("" if converged else f"not converged in {max_steps} steps"),
        seconds=seconds,
    )


__all__ = ["relax_with_oracle", "OracleFailed"]
