"""PaiNN's vector messages as matrix products over rows of neighbours (golf.models.painn.neighbour_rows)
equal the straightforward outer-product formulation: values, forces and the parameter gradients of a force
loss (the double backward of training)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf.batch import Batch
from golf.models import build_model
from golf.models.ops import neighbor_pairs
from golf.models.painn import PaiNNInteraction, neighbour_rows
from golf.trainer import loss


def random_pairs(n_atoms: int, n_pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Unsorted pairs; atom 0 gets many, the last atom none."""
    g = torch.Generator().manual_seed(seed)
    idx_i = torch.cat([torch.zeros(11, dtype=torch.long), torch.randint(0, n_atoms - 1, (n_pairs - 11,), generator=g)])
    idx_j = torch.randint(0, n_atoms, (n_pairs,), generator=g)
    perm = torch.randperm(n_pairs, generator=g)
    return idx_i[perm], idx_j[perm]


@pytest.mark.parametrize("max_width", [1, 3, 16])
def test_neighbour_rows_layout(max_width):
    n = 7
    idx_i, _ = random_pairs(n, 40, seed=max_width)
    rows = neighbour_rows(idx_i, n, max_width)
    counts = torch.bincount(idx_i, minlength=n)
    assert rows.width == min(max_width, int(counts.max()))
    assert rows.n_rows == int(((counts + rows.width - 1) // rows.width).sum())
    assert len(set(rows.slot.tolist())) == len(idx_i)  # one slot per pair
    assert torch.equal(rows.row_atom[rows.slot // rows.width], idx_i)  # every pair sits in a row of its atom
    assert torch.all(rows.row_atom[1:] >= rows.row_atom[:-1])
    assert int(counts[-1]) == 0 and (n - 1) not in rows.row_atom.tolist()
    x = torch.randn(len(idx_i), 2, dtype=torch.float64)
    laid = rows.to_rows(x)  # [L, W, 2]
    assert laid.shape == (rows.n_rows, rows.width, 2)
    torch.testing.assert_close(laid.view(-1, 2)[rows.slot], x, rtol=0, atol=0)
    assert float(laid.abs().sum()) == pytest.approx(float(x.abs().sum()))  # zeros elsewhere


def test_neighbour_rows_without_pairs():
    rows = neighbour_rows(torch.zeros(0, dtype=torch.long), 3)
    assert rows.n_rows == 0 and rows.to_rows(torch.zeros(0, 4)).shape == (0, rows.width, 4)


def reference_interaction(block: PaiNNInteraction, q, mu, w_filter, basis, dir_ij, idx_i, idx_j):
    """The textbook PaiNN message: dmu_ij = W_r(r_ij) x_r[j] dir_ij + W_m(r_ij) x_m[j] mu_j, summed over j."""
    f = block.n_atom_basis
    x = block.interatomic_context_net(q)
    filt = basis @ w_filter.t()  # [P, 3F]
    phi_q, phi_r, phi_m = filt[:, :f], filt[:, f : 2 * f], filt[:, 2 * f :]
    xj = x[idx_j]
    q = q.index_add(0, idx_i, phi_q * xj[:, :f])
    dmu = dir_ij[:, :, None] * (phi_r * xj[:, f : 2 * f])[:, None, :] + (phi_m * xj[:, 2 * f :])[:, None, :] * mu[idx_j]
    return q, mu.index_add(0, idx_i, dmu)


def reference_painn(rep, numbers, idx_i, idx_j, vec_ij):
    """PaiNN.forward with the reference interaction (mu starts at zero, no shortcuts)."""
    f = rep.n_atom_basis
    d = torch.linalg.vector_norm(vec_ij, dim=-1)
    dir_ij = vec_ij / d[:, None]
    fcut = rep.cutoff_fn(d)[:, None]
    basis = torch.cat([rep.radial_basis(d) * fcut, fcut], 1)
    w_aug = torch.cat([rep.filter_net.weight, rep.filter_net.bias[:, None]], 1)
    q = rep.embedding(numbers)
    mu = q.new_zeros((q.shape[0], 3, f))
    for t, (interaction, mixing) in enumerate(zip(rep.interactions, rep.mixing)):
        start = 0 if rep.shared_filters else 3 * f * t
        q, mu = reference_interaction(interaction, q, mu, w_aug[start : start + 3 * f], basis, dir_ij, idx_i, idx_j)
        q, mu = mixing(q, mu)
    return q


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-11), (torch.float32, 1e-5)])
@pytest.mark.parametrize("max_width", [3, 16])
def test_interaction_equals_outer_product_reference(dtype, tol, max_width):
    """Random inputs and unsorted pairs: outputs, input gradients and second derivatives agree."""
    torch.manual_seed(0)
    n, p, f, r = 9, 60, 8, 5
    block = PaiNNInteraction(f).to(dtype)
    idx_i, idx_j = random_pairs(n, p, seed=1)
    g = torch.Generator().manual_seed(2)
    q = torch.randn(n, f, generator=g, dtype=dtype, requires_grad=True)
    mu = torch.randn(n, 3, f, generator=g, dtype=dtype, requires_grad=True)
    w_filter = torch.randn(3 * f, r, generator=g, dtype=dtype, requires_grad=True)
    basis = torch.randn(p, r, generator=g, dtype=dtype, requires_grad=True)
    dir_ij = torch.nn.functional.normalize(torch.randn(p, 3, generator=g, dtype=dtype), dim=1).requires_grad_(True)
    inputs = (q, mu, w_filter, basis, dir_ij)
    rows = neighbour_rows(idx_i, n, max_width)

    def outputs(first_mu):
        m = mu if first_mu else None
        new_q, new_mu = block(q, m, w_filter, basis, rows.to_rows(dir_ij).transpose(1, 2), rows, idx_i, idx_j)
        ref_q, ref_mu = reference_interaction(block, q, mu if first_mu else torch.zeros_like(mu), w_filter, basis,
                                              dir_ij, idx_i, idx_j)
        return (new_q, new_mu), (ref_q, ref_mu)

    for with_mu in (True, False):
        new, ref = outputs(with_mu)
        for a, b in zip(new, ref):
            torch.testing.assert_close(a, b, rtol=tol, atol=tol)
        # a scalar like the energy, its gradient like the forces, and a loss on that gradient like training
        w = torch.randn(n, 3, f, generator=g, dtype=dtype)

        def energy(out):
            return (out[0] ** 2).sum() + (out[1] * w).sum() + (out[1] ** 2).sum()

        grads_new = torch.autograd.grad(energy(new), inputs, create_graph=True, allow_unused=True)
        grads_ref = torch.autograd.grad(energy(ref), inputs, create_graph=True, allow_unused=True)
        loss_new = sum((gr**2).sum() for gr in grads_new if gr is not None)
        loss_ref = sum((gr**2).sum() for gr in grads_ref if gr is not None)
        torch.testing.assert_close(loss_new, loss_ref, rtol=tol, atol=tol)
        params = list(block.parameters()) + list(inputs)
        second_new = torch.autograd.grad(loss_new, params, allow_unused=True)
        second_ref = torch.autograd.grad(loss_ref, params, allow_unused=True)
        for a, b in zip(second_new, second_ref):
            if b is None:
                assert a is None or float(a.abs().max()) == 0.0
                continue
            torch.testing.assert_close(a, b, rtol=tol, atol=tol * max(1.0, float(b.abs().max())))


ETHANOL = (np.array([6, 6, 8, 1, 1, 1, 1, 1, 1]), np.array([
    [-0.0480, 0.5550, 0.0000], [-1.2240, -0.4090, 0.0000], [1.1530, -0.2100, 0.0000],
    [-0.0860, 1.1930, 0.8870], [-0.0860, 1.1930, -0.8870], [-2.1650, 0.1440, 0.0000],
    [-1.1900, -1.0490, 0.8830], [-1.1900, -1.0490, -0.8830], [1.9100, 0.3820, 0.0000]]))
CH2O = (np.array([6, 8, 1, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.21], [0.0, 0.94, -0.59], [0.0, -0.94, -0.59]]))
H2_FAR = (np.array([1, 1]), np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 6.0]]))  # no pairs within the cutoff


@pytest.mark.parametrize("row_width", [2, 16])
def test_painn_model_equals_reference_training_step(row_width):
    """Whole model, float64: energies, forces and the gradients of the GOLF loss equal the reference PaiNN."""
    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=16, n_interactions=3, n_rbf=8).double()
    with torch.no_grad():
        for prm in model.parameters():
            prm.add_(0.05 * torch.randn(prm.shape, generator=torch.Generator().manual_seed(prm.numel())))
    model.representation.row_width = row_width
    mols = [ETHANOL, CH2O, H2_FAR, ETHANOL]
    numbers = torch.as_tensor(np.concatenate([z for z, _ in mols]))
    positions = torch.as_tensor(np.concatenate([x + 0.01 * k for k, (_, x) in enumerate(mols)]))
    mol_idx = torch.repeat_interleave(torch.arange(len(mols)), torch.as_tensor([len(z) for z, _ in mols]))
    batch = Batch(numbers, positions, mol_idx, len(mols))
    g = torch.Generator().manual_seed(3)
    e_ref_label = torch.randn(len(mols), generator=g, dtype=torch.float64)
    f_ref_label = torch.randn(len(numbers), 3, generator=g, dtype=torch.float64)

    def step():
        model.zero_grad(set_to_none=True)
        total, _ = loss(model, batch, e_ref_label, f_ref_label)
        total.backward()
        e, f = model.energy_and_forces(batch)
        return e, f, total.detach(), [prm.grad.clone() for prm in model.parameters()]

    new = step()
    rep = model.representation
    forward = rep.forward
    rep.forward = lambda numbers, idx_i, idx_j, vec_ij: reference_painn(rep, numbers, idx_i, idx_j, vec_ij)
    try:
        ref = step()
    finally:
        rep.forward = forward
    torch.testing.assert_close(new[0], ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(new[1], ref[1], rtol=1e-10, atol=1e-12)
    assert float(new[1][13:15].abs().max()) == 0.0  # the far H2 feels nothing
    torch.testing.assert_close(new[2], ref[2], rtol=1e-12, atol=0)
    for a, b in zip(new[3], ref[3]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_rows_span_several_rows_in_real_batches():
    """The row layout is exercised with atoms owning more than one row (width below the neighbour count)."""
    numbers = torch.as_tensor(ETHANOL[0])
    positions = torch.as_tensor(ETHANOL[1])
    idx_i, _, _ = neighbor_pairs(positions, torch.zeros(len(numbers), dtype=torch.long), 5.0)
    rows = neighbour_rows(idx_i, len(numbers), 3)
    assert rows.width == 3 and rows.n_rows == len(numbers) * 3  # 8 neighbours each -> 3 rows of 3
