"""``golf data reference``: relax every conformation with the genuine oracle (the reference optima).

Stores the start geometry with its energy/forces plus opt_energy, opt_positions, opt_converged and
opt_steps (``golf.db.append_reference``). Resumable (see ``golf.runs.data``).
"""
from __future__ import annotations

import sys
import time
from typing import Any

from golf.presets import REFERENCE_MOLECULES, Molecules, OracleRun, Relaxation
from golf.runs.data import (
    bar,
    check_out,
    choose_conformations,
    generation_recipe,
    log_failure,
    open_executor,
    oracle_spec,
    pending,
    report_failures,
    stream,
    summary,
)


def reference(out: str, molecules: Molecules = REFERENCE_MOLECULES, oracle: OracleRun = OracleRun(),
              relax: Relaxation = Relaxation(), quiet: bool = False) -> dict[str, int]:
    """Relax the chosen conformations with ``oracle`` into the reference db ``out``; returns the counts
    (relaxed, not converged, skipped because already in the db, failed)."""
    from golf import db as D

    spec = oracle_spec(oracle)
    check_out(out, spec, "reference")
    confs, stats = choose_conformations(molecules)
    plan = pending(confs, out, generation_recipe(molecules))
    todo = plan.todo
    print(f"golf data reference: {len(confs)} conformations from {stats['source']}; "
          f"{plan.describe(out)}; relaxing {len(todo)} with {spec.name} "
          f"(fmax {relax.fmax} eV/A, max {relax.max_steps} steps) on {oracle.executor}", file=sys.stderr)
    by_key = dict(todo)
    counts = {"relaxed": 0, "not converged": 0, **plan.skipped(), "failed": 0,
              "bad input records": len(stats["bad_records"])}
    n_calls = 0
    t1 = time.perf_counter()
    first_failure: list[str] = []
    if todo:
        with open_executor(oracle, spec) as ex, bar(len(todo), f"{spec.name} relaxations", quiet) as progress:
            progress.unit = "relax"

            def handle(key: str, r: Any) -> None:
                nonlocal n_calls
                conf = by_key[key]
                ok = bool(getattr(r, "ok", False)) and r.trajectory_energies is not None \
                    and len(r.trajectory_energies) > 0 and r.positions is not None
                if ok:
                    n_calls += len(r.trajectory_energies)
                    D.append_reference(out, conf, r, spec, key, relax.fmax)
                    counts["relaxed"] += 1
                    if not r.converged:
                        counts["not converged"] += 1
                else:
                    counts["failed"] += 1
                    first_failure.append(getattr(r, "reason", "") or "no trajectory returned")
                    log_failure(out, conf, key, "relax", first_failure[-1])
                progress.set_postfix(failed=counts["failed"], refresh=False)

            stream(ex, todo, "relax", {"fmax": relax.fmax, "max_steps": relax.max_steps}, handle, progress,
                   window=max(2 * ex.n_workers, 2))
    summary("reference", out, counts, time.perf_counter() - t1, n_calls)
    report_failures("reference", out, counts["failed"], counts["relaxed"] + counts["failed"],
                    first_failure[0] if first_failure else "")
    return counts
