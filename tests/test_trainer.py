"""Trainer, loss, LabelledData: synthetic analytic potential (pairwise Morse + atomrefs) in NumPy."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.conformation import Conformation
from golf.dataset import LabelledData
from golf.errors import InputError

# ---------------------------------------------------------------------------- synthetic data
TRUE_REFS = {1: -13.6, 6: -1029.8, 7: -1485.3, 8: -2041.2}  # eV
RADII = {1: 0.35, 6: 0.75, 7: 0.70, 8: 0.65}  # A
MORSE_D, MORSE_A = 0.5, 2.0  # eV, 1/A


def morse(numbers: np.ndarray, pos: np.ndarray) -> tuple[float, np.ndarray]:
    """Pairwise Morse energy (eV) + atomrefs and forces [n,3] (eV/A)."""
    r0 = np.array([RADII[int(z)] for z in numbers])
    r0 = r0[:, None] + r0[None, :]
    d = pos[:, None, :] - pos[None, :, :]
    r = np.linalg.norm(d, axis=-1)
    iu = np.triu_indices(len(numbers), 1)
    e = np.exp(-MORSE_A * (r - r0))
    pair = MORSE_D * (1 - e) ** 2
    energy = float(pair[iu].sum()) + sum(TRUE_REFS[int(z)] for z in numbers)
    dedr = 2 * MORSE_D * MORSE_A * (1 - e) * e
    np.fill_diagonal(dedr, 0.0)
    np.fill_diagonal(r, 1.0)
    forces = -(dedr / r)[:, :, None] * d
    return energy, forces.sum(1)


def random_molecule(rng: np.random.Generator, n_atoms: int) -> tuple[np.ndarray, np.ndarray]:
    heavy = rng.choice([6, 7, 8], size=max(1, n_atoms // 2))
    numbers = np.concatenate([heavy, np.ones(n_atoms - len(heavy), dtype=np.int64)]).astype(np.int64)
    pos = [np.zeros(3)]
    for k in range(1, n_atoms):
        for _ in range(1000):
            j = rng.integers(0, k) if numbers[k] != 1 else rng.integers(0, len(heavy))
            j = min(j, k - 1)
            v = rng.normal(size=3)
            cand = pos[j] + v / np.linalg.norm(v) * (RADII[int(numbers[k])] + RADII[int(numbers[j])])
            if all(np.linalg.norm(cand - p) > 1.0 for i, p in enumerate(pos) if i != j):
                break
        pos.append(cand)
    return numbers, np.array(pos)


def synthetic_data(n_mols: int = 24, n_confs: int = 4, seed: int = 0, sigma: float = 0.08) -> LabelledData:
    rng = np.random.default_rng(seed)
    confs, energies, forces = [], [], []
    for m in range(n_mols):
        numbers, pos0 = random_molecule(rng, int(rng.integers(3, 7)))
        for c in range(n_confs):
            pos = pos0 + rng.normal(scale=sigma, size=pos0.shape)
            e, f = morse(numbers, pos)
            confs.append(Conformation(numbers, pos, smiles=f"mol{m}", mol_id=m, conf_id=c))
            energies.append(e)
            forces.append(f)
    return LabelledData.from_conformations(confs, energies, forces)


def write_db(path: Path, data: LabelledData, labelled: bool = True, order=None, keys: bool = True,
             oracle: str | None = "morse") -> Path:
    """``data`` as an ASE db, rows in ``order`` (default: data order); ``keys``: golf record keys;
    ``oracle``: the level of theory recorded in every row (None: none)."""
    import ase.db
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    with ase.db.connect(str(path), type="db", append=False) as db:
        for i in (range(len(data)) if order is None else order):
            conf = data.conformation(int(i))
            atoms = Atoms(numbers=conf.numbers, positions=conf.positions)
            if labelled:
                e, f = data.labels(int(i))
                atoms.calc = SinglePointCalculator(atoms, energy=e, forces=f)
            extra = {"key": f"{conf.mol_id:04d}-{conf.conf_id}"} if keys else {}
            if oracle is not None:
                extra["oracle"] = oracle
            db.write(atoms, mol_id=conf.mol_id, conf_id=conf.conf_id, smiles=conf.smiles, **extra)
    return path


def tiny_model(seed: int = 0):
    from golf.models import build_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build_model("painn", n_atom_basis=32, n_interactions=2, n_rbf=16, cutoff=5.0)


@pytest.fixture(scope="module")
def data() -> LabelledData:
    return synthetic_data()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------------------- dataset
def test_collate_matches_conformations(data):
    idx = np.array([5, 0, 17])
    batch, energy, forces = data.collate(idx, dtype=torch.float64)
    assert batch.n_mols == 3
    for k, i in enumerate(idx):
        conf = data.conformation(int(i))
        sel = batch.mol_idx == k
        np.testing.assert_array_equal(batch.numbers[sel].numpy(), conf.numbers)
        np.testing.assert_allclose(batch.positions[sel].numpy(), conf.positions)
        e, f = data.labels(int(i))
        assert float(energy[k]) == pytest.approx(e)
        np.testing.assert_allclose(forces[sel].numpy(), f)


def test_append_concat_subset_state(data):
    d2 = LabelledData()
    for i in range(10):
        d2.append(data.conformation(i), *data.labels(i))
    assert len(d2) == 10 and d2.n_atoms.sum() == data.n_atoms[:10].sum()
    both = d2 + data.subset(range(10, 20))
    np.testing.assert_array_equal(both.positions, data.subset(range(20)).positions)
    np.testing.assert_array_equal(both.energy, data.energy[:20])
    back = LabelledData.from_state_dict(both.state_dict())
    np.testing.assert_array_equal(back.forces, both.forces)
    assert back.smiles == both.smiles


def test_split_by_molecule(data):
    train, val = data.split_by_molecule(0.25, seed=3)
    assert len(train) + len(val) == len(data)
    assert not set(train.mol_id) & set(val.mol_id)
    assert len(set(val.mol_id)) == 6
    t2, v2 = data.split_by_molecule(0.25, seed=3)
    np.testing.assert_array_equal(v2.mol_id, val.mol_id)


def test_from_db_and_bad_inputs(tmp_path, data):
    sub = data.subset(range(8))
    db = write_db(tmp_path / "d.db", sub)
    loaded = LabelledData.from_db(db)
    assert len(loaded) == 8
    np.testing.assert_allclose(loaded.forces, sub.forces)
    np.testing.assert_allclose(loaded.energy, sub.energy)
    assert list(loaded.mol_id) == list(sub.mol_id)
    two = LabelledData.from_db([db, db])
    assert len(two) == 16
    with pytest.raises(InputError, match="no such file"):
        LabelledData.from_db(tmp_path / "missing.db")
    assert not (tmp_path / "missing.db").exists()
    import ase.db

    ase.db.connect(str(tmp_path / "empty.db"), type="db").count()
    (tmp_path / "empty2.db").write_bytes(b"")
    for bad in ("empty.db", "empty2.db"):
        with pytest.raises(InputError):
            LabelledData.from_db(tmp_path / bad)
    write_db(tmp_path / "unlab.db", sub, labelled=False)
    with pytest.raises(InputError, match="energy"):
        LabelledData.from_db(tmp_path / "unlab.db")
    (tmp_path / "junk.db").write_text("not a database\n")
    with pytest.raises(InputError):
        LabelledData.from_db(tmp_path / "junk.db")


# ---------------------------------------------------------------------------- atomrefs
def test_from_db_does_not_depend_on_arrival_order(tmp_path, data):
    """Parallel workers return results in a run-dependent order; the dataset read back must not."""
    sub = data.subset(range(12))
    shuffled = np.random.default_rng(0).permutation(12)
    a = LabelledData.from_db(write_db(tmp_path / "a.db", sub))
    b = LabelledData.from_db(write_db(tmp_path / "b.db", sub, order=shuffled))
    for name in ("numbers", "positions", "energy", "forces", "mol_id"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    # a plain ASE db (no record keys) keeps its row order
    c = LabelledData.from_db(write_db(tmp_path / "c.db", sub, order=shuffled, keys=False))
    np.testing.assert_array_equal(c.energy, sub.energy[shuffled])


def test_fit_atomrefs_recovers_true_values():
    from golf.models.atomrefs import fit_atomrefs

    rng = np.random.default_rng(1)
    numbers_list, energies = [], []
    for _ in range(60):
        z = rng.choice([1, 6, 7, 8], size=rng.integers(3, 12))
        numbers_list.append(z)
        energies.append(sum(TRUE_REFS[int(a)] for a in z) + rng.normal(scale=0.01))
    refs = fit_atomrefs(numbers_list, np.array(energies))
    for z, v in TRUE_REFS.items():
        assert refs[z] == pytest.approx(v, abs=0.01)
    assert refs[9] == 0.0


def test_prepare_model_sets_atomrefs_and_elements(data):
    from golf.trainer import prepare_model

    model = tiny_model()
    prepare_model(model, data)
    assert model.elements == [1, 6, 7, 8]
    # the residual left for the network is small compared to total energies
    refs = model.atomrefs.numpy()
    resid = data.energy - np.array([refs[z].sum() for z in data.numbers_list()])
    assert np.abs(resid).max() < 5.0


# ---------------------------------------------------------------------------- loss / trainer
def test_loss_definition(data):
    from golf.trainer import ENERGY_SCALE, FORCE_SCALE, loss

    model = tiny_model()
    batch, energy, forces = data.collate(np.arange(6))
    total, m = loss(model, batch, energy, forces, w_energy=0.3, w_forces=0.7)
    e_pred, f_pred = (t.detach() for t in model.energy_and_forces(batch))
    e_mse = float(((e_pred - energy) ** 2).mean())
    per_mol = [float(((f_pred - forces)[batch.mol_idx == b] ** 2).mean()) for b in range(6)]
    f_mse = float(np.mean(per_mol))
    assert m["energy_mse"] == pytest.approx(e_mse, rel=1e-4)
    assert m["forces_mse"] == pytest.approx(f_mse, rel=1e-4)
    expected = 0.3 * e_mse / ENERGY_SCALE**2 + 0.7 * f_mse / FORCE_SCALE**2
    assert float(total.detach()) == pytest.approx(expected, rel=1e-4)
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_training_lowers_validation_force_error(data, tmp_path):
    from golf.runs.train import fit_run
    from golf.trainer import Trainer, prepare_model

    train, val = data.split_by_molecule(0.25, seed=0)
    model = tiny_model()
    prepare_model(model, train)
    trainer = Trainer(model, lr=5e-3, lr_min=1e-4, seed=0)
    before = trainer.evaluate(val)
    hist = fit_run(trainer, train, val, epochs=15, batch_size=16, progress=False, prepare=False,
                       log_dir=tmp_path / "run")
    after = trainer.evaluate(val)
    print("val force MAE meV/A", before["forces_mae_mev_a"], "->", after["forces_mae_mev_a"],
          "energy MAE meV", before["energy_mae_mev"], "->", after["energy_mae_mev"])
    assert after["forces_mae_mev_a"] < before["forces_mae_mev_a"] / 2
    assert len(hist) == 15 and trainer.step == 15 * math.ceil(len(train) / 16)
    assert after["energy_mae_kcal_mol"] == pytest.approx(after["energy_mae_mev"] / 1000 * 23.0605, rel=1e-3)
    # lr decayed by the cosine schedule to lr_min
    assert trainer.current_lr == pytest.approx(1e-4, rel=1e-3)
    run = tmp_path / "run"
    for f in ("best.pt", "last.pt", "trainer_state.pt", "metrics.csv"):
        assert (run / f).exists(), f
    lines = (run / "metrics.csv").read_text().strip().splitlines()
    assert len(lines) == 16 and "val_forces_mae_mev_a" in lines[0]

    import golf

    best = golf.load_model(run / "best.pt")
    assert best.elements == [1, 6, 7, 8]
    ev = Trainer(best).evaluate(val)
    best_row = min(hist, key=lambda r: r["val_loss"])
    assert ev["loss"] == pytest.approx(best_row["val_loss"], rel=1e-3)


def _params(model) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def test_resume_equals_uninterrupted(data, tmp_path):
    from golf.runs.train import fit_run
    from golf.trainer import Trainer

    train, val = data.split_by_molecule(0.25, seed=0)
    train = train.subset(range(24))
    bs = 8
    total = 4 * math.ceil(len(train) / bs)

    straight = Trainer(tiny_model(), lr=2e-3, total_steps=total, seed=7)
    fit_run(straight, train, val, epochs=4, batch_size=bs, progress=False, log_dir=tmp_path / "a")

    first = Trainer(tiny_model(), lr=2e-3, total_steps=total, seed=7)
    fit_run(first, train, val, epochs=2, batch_size=bs, progress=False, log_dir=tmp_path / "b")  # "killed" here
    torch.manual_seed(12345)  # disturb global RNG state: resume must restore it
    np.random.seed(99)
    second = Trainer(tiny_model(seed=99), lr=2e-3, seed=123)  # different init and seed: all comes from the state
    fit_run(second, train, val, epochs=4, batch_size=bs, progress=False, log_dir=tmp_path / "b", resume=True)

    assert second.step == straight.step and second.epoch == 4
    diff = (_params(second.model) - _params(straight.model)).abs().max().item()
    assert diff <= 1e-6
    assert second.current_lr == pytest.approx(straight.current_lr)
    assert [r["epoch"] for r in second.history] == [1, 2, 3, 4]
    a = [r["val_loss"] for r in straight.history]
    b = [r["val_loss"] for r in second.history]
    np.testing.assert_allclose(a, b, rtol=1e-5)
    assert len((tmp_path / "b" / "metrics.csv").read_text().strip().splitlines()) == 5


def test_update_skips_non_finite(data):
    from golf.trainer import Trainer

    trainer = Trainer(tiny_model(), lr=1e-3, total_steps=10)
    batch, energy, forces = data.collate(np.arange(4))
    before = _params(trainer.model).clone()
    m = trainer.update((batch, energy * float("nan"), forces))
    assert m["skipped"] == 1.0 and trainer.step == 0 and trainer.n_skipped == 1
    assert torch.equal(before, _params(trainer.model))
    m = trainer.update((batch, energy, forces))
    assert trainer.step == 1 and "grad_norm" in m


def test_state_dict_roundtrip(data):
    from golf.trainer import Trainer

    t1 = Trainer(tiny_model(), lr=1e-3, total_steps=20, seed=1)
    for i in range(3):
        t1.update(data.collate(np.arange(4 * i, 4 * i + 4)))
    state = t1.state_dict()
    t2 = Trainer(tiny_model(seed=5), lr=1e-3, seed=2)
    t2.load_state_dict(state)
    assert t2.step == 3 and t2.total_steps == 20
    assert t2.current_lr == pytest.approx(t1.current_lr)
    b = data.collate(np.arange(12, 20))
    m1, m2 = t1.update(b), t2.update(b)
    assert m1["loss"] == pytest.approx(m2["loss"], rel=1e-6)
    assert torch.allclose(_params(t1.model), _params(t2.model), atol=1e-7)
