"""Oracles: forces = -dE/dx by central finite differences, failure paths, MMFF/xTB agreement, relax.

This pytest process may have imported torch (other test files), so xTB and DFT always run in spawned
worker processes through the local executor, never in-process.
"""
from __future__ import annotations

import sys

import numpy as np
import pytest

from golf.conformation import Conformation
from golf.oracles import OracleSpec, make_oracle
from golf.oracles.executors import make_executor
from golf.oracles.mmff import MMFFOracle, mmff_energies


def conf_from_smiles(smiles: str, seed: int = 0) -> Conformation:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert AllChem.EmbedMolecule(mol, randomSeed=seed) == 0
    return Conformation(
        numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
        positions=mol.GetConformer().GetPositions(),
        smiles=smiles,
        molblock=Chem.MolToMolBlock(mol),
    )


def butane(dihedral: float) -> Conformation:
    """n-butane from ETKDG with the C-C-C-C dihedral set rigidly (no relaxation)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdMolTransforms

    mol = Chem.AddHs(Chem.MolFromSmiles("CCCC"))
    AllChem.EmbedMolecule(mol, randomSeed=7)
    AllChem.MMFFOptimizeMolecule(mol)
    rdMolTransforms.SetDihedralDeg(mol.GetConformer(), 0, 1, 2, 3, dihedral)
    return Conformation(
        numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
        positions=mol.GetConformer().GetPositions(),
        smiles="CCCC",
        molblock=Chem.MolToMolBlock(mol),
    )


def water() -> Conformation:
    return Conformation(
        numbers=[8, 1, 1],
        positions=[[0.0, 0.0, 0.117], [0.0, 0.757, -0.469], [0.0, -0.757, -0.469]],
        smiles="O",
    )


def displaced(conf: Conformation, h: float, components: list[tuple[int, int]]) -> list[Conformation]:
    """[+h, -h] displaced copies for each (atom, axis) component."""
    out = []
    for i, a in components:
        for s in (+1.0, -1.0):
            p = conf.positions.copy()
            p[i, a] += s * h
            out.append(conf.with_positions(p))
    return out


def fd_check(results, forces, components, h, atol, rtol=1e-3):
    for j, (i, a) in enumerate(components):
        ep, em = results[2 * j].energy, results[2 * j + 1].energy
        fd = -(ep - em) / (2 * h)
        assert forces[i, a] == pytest.approx(fd, abs=atol, rel=rtol), (i, a)


def run_pool(spec: OracleSpec, confs: list[Conformation]):
    with make_executor(spec, kind="local", n_workers=2, timeout=300) as ex:
        for k, c in enumerate(confs):
            ex.submit(c, key=k)
        res = dict(ex.as_completed())
    return [res[k] for k in range(len(confs))]


# ---------------------------------------------------------------------------------------- MMFF


def test_mmff_forces_match_finite_differences():
    conf = conf_from_smiles("CC(=O)NC", seed=1)
    oracle = MMFFOracle()
    ref = oracle.compute(conf)
    assert ref.ok and ref.forces.shape == (conf.n_atoms, 3)
    comps = [(i, a) for i in range(conf.n_atoms) for a in range(3)]
    h = 1e-4
    results = oracle.compute_batch(displaced(conf, h, comps))
    fd_check(results, ref.forces, comps, h, atol=2e-5)


def test_mmff_without_molblock_perceives_bonds():
    conf = conf_from_smiles("OCC=O")
    bare = Conformation(numbers=conf.numbers, positions=conf.positions)
    a, b = MMFFOracle().compute(conf), MMFFOracle().compute(bare)
    assert a.ok and b.ok
    assert b.energy == pytest.approx(a.energy, abs=1e-8)
    np.testing.assert_allclose(b.forces, a.forces, atol=1e-8)


def test_mmff_failures_are_results():
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("C[Se]C"))
    AllChem.EmbedMolecule(mol, randomSeed=0)
    se = Conformation(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
                      positions=mol.GetConformer().GetPositions(), molblock=Chem.MolToMolBlock(mol))
    r = MMFFOracle().compute(se)
    assert not r.ok and "MMFF" in r.reason
    ok = conf_from_smiles("CCO")
    swapped = Conformation(numbers=ok.numbers[::-1], positions=ok.positions, molblock=ok.molblock)
    r2 = MMFFOracle().compute(swapped)
    assert not r2.ok and "atomic numbers" in r2.reason
    bad = ok.with_positions(np.full_like(ok.positions, np.nan))
    assert "bad geometry" in MMFFOracle().compute(bad).reason
    e = mmff_energies([ok, se, bad, ok])
    assert e.shape == (4,) and np.isfinite(e[[0, 3]]).all() and np.isnan(e[[1, 2]]).all()
    assert e[0] == pytest.approx(MMFFOracle().compute(ok).energy)


def test_mmff_cache_reuses_force_field_for_new_positions():
    conf = conf_from_smiles("CCCO")
    oracle = MMFFOracle()
    e1 = oracle.compute(conf).energy
    moved = conf.with_positions(conf.positions + np.random.default_rng(0).normal(0, 0.05, conf.positions.shape))
    e2 = oracle.compute(moved).energy
    assert len(oracle._cache) == 1
    assert MMFFOracle().compute(moved).energy == pytest.approx(e2, abs=1e-10)
    assert e1 != pytest.approx(e2)


def test_mmff_relax_keeps_trajectory():
    conf = butane(60.0)
    res = MMFFOracle().relax(conf, fmax=0.01, max_steps=300)
    assert res.ok and res.converged
    assert np.max(np.linalg.norm(res.forces, axis=1)) < 0.01
    t = res.trajectory_energies
    assert t.shape[0] == res.trajectory_positions.shape[0] == res.trajectory_forces.shape[0] == res.n_steps + 1
    np.testing.assert_allclose(res.trajectory_positions[0], conf.positions)
    assert res.energy == pytest.approx(t[-1]) and t[-1] < t[0]


def test_relax_reports_oracle_failure_midway():
    from golf.oracles.base import Oracle, OracleResult

    class FlakyOracle(Oracle):
        name = "flaky"

        def __init__(self):
            self.inner, self.calls = MMFFOracle(), 0

        @property
        def settings(self):
            return {}

        def _compute(self, conf):
            self.calls += 1
            if self.calls > 3:
                return OracleResult.failure("SCF not converged")
            return self.inner.compute(conf)

    res = FlakyOracle().relax(butane(0.0), fmax=0.001, max_steps=100)
    assert not res.ok and "SCF not converged" in res.reason
    assert len(res.trajectory_energies) == 3 and res.positions is not None


# ----------------------------------------------------------------------------------------- xTB


def test_xtb_forces_match_finite_differences_and_failures():
    conf = conf_from_smiles("CO", seed=3)
    comps = [(0, 0), (1, 2), (2, 1), (4, 0), (5, 2)]
    h = 1e-3
    bad_charge = water()
    bad_charge.charge = 9  # more charge than valence electrons
    confs = [conf] + displaced(conf, h, comps) + [water(), bad_charge]
    spec = OracleSpec("xtb", {"accuracy": 0.01})
    res = run_pool(spec, confs)
    ref = res[0]
    assert ref.ok, ref.reason
    fd_check(res[1:1 + 2 * len(comps)], ref.forces, comps, h, atol=5e-4)
    # energy of water in eV (GFN2-xTB -5.0704 Eh)
    assert res[-2].ok and res[-2].energy == pytest.approx(-5.0704 * 27.211386, abs=0.01)
    assert not res[-1].ok and "impossible electronic state" in res[-1].reason
    # an SCF that cannot converge (1 iteration, retried with 2) is a failure result, not an exception
    (fail,) = run_pool(OracleSpec("xtb", {"max_iterations": 1}), [conf])
    assert not fail.ok and "SCF not converged" in fail.reason and "retry" in fail.reason


def test_mmff_and_xtb_agree_butane_anti_below_syn():
    anti, syn = butane(180.0), butane(0.0)
    e_mmff = mmff_energies([anti, syn])
    xtb = run_pool(OracleSpec("xtb"), [anti, syn])
    assert all(r.ok for r in xtb)
    assert e_mmff[0] < e_mmff[1]
    assert xtb[0].energy < xtb[1].energy
    # both a few kcal/mol (~0.1-0.4 eV) apart
    assert 0.05 < e_mmff[1] - e_mmff[0] < 0.6 and 0.05 < xtb[1].energy - xtb[0].energy < 0.6


def test_electron_count_problem():
    from golf.oracles.xtb import electron_count_problem

    assert electron_count_problem(np.array([8, 1, 1]), 0, 1) is None
    assert electron_count_problem(np.array([8, 1, 1]), 9, 1) is not None
    assert electron_count_problem(np.array([8, 1, 1]), 0, 2) is not None  # 10 electrons, doublet
    assert electron_count_problem(np.array([8, 1]), 0, 2) is None  # OH radical
    assert electron_count_problem(np.array([35, 1]), -1, 2) is None


def test_xtb_in_torch_process_is_refused(monkeypatch):
    if "tblite.interface" in sys.modules:
        pytest.skip("tblite already loaded here")
    from golf.errors import OracleUnavailable

    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or object())
    with pytest.raises(OracleUnavailable, match="torch"):
        make_oracle("xtb")


# ----------------------------------------------------------------------------------------- DFT


def test_dft_forces_match_finite_differences():
    pytest.importorskip("pyscf")
    conf = water()
    comps = [(0, 2), (1, 1), (2, 2)]
    h = 1e-3
    spec = OracleSpec("dft", {"basis": "sto-3g", "density_fit": False, "conv_tol": 1e-11})
    res = run_pool(spec, [conf] + displaced(conf, h, comps))
    assert all(r.ok for r in res), [r.reason for r in res]
    fd_check(res[1:], res[0].forces, comps, h, atol=5e-4)
    # net force vanishes (translation invariance, incl. the D3 term)
    np.testing.assert_allclose(res[0].forces.sum(axis=0), 0.0, atol=1e-3)


def test_dft_wb97x_d3bj_includes_d3_dispersion():
    """Run in a fresh interpreter (no torch): wb97x-d3bj (no longer the default) carries a D3(BJ) term."""
    pytest.importorskip("pyscf")
    pytest.importorskip("pyscf.dispersion")
    import subprocess

    code = """
import sys
from golf.oracles.dft import DFTOracle
from golf.conformation import Conformation
o = DFTOracle(xc="wb97x-d3bj", basis="sto-3g", density_fit=False, threads=1)
conf = Conformation(numbers=[8, 1, 1], positions=[[0, 0, 0.117], [0, 0.757, -0.469], [0, -0.757, -0.469]])
mf = o._mf(conf)
e = mf.kernel()
disp = float(mf.scf_summary["dispersion"])
r = o.compute(conf)
assert mf.converged and r.ok
assert -1e-2 < disp < -1e-5, disp
from golf.units import HARTREE_TO_EV
assert abs(r.energy - e * HARTREE_TO_EV) < 1e-6
assert "torch" not in sys.modules
print("OK", disp)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stderr[-2000:]


def test_unknown_oracle_and_missing_backend_messages():
    from golf.errors import OracleUnavailable

    with pytest.raises(OracleUnavailable, match="unknown oracle"):
        make_oracle("nope")
    from golf.oracles.dft import INSTALL_HINT

    assert "golf[dft]" in INSTALL_HINT


def test_dft_unconverged_scf_is_retried_then_reported():
    """Fresh interpreter (no torch): 3 SCF cycles fail, the level-shift retry converges; 1 cycle fails."""
    pytest.importorskip("pyscf")
    import subprocess

    code = """
from golf.oracles.dft import DFTOracle
from golf.conformation import Conformation
conf = Conformation(numbers=[8, 1, 1], positions=[[0, 0, 0.117], [0, 0.757, -0.469], [0, -0.757, -0.469]])
base = dict(basis="sto-3g", density_fit=False, threads=1)
ref, retried, failed = (DFTOracle(**base, **x).compute(conf) for x in ({}, {"max_cycle": 3}, {"max_cycle": 1}))
assert ref.ok and retried.ok, (ref.reason, retried.reason)
assert abs(retried.energy - ref.energy) < 1e-6
assert not failed.ok and "SCF not converged" in failed.reason, failed.reason
print("OK")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stderr[-2000:]


@pytest.mark.parametrize("exc", ["ImportError('No module named orca_driver')", "RuntimeError('license\\nexpired')"])
def test_plugin_oracle_whose_constructor_raises_is_one_input_error(tmp_path, monkeypatch, exc) -> None:
    """A ``module:Class`` oracle whose constructor raises (its own missing import, anything) is refused
    with one line naming the oracle and the error, not a traceback."""
    from golf.errors import InputError
    from golf.oracles import validated_spec

    module = f"broken_plugin_{exc.split('(')[0].lower()}"  # one module per case (import cache)
    (tmp_path / f"{module}.py").write_text(
        "from golf.oracles.base import Oracle\n\n"
        "class Broken(Oracle):\n"
        f"    name = '{module}:Broken'\n"
        f"    def __init__(self):\n        raise {exc}\n"
        "    settings = {}\n"
        "    def _compute(self, conf):\n        raise AssertionError\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InputError) as info:
        validated_spec(f"{module}:Broken")
    msg = str(info.value)
    assert f"{module}:Broken" in msg and exc.split("(")[0] in msg and "\n" not in msg


def test_dft_energy_only_is_the_compute_energy_without_the_gradient():
    """Fresh interpreter (no torch): ``compute_energy`` gives ``compute``'s energy (incl. the dispersion term),
    no forces, never touches the gradient path; an SCF failure is a clean one-line reason."""
    pytest.importorskip("pyscf")
    import subprocess

    code = """
from golf.oracles.dft import DFTOracle
from golf.conformation import Conformation
conf = Conformation(numbers=[8, 1, 1], positions=[[0, 0, 0.117], [0, 0.757, -0.469], [0, -0.757, -0.469]])
base = dict(basis="sto-3g", density_fit=False, threads=1, reuse_density=False)
full = DFTOracle(**base).compute(conf)
o = DFTOracle(**base)
def no_gradient(conf):
    raise AssertionError("gradient path used")
o._compute = no_gradient
e = o.compute_energy(conf)
assert full.ok and e.ok and e.forces is None, (full.reason, e.reason)
assert abs(e.energy - full.energy) < 1e-6, (e.energy, full.energy)
failed = DFTOracle(**base, max_cycle=1).compute_energy(conf)
assert not failed.ok and failed.reason.startswith("SCF not converged"), failed.reason
print("OK")
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0 and out.stdout.startswith("OK"), out.stderr[-2000:]


def test_executor_energy_task_gives_energies_without_forces():
    from golf.oracles.executors import make_executor

    confs = [water(), butane(180.0)]
    with make_executor(OracleSpec("mmff"), kind="serial") as ex:
        for i, c in enumerate(confs):
            ex.submit(c, key=(i, "energy"), task="energy")
            ex.submit(c, key=(i, "compute"))
        got = dict(ex.as_completed())
    for i in range(len(confs)):
        e, full = got[(i, "energy")], got[(i, "compute")]
        assert e.ok and e.forces is None and e.energy == pytest.approx(full.energy, abs=1e-9)
