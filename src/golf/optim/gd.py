"""Batched steepest descent: ``dr = lr * F`` per molecule, the whole molecule's step scaled so that no
atom moves more than ``maxstep`` (A). One step = one update followed by ONE provider call for all
active molecules. A baseline to compare L-BFGS and FIRE against.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

import torch

from golf.batch import Batch, EnergyForces
from golf.optim.state import OptimConfig, OptimState, base_fields, cap_step, evaluate, finish_step


@dataclass
class GDConfig(OptimConfig):
    """lr: step per unit force (A^2/eV); maxstep: largest atom displacement per step (A), None = no cap."""

    lr: float = 0.01
    maxstep: float | None = 0.2


@dataclass
class GDState(OptimState):
    """Gradient descent needs nothing beyond ``OptimState``."""


def gd_init(
    batch: Batch,
    provider: EnergyForces,
    *,
    ids: torch.Tensor | Sequence[int] | None = None,
    cfg: GDConfig | None = None,
    **overrides: Any,
) -> GDState:
    """Start gradient descent on ``batch`` (one provider call)."""
    cfg = GDConfig(**overrides) if cfg is None else replace(cfg, **overrides)
    return evaluate(GDState(**base_fields(batch, cfg, ids)), provider)


def gd_step(state: GDState, provider: EnergyForces) -> GDState:
    """One steepest-descent step of every active molecule, then one provider call for them."""
    batch, cfg = state.batch, state.cfg
    act = state.active  # [B]
    if not bool(act.any()):
        return state
    dr = cap_step(cfg.lr * state.forces, cfg.maxstep, batch.mol_idx, batch.n_mols)  # [N, 3]
    dr = torch.where(act[batch.mol_idx, None], dr, torch.zeros_like(dr))
    state.batch = batch.with_positions(batch.positions + dr)
    evaluate(state, provider, act)
    return finish_step(state, act)
