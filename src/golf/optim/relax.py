"""The relaxation driver: run a batched optimizer over many conformations until each converges,
fails or hits its step limit. Finished molecules leave the batch (it is compacted) and, when
``batch_size`` limits the active molecules, waiting conformations stream in to take their place.

No I/O here: the CLI (``golf optimize``) and the GOLF loop read and write files.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from golf.batch import Batch, EnergyForces
from golf.conformation import Conformation
from golf.optim.fire import fire_init, fire_step
from golf.optim.gd import gd_init, gd_step
from golf.optim.lbfgs import LBFGS_PRESETS, lbfgs_init, lbfgs_step
from golf.optim.state import OptimState, concat, select

#: Default convergence threshold (eV/A): ASE's default and the usual one for molecular relaxations.
DEFAULT_FMAX = 0.05
#: Default step limit per molecule.
DEFAULT_MAX_STEPS = 1000

METHODS = tuple(LBFGS_PRESETS) + ("fire", "gd")


def get_optimizer(method: str) -> tuple[Callable[..., OptimState], Callable[..., OptimState], dict[str, Any]]:
    """``(init_fn, step_fn, preset_kwargs)`` of a method name in ``METHODS``."""
    if method in LBFGS_PRESETS:
        return lbfgs_init, lbfgs_step, {"preset": method}
    if method == "fire":
        return fire_init, fire_step, {}
    if method == "gd":
        return gd_init, gd_step, {}
    raise ValueError(f"unknown optimizer {method!r}; choose one of {', '.join(METHODS)}")


@dataclass
class RelaxRecord:
    """The relaxation of one conformation.

    Attributes:
        positions: final coordinates [n, 3] (A).
        energy: final energy (eV; NaN when the provider failed).
        fmax: final max over atoms of |F| (eV/A).
        n_steps: optimizer steps (see the optimizer's definition of a step).
        n_force_calls: provider evaluations, the initial one included.
        converged: fmax reached.
        reason: "converged", "max_steps", or why the molecule failed.
        trajectory_positions: [T, n, 3] (A) at the start and after every step (T = n_steps + 1),
            when requested.
        trajectory_energies: [T] (eV).
        trajectory_fmax: [T] (eV/A).
    """

    positions: np.ndarray
    energy: float
    fmax: float
    n_steps: int
    n_force_calls: int
    converged: bool
    reason: str
    trajectory_positions: np.ndarray | None = None
    trajectory_energies: np.ndarray | None = None
    trajectory_fmax: np.ndarray | None = None


class _Trajectories:
    """Per-step snapshots of the active molecules, assembled per molecule at the end."""

    def __init__(self) -> None:
        self.frames: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []

    def record(self, state: OptimState, which: torch.Tensor | None = None) -> None:
        s = state if which is None else select(state, which)
        if s.n_mols == 0:
            return
        self.frames.append((
            s.ids.cpu().numpy(),
            s.batch.positions.detach().cpu().numpy().astype(np.float64),
            s.batch.n_atoms.cpu().numpy(),
            s.energy.detach().cpu().numpy().astype(np.float64),
            s.fmax.detach().cpu().numpy().astype(np.float64),
        ))

    def assemble(self, n: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        pos: list[list[np.ndarray]] = [[] for _ in range(n)]
        ene: list[list[float]] = [[] for _ in range(n)]
        fmx: list[list[float]] = [[] for _ in range(n)]
        for ids, positions, counts, energies, fmaxes in self.frames:
            for i, p, e, f in zip(ids, np.split(positions, np.cumsum(counts)[:-1]), energies, fmaxes):
                pos[i].append(p)
                ene[i].append(e)
                fmx[i].append(f)
        return [(np.stack(p), np.asarray(e), np.asarray(f)) for p, e, f in zip(pos, ene, fmx)]


def _to_batch(
    confs_or_batch: Sequence[Conformation] | Batch, device: torch.device | str, dtype: torch.dtype
) -> tuple[Batch, list[int]]:
    if isinstance(confs_or_batch, Batch):
        b = confs_or_batch
        b = Batch(b.numbers.to(device), b.positions.to(device=device, dtype=dtype), b.mol_idx.to(device), b.n_mols)
        return b, b.n_atoms.tolist()
    confs = list(confs_or_batch)
    return Batch.from_conformations(confs, device=device, dtype=dtype), [c.n_atoms for c in confs]


def relax(
    provider: EnergyForces,
    confs_or_batch: Sequence[Conformation] | Batch,
    method: str = "lbfgs",
    fmax: float = DEFAULT_FMAX,
    max_steps: int = DEFAULT_MAX_STEPS,
    batch_size: int | None = None,
    trajectory: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int], None] | None = None,
    **cfg: Any,
) -> list[RelaxRecord]:
    """Relax every conformation with a batched optimizer; one record per input, in input order.

    Args:
        provider: energy-and-forces callable (an NNP via ``golf.models.ModelEnergyForces``, or an
            oracle via ``golf.optim.providers.OracleEnergyForces``; ids passed when it wants them).
        confs_or_batch: conformations, or a ``Batch``.
        method: "lbfgs" (robust default), "lbfgs-precon" (the same with a molecular preconditioner:
            about half the force evaluations), "lbfgs-ase", "lbfgs-golf", "fire" or "gd".
        fmax: convergence threshold on max over atoms of |F| (eV/A).
        max_steps: step limit per molecule.
        batch_size: at most this many molecules are optimized at once (others wait and stream in as
            molecules finish); None: all at once.
        trajectory: keep positions, energies and fmax at the start and after every step.
        device, dtype: where and in which precision the optimizer runs.
        progress: called with the number of molecules that just finished (for a progress bar).
        **cfg: optimizer settings (``LBFGSConfig``, ``FIREConfig``, ``GDConfig`` fields).

    Failures (NaN or exploding forces) stop only the molecule concerned (``reason`` says why).
    """
    init_fn, step_fn, preset = get_optimizer(method)
    batch, counts = _to_batch(confs_or_batch, device, dtype)
    n = batch.n_mols
    if n == 0:
        return []
    size = n if batch_size is None else max(1, int(batch_size))
    refill = max(1, size // 8)  # add newcomers in chunks so each join costs one call for several
    kwargs = dict(preset, fmax=fmax, max_steps=max_steps, **cfg)
    traj = _Trajectories() if trajectory else None
    results: dict[int, RelaxRecord] = {}
    next_id = 0

    def start(k: int) -> OptimState:
        nonlocal next_id
        ids = torch.arange(next_id, next_id + k, device=batch.device)
        mask = torch.zeros(n, dtype=torch.bool, device=batch.device)
        mask[next_id:next_id + k] = True
        next_id += k
        new = init_fn(batch.select(mask), provider, ids=ids, **kwargs)
        if traj is not None:
            traj.record(new)
        return new

    def harvest(state: OptimState) -> OptimState:
        done = state.done
        if not bool(done.any()):
            return state
        fin = select(state, done)
        pos = fin.batch.split(fin.batch.positions.detach().cpu().to(torch.float64))
        for j, i in enumerate(fin.ids.tolist()):
            results[i] = RelaxRecord(
                positions=pos[j].numpy(),
                energy=float(fin.energy[j]),
                fmax=float(fin.fmax[j]),
                n_steps=int(fin.n_steps[j]),
                n_force_calls=int(fin.n_force_calls[j]),
                converged=bool(fin.converged[j]),
                reason=fin.reasons[j] or "max_steps",
            )
        if progress is not None:
            progress(fin.n_mols)
        return select(state, ~done)

    state = harvest(start(min(size, n)))
    while state.n_mols > 0 or next_id < n:
        free = size - state.n_mols
        if next_id < n and free >= min(refill, n - next_id):
            new = start(min(free, n - next_id))
            state = harvest(concat([state, new]) if state.n_mols else new)
            continue
        state = step_fn(state, provider)
        if traj is not None:
            traj.record(state)
        state = harvest(state)

    out = [results[i] for i in range(n)]
    if traj is not None:
        for rec, (p, e, f) in zip(out, traj.assemble(n)):
            rec.trajectory_positions, rec.trajectory_energies, rec.trajectory_fmax = p, e, f
    return out
