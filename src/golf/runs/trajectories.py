"""``golf data trajectories``: genuine-oracle relaxation trajectories; the first N steps as a dataset.

Relaxes conformations (in order) with the genuine oracle keeping every step and writes the first
``budget`` trajectory conformations (energy + forces each; one oracle call each: the paper's traj-N)
to an ASE db (``golf.db.append_trajectory_step``). Resumable (see ``golf.runs.data``).

Every relaxation is committed the moment it arrives: trajectories that finish before an earlier one
(they are written to the db in input order, so that the db does not depend on worker timing) wait in
``OUT.arrived/`` (one ``.npz`` per trajectory, written atomically, with the oracle and relaxation
settings that made it). A killed run resumes from the db and those files without recomputing any
relaxation that came back; a file leaves once its whole trajectory is in the db (files of
trajectories cut or left out by the budget stay for a later run with a larger ``--budget``).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from golf.errors import SettingError
from golf.presets import TRAJECTORY_MOLECULES, Molecules, OracleRun, Relaxation
from golf.runs.data import bar, check_out, choose_conformations, log_failure, open_executor, oracle_spec, summary

_ARRAYS = ("trajectory_positions", "trajectory_energies", "trajectory_forces", "positions", "forces")


def arrived_dir(out: str) -> Path:
    """Where relaxations that arrived but are not in the db yet wait (``OUT.arrived/``)."""
    from golf.runs.data import arrived_path

    return Path(arrived_path(out))


def _arrived_path(out: str, key: str) -> Path:
    return arrived_dir(out) / (hashlib.sha1(key.encode()).hexdigest() + ".npz")


def _meta(key: str, spec: Any, relax: Relaxation) -> str:
    return json.dumps(dict(key=key, oracle=spec.name, settings=spec.settings, fmax=relax.fmax,
                           max_steps=relax.max_steps), sort_keys=True, default=str)


def commit_arrived(out: str, key: str, result: Any, spec: Any, relax: Relaxation) -> None:
    """Store an oracle relaxation (``RelaxResult``; Angstrom, eV, eV/A) that arrived, atomically."""
    from golf.io import atomic_path

    path = _arrived_path(out, key)
    arrays = {name: np.asarray(getattr(result, name)) for name in _ARRAYS if getattr(result, name) is not None}
    with atomic_path(path, suffix=".npz") as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, meta=np.array(_meta(key, spec, relax)), converged=np.array(bool(result.converged)),
                     energy=np.array(np.nan if result.energy is None else float(result.energy)),
                     n_steps=np.array(int(result.n_steps)), seconds=np.array(float(result.seconds)), **arrays)


def load_arrived(out: str, key: str, spec: Any, relax: Relaxation) -> Any:
    """The stored relaxation of ``key`` made with these oracle and relaxation settings, else None
    (none stored, other settings, or an unreadable file)."""
    from golf.oracles.base import RelaxResult

    path = _arrived_path(out, key)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if str(z["meta"]) != _meta(key, spec, relax):
                return None
            fields = {name: np.array(z[name]) for name in _ARRAYS if name in z.files}
            energy = float(z["energy"])
            return RelaxResult(ok=True, converged=bool(z["converged"]), n_steps=int(z["n_steps"]),
                               energy=None if np.isnan(energy) else energy, seconds=float(z["seconds"]),
                               **fields)
    except Exception:  # a damaged file is recomputed, never trusted
        return None


def _drop_arrived(out: str, key: str) -> None:
    _arrived_path(out, key).unlink(missing_ok=True)
    try:
        arrived_dir(out).rmdir()  # only when empty
    except OSError:
        pass


def trajectories(out: str, budget: int, molecules: Molecules = TRAJECTORY_MOLECULES,
                 oracle: OracleRun = OracleRun(), relax: Relaxation = Relaxation(),
                 quiet: bool = False) -> dict[str, int]:
    """Write the first ``budget`` trajectory conformations to ``out``; returns the counts (written,
    trajectories, failed, reused: relaxations taken from ``OUT.arrived/`` instead of recomputed)."""
    from golf import db as D

    if budget < 1:
        raise SettingError("budget", f"must be at least 1, got {budget}")
    spec = oracle_spec(oracle)
    check_out(out, spec, "trajectories")
    confs, stats = choose_conformations(molecules)

    # what is already there: rows per starting conformation, and each trajectory's full length
    present, traj_len, n_written = D.trajectory_progress(out)
    items = []
    for c in confs:
        base = D.record_key(c)
        if base in traj_len and len(present.get(base, ())) >= traj_len[base]:
            continue  # complete trajectory already stored
        items.append((base, c))
    print(f"golf data trajectories: {len(confs)} starting conformations from {stats['source']}; "
          f"{n_written}/{budget} trajectory conformations already in {out}", file=sys.stderr)
    counts = {"written": 0, "trajectories": 0, "failed": 0, "reused": 0}
    n_calls = 0
    t1 = time.perf_counter()
    if n_written < budget and items:
        order = {k: i for i, (k, _) in enumerate(items)}
        buffered: dict[int, Any] = {}
        next_write = 0
        with open_executor(oracle, spec) as ex, bar(budget, f"{spec.name} trajectory steps", quiet) as progress:
            progress.update(n_written)
            window = max(ex.n_workers, 1)
            submitted = 0

            def top_up() -> None:
                nonlocal submitted
                while submitted < len(items) and ex.n_pending < window and n_written < budget:
                    k, c = items[submitted]
                    stored = load_arrived(out, k, spec, relax)
                    if stored is not None:  # came back before a kill: not recomputed
                        buffered[submitted] = stored
                        counts["reused"] += 1
                    else:
                        ex.submit(c, k, task="relax", fmax=relax.fmax, max_steps=relax.max_steps)
                    submitted += 1

            top_up()
            while n_written < budget and next_write < len(items):
                if next_write not in buffered:
                    if not ex.n_pending:
                        break  # nothing in flight for it (cannot happen while items remain)
                    for key, r in ex.poll(timeout=1.0):
                        if _usable(r):
                            commit_arrived(out, key, r, spec, relax)  # committed as it arrives
                        buffered[order[key]] = r
                # write finished trajectories in input order
                while next_write in buffered and n_written < budget:
                    r = buffered.pop(next_write)
                    base, conf = items[next_write]
                    next_write += 1
                    if not _usable(r):
                        counts["failed"] += 1
                        log_failure(out, conf, base, "relax", getattr(r, "reason", "") or "no trajectory")
                        continue
                    n_steps = len(r.trajectory_positions)
                    n_calls += n_steps
                    counts["trajectories"] += 1
                    have = present.get(base, set())
                    complete = True
                    for step in range(n_steps):
                        if step in have:
                            continue
                        if n_written >= budget:
                            complete = False
                            break
                        D.append_trajectory_step(out, conf, r, step, spec, base)
                        n_written += 1
                        counts["written"] += 1
                        progress.update(1)
                    if complete:  # else kept for a run with a larger budget
                        _drop_arrived(out, base)
                    progress.set_postfix(trajectories=counts["trajectories"], failed=counts["failed"],
                                         refresh=False)
                top_up()
    if n_written < budget:
        print(f"golf data trajectories: warning: all {len(items)} conformations relaxed but only "
              f"{n_written} of the {budget} trajectory conformations exist; add molecules "
              f"(--molecules/--conformers) to reach the budget", file=sys.stderr)
    summary("trajectories", out, counts, time.perf_counter() - t1, n_calls)
    return counts


def _usable(r: Any) -> bool:
    """Whether an oracle relaxation result carries a trajectory to store."""
    return bool(getattr(r, "ok", False) and r.trajectory_positions is not None and len(r.trajectory_positions) > 0)
