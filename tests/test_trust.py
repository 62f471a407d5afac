"""golf.trust: the MMFF trust signal is high for a broken relaxation, low for a good one, and the
bench's AUC is the Mann-Whitney statistic."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from golf.chem import conformation_to_mol, generate_conformers, mmff_force_field
from golf.conformation import Conformation
from golf.errors import InputError
from golf.trust import mmff_energy_drop, mmff_energy_drop_one
from golf.units import KCAL_MOL_TO_EV

THIOAMIDE = "CC(=S)N1CCCCC1"


def mmff_relaxed(smiles: str) -> Conformation:
    conf = generate_conformers(smiles, 1, seed=0)[0]
    mol = conformation_to_mol(conf, strict=True)
    _, ff = mmff_force_field(mol)
    ff.Initialize()
    assert ff.Minimize(maxIts=2000) == 0
    return conf.with_positions(np.asarray(ff.Positions()).reshape(-1, 3))


def stretch_bond(conf: Conformation, a: int, b: int, delta: float) -> Conformation:
    """Move atom b (alone) along a->b by ``delta`` Angstrom."""
    x = conf.positions.copy()
    u = x[b] - x[a]
    x[b] += delta * u / np.linalg.norm(u)
    return conf.with_positions(x)


def thiocarbonyl(conf: Conformation) -> tuple[int, int]:
    mol = conformation_to_mol(conf, strict=True)
    (pair,) = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()
               if {b.GetBeginAtom().GetSymbol(), b.GetEndAtom().GetSymbol()} == {"C", "S"}]
    return pair if mol.GetAtomWithIdx(pair[0]).GetSymbol() == "C" else pair[::-1]


def test_signal_low_for_good_relaxation_high_for_stretched_bond():
    good = mmff_relaxed(THIOAMIDE)
    c, s = thiocarbonyl(good)
    broken = stretch_bond(good, c, s, 0.15)
    values = mmff_energy_drop([good, broken, mmff_relaxed("CCO")])
    assert values.shape == (3,) and values.dtype == np.float64
    assert values[0] < 0.01 * KCAL_MOL_TO_EV and values[2] < 0.01 * KCAL_MOL_TO_EV  # at MMFF's own minimum
    # a C=S 0.15 A too long costs MMFF94 several kcal/mol (units: eV)
    assert 3.0 * KCAL_MOL_TO_EV < values[1] < 30.0 * KCAL_MOL_TO_EV


def test_signal_deterministic_and_per_structure():
    good = mmff_relaxed(THIOAMIDE)
    c, s = thiocarbonyl(good)
    confs = [stretch_bond(good, c, s, d) for d in (0.05, 0.15)]
    a, b = mmff_energy_drop(confs), mmff_energy_drop(confs[::-1])
    np.testing.assert_array_equal(a, b[::-1])
    assert a[0] < a[1]
    assert a[1] == mmff_energy_drop_one(confs[1])


def test_signal_inf_when_fell_apart_nan_when_not_computable():
    good = mmff_relaxed("CCO")
    x = good.positions.copy()
    x[np.argmax(good.numbers == 8)] += 6.0  # pull the oxygen away from the molecule
    apart = good.with_positions(x)
    bare = Conformation(good.numbers, good.positions)  # no mol block
    values = mmff_energy_drop([apart, bare, good])
    assert np.isposinf(values[0]) and np.isnan(values[1]) and np.isfinite(values[2])
    with pytest.raises(InputError, match="mol block"):
        mmff_energy_drop_one(bare)
    assert mmff_energy_drop([]).shape == (0,)


def test_signal_flags_stretched_thiocarbonyl_of_an_nnp_relaxation(one_torch_thread):
    """GOLF-10k's own relaxation of a thioamide already stretches C=S (a known blind spot); 0.15 A
    more makes the signal far higher than MMFF's own relaxation of the same molecule."""
    from golf.evaluation.scoring import model_trajectories
    from golf.models import load_model

    start = generate_conformers(THIOAMIDE, 1, seed=0)[0]
    (traj,) = model_trajectories(load_model("GOLF-10k"), [start], [100])
    nnp = start.with_positions(traj.frames[traj.frame_of_step[-1]])
    c, s = thiocarbonyl(nnp)
    broken = stretch_bond(nnp, c, s, 0.15)
    mmff_good, nnp_value, broken_value = mmff_energy_drop([mmff_relaxed(THIOAMIDE), nnp, broken])
    assert mmff_good < 0.01 * KCAL_MOL_TO_EV
    assert broken_value > nnp_value > mmff_good
    assert broken_value > 3.0 * KCAL_MOL_TO_EV


def _bench_trust():
    path = Path(__file__).resolve().parents[1] / "bench" / "trust.py"
    spec = importlib.util.spec_from_file_location("bench_trust", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_bench_auc_known_cases():
    bench = _bench_trust()
    y = [True, True, False, False]
    assert bench.auc([4, 3, 2, 1], y) == 1.0
    assert bench.auc([1, 2, 3, 4], y) == 0.0
    assert bench.auc([1, 1, 1, 1], y) == 0.5  # ties count 1/2
    # 3 bad x 2 good = 6 pairs: bad 5 beats both, bad 2 ties one, bad 3 beats one
    assert bench.auc([5, 2, 3, 2, 4], [True, True, True, False, False]) == pytest.approx(3.5 / 6)
    assert np.isnan(bench.auc([1, 2], [True, True]))
    iv = bench.auc_interval([4, 3, 2, 1, 0, 5], [True, False, True, False, False, True],
                            groups=[0, 0, 1, 1, 2, 2], n_boot=200)
    assert iv["lo"] <= iv["value"] <= iv["hi"] and iv["value"] == pytest.approx(8 / 9)


def test_optimize_writes_the_trust_signal_per_structure(tmp_path):
    """golf optimize --model: every relaxed structure carries trust_mmff_drop_kcal_mol; GOLF-10k's
    stretched thioamide C=S is distrusted more than its ethanol."""
    import subprocess
    import sys

    from rdkit import Chem

    smi = tmp_path / "m.smi"
    smi.write_text("CC(=S)N1CCCCC1 224\nCCO 1\n")
    out = tmp_path / "r.sdf"
    res = subprocess.run([sys.executable, "-m", "golf", "optimize", "--model", "GOLF-10k", str(smi), "-o", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    drops = {m.GetProp("_Name") or m.GetProp("mol_id"): float(m.GetProp("trust_mmff_drop_kcal_mol"))
             for m in Chem.SDMolSupplier(str(out), removeHs=False)}
    thio, ethanol = sorted(drops.values(), reverse=True)
    assert thio > 3.0 > ethanol >= 0.0
