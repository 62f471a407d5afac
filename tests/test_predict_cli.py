"""`golf predict` end to end on tiny inputs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from ase import Atoms
from ase.io import read, write

from golf.cli import main
from golf.models import build_model, load_model, save_model

WATER = Atoms("OH2", positions=[[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
METHANOL = Atoms("COH4", positions=[[-0.05, 0.66, 0.0], [-0.05, -0.75, 0.0], [-1.08, 0.97, 0.0],
                                    [0.44, 1.06, 0.89], [0.44, 1.06, -0.89], [0.87, -1.04, 0.0]])


@pytest.fixture()
def model_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    save_model(build_model("painn", n_atom_basis=16, n_interactions=2, n_rbf=8, elements=[1, 6, 8]), path)
    return path


def test_predict_xyz_to_extxyz(tmp_path, model_path):
    inp = tmp_path / "in.xyz"
    write(inp, [WATER, METHANOL], format="xyz")
    out = tmp_path / "out.extxyz"
    assert main(["predict", "--model", str(model_path), str(inp), "-o", str(out), "--batch-size", "1",
                 "--dtype", "float64", "--device", "cpu"]) == 0
    frames = read(out, index=":")
    assert len(frames) == 2
    model = load_model(model_path, dtype=torch.float64)
    from golf.models.calculator import GolfCalculator

    for frame, atoms in zip(frames, [WATER, METHANOL]):
        atoms = atoms.copy()
        atoms.calc = GolfCalculator(model)
        np.testing.assert_allclose(frame.positions, atoms.positions, atol=1e-6)
        energy = frame.info.get("energy", None)
        if energy is None:
            energy = frame.get_potential_energy()
        forces = frame.arrays["forces"] if "forces" in frame.arrays else frame.get_forces()
        assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-6, abs=1e-6)
        np.testing.assert_allclose(forces, atoms.get_forces(), rtol=1e-5, atol=1e-6)


def test_predict_sdf(tmp_path, model_path):
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    params = AllChem.ETKDGv3()
    params.randomSeed = 1
    AllChem.EmbedMolecule(mol, params)
    inp = tmp_path / "in.sdf"
    with Chem.SDWriter(str(inp)) as writer:
        writer.write(mol)
    out = tmp_path / "out.extxyz"
    assert main(["predict", "--model", str(model_path), str(inp), "-o", str(out)]) == 0
    assert len(read(out, index=":")) == 1


def test_predict_unseen_element_exit_2(tmp_path, model_path, capsys):
    inp = tmp_path / "in.xyz"
    write(inp, [Atoms("CHCl3", positions=[[0, 0, 0], [0, 0, 1.09], [1.7, 0, -0.5], [-0.85, 1.5, -0.5],
                                          [-0.85, -1.5, -0.5]])], format="xyz")
    out = tmp_path / "out.extxyz"
    assert main(["predict", "--model", str(model_path), str(inp), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "Cl" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_predict_bad_model_exit_2(tmp_path, capsys):
    inp = tmp_path / "in.xyz"
    write(inp, [WATER], format="xyz")
    bad = tmp_path / "bad.pt"
    bad.write_text("nope")
    assert main(["predict", "--model", str(bad), str(inp), "-o", str(tmp_path / "o.extxyz")]) == 2
    assert "bad.pt" in capsys.readouterr().err
