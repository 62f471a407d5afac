"""Optimizer state shared by all batched optimizers, and the operations on it.

An optimizer is a pair of functions ``init(batch, provider, **cfg) -> state`` and
``step(state, provider) -> state`` (TorchSim / JAX-MD style). The state is a plain dataclass: a
``Batch`` (flat atoms + ``mol_idx``), the energy and forces at the current positions, per-molecule
counters and flags, and optimizer-specific tensors declared as extra dataclass fields.

Every tensor field is tagged with its leading dimension in the field metadata: ``"mol"`` ([B, ...]),
``"atom"`` ([N, ...]) or nothing (static: config, shared by all molecules). That tag is all
``select`` (keep some molecules) and ``concat`` (add new molecules) need, so a molecule keeps its
history, step count and flags when others leave or join the batch (the GOLF loop ends episodes and
starts new ones between steps).

Shapes: N atoms, B molecules, H L-BFGS history. Energies eV, forces eV/A, positions A.
Steps mutate the state's tensors in place and return the same object.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Sequence, TypeVar

import torch

from golf.batch import Batch, EnergyForces
from golf.thresholds import NNP_FMAX, NNP_MAX_STEPS

MOL = {"dim": "mol"}
ATOM = {"dim": "atom"}

#: Reasons a molecule stops. ``reasons[b]`` is "" while it is running.
CONVERGED = "converged"
MAX_STEPS = "max_steps"
NON_FINITE = "non-finite energy or forces"
NON_FINITE_POSITIONS = "non-finite coordinates"
EXPLODING = "exploding forces"


@dataclass
class OptimConfig:
    """Stopping rules shared by every optimizer.

    Attributes:
        fmax: a molecule converges when max over atoms of |F| <= fmax (eV/A). Use 0 to never converge.
        max_steps: a molecule stops (reason "max_steps") after this many steps of its optimizer.
        max_force: a molecule fails (reason "exploding forces") when any |F| exceeds this (eV/A).
    """

    fmax: float = NNP_FMAX
    max_steps: int = NNP_MAX_STEPS
    max_force: float = 1.0e3


@dataclass
class OptimState:
    """State of a batched optimization (base class; optimizers add fields).

    Attributes:
        batch: the molecules at their current positions (flat atoms, ``mol_idx``).
        energy: energy at the current positions [B], eV (NaN when the provider failed).
        forces: forces at the current positions [N, 3], eV/A.
        fmax: max over atoms of |F| per molecule [B], eV/A.
        n_steps: optimizer steps taken per molecule [B], int64.
        n_force_calls: provider evaluations per molecule [B] (the initial one included), int64.
        converged: [B] bool, fmax reached.
        failed: [B] bool, stopped by non-finite positions/energy/forces or exploding forces (a
            non-finite failure has energy NaN).
        reasons: per-molecule stop reason ("" while running), list of B str.
        ids: caller's identifiers [B], int64 (follow the molecules through select/concat).
        cfg: optimizer config (static, shared by all molecules).
    """

    batch: Batch
    energy: torch.Tensor = field(metadata=MOL)  # [B]
    forces: torch.Tensor = field(metadata=ATOM)  # [N, 3]
    fmax: torch.Tensor = field(metadata=MOL)  # [B]
    n_steps: torch.Tensor = field(metadata=MOL)  # [B]
    n_force_calls: torch.Tensor = field(metadata=MOL)  # [B]
    converged: torch.Tensor = field(metadata=MOL)  # [B]
    failed: torch.Tensor = field(metadata=MOL)  # [B]
    reasons: list[str] = field(metadata=MOL)  # B
    ids: torch.Tensor = field(metadata=MOL)  # [B]
    cfg: Any

    @property
    def n_mols(self) -> int:
        return self.batch.n_mols

    @property
    def done(self) -> torch.Tensor:
        """[B] bool: converged, failed or out of steps (such molecules are never moved again)."""
        return self.converged | self.failed | (self.n_steps >= self.cfg.max_steps)

    @property
    def active(self) -> torch.Tensor:
        """[B] bool: still being optimized."""
        return ~self.done

    @property
    def positions(self) -> torch.Tensor:
        return self.batch.positions


S = TypeVar("S", bound=OptimState)


# ----------------------------------------------------------------------------------- reductions
def segment_sum(x: torch.Tensor, mol_idx: torch.Tensor, n_mols: int) -> torch.Tensor:
    """Sum a per-atom tensor [N, ...] over the atoms of each molecule -> [B, ...]."""
    out = torch.zeros((n_mols,) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    return out.index_add_(0, mol_idx, x)


def segment_max(x: torch.Tensor, mol_idx: torch.Tensor, n_mols: int) -> torch.Tensor:
    """Max of a per-atom tensor [N] over the atoms of each molecule -> [B] (NaN propagates)."""
    out = torch.full((n_mols,), float("-inf"), dtype=x.dtype, device=x.device)
    out = out.scatter_reduce(0, mol_idx, x, reduce="amax", include_self=True)
    has_nan = segment_sum(torch.isnan(x).to(x.dtype), mol_idx, n_mols) > 0  # [B]
    return torch.where(has_nan, torch.full_like(out, float("nan")), out)


def mol_dot(a: torch.Tensor, b: torch.Tensor, mol_idx: torch.Tensor, n_mols: int) -> torch.Tensor:
    """Per-molecule dot product of two per-atom vectors [N, 3] -> [B]."""
    return segment_sum((a * b).sum(-1), mol_idx, n_mols)


# --------------------------------------------------------------------------------- evaluation
def evaluate(state: OptimState, provider: EnergyForces, which: torch.Tensor | None = None) -> OptimState:
    """Energy and forces at the current positions for the molecules in ``which`` [B] bool (default all).

    ONE provider call on the sub-batch of those molecules; the others keep their values. Increments
    ``n_force_calls`` and stops molecules whose energy/forces are non-finite or whose largest force
    exceeds ``cfg.max_force`` (failed, with a reason). A molecule in ``which`` whose positions are
    non-finite is failed without being passed to the provider (which may return a finite energy
    for them, or fail the whole call). Never raises for a bad molecule.
    """
    batch = state.batch
    if which is None:
        which = torch.ones(batch.n_mols, dtype=torch.bool, device=batch.device)
    which = _drop_non_finite_positions(state, which)
    n_sel = int(which.sum())
    if n_sel == 0:
        return state
    everyone = n_sel == batch.n_mols
    sub = batch if everyone else batch.select(which)
    ids = state.ids if everyone else state.ids[which]
    if getattr(provider, "uses_ids", False):
        energy, forces = provider(sub, ids=ids)
    else:
        energy, forces = provider(sub)
    dtype = state.forces.dtype
    energy = energy.detach().to(device=batch.device, dtype=dtype).reshape(-1)  # [B']
    forces = forces.detach().to(device=batch.device, dtype=dtype).reshape(-1, 3)  # [N', 3]
    fnorm = forces.norm(dim=-1)  # [N']
    fmax = segment_max(fnorm, sub.mol_idx, sub.n_mols)  # [B']
    if everyone:
        state.energy = energy
        state.forces = forces
        state.fmax = fmax
    else:
        atom_sel = which[batch.mol_idx]  # [N]
        state.energy = state.energy.masked_scatter(which, energy)
        state.forces = state.forces.masked_scatter(atom_sel[:, None], forces)
        state.fmax = state.fmax.masked_scatter(which, fmax)
    state.n_force_calls = state.n_force_calls + which.long()
    _check(state, which)
    return state


def _drop_non_finite_positions(state: OptimState, which: torch.Tensor) -> torch.Tensor:
    """Fail the molecules in ``which`` [B] with non-finite positions; returns ``which`` without them."""
    batch = state.batch
    bad_atoms = ~torch.isfinite(batch.positions).all(-1)  # [N]
    if not bool(bad_atoms.any()):
        return which
    bad = which & (segment_sum(bad_atoms.long(), batch.mol_idx, batch.n_mols) > 0)  # [B]
    if not bool(bad.any()):
        return which
    state.failed = state.failed | bad
    state.converged = state.converged & ~bad
    state.energy = state.energy.masked_fill(bad, float("nan"))
    state.fmax = state.fmax.masked_fill(bad, float("nan"))
    for b in torch.nonzero(bad).flatten().tolist():
        state.reasons[b] = NON_FINITE_POSITIONS
    return which & ~bad


def _check(state: OptimState, which: torch.Tensor) -> None:
    """Mark molecules in ``which`` [B] as converged / failed, with reasons."""
    finite = torch.isfinite(state.energy) & torch.isfinite(state.fmax)  # [B]
    non_finite = which & ~finite & ~state.failed
    exploding = which & finite & (state.fmax > state.cfg.max_force) & ~state.failed
    conv = which & finite & ~exploding & (state.fmax <= state.cfg.fmax)
    state.failed = state.failed | non_finite | exploding
    state.converged = (state.converged | conv) & ~state.failed
    state.energy = state.energy.masked_fill(non_finite, float("nan"))
    if bool(non_finite.any() | exploding.any() | conv.any()):
        for b in torch.nonzero(non_finite).flatten().tolist():
            state.reasons[b] = NON_FINITE
        for b in torch.nonzero(exploding).flatten().tolist():
            state.reasons[b] = f"{EXPLODING} (|F| = {float(state.fmax[b]):.3g} eV/A > {state.cfg.max_force:g})"
        for b in torch.nonzero(conv).flatten().tolist():
            if not state.reasons[b]:
                state.reasons[b] = CONVERGED


def finish_step(state: OptimState, stepped: torch.Tensor) -> OptimState:
    """Count one step for the molecules in ``stepped`` [B] and flag those that hit ``max_steps``."""
    state.n_steps = state.n_steps + stepped.long()
    out = stepped & ~state.converged & ~state.failed & (state.n_steps >= state.cfg.max_steps)
    for b in torch.nonzero(out).flatten().tolist():
        state.reasons[b] = MAX_STEPS
    return state


def base_fields(batch: Batch, cfg: Any, ids: torch.Tensor | Sequence[int] | None) -> dict[str, Any]:
    """Fields of a fresh ``OptimState`` for ``batch`` before its first evaluation."""
    B, N = batch.n_mols, batch.positions.shape[0]
    dev, dt = batch.device, batch.positions.dtype
    if ids is None:
        ids = torch.arange(B, device=dev)
    ids = torch.as_tensor(ids, dtype=torch.long, device=dev).reshape(-1)
    if len(ids) != B:
        raise ValueError(f"{len(ids)} ids for {B} molecules")
    zeros_b = torch.zeros(B, dtype=torch.long, device=dev)
    return dict(
        batch=batch,
        energy=torch.full((B,), float("nan"), dtype=dt, device=dev),
        forces=torch.zeros((N, 3), dtype=dt, device=dev),
        fmax=torch.full((B,), float("nan"), dtype=dt, device=dev),
        n_steps=zeros_b.clone(),
        n_force_calls=zeros_b.clone(),
        converged=torch.zeros(B, dtype=torch.bool, device=dev),
        failed=torch.zeros(B, dtype=torch.bool, device=dev),
        reasons=[""] * B,
        ids=ids,
        cfg=cfg,
    )


# ------------------------------------------------------------------------ select / concat
def select(state: S, keep: torch.Tensor) -> S:
    """A new state with only the molecules where ``keep`` [B] (bool) is true, in order.

    Every per-molecule and per-atom field (histories, velocities, counters, reasons) is carried along.
    """
    keep = keep.to(torch.bool)
    atom_keep = keep[state.batch.mol_idx]  # [N]
    values: dict[str, Any] = {}
    for f in dataclasses.fields(state):
        v = getattr(state, f.name)
        dim = f.metadata.get("dim")
        if f.name == "batch":
            values[f.name] = v.select(keep)
        elif dim == "mol":
            values[f.name] = [r for r, k in zip(v, keep.tolist()) if k] if isinstance(v, list) else v[keep]
        elif dim == "atom":
            values[f.name] = v[atom_keep]
        else:
            values[f.name] = v
    return type(state)(**values)


def concat_batches(batches: Sequence[Batch]) -> Batch:
    """One batch holding the molecules of ``batches`` in order."""
    offsets, total = [], 0
    for b in batches:
        offsets.append(total)
        total += b.n_mols
    return Batch(
        torch.cat([b.numbers for b in batches]),
        torch.cat([b.positions for b in batches]),
        torch.cat([b.mol_idx + o for b, o in zip(batches, offsets)]),
        total,
    )


def concat(states: Sequence[S]) -> S:
    """One state with the molecules of ``states`` in order (all of the same type; config of the first).

    Use it to add freshly initialised molecules to a running optimization.
    """
    states = [s for s in states if s is not None]
    if not states:
        raise ValueError("nothing to concatenate")
    if len(states) == 1:
        return states[0]
    kind = type(states[0])
    if any(type(s) is not kind for s in states):
        raise TypeError("cannot concatenate states of different optimizers")
    values: dict[str, Any] = {}
    for f in dataclasses.fields(states[0]):
        vs = [getattr(s, f.name) for s in states]
        dim = f.metadata.get("dim")
        if f.name == "batch":
            values[f.name] = concat_batches(vs)
        elif dim in ("mol", "atom"):
            values[f.name] = sum(vs, []) if isinstance(vs[0], list) else torch.cat(vs)
        else:
            values[f.name] = vs[0]
    return kind(**values)


def cap_step(dr: torch.Tensor, maxstep: float | None, mol_idx: torch.Tensor, n_mols: int) -> torch.Tensor:
    """Scale each molecule's step [N, 3] so that no atom moves more than ``maxstep`` (A)."""
    if maxstep is None:
        return dr
    longest = segment_max(dr.norm(dim=-1), mol_idx, n_mols)  # [B]
    scale = torch.clamp(maxstep / torch.clamp(longest, min=torch.finfo(dr.dtype).tiny), max=1.0)  # [B]
    return dr * scale[mol_idx, None]
