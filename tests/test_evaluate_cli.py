"""`golf evaluate` end to end on a tiny test set (MMFF stands in for the genuine oracle to stay fast)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from golf.conformation import Conformation

SMILES = ["CCO", "CC(C)=O", "CN"]  # ethanol, acetone, methylamine


def _start_and_optimum(smiles: str, seed: int) -> tuple[Conformation, np.ndarray, bool, int]:
    """An ETKDG conformer displaced by noise (start) and its MMFF94 optimum."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    rng = np.random.default_rng(seed)
    start = mol.GetConformer().GetPositions() + rng.normal(0.0, 0.08, (mol.GetNumAtoms(), 3))
    for i, p in enumerate(start):
        mol.GetConformer().SetAtomPosition(i, p.tolist())
    conf = Conformation(
        numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
        positions=start,
        smiles=Chem.MolToSmiles(Chem.RemoveHs(mol)),
        mol_id=seed,
        conf_id=0,
        molblock=Chem.MolToMolBlock(mol),
    )
    props = AllChem.MMFFGetMoleculeProperties(mol)
    ff = AllChem.MMFFGetMoleculeForceField(mol, props)
    status = ff.Minimize(maxIts=2000, forceTol=1e-6, energyTol=1e-10)
    opt = np.asarray(ff.Positions(), dtype=np.float64).reshape(-1, 3)
    return conf, opt, status == 0, 2000


def _write_reference_db(path, with_opt_energy: bool = True) -> None:
    """A reference db in the golf.db schema (contracts): start atoms + energy/forces, kvp opt_energy..."""
    import ase.db
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    from golf.oracles.mmff import MMFFOracle

    oracle = MMFFOracle()
    with ase.db.connect(str(path), type="db", append=False) as db:
        for k, smi in enumerate(SMILES):
            conf, opt, converged, steps = _start_and_optimum(smi, seed=k + 1)
            start = oracle.compute(conf)
            e_opt = oracle.compute(conf.with_positions(opt))
            assert start.ok and e_opt.ok
            atoms = Atoms(numbers=conf.numbers, positions=conf.positions)
            atoms.calc = SinglePointCalculator(atoms, energy=start.energy, forces=start.forces)
            kvp = dict(
                mol_id=conf.mol_id, conf_id=conf.conf_id, smiles=conf.smiles, oracle="mmff",
                key=f"{conf.mol_id}:{conf.conf_id}",
            )
            if with_opt_energy:
                kvp.update(opt_energy=float(e_opt.energy), opt_converged=bool(converged), opt_steps=steps)
            data = {"molblock": conf.molblock, "oracle_settings": json.dumps(oracle.settings)}
            if with_opt_energy:
                data["opt_positions"] = opt
            db.write(atoms, key_value_pairs=kvp, data=data)


@pytest.fixture(scope="module")
def reference_db(tmp_path_factory):
    path = tmp_path_factory.mktemp("ref") / "reference.db"
    _write_reference_db(path)
    return path


class _SerialExecutor:
    """Minimal in-process stand-in for golf.oracles.executors (submit / as_completed)."""

    def __init__(self, oracle):
        self.oracle = oracle
        self.pending = []

    def submit(self, conf, key, task="compute", **kw):
        self.pending.append((key, conf))

    def as_completed(self):
        while self.pending:
            key, conf = self.pending.pop(0)
            yield key, self.oracle.compute(conf)


def _reference_records(path):
    from golf.evaluation.scoring import ReferenceRecord
    import ase.db

    out = []
    with ase.db.connect(str(path)) as db:
        for row in db.select():
            conf = Conformation(
                row.numbers, row.positions, smiles=row.smiles, mol_id=row.mol_id,
                conf_id=row.conf_id, molblock=row.data["molblock"],
            )
            out.append(ReferenceRecord(conf, row.opt_energy, row.data["opt_positions"]))
    return out


def test_mmff_row_reaches_the_mmff_optimum(reference_db):
    """With MMFF as genuine oracle, RDKit MMFF relaxation must reach the reference optimum."""
    from golf.evaluation.scoring import evaluate_mmff
    from golf.oracles.mmff import MMFFOracle

    reference = _reference_records(reference_db)
    ex = _SerialExecutor(MMFFOracle())
    res = evaluate_mmff(reference, ex, steps=[1, 2, 5, 200], progress=False)
    assert res.steps == [1, 2, 5, 200]
    assert len(res.records) == 3
    last = res.aggregate[-1]
    assert last["n_valid"] == 3 and last["n_failed"] == 0
    assert last["pct_mean"] == pytest.approx(100.0, abs=0.5)
    assert last["pct_success"] == 100.0 and last["pct_div"] == 0.0
    pct = [row["pct_mean"] for row in res.aggregate]
    assert pct[0] < pct[-1]
    for rec in res.records:
        assert rec["n_oracle_failures"] == 0 and rec["converged"]
        assert len(rec["E_T"]) == 4 and rec["E_T"][0] < rec["E_0"]


def test_evaluate_model_with_a_dummy_provider(reference_db):
    """evaluate_model on a provider with zero forces: the structure never moves -> pct 0."""
    import torch

    from golf.evaluation.scoring import evaluate_model
    from golf.oracles.mmff import MMFFOracle

    def provider(batch):
        return torch.zeros(batch.n_mols, dtype=batch.positions.dtype), torch.zeros_like(batch.positions)

    reference = _reference_records(reference_db)
    ex = _SerialExecutor(MMFFOracle())
    res = evaluate_model(provider, reference, ex, steps=[1, 3], name="frozen", progress=False)
    for row in res.aggregate:
        assert row["n_valid"] == 3
        assert row["pct_mean"] == pytest.approx(0.0, abs=1e-6)
        assert row["pct_div"] == 0.0
    assert res.name == "frozen"
    assert all(r["E_T"][1] == pytest.approx(r["E_0"]) for r in res.records)


def _run_cli(argv):
    from golf.cli import main

    return main(argv)


def test_cli_end_to_end(reference_db, checkpoints_dir, tmp_path, capsys):
    out = tmp_path / "eval"
    rc = _run_cli(
        [
            "evaluate", "--model", str(checkpoints_dir / "GOLF-10k.pt"), "--reference", str(reference_db),
            "--steps", "1,2,5", "--oracle", "mmff", "--executor", "serial", "--out", str(out),
            "--mmff", "--no-progress",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "GOLF-10k" in captured.out and "mmff" in captured.out
    assert "pct_div" in captured.out
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["format"] == "golf-metrics/1"
    assert doc["settings"]["oracle"] == "mmff" and doc["settings"]["steps"] == [1, 2, 5]
    names = [m["name"] for m in doc["models"]]
    assert names == ["GOLF-10k", "mmff"]
    for m in doc["models"]:
        assert [row["T"] for row in m["aggregate"]] == [1, 2, 5]
        assert len(m["records"]) == 3
        for rec in m["records"]:
            assert {"mol_id", "conf_id", "smiles", "E_0", "E_opt", "E_T", "n_oracle_failures"} <= set(rec)
            assert len(rec["E_T"]) == 3
            assert rec["trust_mmff_drop_kcal_mol"] >= 0.0  # golf.trust at the last structure
        assert "trust_auc" in m["settings"]
        for row in m["aggregate"]:
            assert row["n"] == 3
            assert row["pct_success"] is None or 0.0 <= row["pct_success"] <= 100.0
    png = (out / "metrics.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left

    from golf.evaluation.scoring import read_metrics

    back = read_metrics(out / "metrics.json")
    assert set(back) == {"GOLF-10k", "mmff"}


def test_cli_mmff_only(reference_db, tmp_path, capsys):
    out = tmp_path / "mmff"
    rc = _run_cli(
        [
            "evaluate", "--model", "mmff", "--reference", str(reference_db), "--steps", "1,50",
            "--executor", "serial", "--out", str(out), "--no-progress", "--limit", "2",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    doc = json.loads((out / "metrics.json").read_text())
    assert [m["name"] for m in doc["models"]] == ["mmff"]
    m = doc["models"][0]
    assert len(m["records"]) == 2
    assert doc["settings"]["oracle"] == "mmff"  # taken from the reference db
    assert m["aggregate"][-1]["pct_mean"] == pytest.approx(100.0, abs=1.0)
    assert (out / "metrics.png").exists()


def test_cli_bad_inputs_are_one_line_errors(reference_db, tmp_path, capsys):
    # missing model
    rc = _run_cli(
        ["evaluate", "--model", str(tmp_path / "nope.pt"), "--reference", str(reference_db),
         "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "not found" in err
    # reference db without opt_energy
    bad = tmp_path / "labelled.db"
    _write_reference_db(bad, with_opt_energy=False)
    rc = _run_cli(["evaluate", "--model", "mmff", "--reference", str(bad), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "opt_energy" in err
    # missing reference
    rc = _run_cli(["evaluate", "--model", "mmff", "--reference", str(tmp_path / "x.db"), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert rc == 2 and "not found" in err
    # bad steps
    rc = _run_cli(
        ["evaluate", "--model", "mmff", "--reference", str(reference_db), "--steps", "1,a",
         "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "--steps" in err
    # oracle mismatch with the reference optima
    rc = _run_cli(
        ["evaluate", "--model", "mmff", "--reference", str(reference_db), "--oracle", "xtb",
         "--out", str(tmp_path / "o")]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "mmff" in err
    assert not (tmp_path / "o" / "metrics.json").exists()


def test_plot_metrics_several_models(tmp_path):
    from golf.evaluation import metrics
    from golf.evaluation.plots import plot_metrics

    a = metrics.aggregate([0.0, 0.0], [[-0.5, -0.9], [-0.2, -1.0]], [-1.0, -1.0], [1, 10])
    b = metrics.aggregate([0.0], [[math.nan, 0.5]], [-1.0], [1, 10])
    path = plot_metrics({"a": a, "b": {"aggregate": b}}, tmp_path / "sub" / "p.png", title="t")
    assert path.read_bytes()[:4] == b"\x89PNG"
    broken = metrics.aggregate([0.0], [[math.nan, math.nan]], [-1.0], [1, 10])  # every structure broken
    path = plot_metrics({"broken": broken}, tmp_path / "broken.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


class _FlakyExecutor(_SerialExecutor):
    """Fails the oracle call of conformation 0 at the frame of T = 2."""

    def as_completed(self):
        for key, result in super().as_completed():
            if key[0] == 0 and key[1] == 2:
                from golf.oracles.base import OracleResult

                result = OracleResult.failure("SCF not converged")
            yield key, result


def test_failed_oracle_calls_are_counted(reference_db):
    from golf.evaluation.scoring import evaluate_mmff
    from golf.oracles.mmff import MMFFOracle

    reference = _reference_records(reference_db)
    res = evaluate_mmff(reference, _FlakyExecutor(MMFFOracle()), steps=[1, 2, 3], progress=False)
    by_t = {row["T"]: row for row in res.aggregate}
    assert by_t[2]["n_failed"] == 1 and by_t[2]["n_valid"] == 2
    assert by_t[1]["n_failed"] == 0 and by_t[3]["n_failed"] == 0
    rec = res.records[0]
    assert rec["n_oracle_failures"] == 1 and rec["oracle_failure_reasons"] == ["SCF not converged"]
    assert math.isnan(rec["E_T"][1]) and math.isnan(rec["pct_T"][1])
    doc = res.to_dict()
    assert doc["records"][0]["E_T"][1] is None  # NaN -> null in JSON
    json.dumps(doc, allow_nan=False)


def test_failed_model_relaxation_keeps_last_good_structure(reference_db):
    """A provider whose forces turn NaN after a few steps: later T use the last finite structure."""
    import torch

    from golf.evaluation.scoring import model_trajectories

    calls = {"n": 0}

    def provider(batch):
        calls["n"] += 1
        forces = -0.5 * (batch.positions - batch.positions.mean(0))
        if calls["n"] > 3:
            forces = forces * float("nan")
        return torch.zeros(batch.n_mols, dtype=batch.positions.dtype), forces

    confs = [r.conf for r in _reference_records(reference_db)][:1]
    # the robust L-BFGS: the paper's optimizer (the default) solves this quadratic before the NaN arrives
    (traj,) = model_trajectories(provider, confs, steps=[1, 2, 10, 50], optimizer="lbfgs")
    assert all(np.all(np.isfinite(traj.frames[f])) for f in traj.frame_of_step)
    assert traj.frame_of_step[-1] == traj.frame_of_step[-2] == len(traj.frames) - 1
    assert traj.frame_of_step[-1] < 10


def test_dissociated_structures_are_scored_without_oracle_call(reference_db):
    """A model that blows the molecule apart: those frames never reach the oracle, and they count as
    diverged and unsuccessful rather than being dropped from the percentages."""
    import torch

    from golf.conformation import n_fragments
    from golf.evaluation.scoring import evaluate_model
    from golf.oracles.mmff import MMFFOracle

    def provider(batch):  # strong repulsion from the centre: atoms fly apart
        x = batch.positions
        return torch.zeros(batch.n_mols, dtype=x.dtype), 50.0 * (x - x.mean(0))

    reference = _reference_records(reference_db)
    assert all(n_fragments(r.conf.numbers, r.conf.positions) == 1 for r in reference)
    ex = _SerialExecutor(MMFFOracle())
    res = evaluate_model(provider, reference, ex, steps=[1, 40], name="exploding", optimizer="gd",
                         progress=False)
    last = res.aggregate[-1]
    assert last["n_valid"] == 0 and last["n_scored"] == 3
    assert last["pct_div"] == 100.0 and last["pct_success"] == 0.0
    for rec in res.records:
        assert any(r.startswith("dissociated") for r in rec["oracle_failure_reasons"])
    assert res.settings["n_oracle_calls"] < 3 * 3  # the broken frames were not submitted


def test_dissociation_counts_fragments_beyond_the_start():
    """``golf.evaluation.scoring.dissociation``: a C-C bond stretched past 2x the covalent radii sum (1.52 A
    here) splits the molecule; a stretched but connected one does not; a structure that started in
    two pieces is judged against its own start."""
    from golf.conformation import Conformation
    from golf.evaluation.scoring import dissociation

    ethane_cc = Conformation(np.array([6, 6]), np.array([[0.0, 0.0, 0.0], [1.54, 0.0, 0.0]]))
    assert dissociation(ethane_cc, ethane_cc.positions) is None
    assert dissociation(ethane_cc, np.array([[0.0, 0.0, 0.0], [2.9, 0.0, 0.0]])) is None  # < 2 x 1.52 A
    reason = dissociation(ethane_cc, np.array([[0.0, 0.0, 0.0], [3.2, 0.0, 0.0]]))
    assert reason is not None and reason.startswith("dissociated: 2 fragments (start: 1)")
    apart = Conformation(np.array([6, 6]), np.array([[0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]))
    assert dissociation(apart, np.array([[0.0, 0.0, 0.0], [6.0, 0.0, 0.0]])) is None
