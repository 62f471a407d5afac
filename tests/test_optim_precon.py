"""Preconditioned batched L-BFGS (``lbfgs-precon``, golf.optim.precon): the Lindh model Hessian is
right (autograd), padding-independent and batched, the optimizer reaches the same minima as ASE and
``lbfgs``, batched == one at a time, and on real molecules it needs clearly fewer force evaluations."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.optim import LennardJones, Morse, OracleEnergyForces, lbfgs_init, lbfgs_step, relax
from golf.optim import precon as pc
from test_optim import F64, cluster

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def molecules() -> list[Conformation]:
    """Drug-like NCI conformations (ETKDG), as in bench/bench_optimize.py."""
    pytest.importorskip("rdkit")
    from golf.chem import generate_conformers
    from golf.pool import nci_pool

    confs: list[Conformation] = []
    for mol_id, smi in nci_pool(15, 30):
        if len(confs) >= 8:
            break
        confs += generate_conformers(smi, 1, seed=0, mol_id=mol_id)
    return confs


def _padded(conf: Conformation) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n = conf.n_atoms
    return (torch.as_tensor(conf.numbers)[None].long(), torch.as_tensor(conf.positions, dtype=F64)[None],
            torch.ones(1, n, dtype=torch.bool))


# ------------------------------------------------------------------------------ the matrix
def _angle(x: torch.Tensor, i: int, j: int, k: int) -> torch.Tensor:
    a, b = x[i] - x[j], x[k] - x[j]
    return torch.acos((a @ b) / (a.norm() * b.norm()))


def _dihedral(x: torch.Tensor, i: int, j: int, k: int, l: int) -> torch.Tensor:
    b0, b1, b2 = x[i] - x[j], x[k] - x[j], x[l] - x[k]
    n1, n2 = torch.linalg.cross(b0, b1), torch.linalg.cross(b1, b2)
    m = torch.linalg.cross(n1, b1 / b1.norm())
    return torch.atan2(m @ n2, n1 @ n2)


def test_lindh_matrix_is_gauss_newton_hessian_of_its_springs(molecules):
    """P = sum k b b^T is the autograd Hessian, at x0, of sum k/2 (q(x) - q(x0))^2 over the same
    stretches, bends and torsions (enumerated here with plain loops), so the Wilson rows are right."""
    from golf.chem import generate_conformers

    conf = generate_conformers("C=CC(=O)NC", 1, seed=0)[0]  # H, C, N, O; single and double bonds
    z, x0, mask = _padded(conf)
    p = pc.lindh_matrix(z, x0, mask, stab=0.0, rigid=0.0)[0]
    n = conf.n_atoms
    r0 = torch.cdist(x0[0], x0[0])
    rho = pc._lindh_rho(z, r0[None], mask[:, :, None] & mask[:, None, :])[0]
    nbr = [[j for j in range(n) if rho[i, j] > 0.05] for i in range(n)]
    terms = []  # (k, q function)
    for i in range(n):
        for j in range(i + 1, n):
            if rho[i, j] > pc.LINDH_STRETCH_RHO_MIN:
                terms.append((pc.LINDH_K_R * rho[i, j], lambda x, i=i, j=j: (x[i] - x[j]).norm()))
    for j in range(n):
        for a, i in enumerate(nbr[j]):
            for k in nbr[j][a + 1:]:
                terms.append((pc.LINDH_K_PHI * rho[i, j] * rho[j, k], lambda x, i=i, j=j, k=k: _angle(x, i, j, k)))
    for j in range(n):
        for k in nbr[j]:
            if k <= j:
                continue
            for i in nbr[j]:
                for l in nbr[k]:
                    if i == k or l == j or i == l:
                        continue
                    s2 = torch.sin(_angle(x0[0], i, j, k)) ** 2 * torch.sin(_angle(x0[0], j, k, l)) ** 2
                    kt = pc.LINDH_K_TAU * rho[i, j] * rho[j, k] * rho[k, l] * s2
                    terms.append((kt, lambda x, i=i, j=j, k=k, l=l: _dihedral(x, i, j, k, l)))
    q0 = [float(q(x0[0])) for _, q in terms]

    def energy(flat: torch.Tensor) -> torch.Tensor:
        x = flat.reshape(n, 3)
        return sum(0.5 * k * (q(x) - c) ** 2 for (k, q), c in zip(terms, q0))

    ref = torch.autograd.functional.hessian(energy, x0[0].reshape(-1))
    np.testing.assert_allclose(p.numpy(), ref.numpy(), atol=1e-8 * float(ref.abs().max()))


def test_lindh_matrix_invariances(molecules):
    conf = molecules[0]
    z, x, mask = _padded(conf)
    n = conf.n_atoms
    bare = pc.lindh_matrix(z, x, mask, stab=0.0, rigid=0.0)[0]
    q = pc.rigid_body_basis(x, mask)[0]  # [3n, 6]
    np.testing.assert_allclose((q.T @ q).numpy(), np.eye(6), atol=1e-10)
    assert float((bare @ q).abs().max()) < 1e-9 * float(bare.abs().max())  # no stiffness for rigid motion
    ev = torch.linalg.eigvalsh(bare)
    assert float(ev[0]) > -1e-9 and float(ev[6]) > 1e-5  # PSD, exactly 6 zero modes
    full = pc.lindh_matrix(z, x, mask, stab=0.05, rigid=70.0)[0]
    np.testing.assert_allclose((full @ q).numpy(), (70.05 * q).numpy(), atol=1e-6)  # rigid modes: rigid + stab
    # rotating and translating the molecule rotates P
    rot = torch.linalg.matrix_exp(torch.tensor([[0.0, -0.3, 0.2], [0.3, 0.0, -0.7], [-0.2, 0.7, 0.0]], dtype=F64))
    p_rot = pc.lindh_matrix(z, x @ rot.T + 1.5, mask)[0]
    big = torch.block_diag(*[rot] * n)
    np.testing.assert_allclose(p_rot.numpy(), (big @ full @ big.T).numpy(), atol=1e-9)


@pytest.mark.parametrize("kind", pc.PRECONS)
def test_preconditioner_is_batched_and_padding_independent(molecules, kind):
    confs = molecules[:3] + [cluster(4, 0)]
    batch = Batch.from_conformations(confs, dtype=F64)
    full = pc.build_preconditioner(kind, batch.numbers, batch.positions, batch.mol_idx, batch.n_mols)
    v = torch.randn(batch.positions.shape, generator=torch.Generator().manual_seed(0), dtype=F64)
    z = batch.split(full.solve(v, batch.mol_idx))
    for conf, vb, zb in zip(confs, batch.split(v), z):
        one = Batch.from_conformations([conf], dtype=F64)
        single = pc.build_preconditioner(kind, one.numbers, one.positions, one.mol_idx, 1)
        np.testing.assert_allclose(zb.numpy(), single.solve(vb, one.mol_idx).numpy(), rtol=1e-10, atol=1e-12)
        if kind == "lindh":  # P (P^-1 v) == v with the documented defaults
            back = (pc.lindh_matrix(*_padded(conf), stab=0.05)[0] @ zb.reshape(-1)).reshape(-1, 3)
        else:
            back = pc.exp_matrix(*_padded(conf), mu=10.0, c_stab=0.1)[0] @ zb
        np.testing.assert_allclose(back.numpy(), vb.numpy(), atol=1e-9)


def test_cache_reuses_and_rebuilds_per_molecule(molecules):
    """The cache's answer always equals a fresh build, whichever molecules were kept, moved or added."""
    def fresh(confs):
        b = Batch.from_conformations(confs, dtype=F64)
        return b, pc.build_preconditioner("lindh", b.numbers, b.positions, b.mol_idx, b.n_mols)

    cache = pc.PreconCache()
    v_gen = torch.Generator().manual_seed(1)
    steps = [
        ([0, 1, 2, 3], molecules[:4]),
        ([0, 1, 2, 3], molecules[:4]),  # unchanged: cached object
        ([1, 3], [molecules[1], molecules[3]]),  # select
        ([1, 3, 9], [molecules[1], molecules[3].with_positions(molecules[3].positions + 0.2), molecules[7]]),
        ([9, 1], [molecules[7], molecules[1]]),  # reordered, largest molecule first
    ]
    prev = None
    for ids, confs in steps:
        b, ref = fresh(confs)
        got = cache.get(torch.tensor(ids), b.positions, b.numbers, b.mol_idx, b.n_mols, "lindh", None, 10.0)
        v = torch.randn(b.positions.shape, generator=v_gen, dtype=F64)
        np.testing.assert_allclose(got.solve(v, b.mol_idx).numpy(), ref.solve(v, b.mol_idx).numpy(), rtol=1e-9,
                                   atol=1e-12)
        if ids == [0, 1, 2, 3] and prev is not None:
            assert got is prev
        prev = got


# ------------------------------------------------------------------------------ the optimizer
def _ase_lj(conf: Conformation, fmax: float) -> float:
    from ase import Atoms
    from ase.calculators.lj import LennardJones as AseLJ
    from ase.optimize import LBFGS

    atoms = Atoms(numbers=conf.numbers, positions=conf.positions)
    atoms.calc = AseLJ(epsilon=1.0, sigma=1.0, rc=100.0, smooth=False)
    LBFGS(atoms, logfile=None).run(fmax=fmax, steps=2000)
    return atoms.get_potential_energy()


@pytest.mark.parametrize("kind", pc.PRECONS)
def test_lj_clusters_reach_ase_and_lbfgs_minimum(kind):
    # starts inside the basin every optimizer ends in (LJ6 and LJ7 have several minima, and a
    # different path may legitimately reach another one)
    confs = [cluster(n, seed) for n, seed in ((3, 0), (4, 1), (5, 2), (6, 0), (7, 0))]
    ref = relax(LennardJones(), confs, method="lbfgs", fmax=1e-4, dtype=F64)
    recs = relax(LennardJones(), confs, method="lbfgs-precon", precon=kind, fmax=1e-4, dtype=F64)
    for conf, r, rr in zip(confs, recs, ref):
        assert r.converged and r.fmax <= 1e-4
        assert r.energy == pytest.approx(_ase_lj(conf, 1e-4), abs=1e-6)
        assert r.energy == pytest.approx(rr.energy, abs=1e-6)


def test_batched_equals_one_at_a_time():
    confs = [cluster(n, seed, scale=1.2 / 1.12) for seed, n in enumerate((2, 6, 3, 8, 5))]
    kw = dict(method="lbfgs-precon", fmax=1e-3, max_steps=300, dtype=F64)
    batched = relax(Morse(), confs, **kw)
    for conf, rb in zip(confs, batched):
        (rs,) = relax(Morse(), [conf], **kw)
        assert rb.converged
        assert (rb.n_steps, rb.n_force_calls, rb.reason) == (rs.n_steps, rs.n_force_calls, rs.reason)
        np.testing.assert_allclose(rb.positions, rs.positions, atol=1e-8, rtol=0)


def test_streaming_equals_full_batch():
    """Molecules streamed through a smaller batch (new padded layouts, a rebuilt cache) relax exactly
    as in one batch; select/concat is covered with the other optimizers in test_optim."""
    confs = [cluster(n, seed) for seed, n in enumerate((4, 6, 5))]
    provider = LennardJones()
    full = relax(provider, confs, method="lbfgs-precon", fmax=1e-3, dtype=F64)
    streamed = relax(provider, confs, method="lbfgs-precon", fmax=1e-3, dtype=F64, batch_size=2)
    for a, b in zip(full, streamed):
        assert a.n_force_calls == b.n_force_calls
        np.testing.assert_allclose(a.positions, b.positions, atol=1e-8)


def test_accepted_energy_never_rises_float32(molecules):
    """The ``lbfgs`` safeguards hold: every update starts from a point no higher than the last one
    (uphill trial points are evaluated, then reverted)."""
    from golf.oracles.mmff import MMFFOracle

    confs = molecules[:3]
    provider = OracleEnergyForces(MMFFOracle(), templates=confs)
    st = lbfgs_init(Batch.from_conformations(confs, dtype=torch.float32), provider, preset="lbfgs-precon")
    starts = []
    while bool(st.active.any()):
        st = lbfgs_step(st, provider)
        starts.append(torch.where(st.has_prev, st.prev_energy, torch.full_like(st.prev_energy, float("nan"))))
    assert bool(st.converged.all())
    e = torch.stack(starts).double().numpy()  # [T, B], energy where each update started (eV)
    assert len(e) > 5 and np.nanmax(np.diff(e, axis=0)) <= 1e-5


def _compare_on_molecules(provider_factory, confs, dtype) -> tuple[list, list]:
    plain = relax(provider_factory(), confs, method="lbfgs", fmax=0.05, dtype=dtype)
    pre = relax(provider_factory(), confs, method="lbfgs-precon", fmax=0.05, dtype=dtype)
    assert all(r.converged for r in plain + pre)
    calls_plain = np.mean([r.n_force_calls for r in plain])
    calls_pre = np.mean([r.n_force_calls for r in pre])
    assert calls_pre < 0.75 * calls_plain, (calls_pre, calls_plain)
    de = np.array([b.energy - a.energy for a, b in zip(plain, pre)])  # eV; different local minima allowed
    assert np.median(de) < 0.01 and de.max() < 0.1, de
    return plain, pre


def test_fewer_force_evaluations_mmff(molecules):
    """MMFF94 (RDKit, via the oracle adapter): about half the evaluations, same or lower energies."""
    from golf.oracles.mmff import MMFFOracle

    _compare_on_molecules(lambda: OracleEnergyForces(MMFFOracle(), templates=molecules), molecules, F64)


def test_fewer_force_evaluations_golf10k(checkpoints_dir, molecules):
    """The official GOLF-10k PaiNN (skipped without ../shared/golf-checkpoints)."""
    path = checkpoints_dir / "GOLF-10k.pt"
    if not path.exists():
        pytest.skip("GOLF-10k.pt not present")
    from golf.models import ModelEnergyForces, load_model

    torch.manual_seed(0)
    provider = ModelEnergyForces(load_model(path))
    _compare_on_molecules(lambda: provider, [c for c in molecules if c.n_atoms <= 40], torch.float32)


def test_failing_molecule_does_not_affect_others():
    class NaNForOne:
        uses_ids = True

        def __init__(self) -> None:
            self.calls = 0

        def __call__(self, batch: Batch, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            e, f = LennardJones()(batch)
            self.calls += 1
            if self.calls > 3 and 1 in ids.tolist():
                b = ids.tolist().index(1)
                e[b], f[batch.mol_idx == b] = float("nan"), float("nan")
            return e, f

    confs = [cluster(n, seed) for seed, n in enumerate((3, 5, 4))]
    clean = relax(LennardJones(), confs, method="lbfgs-precon", fmax=1e-3, dtype=F64)
    recs = relax(NaNForOne(), confs, method="lbfgs-precon", fmax=1e-3, dtype=F64)
    assert recs[1].reason == "non-finite energy or forces" and recs[1].n_steps == 3
    for i in (0, 2):
        assert recs[i].converged and recs[i].n_force_calls == clean[i].n_force_calls
        np.testing.assert_allclose(recs[i].positions, clean[i].positions, atol=1e-10)


def test_unknown_preconditioner():
    with pytest.raises(ValueError, match="unknown preconditioner"):
        relax(LennardJones(), [cluster(3, 0)], method="lbfgs-precon", precon="nope")
