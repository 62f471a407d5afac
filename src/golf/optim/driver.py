"""The relaxation driver: run a batched optimizer over many conformations until each converges,
fails or hits its step limit. Finished molecules leave the batch (it is compacted) and, when
``batch_size`` limits the active molecules, waiting conformations stream in to take their place.

No I/O here: the CLI (``golf optimize``) and the GOLF loop read and write files.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import torch

from golf.batch import Batch, EnergyForces
from golf.conformation import Conformation
from golf.optim.fire import fire_init, fire_step
from golf.optim.gd import gd_init, gd_step
from golf.optim.lbfgs import LBFGS_PRESETS, lbfgs_init, lbfgs_step
from golf.optim.providers import as_provider
from golf.optim.state import NON_FINITE_POSITIONS, OptimState, concat, segment_sum, select
from golf.thresholds import NNP_FMAX, NNP_MAX_STEPS

#: Default convergence threshold (eV/A): ``golf.thresholds.NNP_FMAX``.
DEFAULT_FMAX = NNP_FMAX
#: Default step limit per molecule: ``golf.thresholds.NNP_MAX_STEPS``.
DEFAULT_MAX_STEPS = NNP_MAX_STEPS

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
        energy: final energy (eV; NaN when the molecule failed on non-finite coordinates, energy or forces).
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

    def assemble(self, n: int) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Per molecule id (those that were recorded at all): positions [T, n, 3], energies [T], fmax [T]."""
        pos: list[list[np.ndarray]] = [[] for _ in range(n)]
        ene: list[list[float]] = [[] for _ in range(n)]
        fmx: list[list[float]] = [[] for _ in range(n)]
        for ids, positions, counts, energies, fmaxes in self.frames:
            for i, p, e, f in zip(ids, np.split(positions, np.cumsum(counts)[:-1]), energies, fmaxes):
                pos[i].append(p)
                ene[i].append(e)
                fmx[i].append(f)
        return {i: (np.stack(p), np.asarray(e), np.asarray(f)) for i, (p, e, f) in enumerate(zip(pos, ene, fmx)) if p}


def _is_atoms(obj: Any) -> bool:
    from ase import Atoms

    return isinstance(obj, Atoms)


def _conformation(item: Any, i: int) -> Conformation:
    """A golf Conformation of one input item (a Conformation, or ASE Atoms: numbers, positions and
    the integer ``charge``/``multiplicity``/``smiles`` of ``atoms.info``)."""
    if isinstance(item, Conformation):
        return item
    if _is_atoms(item):
        info = item.info or {}

        def _int(name: str, default: int) -> int:
            v = info.get(name)
            return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) else default

        smiles = info.get("smiles") if isinstance(info.get("smiles"), str) else None
        return Conformation(item.get_atomic_numbers(), item.get_positions(), smiles=smiles,
                            charge=_int("charge", 0), multiplicity=_int("multiplicity", 1))
    raise TypeError(
        f"relax() takes golf Conformations or ase.Atoms (or one golf.batch.Batch); item {i} is of type "
        f"{type(item).__name__}"
    )


def _to_batch(
    confs_or_batch: Sequence[Conformation | Any] | Batch, device: torch.device | str, dtype: torch.dtype
) -> Batch:
    """All inputs as one batch (bad molecules included; ``_problems`` finds them)."""
    if isinstance(confs_or_batch, Batch):
        b = confs_or_batch
        return Batch(b.numbers.to(device), b.positions.to(device=device, dtype=dtype), b.mol_idx.to(device), b.n_mols)
    single = isinstance(confs_or_batch, (Conformation, str, bytes, Mapping)) or _is_atoms(confs_or_batch)
    if single or not isinstance(confs_or_batch, Iterable):
        raise TypeError(
            "relax() takes a sequence of golf Conformations or ase.Atoms, or one golf.batch.Batch; got one "
            f"of type {type(confs_or_batch).__name__} (wrap a single structure in a list)"
        )
    confs = [_conformation(c, i) for i, c in enumerate(confs_or_batch)]
    if not confs:
        return Batch(torch.zeros(0, dtype=torch.long, device=device), torch.zeros((0, 3), dtype=dtype, device=device),
                     torch.zeros(0, dtype=torch.long, device=device), 0)
    return Batch.from_conformations(confs, device=device, dtype=dtype)


def _problems(batch: Batch) -> dict[int, str]:
    """Molecules that cannot be relaxed at all, by index: no atoms, or non-finite coordinates (in the
    optimizer's dtype: a float64 coordinate beyond float32's range is one too)."""
    n_atoms = batch.n_atoms
    bad_atoms = (~torch.isfinite(batch.positions)).any(-1)  # [N]
    bad = segment_sum(bad_atoms.long(), batch.mol_idx, batch.n_mols) > 0  # [B]
    out = {int(i): NON_FINITE_POSITIONS for i in torch.nonzero(bad).flatten().tolist()}
    out.update({int(i): "no atoms" for i in torch.nonzero(n_atoms == 0).flatten().tolist()})
    return out


def _model_of(provider: Any) -> torch.nn.Module | None:
    """The torch model behind a provider (``ModelEnergyForces``), or None (an oracle, a test potential)."""
    model = getattr(provider, "model", None)
    return model if isinstance(model, torch.nn.Module) else None


def _auto_size(provider: Any, batch: Batch, todo: list[int], budget: int | None = None) -> int:
    """Molecules at once when the caller gave no batch size: sized by memory for a torch model (its
    pair count at the start positions, ``budget`` bytes), all at once for other providers."""
    model = _model_of(provider)
    if model is None or not todo:
        return max(1, len(todo))
    from golf.batch import auto_batch_size, count_pairs, memory_scale

    cutoff = float(getattr(model, "cutoff", 5.0))
    pairs = count_pairs(batch, cutoff)
    atoms = batch.n_atoms.tolist()
    device = getattr(model, "device", batch.device)
    return auto_batch_size([atoms[i] for i in todo], [pairs[i] for i in todo], device=device,
                           budget_bytes=budget, scale=memory_scale(model))


def tell_concurrency(progress: Any, n: int) -> None:
    """Tell a golf progress bar (or the bar of a bound ``update``) how many molecules run at once."""
    for obj in (progress, getattr(progress, "__self__", None)):
        setter = getattr(obj, "set_concurrency", None)
        if callable(setter):
            setter(n)
            return


def _failed_record(positions: np.ndarray, reason: str, trajectory: bool) -> RelaxRecord:
    """The record of a molecule that never entered the optimizer."""
    nan = float("nan")
    rec = RelaxRecord(positions=positions, energy=nan, fmax=nan, n_steps=0, n_force_calls=0, converged=False,
                      reason=reason)
    if trajectory:
        rec.trajectory_positions = positions[None].copy()
        rec.trajectory_energies = np.full(1, nan)
        rec.trajectory_fmax = np.full(1, nan)
    return rec


def relax(
    provider: EnergyForces | torch.nn.Module,
    confs_or_batch: Sequence[Conformation | Any] | Batch,
    method: str = "lbfgs",
    fmax: float = DEFAULT_FMAX,
    max_steps: int = DEFAULT_MAX_STEPS,
    batch_size: int | None = None,
    trajectory: bool = False,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    progress: Callable[[int], None] | None = None,
    memory_budget: int | None = None,
    **cfg: Any,
) -> list[RelaxRecord]:
    """Relax every conformation with a batched optimizer; one record per input, in input order.

    Args:
        provider: energy-and-forces callable ``(Batch) -> (energy [B] eV, forces [N, 3] eV/A)``
            (e.g. an oracle via ``golf.optim.providers.OracleEnergyForces``; ids passed when it wants
            them), or a golf model / torch module potential (``golf.load_model(...)``), which is
            wrapped in ``golf.models.ModelEnergyForces``.
        confs_or_batch: golf ``Conformation``s and/or ``ase.Atoms`` (read: numbers, positions, the
            integer ``charge``/``multiplicity`` of ``atoms.info``; the Atoms are not modified, set
            ``atoms.positions = record.positions`` to take a result), or a ``Batch``. An empty
            sequence gives an empty list.
        method: "lbfgs" (robust default), "lbfgs-precon" (the same with a molecular preconditioner:
            about half the force evaluations), "lbfgs-ase", "lbfgs-golf", "fire" or "gd".
        fmax: convergence threshold on max over atoms of |F| (eV/A).
        max_steps: step limit per molecule.
        batch_size: at most this many molecules are optimized at once (others wait and stream in as
            molecules finish). None: for a torch model, as many as fit a memory budget
            (``golf.batch.auto_batch_size``: measured PaiNN memory per pair and atom, the default budget,
            half the available memory); for other providers (oracles), all at once.
        trajectory: keep positions, energies and fmax at the start and after every step.
        device, dtype: where and in which precision the optimizer runs.
        progress: called with the number of molecules that just finished (for a progress bar). A bar of
            ``golf.progress.progress_bar`` (or its bound ``update``) is also told how many molecules run
            at once, so its time estimate is sensible from the first finished molecule.
        memory_budget: bytes for one batch when ``batch_size`` is None (None:
            ``golf.batch.DEFAULT_MEMORY_BUDGET``); processes relaxing side by side share one.
        **cfg: optimizer settings (``LBFGSConfig``, ``FIREConfig``, ``GDConfig`` fields).

    A molecule that cannot be relaxed fails alone (``converged`` False, ``reason`` says why) and never
    changes the other molecules' results: one with no atoms or non-finite coordinates never enters the
    optimizer (energy NaN, 0 force calls); one whose positions, energy or forces become non-finite on
    the way (energy NaN), or whose forces explode, leaves the batch at that step.

    Raises:
        TypeError: ``confs_or_batch`` holds something other than Conformations / Atoms, or
            ``provider`` is not callable.
    """
    init_fn, step_fn, preset = get_optimizer(method)
    provider = as_provider(provider)
    batch = _to_batch(confs_or_batch, device, dtype)
    n = batch.n_mols
    if n == 0:
        return []
    traj = _Trajectories() if trajectory else None
    results: dict[int, RelaxRecord] = {}
    problems = _problems(batch)
    if problems:
        start_pos = batch.split(batch.positions.detach().cpu().to(torch.float64))
        for i, why in problems.items():
            results[i] = _failed_record(start_pos[i].numpy(), why, trajectory)
        if progress is not None:
            progress(len(problems))
    todo = [i for i in range(n) if i not in problems]  # input indices, ascending: the molecules' ids
    model = _model_of(provider)
    if model is not None and getattr(model, "device", torch.device("cpu")).type == "cpu":
        # every model call allocates and frees pair tensors of tens of MB; served by fresh mmaps they cost
        # page faults and zeroing (measured: 2x the user time of a 128-conformer batch in system time)
        from golf.models.ops import tune_cpu_allocator

        tune_cpu_allocator()
    n_todo = len(todo)
    if batch_size is not None:
        size = max(1, int(batch_size))
    else:
        size = _auto_size(provider, batch, todo, memory_budget)
    tell_concurrency(progress, min(size, n_todo))
    refill = max(1, size // 8)  # add newcomers in chunks so each join costs one call for several
    kwargs = dict(preset, fmax=fmax, max_steps=max_steps, **cfg)
    next_id = 0  # position in todo

    def start(k: int) -> OptimState:
        nonlocal next_id
        chosen = todo[next_id:next_id + k]
        ids = torch.as_tensor(chosen, dtype=torch.long, device=batch.device)
        mask = torch.zeros(n, dtype=torch.bool, device=batch.device)
        mask[ids] = True
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

    if n_todo == 0:
        return [results[i] for i in range(n)]
    state = harvest(start(min(size, n_todo)))
    while state.n_mols > 0 or next_id < n_todo:
        free = size - state.n_mols
        if next_id < n_todo and free >= min(refill, n_todo - next_id):
            new = start(min(free, n_todo - next_id))
            state = harvest(concat([state, new]) if state.n_mols else new)
            continue
        state = step_fn(state, provider)
        if traj is not None:
            traj.record(state)
        state = harvest(state)

    out = [results[i] for i in range(n)]
    if traj is not None:
        for i, (p, e, f) in traj.assemble(n).items():
            out[i].trajectory_positions, out[i].trajectory_energies, out[i].trajectory_fmax = p, e, f
    return out
