"""Batched FIRE with ASE's parameters and semantics (``ase.optimize.FIRE``), per molecule.

One step = one velocity/position update followed by ONE provider call for all active molecules.
As in ASE the velocity is mixed towards the force when ``v.F > 0`` (after ``Nmin`` such steps the time
step grows by ``finc`` up to ``dtmax`` and the mixing ``a`` decays by ``fa``); otherwise the velocity is
zeroed, ``a`` reset to ``astart`` and ``dt`` cut by ``fdec``. The whole molecule's displacement vector
is scaled to norm ``maxstep`` (A) when longer (ASE caps the norm of the whole vector, not per atom).
Masses are 1 (ASE's FIRE ignores them too).
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import torch

from golf.batch import Batch, EnergyForces
from golf.optim.state import ATOM, MOL, OptimConfig, OptimState, base_fields, evaluate, finish_step, mol_dot


@dataclass
class FIREConfig(OptimConfig):
    """ASE FIRE defaults: dt 0.1, maxstep 0.2 A, dtmax 1.0, Nmin 5, finc 1.1, fdec 0.5, astart 0.1, fa 0.99."""

    dt: float = 0.1
    maxstep: float = 0.2
    dtmax: float = 1.0
    nmin: int = 5
    finc: float = 1.1
    fdec: float = 0.5
    astart: float = 0.1
    fa: float = 0.99


@dataclass
class FIREState(OptimState):
    """``OptimState`` plus velocities [N, 3], time step dt [B], mixing a [B], downhill count [B]."""

    velocity: torch.Tensor = field(default=None, metadata=ATOM)  # [N, 3]
    dt: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    a: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    n_pos: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    started: torch.Tensor = field(default=None, metadata=MOL)  # [B] bool


def fire_init(
    batch: Batch,
    provider: EnergyForces,
    *,
    ids: torch.Tensor | Sequence[int] | None = None,
    cfg: FIREConfig | None = None,
    **overrides: Any,
) -> FIREState:
    """Start FIRE on ``batch`` (one provider call)."""
    cfg = FIREConfig(**overrides) if cfg is None else replace(cfg, **overrides)
    B, N = batch.n_mols, batch.positions.shape[0]
    dev, dt = batch.device, batch.positions.dtype
    state = FIREState(
        **base_fields(batch, cfg, ids),
        velocity=torch.zeros((N, 3), dtype=dt, device=dev),
        dt=torch.full((B,), cfg.dt, dtype=dt, device=dev),
        a=torch.full((B,), cfg.astart, dtype=dt, device=dev),
        n_pos=torch.zeros(B, dtype=torch.long, device=dev),
        started=torch.zeros(B, dtype=torch.bool, device=dev),
    )
    return evaluate(state, provider)


def fire_step(state: FIREState, provider: EnergyForces) -> FIREState:
    """One FIRE step of every active molecule, then one provider call for them."""
    cfg, batch = state.cfg, state.batch
    mi, B = batch.mol_idx, batch.n_mols
    act = state.active  # [B]
    if not bool(act.any()):
        return state
    f, v = state.forces, state.velocity  # [N, 3]
    vf = mol_dot(f, v, mi, B)  # [B]
    ff = mol_dot(f, f, mi, B)  # [B]
    vv = mol_dot(v, v, mi, B)  # [B]
    up = act & state.started & (vf > 0)  # [B] mix towards F
    down = act & state.started & ~(vf > 0)  # [B] stop
    mix = (state.a * torch.sqrt(vv) / torch.sqrt(torch.clamp(ff, min=torch.finfo(ff.dtype).tiny)))  # [B]
    v_up = (1 - state.a)[mi, None] * v + mix[mi, None] * f  # [N, 3]
    v = torch.where(up[mi, None], v_up, torch.where(down[mi, None], torch.zeros_like(v), v))
    grow = up & (state.n_pos > cfg.nmin)
    state.dt = torch.where(grow, torch.clamp(state.dt * cfg.finc, max=cfg.dtmax), state.dt)
    state.a = torch.where(grow, state.a * cfg.fa, state.a)
    state.n_pos = torch.where(up, state.n_pos + 1, torch.where(down, torch.zeros_like(state.n_pos), state.n_pos))
    state.a = torch.where(down, torch.full_like(state.a, cfg.astart), state.a)
    state.dt = torch.where(down, state.dt * cfg.fdec, state.dt)
    atoms = act[mi, None]  # [N, 1]
    v = torch.where(atoms, v + state.dt[mi, None] * f, v)
    dr = state.dt[mi, None] * v  # [N, 3]
    norm = torch.sqrt(mol_dot(dr, dr, mi, B))  # [B]
    scale = torch.where(norm > cfg.maxstep, cfg.maxstep / torch.clamp(norm, min=torch.finfo(norm.dtype).tiny), torch.ones_like(norm))
    dr = torch.where(atoms, dr * scale[mi, None], torch.zeros_like(dr))
    state.velocity = v
    state.started = state.started | act
    state.batch = batch.with_positions(batch.positions + dr)
    evaluate(state, provider, act)
    return finish_step(state, act)
