"""``golf conformers``: deduplication, bond-graph and stereo checks, selection, refinement, CLI end to end."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from golf import conformer_search as gc
from golf.cli import main
from golf.chem import generate_conformers

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _conf(smiles: str, n: int = 1, seed: int = 0):
    return generate_conformers(smiles, n, seed, mol_id=0)


def _automorphism(conf):
    """A non-identity atom permutation of the molecule that maps heavy atoms onto other heavy atoms."""
    from rdkit import Chem

    mol = Chem.MolFromMolBlock(conf.molblock, removeHs=False)
    for match in mol.GetSubstructMatches(mol, uniquify=False, maxMatches=5000):
        heavy_moved = any(i != j and mol.GetAtomWithIdx(i).GetAtomicNum() > 1 for i, j in enumerate(match))
        if heavy_moved:
            return np.array(match)
    raise AssertionError("no symmetry")


def test_dedup_is_symmetry_aware():
    (a,) = _conf("CC(C)(C)Cl")
    perm = _automorphism(a)
    b = a.with_positions(a.positions[perm])  # the same structure, symmetric atoms relabelled
    heavy = a.numbers > 1
    naive = np.sqrt(np.mean(np.sum((a.positions[heavy] - b.positions[heavy]) ** 2, axis=1)))
    assert naive > 1.0  # a plain RMSD would call them different
    rmsd = gc.heavy_atom_rmsd_matrix([a, b])[(0, 1)]
    assert rmsd < 1e-3
    kept, dup_of = gc.deduplicate([a, b], [-1.0, -1.0 + 1e-4], rmsd_threshold=0.3, energy_threshold_kcal=1.0)
    assert kept == [0] and dup_of == {1: 0}
    # the energy criterion: same geometry but 2 kcal/mol apart is not a duplicate
    kept, _ = gc.deduplicate([a, b], [-1.0, -1.0 + 2.0 / 23.06], rmsd_threshold=0.3, energy_threshold_kcal=1.0)
    assert kept == [0, 1]


def test_dedup_keeps_distinct_conformers_lowest_first():
    confs = _conf("CCCCCCO", n=6, seed=3)
    rm = gc.heavy_atom_rmsd_matrix(confs)
    i, j = max(rm, key=rm.get)
    assert rm[(i, j)] > 0.5
    kept, _ = gc.deduplicate([confs[i], confs[j]], [0.2, 0.1], rmsd_threshold=0.3, energy_threshold_kcal=100.0)
    assert kept == [1, 0]


def test_stereo_check_catches_an_inverted_centre():
    (c,) = _conf("C[C@H](N)C(=O)O")
    graph = gc.bond_graph(gc._mol_of(c))
    problem, key = gc.check_conformer(c, graph, "C[C@H](N)C(=O)O")
    assert problem is None and key == "C[C@H](N)C(=O)O"
    mirrored = c.with_positions(c.positions * np.array([-1.0, 1.0, 1.0]))
    problem, key = gc.check_conformer(mirrored, graph, "C[C@H](N)C(=O)O")
    assert problem == "stereo" and key == "C[C@@H](N)C(=O)O"


def test_stereo_check_catches_a_flipped_double_bond():
    (c,) = _conf("C/C=C/C")
    graph = gc.bond_graph(gc._mol_of(c))
    assert gc.check_conformer(c, graph, "C/C=C/C")[0] is None
    assert gc.check_conformer(c, graph, "C/C=C\\C")[0] == "stereo"


def test_graph_check_catches_a_broken_bond():
    (c,) = _conf("CCO")
    graph = gc.bond_graph(gc._mol_of(c))
    pos = c.positions.copy()
    o = int(np.nonzero(c.numbers == 8)[0][0])
    pos[o] += 2.0 * (pos[o] - pos[1]) / np.linalg.norm(pos[o] - pos[1])  # C-O stretched by 2 A
    assert gc.check_conformer(c.with_positions(pos), graph, "CCO")[0] == "graph"


def test_select_top_k_and_window():
    kcal = 1 / 23.0605
    e = np.array([3.0, 0.0, 1.0, 7.0, 2.0]) * kcal
    assert gc.select_conformers(e, top_k=3, window_kcal=None) == [1, 2, 4]
    assert gc.select_conformers(e, top_k=None, window_kcal=2.5) == [1, 2, 4]
    assert gc.select_conformers(e, top_k=2, window_kcal=2.5) == [1, 2]
    assert gc.select_conformers(e, top_k=None, window_kcal=None) == [1, 2, 4, 0, 3]


def test_stereo_enumeration_and_conformer_counts():
    from golf.chem import parse_smiles

    assert len(gc.expand_stereoisomers(parse_smiles("CC(N)C(=O)O"))) == 2
    assert len(gc.expand_stereoisomers(parse_smiles("C[C@H](N)C(=O)O"))) == 1
    assert len(gc.expand_stereoisomers(parse_smiles("CC=CC(O)C"))) == 4
    assert not gc._has_unassigned_stereo(parse_smiles("C/C=C/C"))
    assert not gc._has_unassigned_stereo(parse_smiles("C[C@H](N)CC"))
    assert gc._has_unassigned_stereo(parse_smiles("CC=CC")) and gc._has_unassigned_stereo(parse_smiles("CC(N)CC"))
    assert gc.default_n_conformers(parse_smiles("c1ccccc1")) == 10
    assert gc.default_n_conformers(parse_smiles("CCCCCC(=O)OCC")) == 30
    assert gc.default_n_conformers(parse_smiles("C" * 20), cap=40) == 40


def test_read_molecules_reports_bad_records(tmp_path):
    p = tmp_path / "m.csv"
    p.write_text("smiles,name\nCCO,ethanol\nC1CC,broken\nC[NH3+],cation\n")
    mols = gc.read_molecules(p)
    assert [m.name for m in mols] == ["ethanol", "broken", "cation"]
    assert mols[0].error is None and "invalid SMILES" in mols[1].error and "charged" in mols[2].error
    assert gc.read_molecules(p, charge=1)[2].error is None


def test_unseen_element_refuses_only_that_molecule(tmp_path):
    from golf.models import build_model

    torch.manual_seed(0)
    model = build_model("painn", elements=[1, 6, 8], n_atom_basis=8, n_interactions=1)
    p = tmp_path / "m.smi"
    p.write_text("CC=O acetaldehyde\nCC#N acetonitrile\n")
    res = gc.generate_conformer_ensembles(
        gc.read_molecules(p), model, gc.ConformerSettings(n_conformers=2, max_steps=2, fmax=10.0))
    assert res[1].error and "never trained on element(s) N" in res[1].error
    assert res[0].n_embedded == 2


@pytest.fixture(scope="module")
def golf10k():
    from golf.models import load_model

    return load_model("GOLF-10k")


def test_refine_reranks_by_oracle_energy(golf10k, tmp_path):
    p = tmp_path / "m.smi"
    p.write_text("CCCCO butanol\n")
    res = gc.generate_conformer_ensembles(gc.read_molecules(p), golf10k,
                                          gc.ConformerSettings(n_conformers=6, max_steps=60, top_k=4))
    assert res[0].ok
    gc.refine(res, "mmff", executor="serial")
    recs = res[0].conformers
    refined = [r.refined_energy for r in recs]
    assert all(np.isfinite(refined)) and refined == sorted(refined)
    assert [r.rank for r in recs] == list(range(1, len(recs) + 1))
    assert recs[0].refined_rel_kcal_mol == 0.0
    assert sorted(r.model_rank for r in recs) == list(range(1, len(recs) + 1))


def _read_sdf(path):
    from rdkit import Chem

    return [m for m in Chem.SDMolSupplier(str(path), removeHs=False)]


def test_cli_end_to_end(tmp_path, capsys):
    smi = tmp_path / "in.smi"
    smi.write_text("CCCO propanol\nC[C@@H](O)C(=O)O lactic\nC[Si](C)(C)C silane\n")
    out = tmp_path / "confs.sdf"
    rc = main(["conformers", str(smi), "-o", str(out), "--n-conformers", "4", "--max-steps", "80", "--top-k", "3",
               "--no-progress"])
    assert rc == 3  # written, without the molecule reported on stderr
    err = capsys.readouterr().err
    assert "2/3 molecules" in err and "silane" in err and "unsupported element Si" in err
    mols = _read_sdf(out)
    assert mols and {m.GetProp("golf_molecule") for m in mols} == {"propanol", "lactic"}
    for name in ("propanol", "lactic"):
        sub = [m for m in mols if m.GetProp("golf_molecule") == name]
        assert 1 <= len(sub) <= 3
        assert [m.GetIntProp("golf_rank") for m in sub] == list(range(1, len(sub) + 1))
        rel = [m.GetDoubleProp("golf_rel_energy_kcal_mol") for m in sub]
        assert rel[0] == 0.0 and rel == sorted(rel)
        e = [m.GetDoubleProp("golf_energy_eV") for m in sub]
        np.testing.assert_allclose(np.array(rel), (np.array(e) - e[0]) * 23.0605, atol=1e-3)
        assert all(m.GetProp("golf_model") == "GOLF-10k" and m.HasProp("golf_converged") and m.HasProp("golf_steps") for m in sub)
        assert all(m.GetDoubleProp("trust_mmff_drop_kcal_mol") >= 0.0 for m in sub)  # golf.trust per conformer
    from rdkit import Chem

    lactic = [m for m in mols if m.GetProp("golf_molecule") == "lactic"]
    for m in lactic:  # stereo preserved in the written structures
        Chem.AssignStereochemistryFrom3D(m)
        assert Chem.MolToSmiles(Chem.RemoveHs(m)) == "C[C@@H](O)C(=O)O"
    rows = list(csv.DictReader(open(tmp_path / "confs.csv")))
    assert [r["golf_molecule"] for r in rows] == ["propanol", "lactic", "silane"]
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]
    assert int(rows[0]["n_input_conformers"]) == 4 and int(rows[0]["n_kept"]) == sum(
        m.GetProp("golf_molecule") == "propanol" for m in mols)


def test_cli_enumerate_stereo(tmp_path, capsys):
    smi = tmp_path / "in.smi"
    smi.write_text("CC(O)C(=O)O lactic\n")
    out = tmp_path / "o.sdf"
    assert main(["conformers", str(smi), "-o", str(out), "--n-conformers", "3", "--max-steps", "60",
                 "--enumerate-stereo", "--top-k", "1", "--no-progress"]) == 0
    mols = _read_sdf(out)
    assert sorted(m.GetProp("golf_molecule") for m in mols) == ["lactic_s1", "lactic_s2"]
    assert len({m.GetProp("golf_stereo_smiles") for m in mols}) == 2


def test_cli_all_bad_is_one_line_error_and_no_output(tmp_path, capsys):
    smi = tmp_path / "in.smi"
    smi.write_text("C1CC bad\n")
    out = tmp_path / "o.sdf"
    assert main(["conformers", str(smi), "-o", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("golf conformers: error:") and not out.exists()
    assert main(["conformers", str(tmp_path / "missing.smi"), "-o", str(out)]) == 2
    assert main(["conformers", str(smi), "-o", str(tmp_path / "o.xyz")]) == 2
    assert main(["conformers", str(smi), "-o", str(out), "--model", "GOLF-3k"]) == 2
    assert "unknown model" in capsys.readouterr().err


def test_cli_refine_where_every_call_fails(tmp_path, capsys):
    """A refine oracle that always fails: each molecule's failures on one stderr line, every conformer
    marked unrefined and ranked by model energy in the SDF and CSV, one closing reason, exit 3."""
    smi = tmp_path / "in.smi"
    smi.write_text("CCO ethanol\nCCN ethylamine\n")
    out = tmp_path / "o.sdf"
    rc = main(["conformers", str(smi), "-o", str(out), "--n-conformers", "3", "--max-steps", "40", "--top-k", "2",
               "--refine", "flaky_oracle:FailingMMFF", "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 3, err
    per_molecule = [x for x in err if "refinement failed for" in x]
    assert len(per_molecule) == 2 and all("injected failure" in x for x in per_molecule), err
    assert "every flaky_oracle:FailingMMFF refinement failed" in err[-1]
    mols = _read_sdf(out)
    assert mols and all(m.GetProp("golf_refined") in ("False", "0") for m in mols)
    assert all(m.GetProp("golf_ranked_by") == "model_energy" and m.HasProp("golf_refine_error") for m in mols)
    rows = list(csv.DictReader(open(tmp_path / "o.csv")))
    assert [r["ranked_by"] for r in rows] == ["model_energy"] * 2 and all(r["n_refined"] == "0" for r in rows)


def test_cli_refine_unknown_oracle_is_refused_before_work(tmp_path, capsys):
    smi = tmp_path / "in.smi"
    smi.write_text("CCO ethanol\n")
    assert main(["conformers", str(smi), "-o", str(tmp_path / "o.sdf"), "--refine", "nope", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown oracle" in err[0]
    assert not (tmp_path / "o.sdf").exists()


@pytest.mark.slow
def test_cli_refine_xtb(tmp_path):
    smi = tmp_path / "in.smi"
    smi.write_text("CCCO propanol\n")
    out = tmp_path / "o.sdf"
    assert main(["conformers", str(smi), "-o", str(out), "--n-conformers", "4", "--refine", "xtb",
                 "--refine-opt", "--workers", "1", "--no-progress"]) == 0
    mols = _read_sdf(out)
    assert all(m.GetProp("golf_refine_method") == "xtb relaxation" for m in mols)
    ref = [m.GetDoubleProp("golf_refined_energy_eV") for m in mols]
    assert ref == sorted(ref) and mols[0].GetDoubleProp("golf_refined_rel_energy_kcal_mol") == 0.0


# ---------------------------------------------------------------------------------------- the MMFF start


def test_mmff_minimize_lowers_each_conformer_to_a_minimum():
    from golf.oracles.mmff import mmff_energies, mmff_minimize

    confs = _conf("CCCCCCO", n=5, seed=2)
    relaxed, energies = mmff_minimize(confs, 2000)
    assert len(relaxed) == 5 and energies.shape == (5,)
    before = mmff_energies(confs)
    np.testing.assert_allclose(mmff_energies(relaxed), energies, atol=1e-6)  # eV, the oracle's units
    assert np.all(energies < before - 0.01)
    from golf.oracles.mmff import MMFFOracle

    forces = np.stack([MMFFOracle().compute(c).forces for c in relaxed])
    assert np.abs(forces).max() < 0.01  # eV/A: minima, not a few steps downhill
    assert [c.molblock for c in relaxed] == [c.molblock for c in confs]


def test_mmff_minimize_refuses_what_mmff_cannot_type():
    from golf.errors import InputError
    from golf.oracles.mmff import mmff_minimize

    with pytest.raises(InputError, match="MMFF94 cannot assign atom types"):
        mmff_minimize(_conf("FS(F)(F)(F)c1ccccc1", n=1), 100)  # hypervalent S: no MMFF94 type


class _AnyModel:
    """A model that takes every element and charge: the relaxation is ``_record_starts``'s."""

    neutral_only = False

    def check_elements(self, numbers):
        pass

    def check_charge(self, charge, multiplicity):
        pass


def _record_starts(seen):
    """A relax_fn that keeps its starts where they are (as converged relaxations) and records them."""
    from golf.optim.driver import RelaxRecord

    def relax_fn(confs, **how):
        seen.extend(confs)
        return [RelaxRecord(c.positions, -float(i), 0.0, 0, 1, True, "converged") for i, c in enumerate(confs)]

    return relax_fn


def test_mmff_start_relaxes_mmff_minima_and_drops_their_duplicates(tmp_path):
    from golf.oracles.mmff import mmff_energies

    p = tmp_path / "m.smi"
    p.write_text("CCCO propanol\n")
    runs = {}
    for it in (0, 500):
        seen: list = []
        s = gc.ConformerSettings(n_conformers=12, mmff_start=it, top_k=None)
        (res,) = gc.generate_conformer_ensembles(gc.read_molecules(p), _AnyModel(), s, relax_fn=_record_starts(seen))
        runs[it] = (res, seen)
    res0, starts0 = runs[0]
    res, starts = runs[500]
    assert res0.n_mmff_duplicates == 0 and len(starts0) == res0.n_embedded == 12
    # propanol has a handful of MMFF minima: 12 starts collapse onto them, only the distinct ones are relaxed
    assert res.n_embedded == 12 and res.n_mmff_duplicates > 0 and len(starts) == 12 - res.n_mmff_duplicates
    assert np.all(mmff_energies(starts) < mmff_energies(starts0).min() + 0.5)
    kept, dup_of = gc.deduplicate(starts, mmff_energies(starts), 0.3, 1.0)
    assert not dup_of  # no two relaxed starts are the same MMFF minimum
    (row,) = gc.summary_rows([res])
    assert row["n_mmff_duplicates"] == res.n_mmff_duplicates and row["n_input_conformers"] == 12


def test_mmff_start_is_skipped_with_a_note_where_mmff_cannot_type(tmp_path):
    p = tmp_path / "m.smi"
    p.write_text("FS(F)(F)(F)c1ccccc1 tetrafluorosulfanylbenzene\n")
    seen: list = []
    notes: list = []
    (res,) = gc.generate_conformer_ensembles(gc.read_molecules(p), _AnyModel(), gc.ConformerSettings(n_conformers=3),
                                             relax_fn=_record_starts(seen), log=notes.append)
    assert len(seen) == res.n_embedded == 3 and res.n_mmff_duplicates == 0  # (its S-F bonds fail the graph check)
    assert any("MMFF94 cannot assign atom types" in n and "without the MMFF start" in n for n in notes)


def test_mmff_start_leaves_a_3d_ensemble_and_radicals_alone(tmp_path):
    from golf.formats import write_conformations

    confs = _conf("CCCCO", n=3, seed=1)
    sdf = tmp_path / "e.sdf"
    write_conformations(sdf, confs, [{} for _ in confs])
    seen: list = []
    (res,) = gc.generate_conformer_ensembles(gc.read_molecules(sdf), _AnyModel(), gc.ConformerSettings(),
                                             relax_fn=_record_starts(seen))
    assert len(seen) == 3 and res.n_mmff_duplicates == 0
    for a, b in zip(confs, seen):
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-4)  # the SDF's 4 decimals
    p = tmp_path / "r.smi"
    p.write_text("C[CH2] ethyl\n")
    seen = []
    (res,) = gc.generate_conformer_ensembles(gc.read_molecules(p, multiplicity=2), _AnyModel(),
                                             gc.ConformerSettings(n_conformers=4, multiplicity=2),
                                             relax_fn=_record_starts(seen))
    assert len(seen) == 4 and res.n_mmff_duplicates == 0
