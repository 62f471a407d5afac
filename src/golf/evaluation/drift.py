"""Teacher drift: how far a fine-tuned model's minima moved on the surface of the model it started from.

After ``golf adapt`` at the start model's own level of theory, the start model (the teacher) is still the
best cheap judge of molecules outside the series. Relax the same start with both models; the teacher's
energy at the adapted model's structure minus at its own is zero when nothing was forgotten and grows as
the adapted model's minima drift away. On the GOLF demonstration it tracked the forgetting measured at DFT
(docs/results.md, section 11).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from golf.conformation import Conformation


def teacher_drift(model: Any, teacher: Any, confs: Sequence[Conformation], steps: int = 100,
                  optimizer: str = "lbfgs-golf") -> np.ndarray:
    """E_teacher(model's structure) - E_teacher(teacher's structure) per conformation [C] (kcal/mol).

    Both relax every start of ``confs`` with ``optimizer`` for ``steps`` steps (one batched relaxation per
    model); +inf where the model's structure fell apart (more fragments than the start).
    """
    from golf.batch import Batch
    from golf.evaluation.scoring import dissociation, model_trajectories
    from golf.models import ModelEnergyForces
    from golf.units import EV_TO_KCAL_MOL

    confs = list(confs)
    if not confs:
        return np.zeros(0)
    ends = [[tr.frames[tr.frame_of_step[-1]] for tr in model_trajectories(m, confs, [steps], optimizer=optimizer)]
            for m in (model, teacher)]
    pairs = [c.with_positions(x) for c, xm, xt in zip(confs, *ends) for x in (xm, xt)]
    energy, _ = ModelEnergyForces(teacher)(Batch.from_conformations(pairs))
    e = energy.detach().double().numpy().reshape(-1, 2)
    broken = np.array([dissociation(c, x) is not None for c, x in zip(confs, ends[0])])
    return np.where(broken, np.inf, (e[:, 0] - e[:, 1]) * EV_TO_KCAL_MOL)


__all__ = ["teacher_drift"]
