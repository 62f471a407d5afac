"""golf.evaluation.drift.teacher_drift: the forgetting check of golf adapt that needs no oracle."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import CHECKPOINTS


def test_teacher_drift_is_zero_for_the_teacher_and_sees_another_model():
    """teacher_drift: the teacher against itself gives exactly 0; another model's minima (baseline-NNP's)
    sit above the teacher's own on the teacher's surface (kcal/mol)."""
    if not (CHECKPOINTS / "GOLF-10k.pt").exists():
        pytest.skip("official checkpoints not available")
    from golf.chem import generate_conformers
    from golf.evaluation.drift import teacher_drift
    from golf.models import load_model

    confs = [generate_conformers(smi, 1, seed=0, mol_id=k)[0] for k, smi in enumerate(["CCC(=O)N(CC)CC", "CCCc1ccccn1"])]
    teacher = load_model(CHECKPOINTS / "GOLF-10k.pt")
    assert np.array_equal(teacher_drift(teacher, teacher, confs), np.zeros(2))
    other = teacher_drift(load_model(CHECKPOINTS / "baseline-NNP.pt"), teacher, confs)
    assert np.all(np.isfinite(other)) and np.all(other > 0.0)
