"""Physics of golf's NNPs: invariances, equivariance of forces, forces = -grad E, batching, atomrefs."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from golf.batch import Batch
from golf.errors import InputError
from golf.models import ModelEnergyForces, build_model, fit_atomrefs
from golf.models.ops import all_pairs, neighbor_pairs

# ethanol and formaldehyde-like small molecules, Angstrom
ETHANOL_Z = np.array([6, 6, 8, 1, 1, 1, 1, 1, 1])
ETHANOL_R = np.array([
    [-0.0480, 0.5550, 0.0000], [-1.2240, -0.4090, 0.0000], [1.1530, -0.2100, 0.0000],
    [-0.0860, 1.1930, 0.8870], [-0.0860, 1.1930, -0.8870], [-2.1650, 0.1440, 0.0000],
    [-1.1900, -1.0490, 0.8830], [-1.1900, -1.0490, -0.8830], [1.9100, 0.3820, 0.0000],
])
CH2O_Z = np.array([6, 8, 1, 1])
CH2O_R = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.21], [0.0, 0.94, -0.59], [0.0, -0.94, -0.59]])
CLF_Z = np.array([17, 6, 9, 1, 1])
CLF_R = np.array([[1.77, 0.0, 0.0], [0.0, 0.0, 0.0], [-0.5, 1.3, 0.0], [-0.36, -0.5, 0.9], [-0.36, -0.5, -0.9]])


def make_batch(mols, dtype=torch.float64) -> Batch:
    numbers = torch.as_tensor(np.concatenate([z for z, _ in mols]))
    positions = torch.as_tensor(np.concatenate([r for _, r in mols]), dtype=dtype)
    mol_idx = torch.repeat_interleave(torch.arange(len(mols)), torch.as_tensor([len(z) for z, _ in mols]))
    return Batch(numbers, positions, mol_idx, len(mols))


def rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


@pytest.fixture(scope="module", params=["painn", "schnet"])
def model(request):
    torch.manual_seed(0)
    m = build_model(request.param, n_atom_basis=32, n_interactions=2, n_rbf=16).double()
    # non-trivial output scale so that tests are sensitive
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return m


def test_all_pairs_match_brute_force():
    mol_idx = torch.tensor([0, 0, 0, 1, 2, 2, 2, 2])
    i, j = all_pairs(mol_idx, 3)
    expected = {(a, b) for a in range(8) for b in range(8) if a != b and mol_idx[a] == mol_idx[b]}
    assert set(zip(i.tolist(), j.tolist())) == expected and len(i) == len(expected)


def test_neighbor_pairs_cutoff():
    pos = torch.tensor([[0.0, 0, 0], [1.0, 0, 0], [7.0, 0, 0], [0.0, 0, 0], [0.0, 4.9, 0]])
    i, j, vec = neighbor_pairs(pos, torch.tensor([0, 0, 0, 1, 1]), 5.0)
    assert set(zip(i.tolist(), j.tolist())) == {(0, 1), (1, 0), (3, 4), (4, 3)}
    assert torch.allclose(vec, pos[j] - pos[i])


def test_energy_invariant_rotation_translation_permutation(model):
    e0 = model(make_batch([(ETHANOL_Z, ETHANOL_R)]))
    rot = rotation(1)
    e_rot = model(make_batch([(ETHANOL_Z, ETHANOL_R @ rot.T + np.array([3.0, -2.0, 10.0]))]))
    perm = np.random.default_rng(2).permutation(len(ETHANOL_Z))
    e_perm = model(make_batch([(ETHANOL_Z[perm], ETHANOL_R[perm])]))
    assert abs(float(e0.detach())) > 1e-3
    torch.testing.assert_close(e_rot, e0, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(e_perm, e0, rtol=1e-10, atol=1e-10)


def test_forces_rotate_with_molecule(model):
    _, f0 = model.energy_and_forces(make_batch([(ETHANOL_Z, ETHANOL_R)]))
    rot = torch.as_tensor(rotation(3))
    _, f_rot = model.energy_and_forces(make_batch([(ETHANOL_Z, ETHANOL_R @ rot.numpy().T)]))
    torch.testing.assert_close(f_rot, f0 @ rot.T, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(f0.sum(0), torch.zeros(3, dtype=f0.dtype), atol=1e-10, rtol=0)


def test_forces_are_minus_finite_difference_gradient(model):
    batch = make_batch([(ETHANOL_Z, ETHANOL_R)])
    _, forces = model.energy_and_forces(batch)
    h = 1e-5
    fd = torch.zeros_like(forces)
    for a in range(len(ETHANOL_Z)):
        for k in range(3):
            plus, minus = batch.positions.clone(), batch.positions.clone()
            plus[a, k] += h
            minus[a, k] -= h
            fd[a, k] = -(model(batch.with_positions(plus)) - model(batch.with_positions(minus)))[0] / (2 * h)
    torch.testing.assert_close(forces, fd, rtol=1e-6, atol=1e-8)


def test_batch_equals_one_at_a_time(model):
    mols = [(ETHANOL_Z, ETHANOL_R), (CH2O_Z, CH2O_R), (CLF_Z, CLF_R)]
    e, f = model.energy_and_forces(make_batch(mols))
    singles = [model.energy_and_forces(make_batch([m])) for m in mols]
    torch.testing.assert_close(e, torch.cat([s[0] for s in singles]), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(f, torch.cat([s[1] for s in singles]), rtol=1e-10, atol=1e-12)


def test_far_apart_atoms_and_training_graph():
    torch.manual_seed(0)
    m = build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8)
    z = np.array([1, 1])
    batch = make_batch([(z, np.array([[0.0, 0, 0], [6.0, 0, 0]]))], dtype=torch.float32)  # beyond cutoff
    e, f = m.energy_and_forces(batch, create_graph=True)
    assert torch.all(f == 0)
    e2, f2 = m.energy_and_forces(make_batch([(z, np.array([[0.0, 0, 0], [0.9, 0, 0]]))], torch.float32),
                                 create_graph=True)
    (f2.square().sum() + e2.sum()).backward()
    assert all(p.grad is not None for p in m.output.parameters())


def test_atomrefs_fit_and_energy():
    refs = np.zeros(119)
    refs[[1, 6, 8]] = [-13.6, -1030.0, -2040.0]
    numbers = [ETHANOL_Z, CH2O_Z, np.array([1, 1, 8]), np.array([6, 1, 1, 1, 1])]
    energies = np.array([refs[z].sum() for z in numbers])
    fitted = fit_atomrefs(numbers, energies)
    np.testing.assert_allclose(fitted, refs, atol=1e-8)
    torch.manual_seed(0)
    m = build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8, atomrefs=fitted)
    m2 = build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8)
    m2.load_state_dict({k: v for k, v in m.state_dict().items() if k != "atomrefs"}, strict=False)
    m = m.float()
    assert m.atomrefs.dtype == torch.float64
    batch = make_batch([(ETHANOL_Z, ETHANOL_R)], dtype=torch.float32)
    e, f = m.energy_and_forces(batch)
    e2, f2 = m2.energy_and_forces(batch)
    assert float((e - e2).detach()) == pytest.approx(refs[ETHANOL_Z].sum(), abs=2e-3)
    torch.testing.assert_close(f, f2)


def test_check_elements_names_unseen():
    m = build_model("painn", n_atom_basis=8, n_interactions=1, n_rbf=4, elements=[1, 6, 8])
    m.check_elements(ETHANOL_Z)
    with pytest.raises(InputError, match=r"element\(s\) F, Cl;"):
        m.check_elements([ETHANOL_Z, CLF_Z])


def test_provider_detached_in_batch_dtype():
    torch.manual_seed(0)
    m = build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8)
    provider = ModelEnergyForces(m)
    batch = make_batch([(ETHANOL_Z, ETHANOL_R), (CH2O_Z, CH2O_R)], dtype=torch.float64)
    with torch.no_grad():
        e, f = provider(batch)
    assert e.shape == (2,) and f.shape == (13, 3)
    assert e.dtype == torch.float64 and not e.requires_grad and not f.requires_grad
    assert all(p.grad is None for p in m.parameters())


def test_ase_calculator_matches_model():
    from ase import Atoms
    from ase.optimize import BFGS

    from golf.models.calculator import GolfCalculator

    torch.manual_seed(0)
    m = build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8).double()
    atoms = Atoms(numbers=ETHANOL_Z, positions=ETHANOL_R)
    atoms.calc = GolfCalculator(m)
    e, f = m.energy_and_forces(make_batch([(ETHANOL_Z, ETHANOL_R)]))
    assert atoms.get_potential_energy() == pytest.approx(float(e.detach()[0]), rel=1e-12)
    np.testing.assert_allclose(atoms.get_forces(), f.numpy(), rtol=1e-10, atol=1e-12)
    BFGS(atoms, logfile=None).run(fmax=0.5, steps=3)
    assert math.isfinite(atoms.get_potential_energy())


@pytest.mark.parametrize("case", ["nan", "inf"])
def test_ase_calculator_refuses_non_finite_coordinates(case):
    from ase import Atoms
    from ase.calculators.calculator import CalculationFailed

    from golf.errors import GolfError
    from golf.models.calculator import GolfCalculationFailed, GolfCalculator

    torch.manual_seed(0)
    atoms = Atoms(numbers=ETHANOL_Z, positions=ETHANOL_R)
    atoms.positions[2, 1] = float(case)
    atoms.calc = GolfCalculator(build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8))
    with pytest.raises(GolfCalculationFailed, match="non-finite coordinates on 1 atom.*atom 2") as exc:
        atoms.get_potential_energy()
    assert isinstance(exc.value, CalculationFailed) and isinstance(exc.value, GolfError)
    assert "\n" not in str(exc.value)


def test_ase_calculator_refuses_non_finite_model_output():
    """Two atoms on top of each other make PaiNN's unit vectors 0/0: a NaN energy, refused with a hint."""
    from ase import Atoms

    from golf.models.calculator import GolfCalculationFailed, GolfCalculator

    torch.manual_seed(0)
    pos = ETHANOL_R.copy()
    pos[3] = pos[0]
    atoms = Atoms(numbers=ETHANOL_Z, positions=pos)
    atoms.calc = GolfCalculator(build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8))
    with pytest.raises(GolfCalculationFailed, match=r"non-finite (energy|forces).*atoms 0 and 3 are 0.000 A apart"):
        atoms.get_forces()
    assert "energy" not in atoms.calc.results
