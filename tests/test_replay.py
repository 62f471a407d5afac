"""ReplayBuffer: D0 share of each batch, collation, state round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf.conformation import Conformation
from golf.dataset import LabelledData
from golf.replay import ReplayBuffer


def _data(n: int, mol_offset: int = 0, marker: float = 0.0) -> LabelledData:
    rng = np.random.default_rng(mol_offset)
    confs, energies, forces = [], [], []
    for i in range(n):
        k = 3 + i % 3
        confs.append(Conformation(np.ones(k, dtype=np.int64), rng.normal(size=(k, 3)), mol_id=mol_offset + i))
        energies.append(marker + i)
        forces.append(rng.normal(size=(k, 3)))
    return LabelledData.from_conformations(confs, energies, forces)


def test_all_initial_while_no_new_data():
    buf = ReplayBuffer(_data(20), initial_conf_pct=0.1)
    init_idx, new_idx, _ = buf.sample(16, np.random.default_rng(0))
    assert len(init_idx) == 16 and len(new_idx) == 0
    assert len(set(init_idx.tolist())) == 16  # without replacement when possible
    assert len(buf) == 20


# official GOLF/replay_buffer.py: int(batch_size * (1 - initial_conf_pct)) new conformations, the rest D0
@pytest.mark.parametrize("pct,bs,expect_init", [(0.1, 64, 7), (0.25, 10, 3), (0.0, 8, 0), (1.0, 8, 8), (0.5, 7, 4)])
def test_ratio_respected(pct, bs, expect_init):
    initial = _data(30)
    buf = ReplayBuffer(initial, initial_conf_pct=pct)
    new = _data(60, mol_offset=1000, marker=1e4)
    for i in range(len(new)):
        buf.add(new.conformation(i), *new.labels(i))
    assert len(buf) == 90 and buf.n_new == 60
    rng = np.random.default_rng(1)
    for _ in range(5):
        init_idx, new_idx, _ = buf.sample(bs, rng)
        assert len(init_idx) == expect_init and len(new_idx) == bs - expect_init
        assert (new_idx < 60).all() and (init_idx < 30).all()
        # both shares without replacement: no conformation twice in a batch
        assert len(set(new_idx.tolist())) == len(new_idx) and len(set(init_idx.tolist())) == len(init_idx)
    batch, energy, forces = buf.sample_batch(bs, rng, dtype=torch.float64)
    assert batch.n_mols == bs and forces.shape == (len(batch.numbers), 3)
    assert int((energy >= 1e4).sum()) == bs - expect_init  # new data marked by energies >= 1e4


def test_sample_batch_content_and_determinism():
    initial = _data(10)
    buf = ReplayBuffer(initial, initial_conf_pct=0.5)
    new = _data(4, mol_offset=100, marker=500.0)
    for i in range(4):
        buf.add(new.conformation(i), *new.labels(i))
    b1 = buf.sample_batch(6, np.random.default_rng(3), dtype=torch.float64)
    b2 = buf.sample_batch(6, np.random.default_rng(3), dtype=torch.float64)
    for x, y in zip(b1[1:], b2[1:]):
        assert torch.equal(x, y)
    init_idx, new_idx, _ = buf.sample(6, np.random.default_rng(3))
    expected = np.concatenate([initial.energy[init_idx], new.energy[new_idx]])
    np.testing.assert_allclose(b1[1].numpy(), expected)
    # forces of the collated batch line up with the sampled conformations
    f_expected = np.concatenate(
        [initial.labels(int(i))[1] for i in init_idx] + [new.labels(int(i))[1] for i in new_idx]
    )
    np.testing.assert_allclose(b1[2].numpy(), f_expected)


def test_capacity_keeps_newest():
    buf = ReplayBuffer(_data(10), initial_conf_pct=0.0, capacity=3)
    new = _data(8, mol_offset=50, marker=100.0)
    for i in range(8):
        buf.add(new.conformation(i), *new.labels(i))
    assert buf.n_new == 3 and buf.n_added == 8 and len(buf) == 13
    _, new_idx, _ = buf.sample(3, np.random.default_rng(0))
    assert set(new_idx.tolist()) == {5, 6, 7}


def test_state_dict_roundtrip():
    initial = _data(10)
    buf = ReplayBuffer(initial, initial_conf_pct=0.2)
    new = _data(8, mol_offset=70, marker=9.0)
    for i in range(8):
        buf.add(new.conformation(i), *new.labels(i))
    state = buf.state_dict()
    buf2 = ReplayBuffer(initial, initial_conf_pct=0.9)
    buf2.load_state_dict(state)
    assert buf2.initial_conf_pct == 0.2 and buf2.n_new == 8
    a = buf.sample_batch(8, np.random.default_rng(5), dtype=torch.float64)
    b = buf2.sample_batch(8, np.random.default_rng(5), dtype=torch.float64)
    assert torch.equal(a[0].positions, b[0].positions) and torch.equal(a[2], b[2])
    with pytest.raises(ValueError):
        ReplayBuffer(_data(3)).load_state_dict(state)


def test_trainer_update_on_replay_batch():
    from golf.models import build_model
    from golf.trainer import Trainer

    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=16, n_interactions=1, n_rbf=8, cutoff=4.0)
    buf = ReplayBuffer(_data(10), initial_conf_pct=0.25)
    new = _data(8, mol_offset=5)
    for i in range(8):
        buf.add(new.conformation(i), *new.labels(i))
    trainer = Trainer(model, lr=1e-3, total_steps=5)
    m = trainer.update(buf.sample_batch(8, np.random.default_rng(0)))
    assert trainer.step == 1 and np.isfinite(m["loss"])


def test_new_share_never_repeats_and_ready_gates_training():
    """No sampling with replacement from the new data: the GOLF loop waits for ``ready(batch_size)``."""
    buf = ReplayBuffer(_data(20), initial_conf_pct=0.1)
    new = _data(10, mol_offset=300)
    for i in range(10):
        buf.add(new.conformation(i), *new.labels(i))
    assert not buf.ready(32) and buf.ready(10)
    with pytest.raises(ValueError, match="without replacement"):
        buf.sample(32, np.random.default_rng(0))  # needs 28 new ones, 10 exist


def test_generic_share_comes_out_of_the_new_share_and_zero_is_official():
    """golf adapt's generic source: int(B * generic_pct) generic items per batch, taken from the new
    share; with generic_pct 0 a batch is drawn exactly as the official buffer draws it."""
    initial, new, generic = _data(30), _data(60, mol_offset=1000, marker=1e4), _data(40, mol_offset=5000, marker=-1e4)
    official = ReplayBuffer(initial, initial_conf_pct=0.1)
    mixed = ReplayBuffer(initial, initial_conf_pct=0.1, generic=generic, generic_pct=0.25)
    zero = ReplayBuffer(initial, initial_conf_pct=0.1, generic=generic, generic_pct=0.0)
    for buf in (official, mixed, zero):
        for i in range(len(new)):
            buf.add(new.conformation(i), *new.labels(i))
    assert official.split_sizes(64) == (7, 57, 0)
    assert mixed.split_sizes(64) == (7, 41, 16)
    a = official.sample(64, np.random.default_rng(5))
    b = zero.sample(64, np.random.default_rng(5))
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    batch, energy, _ = mixed.sample_batch(64, np.random.default_rng(5), dtype=torch.float64)
    assert int((energy < -9000).sum()) == 16 and int((energy >= 1e4).sum()) == 41
    _, _, gidx = mixed.sample(64, np.random.default_rng(6))
    assert len(set(gidx.tolist())) == 16  # without replacement
    assert mixed.split_sizes(64)[2] == 16 and ReplayBuffer(initial).split_sizes(8) == (8, 0, 0)  # no new data yet
    state = mixed.state_dict()
    with pytest.raises(ValueError, match="generic"):
        ReplayBuffer(initial, generic=_data(3), generic_pct=0.25).load_state_dict(state)
    with pytest.raises(ValueError, match="generic_pct"):
        ReplayBuffer(initial, initial_conf_pct=0.9, generic=generic, generic_pct=0.2)
    with pytest.raises(ValueError, match="needs generic"):
        ReplayBuffer(initial, generic_pct=0.2)
