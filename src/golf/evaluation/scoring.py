"""Evaluate relaxations with the GOLF paper's metrics (``golf evaluate``).

For every test conformation of a reference set (``golf data reference``: start structure plus the
genuine oracle's own optimum energy ``E_opt``):

1. relax it with the model for ``max(steps)`` optimizer steps (batched, ``golf.optim.relax`` with
   ``trajectory=True`` and a tiny ``fmax`` so the run has fixed length), or with RDKit MMFF94 for the
   reference row;
2. submit genuine-oracle calls at the start (``E_0``) and at the structure reached after each T in
   ``steps`` to an oracle executor (``golf.oracles.executors``: local process pool or Dask, so the
   genuine oracle never runs in this torch process; "serial" only for MMFF as a stand-in oracle in
   tests), and collect them as they finish. ``E_0`` is computed by the same executor (not read from
   the db) so that start and optimum energies always come from identical oracle settings;
3. compute the metrics of ``golf.evaluation.metrics`` per conformation and aggregated per T.

A relaxation that stopped before T (converged, or failed and kept its last good structure) uses
the structure of its last step for every later T; identical structures are sent to the oracle once.
A structure in which the molecule fell apart (more fragments than at the start, ``n_fragments``) is
not sent to the oracle: it is recorded as a failure ("dissociated"), which the metrics score as
diverged and not successful.

What a "step" is:

* model: one step of the batched optimizer of ``golf.optim`` as that method defines it: for
  "lbfgs"/"lbfgs-ase"/"fire"/"gd" one position update followed by one NNP evaluation; for
  "lbfgs-golf" (the paper's ``torch.optim.LBFGS(max_iter=5)``) one ``optimizer.step``, i.e. up to 5
  updates/evaluations;
* MMFF (``evaluate_mmff``): one iteration of RDKit's BFGS minimizer on the MMFF94 force field
  (``ForceField.Minimize(maxIts=T)``; one iteration is one line search, which may evaluate the force
  field several times). The structure after T iterations is obtained by a fresh ``Minimize(maxIts=T)``
  from the start structure (coordinates reset before each run, since RDKit's force field moves the
  conformer in place), which is exactly the state of one long run after T iterations because the
  minimizer is deterministic. RDKit's default convergence thresholds (forceTol 1e-4, energyTol 1e-6)
  apply; after convergence later T reuse the converged structure.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from golf.evaluation import metrics as _metrics
from golf.conformation import FRAGMENT_BOND_SCALE, Conformation, n_fragments
from golf.db import ReferenceRecord
from golf.errors import InputError
from golf.optim.state import NON_FINITE
from golf.thresholds import EVAL_FMAX

#: Default force threshold (eV/A) for model relaxations (``golf.thresholds.EVAL_FMAX``): tiny, so they run
#: for the full step budget.
DEFAULT_FMAX: float = EVAL_FMAX

JSON_FORMAT = "golf-metrics/1"


@dataclass
class Trajectory:
    """Structures of one relaxation at the evaluated steps.

    Attributes:
        frames: list of coordinate arrays [n, 3] (Angstrom); ``frames[0]`` is the start.
        frame_of_step: for each evaluated T, the index into ``frames`` of the structure after T steps
            ([K] ints). Several T may share a frame (early stop).
        n_steps: optimizer steps taken (model); for MMFF the largest evaluated T that was run, i.e.
            an upper bound on the iterations to convergence when ``converged``.
        converged: whether the relaxation met its convergence criterion.
        reason: why it stopped early ("converged", or a failure reason); "" if it ran the full budget.
    """

    frames: list[np.ndarray]
    frame_of_step: list[int]
    n_steps: int
    converged: bool = False
    reason: str = ""


@dataclass
class EvaluationResult:
    """Metrics of one model (or the MMFF row) on a reference set.

    Attributes:
        name: label of the model ("GOLF-10k", "mmff", ...).
        steps: the evaluated T.
        records: one dict per conformation (see ``evaluate_model``).
        aggregate: one dict per T (``golf.evaluation.metrics.aggregate``).
        settings: how it was computed (optimizer, fmax, oracle, ...).
    """

    name: str
    steps: list[int]
    records: list[dict[str, Any]]
    aggregate: list[dict[str, float]]
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (NaN -> null)."""
        return json_clean(
            {
                "name": self.name,
                "steps": list(self.steps),
                "settings": self.settings,
                "aggregate": self.aggregate,
                "records": self.records,
            }
        )

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "EvaluationResult":
        def nan(x: Any) -> Any:
            return float("nan") if x is None else x

        agg = [{k: nan(v) for k, v in row.items()} for row in d["aggregate"]]
        return cls(d["name"], list(d["steps"]), list(d["records"]), agg, dict(d.get("settings", {})))

    def table(self) -> str:
        return _metrics.format_table(self.aggregate, title=self.name)


def json_clean(x: Any) -> Any:
    """``x`` with NumPy scalars/arrays as Python values and non-finite floats as None (JSON null)."""
    if isinstance(x, dict):
        return {str(k): json_clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_clean(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_clean(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return x if math.isfinite(x) else None
    return x


# ----------------------------------------------------------------------------------------------
# inputs


def load_reference(path: str | os.PathLike, limit: int | None = None) -> list[ReferenceRecord]:
    """The first ``limit`` (all if None) records of a reference db (``golf.db.read_reference``).

    Raises InputError (one line) for a missing/unreadable file, an empty db, or rows without a
    finite ``opt_energy``.
    """
    from golf.db import read_reference

    records = read_reference(path)
    for r in records:
        if not math.isfinite(float(r.opt_energy)):
            raise InputError(
                f"{path}: conformation {r.conf.mol_id}/{r.conf.conf_id} has no finite opt_energy "
                "(make the test set with `golf data reference`)"
            )
    if limit is not None:
        records = records[: max(int(limit), 0)]
    return records


def reference_oracle(path: str | os.PathLike) -> tuple[str | None, dict[str, Any]]:
    """The oracle (name, settings) that made a reference db's optima, read from its first row
    (kvp ``oracle``, data ``oracle_settings``); (None, {}) if not recorded."""
    try:
        from golf.db import db_oracle

        found = db_oracle(path)
    except Exception:
        found = None
    if not found or not found[0]:
        return None, {}
    return str(found[0]), dict(found[1] or {})


# ----------------------------------------------------------------------------------------------
# relaxations


def _as_provider(model: Any) -> Any:
    """A torch ``Potential`` becomes a ``ModelEnergyForces`` provider; providers pass through."""
    from golf.optim.providers import as_provider

    return as_provider(model)


def model_trajectories(
    model: Any,
    confs: Sequence[Conformation],
    steps: Sequence[int],
    optimizer: str = "lbfgs-golf",
    fmax: float = DEFAULT_FMAX,
    batch_size: int | None = None,
    progress: bool = False,
    **optimizer_kwargs: Any,
) -> list[Trajectory]:
    """Relax ``confs`` with a model (``golf.optim.relax``, trajectory kept) for max(steps) steps and
    pick the structure after each T (padding with the last structure after an early stop).

    ``optimizer_kwargs`` go to ``golf.optim.relax`` (e.g. ``device``, ``dtype``, optimizer config).
    Frame 0 is always the exact start structure (the optimizer's copy may be float32-rounded).
    """
    from golf.optim import relax
    from golf.progress import progress_bar

    max_steps = int(max(steps))
    kwargs: dict[str, Any] = dict(method=optimizer, fmax=fmax, max_steps=max_steps, trajectory=True)
    if batch_size is not None:
        kwargs["batch_size"] = int(batch_size)
    kwargs.update(optimizer_kwargs)
    with progress_bar(total=len(confs), desc="relax", unit="mol", disable=not progress, leave=False) as bar:
        results = relax(_as_provider(model), list(confs), progress=bar.update, **kwargs)
    out: list[Trajectory] = []
    for conf, rec in zip(confs, results):
        traj = rec.trajectory_positions
        n_steps = int(rec.n_steps)
        final = rec.positions
        frames: list[np.ndarray]
        if traj is None:
            frames = [conf.positions] + ([np.asarray(final, dtype=np.float64)] if final is not None else [])
        else:
            frames = list(np.asarray(traj, dtype=np.float64).reshape(-1, conf.n_atoms, 3))
            # golf.optim stores the start plus every step (n_steps + 1 frames); be lenient otherwise
            if len(frames) == n_steps and n_steps > 0:
                frames = [conf.positions] + frames
        if frames:
            frames[0] = conf.positions
        else:
            frames = [conf.positions]
        # a failed relaxation keeps its last good structure: cut at the first non-finite frame
        bad = [k for k, f in enumerate(frames) if not np.all(np.isfinite(f))]
        if bad:
            frames = frames[: bad[0]]
        idx = _metrics.trajectory_frame_indices(len(frames), steps)
        reason = str(rec.reason or "")
        out.append(
            Trajectory(
                frames=frames,
                frame_of_step=[int(i) for i in idx],
                n_steps=n_steps if n_steps else len(frames) - 1,
                converged=bool(rec.converged),
                reason="" if reason == "max_steps" else reason,
            )
        )
    return out


def mmff_trajectories(confs: Sequence[Conformation], steps: Sequence[int]) -> list[Trajectory]:
    """RDKit MMFF94 relaxations: the structure after T BFGS iterations for each T (see module doc)."""
    from golf.chem import conformation_to_mol, mmff_force_field

    steps = [int(t) for t in steps]
    out: list[Trajectory] = []
    for conf in confs:
        frames = [conf.positions]
        frame_of_step = [0] * len(steps)
        reason = ""
        converged = False
        n_steps = 0
        try:
            if not conf.molblock:
                raise ValueError("no bond information (molblock) for MMFF")
            mol = conformation_to_mol(conf, strict=True)
            props = None
            rd_conf = mol.GetConformer()
            start = [p.tolist() for p in conf.positions]
            cache: dict[int, int] = {0: 0}
            converged_at: int | None = None
            for k, t in sorted(enumerate(steps), key=lambda kv: kv[1]):
                if converged_at is not None and t >= converged_at:
                    frame_of_step[k] = cache[converged_at]
                    continue
                if t in cache:
                    frame_of_step[k] = cache[t]
                    continue
                # the force field moves the conformer's coordinates in place: reset to the start
                for i, p in enumerate(start):
                    rd_conf.SetAtomPosition(i, p)
                props, ff = mmff_force_field(mol, props=props, ignore_interfrag=True)
                ff.Initialize()
                status = ff.Minimize(maxIts=t)
                pos = np.asarray(ff.Positions(), dtype=np.float64).reshape(-1, 3)
                frames.append(pos)
                cache[t] = len(frames) - 1
                frame_of_step[k] = cache[t]
                n_steps = t
                if status == 0:
                    converged_at = t
                    converged = True
        except Exception as exc:
            reason = f"mmff: {exc}"
            frame_of_step = [0] * len(steps)
            frames = [conf.positions]
        out.append(Trajectory(frames, frame_of_step, n_steps, converged, reason))
    return out


# ----------------------------------------------------------------------------------------------
# genuine oracle on the trajectories

def dissociation(conf: Conformation, frame: np.ndarray, start: int | None = None) -> str | None:
    """Why ``frame`` [n, 3] (A) of ``conf``'s molecule is not scored by the oracle, or None: the
    molecule fell apart into more fragments than ``start`` (default: those of ``conf`` itself).

    A relaxation that pulled the molecule into more pieces than it started with produced no
    conformation of that molecule: the oracle's energy of scattered atoms is meaningless (and SCF
    codes take seconds to fail on them). Such a structure counts as diverged and not successful
    (see ``golf.evaluation.metrics``), exactly as a failed oracle call does.
    """
    if start is None:
        start = n_fragments(conf.numbers, conf.positions)
    now = n_fragments(conf.numbers, frame)
    if now > start:
        return f"dissociated: {now} fragments (start: {start}) at {FRAGMENT_BOND_SCALE:g}x covalent radii"
    return None


def _evaluate_trajectories(
    name: str,
    reference: Sequence[ReferenceRecord],
    trajectories: Sequence[Trajectory],
    executor: Any,
    steps: Sequence[int],
    settings: dict[str, Any],
    progress: bool = True,
) -> EvaluationResult:
    """Genuine oracle at frame 0 and at the frame of every T; metrics per conformation and per T."""
    from golf.progress import progress_bar

    steps = [int(t) for t in steps]
    n_conf = len(reference)
    # submit every distinct (conformation, frame) once
    energies: dict[tuple[int, int], float] = {}
    reasons: dict[tuple[int, int], str] = {}
    n_submitted = 0
    for i, (ref, traj) in enumerate(zip(reference, trajectories)):
        start = n_fragments(ref.conf.numbers, ref.conf.positions)
        for f in sorted({0, *traj.frame_of_step}):
            broken = dissociation(ref.conf, traj.frames[f], start) if f > 0 else None
            if broken is not None:
                energies[(i, f)], reasons[(i, f)] = float("nan"), broken
                continue
            executor.submit(ref.conf.with_positions(traj.frames[f]), key=(i, f), task="compute")
            n_submitted += 1
    t0 = time.perf_counter()
    with progress_bar(
        total=n_submitted, desc=f"{name}: oracle", unit="call", disable=not progress, leave=False
    ) as bar:
        for key, result in executor.as_completed():
            i, f = key
            ok = bool(getattr(result, "ok", False))
            e = getattr(result, "energy", None)
            if ok and e is not None and math.isfinite(float(e)):
                energies[(i, f)] = float(e)
            else:
                energies[(i, f)] = float("nan")
                reasons[(i, f)] = str(getattr(result, "reason", "") or "oracle failure")
            bar.update(1)
    oracle_seconds = time.perf_counter() - t0

    e0 = np.full(n_conf, np.nan)
    eopt = np.array([float(r.opt_energy) for r in reference], dtype=np.float64)
    et = np.full((n_conf, len(steps)), np.nan)
    for i, traj in enumerate(trajectories):
        e0[i] = energies.get((i, 0), float("nan"))
        for k, f in enumerate(traj.frame_of_step):
            et[i, k] = energies.get((i, f), float("nan"))
    per = _metrics.conformation_metrics(e0, et, eopt)
    # the official evaluation drops every T after a non-finite optimizer step (not finite, not scored)
    excluded = np.array([[traj.reason.startswith(NON_FINITE) and t > traj.n_steps for t in steps]
                         for traj in trajectories], dtype=bool).reshape(n_conf, len(steps))
    aggregate = _metrics.aggregate(e0, et, eopt, steps, excluded=excluded)

    from golf.evaluation.stats import roc_auc
    from golf.trust import mmff_energy_drop
    from golf.units import EV_TO_KCAL_MOL

    # how far to trust each relaxation's last structure (golf.trust; MMFF rows get it too, about 0)
    trust = mmff_energy_drop([ref.conf.with_positions(traj.frames[traj.frame_of_step[-1]])
                              for ref, traj in zip(reference, trajectories)]) * EV_TO_KCAL_MOL
    records: list[dict[str, Any]] = []
    for i, (ref, traj) in enumerate(zip(reference, trajectories)):
        frames_used = sorted({0, *traj.frame_of_step})
        fails = [reasons[(i, f)] for f in frames_used if (i, f) in reasons]
        records.append(
            {
                "mol_id": int(ref.conf.mol_id),
                "conf_id": int(ref.conf.conf_id),
                "smiles": ref.conf.smiles,
                "n_atoms": int(ref.conf.n_atoms),
                "E_0": e0[i],
                "E_opt": eopt[i],
                "E_T": et[i].tolist(),
                "pct_T": per["pct"][i].tolist(),
                "E_res_T": per["e_res"][i].tolist(),
                "success_T": per["success"][i].tolist(),
                "diverged_T": per["diverged"][i].tolist(),
                "n_steps": int(traj.n_steps),
                "converged": bool(traj.converged),
                "stop_reason": traj.reason,
                "n_oracle_calls": len(frames_used),
                "n_oracle_failures": len(fails),
                "oracle_failure_reasons": sorted(set(fails))[:5],
                "trust_mmff_drop_kcal_mol": float(trust[i]),
            }
        )
    settings = dict(settings)
    last_eres = np.array([r["E_res_T"][-1] for r in records], dtype=np.float64)
    bad = ~(last_eres <= 1.0)  # E_res > 1 kcal/mol at the last T, or not scored (fell apart, oracle failed)
    settings.update(
        trust_auc=roc_auc(np.nan_to_num(trust, nan=0.0, posinf=1e9), bad),  # NaN when every relaxation is alike
        n_conformations=n_conf,
        n_oracle_calls=n_submitted,
        oracle_seconds=round(oracle_seconds, 3),
        energy_units="eV (E_0, E_opt, E_T); kcal/mol (E_res); percent (pct, pct_div, pct_success)",
    )
    return EvaluationResult(name, steps, records, aggregate, settings)


def _check_steps(steps: Sequence[int]) -> list[int]:
    steps = [int(t) for t in steps]
    if not steps or any(t < 1 for t in steps):
        raise InputError("steps must be a non-empty list of integers >= 1")
    return sorted(set(steps))


def evaluate_model(
    model: Any,
    reference: Sequence[ReferenceRecord],
    executor: Any,
    steps: Sequence[int] = _metrics.DEFAULT_STEPS,
    optimizer: str = "lbfgs-golf",
    fmax: float = DEFAULT_FMAX,
    batch_size: int | None = None,
    name: str = "model",
    progress: bool = True,
    optimizer_kwargs: dict[str, Any] | None = None,
) -> EvaluationResult:
    """Relax every reference conformation with a model and score it with the genuine oracle.

    Args:
        model: a ``golf.models.Potential`` (wrapped in ``ModelEnergyForces``) or any EnergyForces
            provider ``provider(batch) -> (energy [B] eV, forces [N,3] eV/A)``.
        reference: ``golf.db.ReferenceRecord`` s (``golf.db.read_reference``); ``opt_energy`` must
            come from the same genuine oracle.
        executor: an open ``golf.oracles.executors`` OracleExecutor for the genuine oracle.
        steps: evaluated step numbers T (>= 1); the model runs max(steps) steps.
        optimizer: ``golf.optim`` method name ("lbfgs", ...).
        fmax: force threshold eV/A (tiny default: fixed-length runs).
        batch_size: molecules per optimizer batch (golf.optim default if None).
        name: label for tables, plots and JSON.
        progress: show tqdm bars over relaxed molecules and oracle calls (stderr).
        optimizer_kwargs: extra keyword arguments for ``golf.optim.relax``.

    Returns:
        EvaluationResult. ``records[c]`` has: mol_id, conf_id, smiles, n_atoms, E_0, E_opt (eV),
        E_T / pct_T / E_res_T (kcal/mol) / success_T / diverged_T (lists aligned with ``steps``,
        NaN for failed oracle calls), n_steps, converged, stop_reason, n_oracle_calls,
        n_oracle_failures, oracle_failure_reasons. ``aggregate`` is ``golf.evaluation.metrics.aggregate``.
    """
    steps = _check_steps(steps)
    confs = [r.conf for r in reference]
    t0 = time.perf_counter()
    trajs = model_trajectories(
        model, confs, steps, optimizer=optimizer, fmax=fmax, batch_size=batch_size,
        progress=progress, **(optimizer_kwargs or {}),
    )
    relax_seconds = time.perf_counter() - t0
    settings = {
        "kind": "model",
        "optimizer": optimizer,
        "fmax": fmax,
        "max_steps": max(steps),
        "batch_size": batch_size,
        "optimizer_kwargs": dict(optimizer_kwargs or {}),
        "relax_seconds": round(relax_seconds, 3),
        "step_definition": f"one step of golf.optim method {optimizer!r} (see golf.optim.lbfgs)",
    }
    return _evaluate_trajectories(name, reference, trajs, executor, steps, settings, progress)


def evaluate_mmff(
    reference: Sequence[ReferenceRecord],
    executor: Any,
    steps: Sequence[int] = _metrics.DEFAULT_STEPS,
    name: str = "mmff",
    progress: bool = True,
) -> EvaluationResult:
    """The MMFF reference row: RDKit MMFF94 relaxations scored with the genuine oracle.

    A step is one iteration of RDKit's BFGS minimizer (see the module docstring). Same return
    layout as ``evaluate_model``.
    """
    steps = _check_steps(steps)
    t0 = time.perf_counter()
    trajs = mmff_trajectories([r.conf for r in reference], steps)
    settings = {
        "kind": "mmff",
        "optimizer": "rdkit-mmff94-bfgs",
        "max_steps": max(steps),
        "relax_seconds": round(time.perf_counter() - t0, 3),
        "step_definition": "one iteration of RDKit's BFGS minimizer (ForceField.Minimize maxIts) "
        "on MMFF94; default forceTol 1e-4, energyTol 1e-6",
    }
    return _evaluate_trajectories(name, reference, trajs, executor, steps, settings, progress)


# ----------------------------------------------------------------------------------------------
# output


def metrics_document(
    results: Sequence[EvaluationResult], settings: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The metrics.json layout::

        {"format": "golf-metrics/1",
         "settings": {...run settings: model, reference, oracle, oracle_settings, executor, steps...},
         "models": [ {"name", "steps", "settings", "aggregate": [row per T], "records": [per conf]}, ...]}

    NaN values are written as null.
    """
    return json_clean(
        {
            "format": JSON_FORMAT,
            "settings": dict(settings or {}),
            "models": [r.to_dict() for r in results],
        }
    )


def write_metrics(
    path: str | os.PathLike,
    results: Sequence[EvaluationResult],
    settings: dict[str, Any] | None = None,
) -> Path:
    """Write metrics.json atomically (layout: ``metrics_document``)."""
    from golf.io import atomic_write_json

    return atomic_write_json(path, metrics_document(results, settings), indent=1, allow_nan=False)


def read_metrics(path: str | os.PathLike) -> dict[str, EvaluationResult]:
    """Read a metrics.json back: model name -> EvaluationResult (NaN restored in aggregates)."""
    with open(path) as fh:
        doc = json.load(fh)
    return {m["name"]: EvaluationResult.from_dict(m) for m in doc.get("models", [])}


__all__ = [
    "DEFAULT_FMAX",
    "EvaluationResult",
    "ReferenceRecord",
    "Trajectory",
    "dissociation",
    "evaluate_mmff",
    "evaluate_model",
    "load_reference",
    "metrics_document",
    "mmff_trajectories",
    "model_trajectories",
    "read_metrics",
    "reference_oracle",
    "json_clean",
    "write_metrics",
]
