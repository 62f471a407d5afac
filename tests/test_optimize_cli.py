"""``golf optimize`` end to end: a tiny model, SMILES in, SDF/extxyz out, summary and errors."""
from __future__ import annotations

import pytest
import torch

from golf.cli import main


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from golf.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("painn", elements=[1, 6, 7, 8], n_atom_basis=16, n_interactions=1)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    with pytest.MonkeyPatch.context() as mp:
        # save_model stores torch.__version__ (a TorchVersion, which weights_only loading rejects) as is
        mp.setattr(torch, "__version__", str(torch.__version__))
        save_model(model, path)
    return path


@pytest.fixture()
def smiles_file(tmp_path):
    p = tmp_path / "in.smi"
    p.write_text("CCO ethanol\nCC(=O)N acetamide\n")
    return p


@pytest.mark.parametrize("ext", ["sdf", "extxyz"])
def test_optimize_model_writes_relaxed_structures(tiny_model, smiles_file, tmp_path, capsys, ext):
    from golf.formats import read_conformations

    out = tmp_path / f"out.{ext}"
    rc = main(["optimize", "--model", str(tiny_model), str(smiles_file), "-o", str(out), "--conformers", "2",
               "--max-steps", "30", "--fmax", "0.05", "--no-progress"])
    assert rc == 0
    err = capsys.readouterr().err
    assert "2 molecules, 4 conformations" in err and "conformations/s" in err
    confs = read_conformations(out)
    assert len(confs) == 4
    if ext == "sdf":
        from rdkit import Chem

        mols = [m for m in Chem.SDMolSupplier(str(out), removeHs=False)]
        assert all(m.GetNumBonds() > 0 for m in mols)
        assert {"golf_energy_eV", "golf_steps", "golf_converged", "golf_stop_reason", "golf_model",
                    "golf_energy_reference"} <= set(mols[0].GetPropNames())


@pytest.mark.parametrize("optimizer", ["lbfgs", "lbfgs-golf", "fire"])
def test_optimize_other_optimizers(tiny_model, smiles_file, tmp_path, optimizer):
    out = tmp_path / "out.sdf"
    assert main(["optimize", "--model", str(tiny_model), str(smiles_file), "-o", str(out),
                 "--optimizer", optimizer, "--max-steps", "5", "--batch-size", "1", "--no-progress"]) == 0
    assert out.exists()


def test_optimize_bad_input_is_one_line_error(tiny_model, tmp_path, capsys):
    rc = main(["optimize", "--model", str(tiny_model), str(tmp_path / "missing.smi"), "-o", str(tmp_path / "o.sdf")])
    assert rc == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("golf optimize: error:")
    assert not (tmp_path / "o.sdf").exists()


def test_optimize_unseen_element(tiny_model, tmp_path, capsys):
    smi = tmp_path / "s.smi"
    smi.write_text("CCCl\n")
    assert main(["optimize", "--model", str(tiny_model), str(smi), "-o", str(tmp_path / "o.sdf")]) == 2
    assert "Cl" in capsys.readouterr().err


def test_optimize_with_mmff_oracle_in_workers(smiles_file, tmp_path, capsys):
    out = tmp_path / "o.sdf"
    assert main(["optimize", "--oracle", "mmff", str(smiles_file), "-o", str(out), "--workers", "1",
                 "--no-progress"]) == 0
    assert "2 converged" in capsys.readouterr().err
