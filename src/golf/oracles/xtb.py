"""GFN2-xTB through tblite: golf's default genuine oracle.

tblite works in atomic units: positions are passed in Bohr, the energy comes back in Hartree and the
gradient in Hartree/Bohr; this module converts to eV and eV/A.

Never import this module (i.e. tblite) in a process that has imported torch: torch bundles an older
libgomp and ``import tblite`` then fails (``GOMP_5.0 not found``), or SCFs fail at random
(tblite issue 340). golf runs xTB in spawned worker processes (``golf.oracles.executors``).

Threads: tblite parallelises with OpenMP, which reads ``OMP_NUM_THREADS`` once, when the library is
loaded. ``XTBOracle(threads=k)`` sets the variable if tblite has not been loaded yet in this process;
the executors set it in each worker before any backend is imported.
"""
from __future__ import annotations

import os
import sys
from typing import Any

import numpy as np

from golf.conformation import Conformation
from golf.errors import OracleUnavailable
from golf.oracles.base import Oracle, OracleResult
from golf.units import ANG_TO_BOHR, HARTREE_PER_BOHR_TO_EV_PER_ANG, HARTREE_TO_EV

#: Boltzmann constant in Hartree/K (tblite takes the electronic temperature in Hartree).
KB_HARTREE_PER_K: float = 3.166808578545117e-6

_METHODS = ("GFN2-xTB", "GFN1-xTB")

#: thread environment variables honoured by OpenMP / BLAS libraries
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def set_thread_env(threads: int, override: bool = True) -> None:
    """Set OMP/MKL/OpenBLAS thread counts for libraries that are loaded after this call."""
    for var in THREAD_ENV_VARS:
        if override or var not in os.environ:
            os.environ[var] = str(int(threads))


def _valence_electrons(z: int) -> int:
    """Valence electrons of a main-group element as counted by xTB (closed d/f shells are core)."""
    core = max((n for n in (0, 2, 10, 18, 36, 54, 86) if n < z), default=0)
    v = z - core
    if 31 <= z <= 36 or 49 <= z <= 54:
        v -= 10
    elif 81 <= z <= 86:
        v -= 24
    return v


def electron_count_problem(numbers: np.ndarray, charge: int, multiplicity: int) -> str | None:
    """Why a charge/multiplicity is impossible for these atoms (tblite may crash on it), or None."""
    n_val = int(sum(_valence_electrons(int(z)) for z in numbers)) - int(charge)
    n_total = int(np.sum(numbers)) - int(charge)
    unpaired = int(multiplicity) - 1
    if multiplicity < 1:
        return f"multiplicity {multiplicity} < 1"
    if n_val <= 0 or n_val < unpaired:
        return f"charge {charge} leaves {n_val} valence electrons for multiplicity {multiplicity}"
    if (n_total - unpaired) % 2:
        return f"charge {charge} and multiplicity {multiplicity} are inconsistent ({n_total} electrons)"
    return None


def _import_tblite():
    if "torch" in sys.modules and "tblite.interface" not in sys.modules:
        raise OracleUnavailable(
            "xtb cannot run in a process that imported torch (libgomp conflict); "
            "run it through golf.oracles.executors (local pool or dask)"
        )
    try:
        from tblite.interface import Calculator
    except ImportError as exc:
        raise OracleUnavailable(f"tblite is not usable ({exc}); pip install tblite") from exc
    return Calculator


class XTBOracle(Oracle):
    """GFN2-xTB (or GFN1-xTB) single points: energy in eV, forces in eV/A.

    Charge and spin come from each conformation (``uhf = multiplicity - 1`` unpaired electrons).

    Args:
        method: "GFN2-xTB" (default) or "GFN1-xTB".
        accuracy: tblite accuracy multiplier (smaller is tighter; 1.0 is the xtb default).
        electronic_temperature: Fermi smearing temperature in Kelvin (300 K default).
        max_iterations: SCF iteration limit.
        threads: OpenMP threads (only effective before tblite is loaded in this process).
        retry_electronic_temperature: temperature (K) used by the one retry after an SCF failure;
            the retry also doubles the iteration limit, uses stronger mixer damping and the EEQ guess.
    """

    name = "xtb"

    def __init__(
        self,
        method: str = "GFN2-xTB",
        accuracy: float = 1.0,
        electronic_temperature: float = 300.0,
        max_iterations: int = 250,
        threads: int | None = None,
        retry_electronic_temperature: float = 1000.0,
    ) -> None:
        if method not in _METHODS:
            raise ValueError(f"unknown xTB method {method!r}; choose one of {', '.join(_METHODS)}")
        self.method = method
        self.accuracy = float(accuracy)
        self.electronic_temperature = float(electronic_temperature)
        self.max_iterations = int(max_iterations)
        self.threads = None if threads is None else int(threads)
        self.retry_electronic_temperature = float(retry_electronic_temperature)
        if self.threads is not None and "tblite.interface" not in sys.modules:
            set_thread_env(self.threads)
        self._Calculator = _import_tblite()

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """The checks of the constructor, without importing tblite."""
        method = settings.get("method", "GFN2-xTB")
        if method not in _METHODS:
            raise ValueError(f"unknown xTB method {method!r}; choose one of {', '.join(_METHODS)}")
        if not float(settings.get("accuracy", 1.0)) > 0:
            raise ValueError("accuracy must be > 0")
        for key in ("electronic_temperature", "retry_electronic_temperature"):
            if not float(settings.get(key, 300.0)) >= 0:
                raise ValueError(f"{key} must be >= 0 K")
        if int(settings.get("max_iterations", 250)) < 1:
            raise ValueError("max_iterations must be >= 1")

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "accuracy": self.accuracy,
            "electronic_temperature": self.electronic_temperature,
            "max_iterations": self.max_iterations,
        }

    def _singlepoint(self, conf: Conformation, safe: bool) -> tuple[float, np.ndarray]:
        calc = self._Calculator(
            self.method,
            conf.numbers,
            conf.positions * ANG_TO_BOHR,
            charge=float(conf.charge),
            uhf=int(conf.multiplicity) - 1,
            logger=lambda _msg: None,
        )
        calc.set("verbosity", 0)
        calc.set("accuracy", self.accuracy)
        temperature = self.electronic_temperature
        max_iter = self.max_iterations
        if safe:
            temperature = max(temperature, self.retry_electronic_temperature)
            max_iter = 2 * max_iter
            calc.set("mixer-damping", 0.2)
            calc.set("guess", 1)  # EEQ charges instead of superposition of atomic densities
        calc.set("temperature", temperature * KB_HARTREE_PER_K)
        calc.set("max-iter", max_iter)
        res = calc.singlepoint()
        energy = float(res.get("energy")) * HARTREE_TO_EV
        forces = -np.asarray(res.get("gradient"), dtype=np.float64) * HARTREE_PER_BOHR_TO_EV_PER_ANG
        return energy, forces

    def _compute(self, conf: Conformation) -> OracleResult:
        problem = electron_count_problem(conf.numbers, conf.charge, conf.multiplicity)
        if problem is not None:
            return OracleResult.failure(f"xtb: impossible electronic state: {problem}")
        try:
            energy, forces = self._singlepoint(conf, safe=False)
        except Exception as first:  # tblite raises TBLiteRuntimeError on SCF failure
            first_reason = str(first).splitlines()[0] if str(first) else type(first).__name__
            try:
                energy, forces = self._singlepoint(conf, safe=True)
            except Exception as second:
                second_reason = str(second).splitlines()[0] if str(second) else type(second).__name__
                return OracleResult.failure(
                    f"xtb failed: {first_reason}; retry with safer SCF settings failed: {second_reason}"
                )
        return OracleResult(ok=True, energy=energy, forces=forces)


__all__ = ["XTBOracle", "electron_count_problem", "set_thread_env", "THREAD_ENV_VARS"]
