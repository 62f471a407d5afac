"""Model files: official GOLF checkpoints reproduce schnetpack 2.2.0, golf checkpoints round-trip exactly,
bad files are one clear CheckpointError."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from golf.batch import Batch
from golf.errors import CheckpointError
from golf.models import build_model, load_model, save_model
from golf.units import HARTREE_TO_EV


def reference_batch(ref, dtype):
    mols = ref["molecules"]
    numbers = torch.as_tensor(np.concatenate([m["numbers"] for m in mols]))
    positions = torch.as_tensor(np.concatenate([m["positions"] for m in mols]), dtype=dtype)
    mol_idx = torch.repeat_interleave(torch.arange(len(mols)), torch.as_tensor([len(m["numbers"]) for m in mols]))
    return Batch(numbers, positions, mol_idx, len(mols))


@pytest.mark.parametrize("name", ["baseline-NNP", "GOLF-10k", "traj-500k"])
def test_official_checkpoint_reproduces_reference(checkpoints_dir, name):
    ref = json.loads((checkpoints_dir / "reference.json").read_text())
    model = load_model(checkpoints_dir / f"{name}.pt")
    assert model.source_format == "schnetpack" and model.elements == [1, 6, 7, 8, 9, 16, 17, 35]
    energy, forces = model.energy_and_forces(reference_batch(ref, torch.float32))
    e_ref = np.array([r["energy"] for r in ref["models"][name]]) * HARTREE_TO_EV
    f_ref = np.concatenate([r["anti_gradient"] for r in ref["models"][name]]) * HARTREE_TO_EV
    np.testing.assert_allclose(energy.detach().double().numpy(), e_ref, rtol=1e-5)
    f = forces.double().numpy()
    assert np.abs(f - f_ref).max() <= 1e-4 * np.abs(f_ref).max()
    assert np.linalg.norm(f - f_ref) <= 1e-4 * np.linalg.norm(f_ref)


def test_official_checkpoint_float64(checkpoints_dir):
    ref = json.loads((checkpoints_dir / "reference.json").read_text())
    model = load_model(checkpoints_dir / "baseline-NNP.pt", dtype="float64")
    energy, _ = model.energy_and_forces(reference_batch(ref, torch.float64))
    assert energy.dtype == torch.float64
    e_ref = np.array([r["energy"] for r in ref["models"]["baseline-NNP"]]) * HARTREE_TO_EV
    np.testing.assert_allclose(energy.detach().numpy(), e_ref, rtol=1e-5)


@pytest.mark.parametrize("arch", ["painn", "schnet"])
def test_golf_round_trip_exact(tmp_path, arch):
    torch.manual_seed(0)
    model = build_model(arch, n_atom_basis=16, n_interactions=2, n_rbf=8, elements=[1, 6, 8])
    refs = np.zeros(119)
    refs[[1, 6, 8]] = [-13.5, -1029.9, -2041.3]
    model.set_atomrefs(refs)
    path = tmp_path / "m.pt"
    save_model(model, path, provenance={"dataset": "x.db", "seed": np.int64(3)}, extra={"step": 7})
    loaded = load_model(path)
    assert loaded.config == model.config and loaded.elements == [1, 6, 8]
    assert loaded.provenance == {"dataset": "x.db", "seed": 3} and loaded.extra == {"step": 7}
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    z = torch.tensor([6, 8, 1, 1])
    batch = Batch(z, torch.tensor([[0.0, 0, 0], [0, 0, 1.2], [0, 0.9, -0.6], [0, -0.9, -0.6]]),
                  torch.zeros(4, dtype=torch.long), 1)
    e1, f1 = model.energy_and_forces(batch)
    e2, f2 = loaded.energy_and_forces(batch)
    assert torch.equal(e1, e2) and torch.equal(f1, f2)
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_bad_files_raise_checkpoint_error(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "missing.pt")
    (tmp_path / "text.pt").write_text("hello, I am not a model\n")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_model(tmp_path / "text.pt")
    torch.manual_seed(0)
    good = tmp_path / "good.pt"
    save_model(build_model("painn", n_atom_basis=8, n_interactions=1, n_rbf=4), good)
    data = good.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "truncated.pt")
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="unrecognised"):
        load_model(tmp_path / "other.pt")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="unrecognised"):
        load_model(tmp_path / "list.pt")
    sd = build_model("painn", n_atom_basis=8, n_interactions=1, n_rbf=4).state_dict()
    bad = {"model." + k: v for k, v in sd.items() if k.startswith("representation.")}
    torch.save(bad, tmp_path / "headless.pt")  # schnetpack-like but without the output MLP
    with pytest.raises(CheckpointError):
        load_model(tmp_path / "headless.pt")
