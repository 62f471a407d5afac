"""golf.chem, golf.pool, golf.formats and golf.db: pool, split, conformers, readers/writers, dataset records."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from golf import chem
from golf import db as D
from golf import formats
from golf import pool as P
from golf.conformation import SUPPORTED_ELEMENTS
from golf.errors import InputError
from golf.oracles.base import OracleResult, OracleSpec

DATA = Path(__file__).parent / "data"


def _fake_result(conf, scale=1.0):
    rng = np.random.default_rng(conf.conf_id + 10 * conf.mol_id)
    return OracleResult(ok=True, energy=-100.0 * scale - conf.conf_id, forces=rng.normal(size=conf.positions.shape))


# ---------------------------------------------------------------------------- pool and split


def test_nci_pool_filters():
    from rdkit import Chem

    pool = P.nci_pool(3, 12)
    assert len(pool) > 500
    ids = [m for m, _ in pool]
    assert len(set(ids)) == len(ids)
    has_nitro = False
    for _, smi in pool:
        mol = Chem.MolFromSmiles(smi)
        assert 3 <= mol.GetNumHeavyAtoms() <= 12
        assert all(a.GetAtomicNum() in SUPPORTED_ELEMENTS for a in mol.GetAtoms())
        assert len(Chem.GetMolFrags(mol)) == 1
        assert sum(a.GetFormalCharge() for a in mol.GetAtoms()) == 0
        assert sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()) == 0
        for a in mol.GetAtoms():  # charges only as bonded +/- pairs (nitro etc.)
            if a.GetFormalCharge():
                assert any(n.GetFormalCharge() == -a.GetFormalCharge() for n in a.GetNeighbors())
        has_nitro |= mol.HasSubstructMatch(Chem.MolFromSmarts("[N+](=O)[O-]"))
    assert has_nitro
    # the heavy-atom range is respected and nested
    assert set(P.nci_pool(3, 8)) <= set(pool)
    with pytest.raises(InputError):
        P.nci_pool(10, 5)


def test_nci_pool_has_each_molecule_once_so_train_and_test_share_none():
    """RDKit's NCI file lists some molecules under two ids (13 with 4-9 heavy atoms); the split is by id,
    so twins could straddle it (a test molecule also in D0). The pool keeps one id per canonical SMILES."""
    pool = P.nci_pool(4, 30)
    smiles = [s for _, s in pool]
    assert len(set(smiles)) == len(smiles)
    train = P.select_pool_molecules(None, min_heavy=4, max_heavy=30, split="train", test_fraction=0.2, seed=0)
    test = P.select_pool_molecules(None, min_heavy=4, max_heavy=30, split="test", test_fraction=0.2, seed=0)
    assert train and test and not {s for _, s in train} & {s for _, s in test}


def test_split_by_molecule_deterministic_disjoint():
    ids = [m for m, _ in P.nci_pool(3, 20)]
    tr, te = P.hash_split(ids, 0.2, seed=0)
    tr2, te2 = P.hash_split(ids, 0.2, seed=0)
    assert (tr, te) == (tr2, te2)
    assert not set(tr) & set(te)
    assert set(tr) | set(te) == set(ids)
    assert 0.15 < len(te) / len(ids) < 0.25
    # a molecule's side does not depend on which other molecules are in the list
    sub_tr, sub_te = P.hash_split(ids[::3], 0.2, seed=0)
    assert set(sub_te) <= set(te) and set(sub_tr) <= set(tr)
    assert P.hash_split(ids, 0.2, seed=1)[1] != te


def test_select_pool_prefix():
    a = P.select_pool_molecules(3, split="train", min_heavy=3, max_heavy=8)
    b = P.select_pool_molecules(6, split="train", min_heavy=3, max_heavy=8)
    assert b[:3] == a
    test_ids = {m for m, _ in P.select_pool_molecules(None, split="test", min_heavy=3, max_heavy=8)}
    assert not test_ids & {m for m, _ in b}


# ---------------------------------------------------------------------------- conformers


def test_generate_conformers_seeded_and_consistent():
    from rdkit import Chem

    a = chem.generate_conformers("CC(=O)NC", 3, seed=5, mol_id=42)
    b = chem.generate_conformers("CC(=O)NC", 3, seed=5, mol_id=42)
    assert len(a) == 3
    assert [c.conf_id for c in a] == [0, 1, 2]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x.positions, y.positions)
        assert D.record_key(x) == D.record_key(y)
    assert not np.allclose(a[0].positions, a[1].positions)
    c0 = a[0]
    assert c0.mol_id == 42 and c0.smiles == "CNC(C)=O" and c0.charge == 0 and c0.multiplicity == 1
    mol = Chem.MolFromMolBlock(c0.molblock, removeHs=False)
    assert [at.GetAtomicNum() for at in mol.GetAtoms()] == list(c0.numbers)
    np.testing.assert_allclose(mol.GetConformer().GetPositions(), c0.positions, atol=1e-4)
    assert c0.geometry_problem() is None
    # displacement: seeded Gaussian noise of the given size
    d = chem.generate_conformers("CC(=O)NC", 3, seed=5, mol_id=42, displacement=0.1)
    d2 = chem.generate_conformers("CC(=O)NC", 3, seed=5, mol_id=42, displacement=0.1)
    delta = d[0].positions - a[0].positions
    assert 0.05 < delta.std() < 0.15
    np.testing.assert_array_equal(d[0].positions, d2[0].positions)
    assert D.record_key(d[0]) != D.record_key(a[0])


def test_generate_conformers_bad():
    with pytest.raises(InputError, match="invalid SMILES"):
        chem.generate_conformers("C1CC", 1, 0)
    with pytest.raises(InputError, match="unsupported element"):
        chem.generate_conformers("C[Si](C)(C)C", 1, 0)
    with pytest.raises(InputError, match="charged"):
        chem.generate_conformers("C[NH3+]", 1, 0)
    c = chem.generate_conformers("C[NH3+]", 1, 0, charge=1)[0]
    assert c.charge == 1
    with pytest.raises(InputError, match="radical"):
        chem.generate_conformers("[CH3]", 1, 0)
    assert chem.generate_conformers("[CH3]", 1, 0, multiplicity=2)[0].multiplicity == 2
    with pytest.raises(InputError, match="multiplicity"):
        chem.generate_conformers("[CH3]", 1, 0, multiplicity=1)


# ---------------------------------------------------------------------------- readers / writers


def test_read_smiles_and_csv(tmp_path):
    confs = formats.read_conformations(DATA / "tiny.smi", conformers=2, seed=0)
    assert len(confs) == 8
    assert sorted({c.mol_id for c in confs}) == [0, 1, 2, 3]
    assert confs[0].info["name"] == "ethanol"
    csv = tmp_path / "m.csv"
    csv.write_text("name,SMILES,mol_id\nwater,O,17\nmethanol,CO,18\n")
    confs = formats.read_conformations(csv, conformers=1)
    assert [(c.mol_id, c.smiles) for c in confs] == [(17, "O"), (18, "CO")]


def test_roundtrip_sdf_xyz_db(tmp_path):
    confs = formats.read_conformations(DATA / "tiny.smi", conformers=2, seed=1)
    props = [{"energy": -10.0 - i, "forces": np.full(c.positions.shape, 0.1 * i), "tag": i}
             for i, c in enumerate(confs)]
    for ext in ("sdf", "extxyz", "db"):
        path = tmp_path / f"out.{ext}"
        formats.write_conformations(path, confs, props)
        back = formats.read_conformations(path)
        assert len(back) == len(confs)
        for a, b in zip(confs, back):
            assert (a.mol_id, a.conf_id) == (b.mol_id, b.conf_id), ext
            assert a.smiles == b.smiles, ext
            np.testing.assert_array_equal(a.numbers, b.numbers)
            np.testing.assert_allclose(a.positions, b.positions, atol=1e-4)
            assert b.molblock
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.db", "out.extxyz", "out.sdf"]  # no temp files
    import ase.io

    frames = ase.io.read(tmp_path / "out.extxyz", index=":")
    assert frames[3].get_potential_energy() == pytest.approx(-13.0)
    np.testing.assert_allclose(frames[3].get_forces(), 0.3)
    from rdkit import Chem

    sup = Chem.SDMolSupplier(str(tmp_path / "out.sdf"), removeHs=False)
    m = sup[2]
    assert m.GetNumBonds() > 0 and m.GetDoubleProp("energy") == pytest.approx(-12.0)


def test_read_given_fixtures():
    sdf = formats.read_conformations(DATA / "tiny.sdf")
    xyz = formats.read_conformations(DATA / "tiny.xyz")
    assert [(c.mol_id, c.conf_id) for c in sdf] == [(7, 0), (7, 1), (8, 0)]
    assert [c.smiles for c in xyz] == [c.smiles for c in sdf] == ["CCO", "CCO", "NC=O"]


def test_xyz_bond_perception_without_metadata(tmp_path):
    """Plain XYZ (no golf metadata): bonds perceived, molecules grouped by SMILES."""
    confs = chem.generate_conformers("OC(=O)c1ccccc1", 2, 0, mol_id=3) + chem.generate_conformers("CCO", 1, 0)
    lines = []
    for c in confs:
        lines.append(str(c.n_atoms))
        lines.append("plain")
        sym = {1: "H", 6: "C", 8: "O"}
        lines += [f"{sym[z]} {x:.6f} {y:.6f} {w:.6f}" for z, (x, y, w) in zip(c.numbers, c.positions)]
    p = tmp_path / "plain.xyz"
    p.write_text("\n".join(lines) + "\n")
    back = formats.read_conformations(p)
    assert [(c.mol_id, c.conf_id) for c in back] == [(0, 0), (0, 1), (1, 0)]
    assert back[0].smiles == "O=C(O)c1ccccc1"
    from rdkit.Chem import rdForceFieldHelpers

    mol = chem.conformation_to_mol(back[0])
    assert rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol)


def test_write_unsupported_extension_leaves_nothing(tmp_path):
    confs = chem.generate_conformers("CCO", 1, 0)
    with pytest.raises(InputError):
        formats.write_conformations(tmp_path / "x.pdb", confs)
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------- golf.db


def test_db_records(tmp_path):
    path = tmp_path / "d.db"
    assert D.existing_keys(path) == set()
    confs = chem.generate_conformers("CC=O", 3, 0, mol_id=5)
    spec = OracleSpec("mmff", {"variant": "MMFF94"})
    for c in confs:
        D.append_labelled(path, c, _fake_result(c), spec, D.record_key(c))
    with pytest.raises(ValueError):
        D.append_labelled(path, confs[0], OracleResult.failure("scf"), spec, "x:y")
    assert D.existing_keys(path) == {D.record_key(c) for c in confs}
    assert D.db_oracle(path) == ("mmff", {"variant": "MMFF94"})
    rows = D.read_labelled(path)
    assert len(rows) == 3
    for (c, e, f), orig in zip(rows, confs):
        r = _fake_result(orig)
        assert e == pytest.approx(r.energy)
        np.testing.assert_allclose(f, r.forces)
        np.testing.assert_allclose(c.positions, orig.positions)
        assert (c.mol_id, c.conf_id, c.smiles, c.molblock) == (5, orig.conf_id, "CC=O", orig.molblock)
    with pytest.raises(InputError, match="reference"):
        D.read_reference(path)
    # reference rows
    ref = tmp_path / "r.db"
    c = confs[0]
    D.append_labelled(ref, c, _fake_result(c), spec, "k:0:0",
                      extra_kvp=dict(opt_energy=-200.0, opt_converged=True, opt_steps=12),
                      extra_data={"opt_positions": c.positions + 0.01})
    (start, e_opt, x_opt), = D.read_reference(ref)
    assert e_opt == -200.0 and start.info["opt_steps"] == 12 and start.info["start_energy"] == pytest.approx(-100.0)
    np.testing.assert_allclose(x_opt, c.positions + 0.01)
