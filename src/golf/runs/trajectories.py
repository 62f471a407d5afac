"""``golf data trajectories``: genuine-oracle relaxation trajectories; the first N steps as a dataset.

Relaxes conformations (in order) with the genuine oracle keeping every step and writes the first
``budget`` trajectory conformations (energy + forces each; one oracle call each: the paper's traj-N)
to an ASE db (``golf.db.append_trajectory_step``). Resumable (see ``golf.runs.data``).
"""
from __future__ import annotations

import sys
import time
from typing import Any

from golf.errors import InputError
from golf.presets import TRAJECTORY_MOLECULES, Molecules, OracleRun, Relaxation
from golf.runs.data import bar, check_out, choose_conformations, log_failure, open_executor, oracle_spec, summary


def trajectories(out: str, budget: int, molecules: Molecules = TRAJECTORY_MOLECULES,
                 oracle: OracleRun = OracleRun(), relax: Relaxation = Relaxation(),
                 quiet: bool = False) -> dict[str, int]:
    """Write the first ``budget`` trajectory conformations to ``out``; returns the counts (written,
    trajectories, failed)."""
    from golf import db as D

    if budget < 1:
        raise InputError(f"--budget must be >= 1, got {budget}")
    spec = oracle_spec(oracle)
    check_out(out, spec)
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
    counts = {"written": 0, "trajectories": 0, "failed": 0}
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
                    ex.submit(c, k, task="relax", fmax=relax.fmax, max_steps=relax.max_steps)
                    submitted += 1

            top_up()
            while ex.n_pending and n_written < budget:
                for key, r in ex.poll(timeout=1.0):
                    buffered[order[key]] = r
                # write finished trajectories in input order
                while next_write in buffered and n_written < budget:
                    r = buffered.pop(next_write)
                    base, conf = items[next_write]
                    next_write += 1
                    if not (getattr(r, "ok", False) and r.trajectory_positions is not None
                            and len(r.trajectory_positions) > 0):
                        counts["failed"] += 1
                        log_failure(out, conf, base, "relax", getattr(r, "reason", "") or "no trajectory")
                        continue
                    n_steps = len(r.trajectory_positions)
                    n_calls += n_steps
                    counts["trajectories"] += 1
                    have = present.get(base, set())
                    for step in range(n_steps):
                        if n_written >= budget:
                            break
                        if step in have:
                            continue
                        D.append_trajectory_step(out, conf, r, step, spec, base)
                        n_written += 1
                        counts["written"] += 1
                        progress.update(1)
                    progress.set_postfix(trajectories=counts["trajectories"], failed=counts["failed"],
                                         refresh=False)
                top_up()
                if next_write >= len(items):
                    break
    if n_written < budget:
        print(f"golf data trajectories: warning: all {len(items)} conformations relaxed but only "
              f"{n_written} of the {budget} trajectory conformations exist; add molecules "
              f"(--molecules/--conformers) to reach the budget", file=sys.stderr)
    summary("trajectories", out, counts, time.perf_counter() - t1, n_calls)
    return counts
