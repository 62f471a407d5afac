"""The oracle protocol: energies and forces of conformations from a reference method.

An oracle never raises on a bad conformation: it returns an ``OracleResult`` with ``ok=False`` and a
reason (SCF not converged, bad geometry, ...), so one molecule never kills a run. Oracles are built
from ``(name, settings)`` by ``make_oracle`` so that a spec can be shipped to worker processes and
the backend (tblite, PySCF) is created there. Nothing under ``golf.oracles`` imports torch.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from golf.conformation import Conformation
from golf.oracles.relax import RelaxResult, relax_with_oracle
from golf.thresholds import ORACLE_FMAX, ORACLE_MAX_STEPS


@dataclass
class OracleResult:
    """One oracle evaluation.

    Attributes:
        ok: whether energy and forces are valid.
        energy: total energy in eV (None when not ok).
        forces: forces in eV/Angstrom, shape [n, 3] (None when not ok, and from ``Oracle.compute_energy``).
        reason: why the call failed (empty when ok).
        seconds: wall time of the call.
    """

    ok: bool
    energy: float | None = None
    forces: np.ndarray | None = None
    reason: str = ""
    seconds: float = 0.0

    @classmethod
    def failure(cls, reason: str, seconds: float = 0.0) -> "OracleResult":
        return cls(ok=False, reason=reason, seconds=seconds)


class CalculationFailed(Exception):
    """Raised inside an oracle for a per-conformation failure (e.g. an SCF that does not converge); its message is
    the failed result's reason."""


def _reason(exc: Exception) -> str:
    text = str(exc) if isinstance(exc, CalculationFailed) else f"{type(exc).__name__}: {exc}"
    return text.splitlines()[0]


@dataclass(frozen=True)
class OracleSpec:
    """A picklable description of an oracle: its registry name and settings."""

    name: str
    settings: dict[str, Any] = field(default_factory=dict)

    def build(self) -> "Oracle":
        from golf.oracles.factory import make_oracle

        return make_oracle(self.name, **self.settings)


class Oracle(ABC):
    """Base class of all oracles (genuine: xtb, dft; surrogate: mmff).

    Subclasses implement ``_compute`` for one valid conformation; the base class checks the geometry
    first and turns any backend exception into a failed result.
    """

    #: registry name, e.g. "xtb"
    name: str = ""
    #: whether the method needs bond orders (a force field does; electronic structure needs only
    #: coordinates, charge and multiplicity): batch commands then refuse structures without them.
    needs_bond_orders: bool = False

    @property
    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-serialisable settings that reproduce this oracle (method, basis, accuracy...)."""

    @property
    def spec(self) -> OracleSpec:
        return OracleSpec(self.name, dict(self.settings))

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """ValueError/TypeError for settings the constructor would refuse, without building the
        oracle (no backend import: usable beside torch, see ``golf.oracles.validated_spec``)."""

    @abstractmethod
    def _compute(self, conf: Conformation) -> OracleResult:
        """Energy (eV) and forces (eV/A) of one conformation with a valid geometry."""

    def compute(self, conf: Conformation) -> OracleResult:
        """Energy and forces of one conformation; never raises for a bad conformation."""
        return self._guarded(conf, self._compute, forces=True)

    def _energy(self, conf: Conformation) -> float:
        """Energy (eV) of one conformation with a valid geometry. Override where the energy alone is cheaper
        than energy and forces (DFT: no gradient); this default computes both."""
        result = self._compute(conf)
        if not result.ok:
            raise CalculationFailed(result.reason)
        return float(result.energy)

    def compute_energy(self, conf: Conformation) -> OracleResult:
        """The energy alone (``forces`` None), e.g. for single points that rank conformers; the same energy
        as ``compute`` (to the SCF tolerance for DFT); never raises for a bad conformation."""
        return self._guarded(conf, lambda c: OracleResult(ok=True, energy=self._energy(c)), forces=False)

    @staticmethod
    def _guarded(conf: Conformation, call: Any, forces: bool) -> OracleResult:
        """``call(conf)`` after the geometry check; exceptions and non-finite results become failed results."""
        import time

        problem = conf.geometry_problem()
        if problem is not None:
            return OracleResult.failure(f"bad geometry: {problem}")
        t0 = time.perf_counter()
        try:
            result = call(conf)
        except Exception as exc:  # backend errors become per-conformation failures
            return OracleResult.failure(_reason(exc), time.perf_counter() - t0)
        if result.ok and (result.energy is None or not np.isfinite(result.energy) or (forces and (
                result.forces is None or not np.all(np.isfinite(result.forces))))):
            what = "energy or forces" if forces else "energy"
            return OracleResult.failure(f"non-finite {what}", time.perf_counter() - t0)
        result.seconds = time.perf_counter() - t0
        return result

    def compute_batch(self, confs: Sequence[Conformation]) -> list[OracleResult]:
        """Energies and forces of several conformations (serially, in this process)."""
        return [self.compute(c) for c in confs]

    def relax(
        self, conf: Conformation, fmax: float = ORACLE_FMAX, max_steps: int = ORACLE_MAX_STEPS
    ) -> RelaxResult:
        """Relax to this oracle's own minimum (see ``golf.oracles.relax``)."""
        return relax_with_oracle(self, conf, fmax=fmax, max_steps=max_steps)
