"""golf reproduces the official GOLF code (github AIRI-Institute/GOLF, deaaab8) where it implements the
paper: the paper's L-BFGS on the official checkpoints, and the training loss in the official units."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.models import ModelEnergyForces, load_model
from golf.optim import lbfgs_init, lbfgs_step
from golf.units import HARTREE_TO_EV


def _official_lbfgs_positions(model, conf: Conformation, n_steps: int, dtype: torch.dtype) -> list[np.ndarray]:
    """Positions after each ``optimizer.step`` of ``torch.optim.LBFGS(lr=1, max_iter=5)`` driven, as in
    the official ``GOLF/GOLF_actor.py`` (``AsyncLBFGS``), by the model's energy in Hartree and its
    anti-gradient in Hartree/A."""
    x = torch.tensor(conf.positions, dtype=dtype, requires_grad=True)
    opt = torch.optim.LBFGS([x], lr=1, max_iter=5, history_size=100)  # official make_policies.py
    numbers = torch.as_tensor(conf.numbers)
    mol_idx = torch.zeros(conf.n_atoms, dtype=torch.long)
    provider = ModelEnergyForces(model)

    def closure():
        opt.zero_grad()
        e, f = provider(Batch(numbers, x.detach(), mol_idx, 1))
        x.grad = -f / HARTREE_TO_EV
        return e.sum() / HARTREE_TO_EV

    out = []
    for _ in range(n_steps):
        opt.step(closure)
        out.append(x.detach().numpy().copy())
    return out


@pytest.mark.parametrize("name", ["baseline-NNP", "GOLF-10k"])
def test_lbfgs_golf_reproduces_official_trajectory(checkpoints_dir, name, one_torch_thread):
    """Same positions, step for step, as the official optimizer on the official checkpoints (float64
    weights so that the comparison tests the algorithm, not float32 summation order)."""
    ref = json.loads((checkpoints_dir / "reference.json").read_text())
    mols = ref["molecules"][:3]
    confs = [Conformation(np.asarray(m["numbers"]), np.asarray(m["positions"], dtype=np.float64)) for m in mols]
    model = load_model(checkpoints_dir / f"{name}.pt", dtype="float64")
    n_steps = 8
    batch = Batch.from_conformations(confs, dtype=torch.float64)
    state = lbfgs_init(batch, ModelEnergyForces(model), preset="lbfgs-golf", fmax=0.0, max_steps=n_steps)
    ours = []
    for _ in range(n_steps):
        state = lbfgs_step(state, ModelEnergyForces(model))
        ours.append([x.numpy() for x in batch.split(state.positions)])
    for b, conf in enumerate(confs):
        theirs = _official_lbfgs_positions(model, conf, n_steps, torch.float64)
        for t in range(n_steps):
            np.testing.assert_allclose(ours[t][b], theirs[t], atol=1e-7, err_msg=f"molecule {b}, step {t + 1}")
        assert np.abs(theirs[-1] - conf.positions).max() > 1e-2  # the test really moved the molecule


def test_loss_equals_official_formula():
    """``golf.trainer.loss`` = the official ``GOLF.update`` loss: 0.99 * mean over molecules of the per-atom
    force MSE in (Hartree/A)^2 + 0.01 * energy MSE in Hartree^2 (``GOLF/GOLF_trainer.py``)."""
    from golf.trainer import loss

    e_pred = np.array([-1.0, 2.0])  # eV
    f_pred = np.array([[0.1, 0.2, 0.3], [0.0, 0.0, 0.0], [1.0, -1.0, 0.5]])  # eV/A
    e_ref = np.array([-1.5, 2.25])
    f_ref = np.array([[0.0, 0.2, 0.1], [0.3, 0.0, 0.0], [0.0, -1.0, 0.0]])
    mol_idx = np.array([0, 0, 1])

    class Fixed(torch.nn.Module):
        def energy_and_forces(self, batch, create_graph=False):
            return torch.tensor(e_pred, dtype=torch.float64), torch.tensor(f_pred, dtype=torch.float64)

    batch = Batch(torch.tensor([1, 1, 6]), torch.zeros(3, 3, dtype=torch.float64), torch.tensor(mol_idx), 2)
    total, _ = loss(Fixed(), batch, torch.tensor(e_ref), torch.tensor(f_ref))

    # by hand, in the official units
    de = (e_pred - e_ref) / HARTREE_TO_EV  # Hartree
    df = (f_pred - f_ref) / HARTREE_TO_EV  # Hartree/A
    per_atom = (df**2).mean(axis=1)
    force_loss = np.mean([per_atom[mol_idx == m].mean() for m in (0, 1)])
    energy_loss = np.mean(de**2)
    assert float(total) == pytest.approx(0.99 * force_loss + 0.01 * energy_loss, rel=1e-12)
