"""Batched L-BFGS: every molecule has its own history, step and convergence state; every provider
evaluation is ONE call for all molecules still moving.

History is kept per atom, ``s_hist``/``y_hist`` [N, H, 3] (newest pair last), with per-molecule
``rho`` [B, H] (0 marks an empty slot, which then contributes nothing to the two-loop recursion) and
``n_hist`` [B]. Per-molecule dot products are scatter sums over ``mol_idx``; the only Python loop in a
step runs over history slots, never over molecules.

Presets (``LBFGS_PRESETS``) and what ONE step is for each:

* ``"lbfgs"`` (robust default for users): one step = one position update followed by one provider
  evaluation. ``dr = -lr * H g`` with the two-loop recursion; initial inverse Hessian
  ``gamma = s.y / y.y`` of the newest accepted pair (``1/alpha``, alpha = 70 eV/A^2 as in ASE,
  before any pair); the whole molecule's step is scaled so that no atom moves more than
  ``maxstep`` = 0.2 A; a pair with ``y.s <= curvature_eps`` is not stored; a molecule whose energy
  went up on its last step goes back to the point before that step (stored, no new evaluation), has
  its history reset and its initial inverse Hessian halved, so accepted energies never rise (a
  downhill update that stores no pair, on a molecule without history, doubles it); a
  non-descent direction falls back to steepest descent.
* ``"lbfgs-ase"``: ASE's ``LBFGS`` (fixed H0 = 1/70, maxstep 0.2 A, memory 100, no safeguards), one
  update + one evaluation per step; its trajectory matches ASE step for step.
* ``"lbfgs-golf"``: the GOLF paper's setting, ``torch.optim.LBFGS(lr=1, max_iter=5,
  history_size=100)`` without line search, run per molecule. One step = one ``optimizer.step`` =
  up to 5 inner iterations, each a position update followed by ONE provider evaluation (5 calls per
  step; torch evaluates the 5th update at the start of its next step, here it is evaluated at the
  end of this one, giving the same sequence of positions and the same number of evaluations).
  No step cap, gamma scaling (1 before the first pair), first update ``min(1, 1/|g|_1) * lr`` of
  steepest descent, pairs with ``y.s <= 1e-10`` skipped, inner iterations stop on
  ``g.d > -1e-9``, ``max|d t| <= 1e-9`` or ``|dE| < 1e-9`` as torch does (max over components, as
  torch's ``abs().max()``). The official GOLF code runs this optimizer on its model's energies in
  **Hartree** (forces Hartree/A; ``GOLF/optim/lbfgs.py``, ``GOLF/make_policies.py``), so its constants
  are Hartree-based: ``energy_unit = 1 Hartree`` applies them to golf's eV energies (the first step
  ``min(1, 1/|g|_1)``, the initial inverse Hessian 1 A^2/Hartree, the curvature and change
  tolerances), which reproduces the official trajectory position for position.
* ``"lbfgs-precon"``: ``"lbfgs"`` (same safeguards) with a preconditioned initial inverse Hessian
  ``h0 P^-1``, P = Lindh's model Hessian of each molecule (``golf.optim.precon``), rebuilt when an
  atom moved more than ``precon_rebuild`` = 0.1 A; ``h0`` = gamma in P's metric. About half the
  force evaluations of ``"lbfgs"`` on drug-like molecules; P^-1 costs one batched triangular solve.

In every preset ``n_steps`` counts steps as defined above, ``max_steps`` limits them and a molecule
converges when ``fmax`` (max over atoms of |F|, eV/A) <= ``cfg.fmax`` after any evaluation.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import torch

from golf.batch import Batch, EnergyForces
from golf.optim.precon import PRECONS, PreconCache
from golf.units import HARTREE_TO_EV
from golf.optim.state import (
    ATOM,
    MOL,
    OptimConfig,
    OptimState,
    base_fields,
    cap_step,
    evaluate,
    finish_step,
    mol_dot,
    segment_max,
    segment_sum,
)

ASE_ALPHA = 70.0  # eV/A^2, ASE's initial Hessian guess


@dataclass
class LBFGSConfig(OptimConfig):
    """L-BFGS settings (see the module docstring for the presets).

    Attributes:
        history: H, number of (s, y) pairs kept per molecule.
        maxstep: largest displacement of any atom per update (A); the molecule's whole step is scaled
            down. None: no cap.
        lr: step length multiplier (ASE's damping; torch's lr).
        h0: "gamma" (s.y / y.y of the newest pair) or a fixed inverse Hessian (A^2/eV).
        h0_init: inverse Hessian before any pair is stored and after a reset (A^2/eV).
        first_step: "h0" (dr = h0_init F) or "torch" (dr = min(1, 1/|g|_1) lr F on a molecule's
            very first update, as torch.optim.LBFGS).
        curvature_eps: pairs with y.s <= curvature_eps (eV) are skipped; None keeps every pair (ASE).
        reset_on_uphill: reset a molecule's history when its energy rose on its last update by more
            than uphill_tol (eV) plus float rounding of the energy.
        revert_uphill: also return such a molecule to the point before that update (stored, no new
            evaluation) and halve its initial inverse Hessian, so the accepted energies never rise;
            a downhill update that stores no pair (negative curvature), on a molecule without
            history, doubles it.
        descent_fallback: when the L-BFGS direction is not downhill, take steepest descent and reset.
            Otherwise the molecule does not move in that iteration (torch's break).
        inner_steps: updates (each followed by one evaluation) per step.
        tolerance_grad: inner iterations stop when fmax <= tolerance_grad (eV/A) (torch).
        tolerance_change: inner iterations stop when g.d > -tol, max|dr| <= tol or |dE| < tol.
        precon: None (scalar initial inverse Hessian) or a preconditioner of ``golf.optim.precon``
            ("lindh", "exp"): the initial inverse Hessian is then ``h0 * P^-1`` and ``h0``,
            ``h0_init`` are dimensionless multipliers.
        precon_rebuild: a molecule's P is rebuilt when one of its atoms moved more than this (A)
            since P was last built (ASE uses half the nearest-neighbour distance).
        precon_stab: "lindh": diagonal shift (eV/A^2, default 0.05); "exp": c_stab (units of
            precon_mu, default 0.1).
        precon_mu: "exp" energy scale (eV/A^2).
        energy_unit: eV per energy unit in which ``curvature_eps``, ``tolerance_grad``,
            ``tolerance_change`` (energy and slope tests) and the "torch" first step are stated
            ("lbfgs-golf": 1 Hartree, the official code's unit; ``h0_init`` is in A^2/eV already).
    """

    history: int = 100
    maxstep: float | None = 0.2
    lr: float = 1.0
    h0: str | float = "gamma"
    h0_init: float = 1.0 / ASE_ALPHA
    first_step: str = "h0"
    curvature_eps: float | None = 1e-10
    reset_on_uphill: bool = True
    revert_uphill: bool = True
    uphill_tol: float = 1e-6
    descent_fallback: bool = True
    inner_steps: int = 1
    tolerance_grad: float = 0.0
    tolerance_change: float = 0.0
    precon: str | None = None
    precon_rebuild: float = 0.1
    precon_stab: float | None = None
    precon_mu: float = 10.0
    energy_unit: float = 1.0


LBFGS_PRESETS: dict[str, dict[str, Any]] = {
    "lbfgs": {},
    "lbfgs-ase": dict(
        h0=1.0 / ASE_ALPHA, curvature_eps=None, reset_on_uphill=False, revert_uphill=False,
        descent_fallback=False, tolerance_change=float("-inf"),
    ),
    # official GOLF: torch-style LBFGS(lr=1, max_iter=5) with torch's default tolerances, in Hartree
    "lbfgs-golf": dict(
        maxstep=None, lr=1.0, h0="gamma", h0_init=1.0 / HARTREE_TO_EV, first_step="torch", curvature_eps=1e-10,
        reset_on_uphill=False, revert_uphill=False, descent_fallback=False, inner_steps=5, tolerance_grad=1e-7,
        tolerance_change=1e-9, history=100, energy_unit=HARTREE_TO_EV,
    ),
    "lbfgs-precon": dict(precon="lindh", h0="gamma", h0_init=1.0),
}


@dataclass
class LBFGSState(OptimState):
    """``OptimState`` plus the per-molecule L-BFGS memory.

    Attributes:
        s_hist: position differences [N, H, 3] (A), newest last; zeros in empty slots.
        y_hist: gradient differences [N, H, 3] (eV/A).
        rho: 1 / y.s per pair [B, H] (1/eV); 0 marks an empty slot.
        n_hist: stored pairs per molecule [B].
        h0: current initial inverse Hessian per molecule [B] (A^2/eV).
        prev_positions: positions before the last update [N, 3].
        prev_forces: forces before the last update [N, 3].
        prev_energy: energy before the last update [B].
        has_prev: [B] bool, the molecule has made at least one update.
        last_dr: largest displacement component of the last update [B] (A).
        precon_positions: positions at which each molecule's preconditioner was built [N, 3] (A)
            (unused without ``cfg.precon``).
        precon_cache: the factored preconditioner of the current batch (static, rebuilt on demand).
    """

    s_hist: torch.Tensor = field(default=None, metadata=ATOM)  # [N, H, 3]
    y_hist: torch.Tensor = field(default=None, metadata=ATOM)  # [N, H, 3]
    rho: torch.Tensor = field(default=None, metadata=MOL)  # [B, H]
    n_hist: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    h0: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    prev_positions: torch.Tensor = field(default=None, metadata=ATOM)  # [N, 3]
    prev_forces: torch.Tensor = field(default=None, metadata=ATOM)  # [N, 3]
    prev_energy: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    has_prev: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    last_dr: torch.Tensor = field(default=None, metadata=MOL)  # [B]
    precon_positions: torch.Tensor = field(default=None, metadata=ATOM)  # [N, 3]
    precon_cache: PreconCache | None = None


def lbfgs_config(preset: str = "lbfgs", **overrides: Any) -> LBFGSConfig:
    """The config of a named preset ("lbfgs", "lbfgs-ase", "lbfgs-golf", "lbfgs-precon") with overrides."""
    if preset not in LBFGS_PRESETS:
        raise ValueError(f"unknown L-BFGS preset {preset!r}; choose one of {', '.join(LBFGS_PRESETS)}")
    return LBFGSConfig(**{**LBFGS_PRESETS[preset], **overrides})


def lbfgs_init(
    batch: Batch,
    provider: EnergyForces,
    *,
    ids: torch.Tensor | Sequence[int] | None = None,
    cfg: LBFGSConfig | None = None,
    preset: str = "lbfgs",
    **overrides: Any,
) -> LBFGSState:
    """Start L-BFGS on ``batch``: one provider call for energies and forces at the start.

    Args:
        batch: molecules to relax (positions A).
        provider: energy-and-forces callable (``golf.batch.EnergyForces``).
        ids: caller identifiers [B] carried through select/concat (default 0..B-1).
        cfg: full config; otherwise ``lbfgs_config(preset, **overrides)``.
    """
    if cfg is None:
        cfg = lbfgs_config(preset, **overrides)
    elif overrides:
        cfg = replace(cfg, **overrides)
    if cfg.precon is not None and cfg.precon not in PRECONS:
        raise ValueError(f"unknown preconditioner {cfg.precon!r}; choose one of {', '.join(PRECONS)}")
    B, N, H = batch.n_mols, batch.positions.shape[0], cfg.history
    dev, dt = batch.device, batch.positions.dtype
    h0 = cfg.h0_init if cfg.h0 == "gamma" else float(cfg.h0)
    state = LBFGSState(
        **base_fields(batch, cfg, ids),
        s_hist=torch.zeros((N, H, 3), dtype=dt, device=dev),
        y_hist=torch.zeros((N, H, 3), dtype=dt, device=dev),
        rho=torch.zeros((B, H), dtype=dt, device=dev),
        n_hist=torch.zeros(B, dtype=torch.long, device=dev),
        h0=torch.full((B,), h0, dtype=dt, device=dev),
        prev_positions=batch.positions.clone(),
        prev_forces=torch.zeros((N, 3), dtype=dt, device=dev),
        prev_energy=torch.zeros(B, dtype=dt, device=dev),
        has_prev=torch.zeros(B, dtype=torch.bool, device=dev),
        last_dr=torch.zeros(B, dtype=dt, device=dev),
        precon_positions=batch.positions.clone(),
        precon_cache=PreconCache() if cfg.precon else None,
    )
    return evaluate(state, provider)


def _reset(state: LBFGSState, which: torch.Tensor) -> None:
    """Forget the history of the molecules in ``which`` [B]."""
    cfg = state.cfg
    atoms = which[state.batch.mol_idx]  # [N]
    state.s_hist = state.s_hist.masked_fill(atoms[:, None, None], 0.0)
    state.y_hist = state.y_hist.masked_fill(atoms[:, None, None], 0.0)
    state.rho = state.rho.masked_fill(which[:, None], 0.0)
    state.n_hist = state.n_hist.masked_fill(which, 0)
    h0 = cfg.h0_init if cfg.h0 == "gamma" else float(cfg.h0)
    state.h0 = state.h0.masked_fill(which, h0)


def _h0_default(cfg: LBFGSConfig) -> float:
    return cfg.h0_init if cfg.h0 == "gamma" else float(cfg.h0)


def _precondition(state: LBFGSState, v: torch.Tensor) -> torch.Tensor:
    """P^-1 v for per-atom vectors v [N, 3] (eV/A -> A) with a preconditioner; v itself without.

    A molecule's P is rebuilt (at its current positions) once one of its atoms has moved more than
    ``cfg.precon_rebuild`` (A) since the last build; otherwise the cached factorization is reused.
    """
    mi, B, cfg = state.batch.mol_idx, state.batch.n_mols, state.cfg
    if cfg.precon is None:
        return v
    pos = state.batch.positions
    moved = segment_max((pos - state.precon_positions).norm(dim=-1), mi, B) > cfg.precon_rebuild  # [B]
    if bool(moved.any()):
        state.precon_positions = torch.where(moved[mi, None], pos, state.precon_positions)
    if state.precon_cache is None:
        state.precon_cache = PreconCache()
    pc = state.precon_cache.get(
        state.ids, state.precon_positions, state.batch.numbers, mi, B, cfg.precon, cfg.precon_stab, cfg.precon_mu
    )
    return pc.solve(v, mi)


def _h0_apply(state: LBFGSState, v: torch.Tensor) -> torch.Tensor:
    """The initial inverse Hessian times v [N, 3]: ``h0 v``, or ``h0 P^-1 v`` with a preconditioner (A)."""
    return state.h0[state.batch.mol_idx, None] * _precondition(state, v)


def _revert(state: LBFGSState, which: torch.Tensor) -> None:
    """Undo the last update of the molecules in ``which`` [B] (back to the stored previous point)."""
    mi, B = state.batch.mol_idx, state.batch.n_mols
    atoms = which[mi][:, None]  # [N, 1]
    state.batch = state.batch.with_positions(torch.where(atoms, state.prev_positions, state.batch.positions))
    state.forces = torch.where(atoms, state.prev_forces, state.forces)
    state.energy = torch.where(which, state.prev_energy, state.energy)
    prev_fmax = segment_max(state.prev_forces.norm(dim=-1), mi, B)  # [B]
    state.fmax = torch.where(which, prev_fmax, state.fmax)
    state.has_prev = state.has_prev & ~which


def _update_history(state: LBFGSState, which: torch.Tensor) -> None:
    """Store the pair of the last update for molecules in ``which`` [B] (that have one)."""
    cfg, batch = state.cfg, state.batch
    mi, B = batch.mol_idx, batch.n_mols
    upd = which & state.has_prev  # [B]
    if not bool(upd.any()):
        return
    h0_used = state.h0.clone()  # [B]
    if cfg.reset_on_uphill:
        eps = torch.finfo(state.energy.dtype).eps
        tol = cfg.uphill_tol + 8 * eps * state.prev_energy.abs()  # [B]
        uphill = upd & (state.energy > state.prev_energy + tol)
        if bool(uphill.any()):
            if cfg.revert_uphill:
                _revert(state, uphill)
            _reset(state, uphill)
            if cfg.revert_uphill:
                state.h0 = torch.where(uphill, 0.5 * torch.clamp(h0_used, max=_h0_default(cfg)), state.h0)
            upd = upd & ~uphill
    s = state.batch.positions - state.prev_positions  # [N, 3]
    y = state.prev_forces - state.forces  # [N, 3] = g - g_prev
    ys = mol_dot(s, y, mi, B)  # [B]
    push = upd if cfg.curvature_eps is None else upd & (ys > cfg.curvature_eps * cfg.energy_unit)
    if cfg.revert_uphill:
        # A downhill update whose pair is skipped (no positive curvature along it) leaves a molecule
        # without history on steepest descent; the quadratic model has no minimum along such a
        # stretch, so the step grows (doubles) until the energy rises (revert: halved) or a pair is
        # stored (gamma). Without it the h0 that reverts had halved never grew back, and a molecule
        # on a concave stretch (a soft torsion) crawled: a DFT reference took 45 steps of 5e-4 A at
        # max|F| 0.05 eV/A. ``maxstep`` still bounds every update.
        grow = upd & ~push & (state.n_hist == 0)
        state.h0 = torch.where(grow, 2.0 * state.h0, state.h0)
    if not bool(push.any()):
        return
    atoms = push[mi][:, None, None]  # [N, 1, 1]
    state.s_hist = torch.where(atoms, torch.cat([state.s_hist[:, 1:], s[:, None]], 1), state.s_hist)
    state.y_hist = torch.where(atoms, torch.cat([state.y_hist[:, 1:], y[:, None]], 1), state.y_hist)
    rho_new = 1.0 / torch.where(push, ys, torch.ones_like(ys))  # [B]
    state.rho = torch.where(push[:, None], torch.cat([state.rho[:, 1:], rho_new[:, None]], 1), state.rho)
    state.n_hist = torch.where(push, torch.clamp(state.n_hist + 1, max=cfg.history), state.n_hist)
    if cfg.h0 == "gamma":
        # With P, gamma = s.y / y.P^-1 y (the P-norm analogue of s.y / y.y: if the true Hessian
        # were c P it returns 1/c). ASE's PreconLBFGS keeps gamma = 1 and trusts P's scale, which
        # is safe only with its line search. On GOLF-10k / NCI molecules gamma comes out 0.1-1
        # (the NNP is stiffer than Lindh's model along the steps taken), and a fixed 1 without line
        # search made 1 of 12 molecules oscillate to max_steps while gamma needed ~27 evaluations.
        yy = mol_dot(y, _precondition(state, y), mi, B)  # [B]
        gamma = ys / torch.where(yy > 0, yy, torch.ones_like(yy))
        state.h0 = torch.where(push & (yy > 0), gamma, state.h0)


def _direction(state: LBFGSState, which: torch.Tensor) -> torch.Tensor:
    """L-BFGS search direction p = -H g [N, 3] (two-loop recursion over history slots)."""
    mi, B, H = state.batch.mol_idx, state.batch.n_mols, state.cfg.history
    q = -state.forces  # [N, 3], the gradient
    k = int(state.n_hist[which].max()) if bool(which.any()) else 0
    slots = range(H - k, H)
    alphas: dict[int, torch.Tensor] = {}
    for i in reversed(slots):
        a = state.rho[:, i] * mol_dot(state.s_hist[:, i], q, mi, B)  # [B]
        alphas[i] = a
        q = q - a[mi, None] * state.y_hist[:, i]
    z = _h0_apply(state, q)  # [N, 3]
    for i in slots:
        b = state.rho[:, i] * mol_dot(state.y_hist[:, i], z, mi, B)  # [B]
        z = z + state.s_hist[:, i] * (alphas[i] - b)[mi, None]
    return -z


def _update_positions(state: LBFGSState, which: torch.Tensor) -> torch.Tensor:
    """One L-BFGS update of the molecules in ``which`` [B]; returns the [B] mask of those that moved."""
    _update_history(state, which)  # may move reverted molecules back
    cfg, batch = state.cfg, state.batch
    mi, B = batch.mol_idx, batch.n_mols
    p = _direction(state, which)  # [N, 3]
    gtd = -mol_dot(state.forces, p, mi, B)  # [B], g.d
    moved = which.clone()
    tol = cfg.tolerance_change * cfg.energy_unit
    bad = which & ~(gtd < -tol) if tol != float("-inf") else torch.zeros_like(which)
    if bool(bad.any()):
        if cfg.descent_fallback:
            _reset(state, bad)
            p = torch.where(bad[mi, None], _h0_apply(state, state.forces), p)
        else:
            moved = moved & ~bad
    dr = cfg.lr * p  # [N, 3]
    if cfg.first_step == "torch":
        first = moved & ~state.has_prev  # [B]
        if bool(first.any()):
            g = state.forces / cfg.energy_unit  # [N, 3], minus the gradient in the optimizer's unit
            l1 = segment_sum(g.abs().sum(-1), mi, B)  # [B], |g|_1
            t = torch.clamp(1.0 / l1, max=1.0) * cfg.lr  # [B]
            dr = torch.where(first[mi, None], g * t[mi, None], dr)
    dr = cap_step(dr, cfg.maxstep, mi, B)
    atoms = moved[mi][:, None]  # [N, 1]
    dr = torch.where(atoms, dr, torch.zeros_like(dr))
    state.prev_positions = torch.where(atoms, batch.positions, state.prev_positions)
    state.prev_forces = torch.where(atoms, state.forces, state.prev_forces)
    state.prev_energy = torch.where(moved, state.energy, state.prev_energy)
    state.has_prev = state.has_prev | moved
    state.last_dr = torch.where(moved, segment_max(dr.abs().amax(-1), mi, B), state.last_dr)
    state.batch = batch.with_positions(batch.positions + dr)
    return moved


def _grad_small(state: LBFGSState) -> torch.Tensor:
    """[B] torch's optimality test: max |gradient component| <= tolerance_grad (optimizer's unit)."""
    cfg, mi = state.cfg, state.batch.mol_idx
    gmax = segment_max(state.forces.abs().amax(-1), mi, state.batch.n_mols)  # [B] eV/A
    return gmax <= cfg.tolerance_grad * cfg.energy_unit


def lbfgs_step(state: LBFGSState, provider: EnergyForces) -> LBFGSState:
    """One L-BFGS step of every active molecule (``cfg.inner_steps`` updates, each followed by ONE
    provider call on the molecules that moved). Done molecules are left untouched."""
    cfg = state.cfg
    running = state.active  # [B]
    # a molecule already below torch's tolerance_grad does not move, but its step still counts (as a
    # torch ``optimizer.step`` that returns at once), so the step limit ends it
    stepped = running.clone()
    if cfg.tolerance_grad > 0:
        running = running & ~_grad_small(state)
    for _ in range(cfg.inner_steps):
        if not bool(running.any()):
            break
        moved = _update_positions(state, running)
        running = running & moved
        if not bool(moved.any()):
            break
        evaluate(state, provider, moved)
        running = running & ~state.converged & ~state.failed
        if cfg.tolerance_grad > 0:
            running = running & ~_grad_small(state)
        if cfg.tolerance_change > 0:
            small = (state.last_dr <= cfg.tolerance_change) | (
                (state.energy - state.prev_energy).abs() < cfg.tolerance_change * cfg.energy_unit
            )
            running = running & ~small
    return finish_step(state, stepped)
