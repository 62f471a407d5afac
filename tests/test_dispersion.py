"""Chai-Head-Gordon dispersion (wB97X-D's "-D") and the default wB97X-D/def2-SVP DFT oracle.

DFT runs in spawned worker processes / a fresh interpreter (this pytest process may hold torch).
"""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from golf.oracles import OracleSpec
from golf.oracles.dispersion import C6_J_NM6_MOL_TO_EV_ANG6, D2_C6, D2_R0, chg_dispersion

from test_oracles import displaced, fd_check, run_pool, water

# 1 J/mol in eV per molecule = 1 / (N_A e) (CODATA 2018 exact constants)
J_MOL_TO_EV = 1.0 / (6.02214076e23 * 1.602176634e-19)


def test_c6_and_r0_match_psi4_atomic_unit_tables():
    """Psi4 ``dispersion_defines.h`` (C6_D2_ in Hartree Bohr^6, RvdW_D2_ in Bohr) for H, C, O, Cl."""
    bohr, hartree = 0.52917721067, 27.211386245988
    psi4_c6 = {1: 2.42833537784226, 6: 30.3541922230282, 8: 12.1416768892113, 17: 87.9404311832875}
    psi4_r0 = {1: 1.891615714989, 6: 2.743882136028, 8: 2.536012277238, 17: 3.097260895971}
    for z, c6_au in psi4_c6.items():
        c6_ev = D2_C6[z] * C6_J_NM6_MOL_TO_EV_ANG6
        assert c6_ev == pytest.approx(c6_au * hartree * bohr**6, rel=2e-5), z
        assert D2_R0[z] == pytest.approx(psi4_r0[z] * bohr, abs=2e-6), z
    assert C6_J_NM6_MOL_TO_EV_ANG6 == pytest.approx(J_MOL_TO_EV * 1e6, rel=1e-6)


def test_energy_matches_hand_computed_pair_sum():
    """H-C-Cl: three pairs written out by hand from the formula of Chai & Head-Gordon (2008)."""
    numbers = [1, 6, 17]
    pos = np.array([[0.0, 0.0, 0.0], [1.09, 0.0, 0.0], [1.09 + 1.78, 0.3, -0.2]])

    def pair(c6a, c6b, r0a, r0b, r):
        c6 = np.sqrt(c6a * c6b) * 1e6 * J_MOL_TO_EV  # eV A^6
        f = 1.0 / (1.0 + 6.0 * (r / (r0a + r0b)) ** -12)
        return -c6 / r**6 * f

    r = lambda a, b: float(np.linalg.norm(pos[a] - pos[b]))  # noqa: E731
    expected = (
        pair(0.14, 1.75, 1.001, 1.452, r(0, 1))
        + pair(0.14, 5.07, 1.001, 1.639, r(0, 2))
        + pair(1.75, 5.07, 1.452, 1.639, r(1, 2))
    )
    energy, grad = chg_dispersion(numbers, pos)
    assert energy == pytest.approx(expected, rel=1e-6)
    assert energy < 0 and grad.shape == (3, 3)
    # a single pair far apart tends to the undamped -C6/r^6; at short range the damping kills it
    e_far, _ = chg_dispersion([6, 6], np.array([[0, 0, 0], [0, 0, 10.0]]))
    assert e_far == pytest.approx(-1.75 * 1e6 * J_MOL_TO_EV / 1e6, rel=1e-4)
    e_near, _ = chg_dispersion([6, 6], np.array([[0, 0, 0], [0, 0, 0.5]]))
    assert abs(e_near) < 1e-3 * 1.75 * 1e6 * J_MOL_TO_EV / 0.5**6


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(3)
    numbers = [6, 6, 8, 7, 1, 1, 1, 16, 9, 35]
    pos = rng.uniform(-2.5, 2.5, size=(len(numbers), 3))
    energy, grad = chg_dispersion(numbers, pos)
    h = 1e-5
    fd = np.zeros_like(pos)
    for i in range(len(numbers)):
        for a in range(3):
            p, m = pos.copy(), pos.copy()
            p[i, a] += h
            m[i, a] -= h
            fd[i, a] = (chg_dispersion(numbers, p)[0] - chg_dispersion(numbers, m)[0]) / (2 * h)
    np.testing.assert_allclose(grad, fd, atol=1e-9, rtol=1e-6)
    np.testing.assert_allclose(grad.sum(axis=0), 0.0, atol=1e-12)
    assert np.abs(grad).max() > 1e-4  # not trivially zero


def test_unknown_element_and_coincident_atoms_raise():
    with pytest.raises(ValueError, match="D2"):
        chg_dispersion([6, 26], np.array([[0, 0, 0], [0, 0, 2.0]]))
    with pytest.raises(ValueError, match="coincident"):
        chg_dispersion([6, 6], np.zeros((2, 3)))


def test_dft_default_is_wb97x_d_def2_svp():
    pytest.importorskip("pyscf")
    from golf.oracles.dft import DFTOracle, pyscf_xc_and_chg

    s = DFTOracle().settings
    assert s["xc"] == "wb97x-d" and s["basis"] == "def2-svp" and s["density_fit"] is True
    assert s["dispersion"] == "auto"
    assert pyscf_xc_and_chg("wb97x-d") == ("HYB_GGA_XC_WB97X_D", True)
    assert pyscf_xc_and_chg("wb97x-d3bj") == ("wb97x-d3bj", False)  # PySCF adds D3(BJ) itself
    assert pyscf_xc_and_chg("wb97x-d", "none") == ("HYB_GGA_XC_WB97X_D", False)
    assert pyscf_xc_and_chg("pbe", "chg") == ("pbe", True)
    with pytest.raises(ValueError):
        pyscf_xc_and_chg("pbe", "d2")


def test_wb97x_d_dispersion_counted_once_and_functional_is_libxc_471():
    """Fresh interpreter (no torch): libxc's wB97X-D functional has omega = 0.2, SR exact exchange
    0.222036, LR 1.0; PySCF adds no dispersion of its own; golf adds exactly the CHG term."""
    pytest.importorskip("pyscf")
    code = """
import sys
import numpy as np
from pyscf.dft import libxc
from golf.oracles.dft import DFTOracle
from golf.oracles.dispersion import chg_dispersion
from golf.conformation import Conformation
assert libxc.XC_CODES["HYB_GGA_XC_WB97X_D"] == 471
omega, lr, sr_minus_lr = libxc.rsh_coeff("HYB_GGA_XC_WB97X_D")
assert abs(omega - 0.2) < 1e-12 and abs(lr - 1.0) < 1e-12 and abs(lr + sr_minus_lr - 0.222036) < 1e-6
conf = Conformation(numbers=[8, 1, 1], positions=[[0, 0, 0.117], [0, 0.757, -0.469], [0, -0.757, -0.469]])
base = dict(basis="sto-3g", density_fit=False, threads=1, conv_tol=1e-11)
full, bare = DFTOracle(**base), DFTOracle(**base, dispersion="none")
mf = full._mf(conf)
mf.kernel()
assert "dispersion" not in mf.scf_summary, mf.scf_summary
a, b = full.compute(conf), bare.compute(conf)
assert a.ok and b.ok
e, g = chg_dispersion(conf.numbers, conf.positions)
assert abs((a.energy - b.energy) - e) < 1e-9, (a.energy - b.energy, e)
assert np.allclose(a.forces - b.forces, -g, atol=1e-9)
# the next call starts from the previous density (same molecule, small shift): same result
moved = conf.with_positions(conf.positions + [[0, 0, 0.02], [0, 0.01, 0], [0, 0, 0]])
assert full._last is not None
warm, cold = full.compute(moved), DFTOracle(**base).compute(moved)
assert abs(warm.energy - cold.energy) < 1e-6 and np.allclose(warm.forces, cold.forces, atol=1e-4)
assert "torch" not in sys.modules
print("OK")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stderr[-2000:]


def test_default_dft_oracle_forces_match_finite_differences():
    """wB97X-D/def2-SVP (density fitting, the default oracle) on water: forces = -dE/dx."""
    pytest.importorskip("pyscf")
    conf = water()
    comps = [(0, 2), (1, 1), (2, 2), (1, 2)]
    h = 2e-3
    spec = OracleSpec("dft", {"conv_tol": 1e-11, "threads": 1})
    res = run_pool(spec, [conf] + displaced(conf, h, comps))
    assert all(r.ok for r in res), [r.reason for r in res]
    fd_check(res[1:], res[0].forces, comps, h, atol=5e-4, rtol=1e-3)
    # with the grid-weight response (default) the net force vanishes (translation invariance)
    np.testing.assert_allclose(res[0].forces.sum(axis=0), 0.0, atol=1e-6)

