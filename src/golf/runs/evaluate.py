"""An evaluation on disk (``golf evaluate``): the paper's relaxation metrics of a model and/or RDKit
MMFF on a reference set, written to OUT/metrics.json and OUT/metrics.png (``golf.evaluation.scoring`` is the
computation)."""
from __future__ import annotations

import dataclasses
import os
import time
from pathlib import Path
from typing import Any

from golf.evaluation.scoring import EvaluationResult
from golf.presets import Evaluation, OracleRun


def evaluate_run(
    model: str | os.PathLike,
    reference: str | os.PathLike,
    out: str | os.PathLike,
    settings: Evaluation = Evaluation(),
    oracle: OracleRun | None = None,
    name: str | None = None,
    progress: bool = True,
) -> list[EvaluationResult]:
    """Evaluate ``model`` (a checkpoint, or "mmff" for the MMFF row only) on the reference db.

    The genuine oracle is the one recorded in the reference db; ``oracle.oracle``, when given, must
    match it (its executor settings say where the calls run). Prints one table per result and
    returns the results. InputError (one line) for bad input.
    """
    from golf.errors import InputError, SettingError
    from golf.evaluation.scoring import DEFAULT_FMAX, evaluate_mmff, evaluate_model, load_reference, reference_oracle, \
        write_metrics
    from golf.runs.data import open_executor, oracle_spec

    oracle = oracle or OracleRun(oracle="")
    steps = sorted({int(t) for t in settings.steps})  # checked by ``Evaluation``
    model_arg = str(model)
    mmff_only = model_arg.lower() == "mmff"
    if mmff_only:
        model_path = None
    else:
        from golf.models.registry import resolve_model  # model names ("GOLF-10k") resolve to files

        model_path = resolve_model(model_arg)[0]
    if model_path is not None and not model_path.is_file():
        raise InputError(f"{model_path}: model checkpoint not found")
    ref_path = Path(reference)
    records = load_reference(ref_path, limit=settings.limit)

    # the genuine oracle must be the one that made the reference optima
    ref_oracle, ref_settings = reference_oracle(ref_path)
    oracle_name = oracle.oracle or ref_oracle or OracleRun.oracle
    if ref_oracle and oracle_name != ref_oracle:
        raise InputError(
            f"{ref_path}: reference optima were computed with oracle {ref_oracle!r}, not {oracle_name!r}"
        )
    oracle_settings = dict(ref_settings) if oracle_name == ref_oracle else {}

    net: Any = None
    if not mmff_only:
        from golf.optim import METHODS

        if settings.optimizer not in METHODS:
            raise SettingError("optimizer", f"unknown method {settings.optimizer!r}; choose one of {', '.join(METHODS)}")
        import torch

        from golf.models.checkpoint import load_model

        if settings.threads:
            torch.set_num_threads(int(settings.threads))
        net = load_model(str(model_path), device=settings.device)
        net.eval()
        net.check_elements([r.conf.numbers for r in records])
        name = name or model_path.stem

    fmax = DEFAULT_FMAX if settings.fmax is None else float(settings.fmax)
    results = []
    t0 = time.perf_counter()
    oracle = dataclasses.replace(oracle, oracle=oracle_name, settings=oracle_settings)
    with open_executor(oracle, oracle_spec(oracle)) as executor:
        if net is not None:
            results.append(evaluate_model(net, records, executor, steps=steps, optimizer=settings.optimizer,
                                          fmax=fmax, batch_size=settings.batch_size, name=name, progress=progress))
        if mmff_only or settings.mmff:
            results.append(evaluate_mmff(records, executor, steps=steps,
                                         name="mmff" if not mmff_only else (name or "mmff"), progress=progress))
    run_settings = {
        "model": None if model_path is None else str(model_path),
        "reference": str(ref_path),
        "n_conformations": len(records),
        "limit": settings.limit,
        "steps": steps,
        "oracle": oracle_name,
        "oracle_settings": oracle_settings,
        "executor": oracle.executor,
        "workers": oracle.workers,
        "optimizer": settings.optimizer,
        "fmax": fmax,
        "batch_size": settings.batch_size,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(out / "metrics.json", results, run_settings)
    from golf.evaluation.plots import plot_metrics

    plot_metrics(
        {r.name: r.aggregate for r in results},
        out / "metrics.png",
        title=f"{ref_path.name}: genuine oracle {oracle_name}, {len(records)} conformations",
    )
    for r in results:
        print(r.table())
        print()
        _report_failures(r)
    print(f"wrote {out / 'metrics.json'} and {out / 'metrics.png'}")
    return results


def _report_failures(result: Any) -> None:
    """One stderr line with the count of failed genuine-oracle calls of an evaluation and the first reason."""
    import sys

    n_failed = sum(int(rec.get("n_oracle_failures", 0)) for rec in result.records)
    if n_failed:
        n_calls = sum(int(rec.get("n_oracle_calls", 0)) for rec in result.records)
        first = next(rec["oracle_failure_reasons"][0] for rec in result.records if rec.get("oracle_failure_reasons"))
        print(f"golf evaluate: {result.name}: {n_failed} of {n_calls} oracle calls failed (first: {first}); "
              "scored as diverged", file=sys.stderr)
