"""DFT through PySCF (optional extra ``golf[dft]``): wB97X-D/def2-SVP by default, the GOLF paper's oracle.

The GOLF paper (and nablaDFT) label with Psi4's wB97X-D/def2-SVP (spherical basis, density fitting).
wB97X-D = the wB97X-D exchange-correlation functional (libxc ``HYB_GGA_XC_WB97X_D``, id 471:
range separation omega = 0.2 Bohr^-1, short-range exact exchange 0.222036, full long-range exact
exchange; Chai & Head-Gordon, PCCP 10, 6615 (2008)) plus the Chai-Head-Gordon damped D2-type
dispersion, which libxc does not contain. PySCF refuses the name ``"wb97x-d"`` (it is on the
``_black_list`` of ``pyscf.scf.dispersion.parse_dft``: "not supported yet"), so this oracle passes the
libxc name ``"HYB_GGA_XC_WB97X_D"`` to PySCF (PySCF then adds no dispersion of its own: nothing shows
up in ``mf.scf_summary['dispersion']``) and adds ``golf.oracles.dispersion.chg_dispersion`` (energy and
analytic gradient) itself, so dispersion is counted exactly once.

``xc="wb97x-d3bj"`` (the previous default) remains available: PySCF + ``pyscf-dispersion`` then
evaluate wB97X-V's semilocal part without VV10 plus Grimme's D3(BJ) (``mf.scf_summary['dispersion']``;
the analytic gradient includes it) and golf adds nothing. Any PySCF functional / basis name can be set;
``dispersion="chg"`` adds the CHG term to any functional, ``dispersion="none"`` never adds it.

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
from golf.oracles.base import CalculationFailed, Oracle, OracleResult
from golf.oracles.dispersion import chg_dispersion
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


#: names meaning wB97X-D (functional + Chai-Head-Gordon dispersion); PySCF gets ``WB97X_D_LIBXC``.
WB97X_D_NAMES = frozenset({"wb97x-d", "wb97xd", "wb97x_d", "hyb_gga_xc_wb97x_d"})
WB97X_D_LIBXC = "HYB_GGA_XC_WB97X_D"
DISPERSION_CHOICES = ("auto", "chg", "none")


def pyscf_xc_and_chg(xc: str, dispersion: str = "auto") -> tuple[str, bool]:
    """The functional name to give PySCF and whether golf adds the Chai-Head-Gordon dispersion.

    "auto": wB97X-D names -> (libxc wB97X-D functional, True); anything else -> (xc, False) (PySCF
    adds its own D3/D4 for "-d3bj"-style names). "chg": always add CHG; "none": never.
    """
    if dispersion not in DISPERSION_CHOICES:
        raise ValueError(f"dispersion must be one of {DISPERSION_CHOICES}, got {dispersion!r}")
    is_wb97xd = xc.lower() in WB97X_D_NAMES
    name = WB97X_D_LIBXC if is_wb97xd else xc
    if dispersion == "auto":
        return name, is_wb97xd
    return name, dispersion == "chg"


class DFTOracle(Oracle):
    """Kohn-Sham DFT single points with PySCF: energy in eV, forces in eV/A.

    Restricted KS for singlets, unrestricted otherwise (``spin = multiplicity - 1``); charge from the
    conformation.

    Args:
        xc: exchange-correlation functional: "wb97x-d" (default; the paper's wB97X-D: libxc functional
            plus golf's Chai-Head-Gordon dispersion), "wb97x-d3bj" (wB97X-D3(BJ) via pyscf-dispersion),
            or any PySCF name ("b3lyp-d3bj", "pbe", ...).
        basis: basis set name (default "def2-svp"; PySCF uses spherical functions).
        dispersion: "auto" (CHG dispersion for wB97X-D only), "chg" (add it to any functional) or
            "none" (never; "wb97x-d" then is the bare functional).
        density_fit: use density fitting (RI-J/K) for speed.
        auxbasis: auxiliary basis for density fitting (None = PySCF's default for the basis).
        conv_tol: SCF energy convergence (Hartree).
        max_cycle: SCF iteration limit.
        grid_level: DFT integration grid level (0-9).
        grid_response: include the derivative of the grid weights in the gradient (PySCF's
            ``grid_response``), so forces are exactly -dE/dx of the energy returned (without it,
            grid level 3 gives force errors of ~1e-2 eV/A on water and a non-zero net force).
        threads: PySCF OpenMP threads (``pyscf.lib.num_threads``).
        reuse_density: start the SCF from the converged density of this oracle's previous call when
            that was the same molecule (same atomic numbers, charge, spin) displaced by at most
            ``reuse_max_shift`` Angstrom per atom (as PySCF's own geometry optimizer does); otherwise
            from PySCF's default guess. Saves about half the SCF cycles along a relaxation; results
            change only within the SCF convergence tolerance. Not part of ``settings`` (it does not
            change what is computed).
        reuse_max_shift: largest per-atom displacement (Angstrom) for which the density is reused.
        backend: "pyscf" (only backend available here).
    """

    name = "dft"

    @classmethod
    def check_settings(cls, settings: dict[str, Any]) -> None:
        """The checks of the constructor, without importing PySCF."""
        if settings.get("backend", "pyscf") != "pyscf":
            raise ValueError(f"DFT backend {settings['backend']!r} is not available (only 'pyscf')")
        pyscf_xc_and_chg(settings.get("xc", "wb97x-d"), settings.get("dispersion", "auto"))
        for key in ("conv_tol", "reuse_max_shift"):
            if key in settings:
                float(settings[key])
        for key in ("max_cycle", "grid_level"):
            if key in settings and int(settings[key]) < 1:
                raise ValueError(f"{key} must be >= 1")

    def __init__(
        self,
        xc: str = "wb97x-d",
        basis: str = "def2-svp",
        dispersion: str = "auto",
        density_fit: bool = True,
        auxbasis: str | None = None,
        conv_tol: float = 1e-9,
        max_cycle: int = 100,
        grid_level: int = 3,
        grid_response: bool = True,
        threads: int | None = None,
        reuse_density: bool = True,
        reuse_max_shift: float = 0.5,
        backend: str = "pyscf",
    ) -> None:
        if backend != "pyscf":
            raise OracleUnavailable(f"DFT backend {backend!r} is not available (only 'pyscf')")
        self.xc = xc
        self.basis = basis
        self.dispersion = dispersion
        self._pyscf_xc, self._add_chg = pyscf_xc_and_chg(xc, dispersion)
        self.density_fit = bool(density_fit)
        self.auxbasis = auxbasis
        self.conv_tol = float(conv_tol)
        self.max_cycle = int(max_cycle)
        self.grid_level = int(grid_level)
        self.grid_response = bool(grid_response)
        self.threads = None if threads is None else int(threads)
        self.reuse_density = bool(reuse_density)
        self.reuse_max_shift = float(reuse_max_shift)
        self._last: tuple[tuple, np.ndarray, Any] | None = None  # (key, positions A, density matrix)
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
            "dispersion": self.dispersion,
            "density_fit": self.density_fit,
            "auxbasis": self.auxbasis,
            "conv_tol": self.conv_tol,
            "max_cycle": self.max_cycle,
            "grid_level": self.grid_level,
            "grid_response": self.grid_response,
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
        mf.xc = self._pyscf_xc
        mf.grids.level = self.grid_level
        mf.conv_tol = self.conv_tol
        mf.max_cycle = self.max_cycle
        mf.verbose = 0
        if self.density_fit:
            mf = mf.density_fit(auxbasis=self.auxbasis)
        return mf

    def _compute(self, conf: Conformation) -> OracleResult:
        mf, energy_ev = self._scf(conf)
        grad_method = mf.nuc_grad_method()
        grad_method.grid_response = self.grid_response
        grad = grad_method.kernel()
        forces = -np.asarray(grad, dtype=np.float64) * HARTREE_PER_BOHR_TO_EV_PER_ANG
        if self._add_chg:
            e_disp, g_disp = chg_dispersion(conf.numbers, conf.positions)
            energy_ev += e_disp
            forces = forces - g_disp
        return OracleResult(ok=True, energy=energy_ev, forces=forces)

    def _energy(self, conf: Conformation) -> float:
        """The SCF energy (plus dispersion) without the gradient: about half the cost of ``_compute``."""
        _, energy_ev = self._scf(conf)
        if self._add_chg:
            energy_ev += chg_dispersion(conf.numbers, conf.positions)[0]
        return energy_ev

    def _scf(self, conf: Conformation) -> tuple[Any, float]:
        """The converged SCF object and its energy (eV, without the added dispersion); CalculationFailed when
        the SCF does not converge even with level shift, damping and the Newton solver."""
        if self.threads is not None:
            self._lib.num_threads(self.threads)
        mf = self._mf(conf)
        key = (tuple(int(z) for z in conf.numbers), int(conf.charge), int(conf.multiplicity),
               self.basis)
        dm0 = None
        if self.reuse_density and self._last is not None and self._last[0] == key:
            shift = np.linalg.norm(np.asarray(conf.positions) - self._last[1], axis=1).max()
            if shift <= self.reuse_max_shift:
                dm0 = self._last[2]
        self._last = None
        energy = mf.kernel(dm0=dm0)
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
                raise CalculationFailed(f"SCF not converged in {self.max_cycle} cycles; retry with level "
                                        "shift/damping and Newton solver did not converge either")
            mf = retry
        if self.reuse_density:
            self._last = (key, np.array(conf.positions, dtype=np.float64), mf.make_rdm1())
        return mf, float(energy) * HARTREE_TO_EV


__all__ = ["DFTOracle", "INSTALL_HINT", "pyscf_xc_and_chg", "WB97X_D_NAMES"]
