"""Automatic batch sizing by memory (golf.batch.auto_batch_size) and its use by golf.optim.relax."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import golf.batch as gb
from golf.batch import Batch, auto_batch_size, count_pairs, memory_scale
from golf.conformation import Conformation
from golf.models import ModelEnergyForces, build_model
from golf.optim import relax

MB = 2**20


@pytest.fixture
def plenty_of_memory(monkeypatch):
    monkeypatch.setattr(gb, "available_bytes", lambda device="cpu": 64 * 2**30)


def test_batch_fits_the_budget_for_the_largest_conformations(plenty_of_memory):
    atoms = [76] * 30 + [24] * 30
    pairs = [1800] * 30 + [400] * 30
    k = auto_batch_size(atoms, pairs, budget_bytes=512 * MB)
    per_large = gb.PAINN_PAIR_BYTES * gb.PAIR_MARGIN * 1800 + gb.PAINN_ATOM_BYTES * 76
    assert k == int(512 * MB // (per_large + gb.OPTIM_BYTES_PER_ATOM * 76 + gb.OPTIM_BYTES_PER_DOF2 * 228**2))
    assert 3 * k < auto_batch_size([76] * 60, [1800] * 60, budget_bytes=4 * 512 * MB) < 4 * (k + 1)  # grows with it
    assert auto_batch_size(atoms, pairs, budget_bytes=1) == 1  # at least one
    assert auto_batch_size(atoms, pairs, budget_bytes=2**50) == 60  # at most all
    assert auto_batch_size([], None) == 1
    assert auto_batch_size(atoms, pairs, budget_bytes=512 * MB, scale=0.5) > k  # a smaller model: more at once


def test_available_memory_caps_the_budget(monkeypatch):
    monkeypatch.setattr(gb, "available_bytes", lambda device="cpu": 100 * MB)
    capped = auto_batch_size([50] * 100, None, budget_bytes=2**40)
    monkeypatch.setattr(gb, "available_bytes", lambda device="cpu": 64 * 2**30)
    assert auto_batch_size([50] * 100, None, budget_bytes=50 * MB) == capped  # half the available


def test_pair_counts_and_model_scale():
    conf = Conformation(np.ones(3), np.array([[0.0, 0, 0], [1.0, 0, 0], [7.0, 0, 0]]))
    assert count_pairs(Batch.from_conformations([conf, conf]), cutoff=5.0) == [2, 2]
    with pytest.raises(ValueError):
        auto_batch_size([3, 3], [2])
    assert memory_scale(build_model("painn", n_atom_basis=128, n_interactions=3)) == pytest.approx(1.0)
    assert memory_scale(build_model("painn", n_atom_basis=16, n_interactions=2)) == pytest.approx(16 * 2 / 384)
    assert memory_scale(build_model("painn").double()) == pytest.approx(2.0)


class Counting(ModelEnergyForces):
    def __init__(self, model):
        super().__init__(model)
        self.sizes: list[int] = []

    def __call__(self, batch):
        self.sizes.append(batch.n_mols)
        return super().__call__(batch)


def test_relax_without_batch_size_sizes_model_batches_by_memory(monkeypatch, plenty_of_memory):
    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=8, n_interactions=1, n_rbf=4)
    rng = np.random.default_rng(0)
    confs = [Conformation(np.array([6, 1, 1, 1, 1]), rng.normal(scale=1.2, size=(5, 3))) for _ in range(12)]
    free = Counting(model)
    ref = relax(free, confs, max_steps=3)
    assert max(free.sizes) == 12  # small molecules, default budget: all at once
    monkeypatch.setattr(gb, "DEFAULT_MEMORY_BUDGET", 1)  # nothing fits: one at a time
    one = Counting(model)
    out = relax(one, confs, max_steps=3)
    assert max(one.sizes) == 1
    # the batch size never changes results
    for a, b in zip(ref, out):
        assert a.energy == pytest.approx(b.energy, abs=1e-5) and a.n_force_calls == b.n_force_calls
    explicit = Counting(model)
    relax(explicit, confs, max_steps=3, batch_size=5)  # an explicit batch size wins
    assert max(explicit.sizes) == 5


def test_importing_golf_makes_idle_openmp_threads_sleep():
    code = "import os, golf; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "PASSIVE"
    env["OMP_WAIT_POLICY"] = "ACTIVE"  # an explicit setting wins
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
