"""``golf data build``: label conformations with an oracle (energy eV, forces eV/A) into an ASE db.

Molecules come from the embedded NCI pool or a file (``golf.presets.Molecules``); each conformation
is one oracle call, committed as soon as it returns. Resumable (see ``golf.runs.data``).
"""
from __future__ import annotations

import sys
import time
from typing import Any

from golf.errors import GolfError
from golf.presets import BUILD_MOLECULES, BUILD_POOL_MOLECULES, Molecules, OracleRun
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


def build(out: str, molecules: Molecules = BUILD_MOLECULES, oracle: OracleRun = OracleRun(),
          quiet: bool = False) -> dict[str, int]:
    """Append oracle labels of the chosen conformations to the ASE db ``out``; returns the counts
    (labelled, skipped because already in the db, failed, bad input records skipped). GolfError when every call failed and
    ``out`` holds nothing."""
    from golf import db as D

    spec = oracle_spec(oracle)
    check_out(out, spec, "dataset")
    t0 = time.perf_counter()
    confs, stats = choose_conformations(molecules, default_molecules=BUILD_POOL_MOLECULES)
    t_gen = time.perf_counter() - t0
    n_mol = len({c.mol_id for c in confs})
    plan = pending(confs, out, generation_recipe(molecules))
    todo = plan.todo
    print(f"golf data build: {len(confs)} conformations of {n_mol} molecules from {stats['source']} "
          f"({t_gen:.1f} s); {plan.describe(out)}; labelling {len(todo)} with "
          f"{spec.name} on {oracle.executor}", file=sys.stderr)
    by_key = dict(todo)
    counts = {"labelled": 0, **plan.skipped(), "failed": 0,
              "bad input records": len(stats["bad_records"])}
    t1 = time.perf_counter()
    first_failure: list[str] = []
    if todo:
        with open_executor(oracle, spec) as ex, bar(len(todo), f"{spec.name} labels", quiet) as progress:
            def handle(key: str, result: Any) -> None:
                conf = by_key[key]
                if getattr(result, "ok", False):
                    D.append_labelled(out, conf, result, spec, key)
                    counts["labelled"] += 1
                else:
                    counts["failed"] += 1
                    first_failure.append(str(result.reason))
                    log_failure(out, conf, key, "compute", result.reason)
                progress.set_postfix(failed=counts["failed"], refresh=False)

            stream(ex, todo, "compute", {}, handle, progress, window=max(4 * ex.n_workers, 8))
    summary("build", out, counts, time.perf_counter() - t1, counts["labelled"] + counts["failed"])
    report_failures("build", out, counts["failed"], counts["labelled"] + counts["failed"],
                    first_failure[0] if first_failure else "")
    if counts["failed"] and not counts["labelled"] and not plan.stored:
        raise GolfError(f"all {counts['failed']} oracle calls failed (first: {first_failure[0]}); "
                        f"nothing written to {out}")
    return counts
