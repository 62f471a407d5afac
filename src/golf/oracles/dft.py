"""DFT through PySCF (optional extra ``golf[dft]``): wB97X-D3(BJ)/def2-SVP by default.

The GOLF paper labels with wB97X-D/def2-SVP (Psi4). PySCF has no wB97X-D (Chai-Head-Gordon damping)
but, with ``pyscf-dispersion`` installed, ``xc="wb97x-d3bj"`` gives wB97X with Grimme's D3(BJ)
dispersion (the dispersion energy shows up in ``mf.scf_summary['dispersion']``, and the analytic
gradient includes it). Any PySCF functional / basis name can be set.

PySCF works in atomic units (Bohr input is avoided by passing Angstrom with ``unit='Angstrom'``;
energies in Hartree, gradients in Hartree/Bohr); this module converts to eV and eV/A.

PySCF does not raise when the SCF fails to converge: ``mf.converged`` is checked, and a failed SCF
is retried once, starting from the last density, with a level shift and damping, falling back to the
second-order (Newton) solver; if that also fails the result is a failure with a reason.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from golf.conformation import Conformation
from golf.errors import OracleUnavailable
from golf.oracles.base import Oracle, OracleResult
from golf.units import HARTREE_PER_BOHR_TO_EV_PER_ANG, HARTREE_TO_EV

INSTALL_HINT = "pip install 'golf[dft]'"


def _import_pyscf():
    try:
        import pyscf  # noqa: F401
        from pyscf import dft, gto, lib
    except ImportError as exc:
        raise OracleUnavailable(f"the dft oracle needs PySCF ({exc}); {INSTALL_HINT}") from exc
    return gto, dft, lib


def _needs_dispersion(xc: str) -> bool:
    x = xc.lower()
    return any(tag in x for tag in ("-d3", "-d4"))


class DFTOracle(Oracle):
    """Kohn-Sham DFT single points with PySCF: energy in eV, forces in eV/A.

    Restricted KS for singlets, unrestricted otherwise (``spin = multiplicity - 1``); charge from the
    conformation.

    Args:
        xc: exchange-correlation functional, e.g. "wb97x-d3bj" (default), "b3lyp-d3bj", "pbe".
        basis: basis set name (default "def2-svp").
        density_fit: use density fitting (RI-J/K) for speed.
        auxbasis: auxiliary basis for density fitting (None = PySCF's default for the basis).
        conv_tol: SCF energy convergence (Hartree).
        max_cycle: SCF iteration limit.
        grid_level: DFT integration grid level (0-9).
        threads: PySCF OpenMP threads (``pyscf.lib.num_threads``).
        backend: "pyscf" (only backend available here).
    """

    name = "dft"

    def __init__(
        self,
        xc: str = "wb97x-d3bj",
        basis: str = "def2-svp",
        density_fit: bool = True,
        auxbasis: str | None = None,
        conv_tol: float = 1e-9,
        max_cycle: int = 100,
        grid_level: int = 3,
        threads: int | None = None,
        backend: str = "pyscf",
    ) -> None:
        if backend != "pyscf":
            raise OracleUnavailable(f"DFT backend {backend!r} is not available (only 'pyscf')")
        self.xc = xc
        self.basis = basis
        self.density_fit = bool(density_fit)
        self.auxbasis = auxbasis
        self.conv_tol = float(conv_tol)
        self.max_cycle = int(max_cycle)
        self.grid_level = int(grid_level)
        self.threads = None if threads is None else int(threads)
        self._gto, self._dft, self._lib = _import_pyscf()
        if _needs_dispersion(xc):
            try:
                import pyscf.dispersion  # noqa: F401  (pyscf-dispersion provides D3/D4)
            except ImportError:
                try:
                    import dftd3  # noqa: F401
                except ImportError as exc:
                    raise OracleUnavailable(
                        f"functional {xc!r} needs pyscf-dispersion; {INSTALL_HINT}"
                    ) from exc
        if self.threads is not None:
            self._lib.num_threads(self.threads)

    @property
    def settings(self) -> dict[str, Any]:
        return {
            "xc": self.xc,
            "basis": self.basis,
            "density_fit": self.density_fit,
            "auxbasis": self.auxbasis,
            "conv_tol": self.conv_tol,
            "max_cycle": self.max_cycle,
            "grid_level": self.grid_level,
        }

    def _mf(self, conf: Conformation):
        mol = self._gto.M(
            atom=[(int(z), tuple(map(float, p))) for z, p in zip(conf.numbers, conf.positions)],
            unit="Angstrom",
            basis=self.basis,
            charge=int(conf.charge),
            spin=int(conf.multiplicity) - 1,
            verbose=0,
        )
        mf = self._dft.RKS(mol) if mol.spin == 0 else self._dft.UKS(mol)
        mf.xc = self.xc
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        if self.density_fit:
            mf = mf.density_fit(auxbasis=self.auxbasis)
        return mf

    def _compute(self, conf: Conformation) -> OracleResult:
        if self.threads is not None:
            self._lib.num_threads(self.threads)
        mf = self._mf(conf)
        energy = mf.kernel()
        if not mf.converged:
            dm = mf.make_rdm1()
            retry = self._mf(conf)
            retry.level_shift = 0.3
            retry.damp = 0.5
            retry.diis_start_cycle = 8
            retry.max_cycle = 2 * self.max_cycle
            energy = retry.kernel(dm0=dm)
            if not retry.converged:
                newton = self._mf(conf).newton()
                newton.max_cycle = self.max_cycle
                energy = newton.kernel(dm0=retry.make_rdm1())
                retry = newton
            if not retry.converged:
                return OracleResult.failure(
                    f"SCF not converged in {self.max_cycle} cycles; retry with level shift/damping "
                    "and Newton solver did not converge either"
                )
            mf = retry
        grad = mf.nuc_grad_method().kernel()
        forces = -np.asarray(grad, dtype=np.float64) * HARTREE_PER_BOHR_TO_EV_PER_ANG
        return OracleResult(ok=True, energy=float(energy) * HARTREE_TO_EV, forces=forces)


__all__ = ["DFTOracle", "INSTALL_HINT"]
