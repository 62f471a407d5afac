"""``golf conformers``: low-energy conformer ensembles of molecules, ready for drug design.

    from golf.conformer_search import ConformerSettings
    from golf.runs.conformers import ConformersSettings, conformers
    outcome = conformers("mols.smi", "confs.sdf", ConformersSettings(ensemble=ConformerSettings(top_k=5)))

Per input molecule (``golf.conformer_search``): salts stripped, an ETKDG ensemble embedded (or a 3D SDF's
own coordinates taken), relaxed in one batched stream by the model, conformers whose bonds or
stereochemistry changed dropped, duplicates removed, the lowest kept, ranked and Boltzmann-weighted,
optionally refined with an oracle. Output: SDF (``golf.outputs``) and a per-molecule CSV summary.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from golf.conformer_search import OPTIMIZERS, ConformerSettings, MoleculeResult  # noqa: F401 - OPTIMIZERS re-exported
from golf.errors import InputError, SettingError
from golf.presets import COUNT, DEFAULT_DEVICE, DEFAULT_MODEL, DEVICE, DTYPE, FORCE, SCHEDULER, SECONDS, OracleRun, check_settings, one_of, setting
from golf.thresholds import NNP_FMAX

#: Where the oracle refinement runs.
EXECUTORS = ("local", "dask")


@dataclass(frozen=True)
class ConformersSettings:
    """Settings of :func:`conformers`.

    Each field is checked by the check declared with it (``golf.presets.setting``): an impossible
    value raises ``golf.errors.SettingError`` naming the field.

    Attributes:
        model: NNP: model name, checkpoint path or a loaded ``golf.models.Potential``.
        device, dtype: of the model.
        threads: torch threads (None: torch's in one process; with several, the usable cores shared among them).
        processes: processes relaxing the conformers side by side (None: automatic,
            ``golf.runs.relax_pool.auto_processes``: one per usable core on the CPU when there are enough
            conformers, else 1).
        ensemble: embedding, relaxation and selection (``golf.conformer_search.ConformerSettings``).
        refine: oracle of the kept conformers (xtb, dft, mmff or module:Class), None: none.
        refine_opt: re-relax with the oracle instead of single points.
        refine_fmax: oracle re-relaxation fmax (eV/A).
        workers, executor, scheduler, timeout: how the oracle runs (timeout in s per call).
        progress: show progress bars.
    """

    model: Any = DEFAULT_MODEL
    device: str = setting(DEFAULT_DEVICE, DEVICE)
    dtype: str = setting("float32", DTYPE)
    threads: int | None = setting(None, COUNT)
    processes: int | None = setting(None, COUNT)
    ensemble: ConformerSettings = field(default_factory=ConformerSettings)
    refine: str | None = None
    refine_opt: bool = False
    refine_fmax: float = setting(NNP_FMAX, FORCE)
    workers: int = setting(OracleRun.workers, COUNT)
    executor: str = setting("local", one_of(EXECUTORS))
    scheduler: str | None = setting(None, SCHEDULER)
    timeout: float | None = setting(None, SECONDS)
    progress: bool = True

    def __post_init__(self) -> None:
        check_settings(self)
        self.ensemble.check()
        if self.refine_opt and not self.refine:
            raise SettingError("refine_opt", "needs an oracle to refine with (refine)")


def implicit_outputs(output: str | os.PathLike) -> list[Any]:
    """What :func:`conformers` writes besides ``output`` unless told where: the per-molecule summary,
    ``output`` with .csv (``golf.runs.guard.summary_path``)."""
    from golf.runs.guard import Output, summary_path

    return [Output(summary_path(output), option=f"the summary beside {os.fspath(output)}")]


@dataclass
class ConformersOutcome:
    """What :func:`conformers` did: one result per stereoisomer group, what was written."""

    results: list[MoleculeResult]
    output: str
    summary: str
    n_written: int
    n_refine_failed: int = 0

    @property
    def exit_code(self) -> int:
        from golf.runs.batch_run import PARTIAL

        return PARTIAL if any(not r.ok for r in self.results) or self.n_refine_failed else 0


def conformers(input: str, output: str, settings: ConformersSettings = ConformersSettings(),
               summary: str | None = None) -> ConformersOutcome:
    """Conformer ensembles of the molecules of ``input`` written to ``output`` (.sdf) and the summary
    CSV ``summary`` (default: ``output`` with .csv). Per-molecule problems go to stderr (one line
    each); InputError when no molecule produced conformers."""
    from tqdm import tqdm

    from golf import conformer_search as gc
    from golf.errors import OutputError
    from golf.progress import ProgressHook, progress_bar
    from golf.runs.batch_run import load_nnp
    from golf.runs.guard import summary_path

    s, ens = settings, settings.ensemble
    out = Path(output)
    summary = str(summary or summary_path(out))
    if s.refine:
        from golf.oracles import validated_spec

        validated_spec(s.refine, local=s.executor != "dask")  # unknown or missing backend: before any work
    molecules = gc.read_molecules(input, charge=ens.charge, multiplicity=ens.multiplicity, embed=ens.embed,
                                  ph=ens.ph)
    model, device, dtype, model_name = load_nnp(s.model, s.device, s.dtype, s.threads)

    def log(msg: str) -> None:
        tqdm.write(f"golf conformers: {msg}", file=sys.stderr)

    # ETKDG first (minutes for large molecules), then one batched relaxation: a bar for each phase
    ebar = progress_bar(total=len(molecules), unit="mol", disable=not s.progress, desc="embed")
    bars = [ebar]

    def total(n: int) -> None:
        ebar.close()
        bars.append(progress_bar(total=n, unit="conf", disable=not s.progress, desc="relax"))

    used = {"processes": 1}

    def relax_fn(confs: list, **how: Any) -> list:
        from golf.runs.relax_pool import relax_nnp

        recs, used["processes"] = relax_nnp(s.model, model, confs, s.processes, s.threads, device, dtype, **how)
        return recs

    t0 = time.perf_counter()
    try:
        results = gc.generate_conformer_ensembles(molecules, model, ens, device=device, dtype=dtype,
                                                  progress=ProgressHook(lambda: bars[-1]), on_total=total, log=log,
                                                  embedded=ebar.update, relax_fn=relax_fn)
    finally:
        for b in bars:
            b.close()
    seconds = time.perf_counter() - t0
    n_ok = sum(r.ok for r in results)
    if n_ok == 0:
        raise InputError(f"{input}: no molecule produced conformers ({len(results)} failed)")
    if s.refine:
        n_kept = sum(len(r.conformers) for r in results if r.ok)
        rbar = progress_bar(total=n_kept, unit="conf", disable=not s.progress, desc=f"refine {s.refine}")
        gc.refine(results, s.refine, optimize=s.refine_opt, fmax=s.refine_fmax, executor=s.executor,
                  n_workers=s.workers, scheduler=s.scheduler, timeout=s.timeout, progress=rbar.update)
        rbar.close()
    method = f"{s.refine}{' relaxation' if s.refine_opt else ' single point'}" if s.refine else None
    n_written = gc.write_sdf(out, results, model_name, refine_method=method, temperature=ens.temperature)
    try:
        gc.write_summary(summary, results, model_name, ens.temperature)
    except OutputError as exc:  # the conformers themselves are saved: say so
        raise OutputError(exc.path, exc.cause, f"{exc.note}; the {n_written} conformers are in {out}") from None
    refine_failed = _report_refine_failures(results, s.refine) if s.refine else 0
    print(_summary_line(results, model_name, seconds, n_written, out, summary, used["processes"]), file=sys.stderr)
    if s.refine and refine_failed and not any(rec.refined for r in results if r.ok for rec in r.conformers):
        first = next((rec.refine_reason for r in results if r.ok for rec in r.conformers if rec.refine_reason), "")
        print(f"golf conformers: every {s.refine} refinement failed ({refine_failed} calls; first: {first}); "
              f"{out} ranks every conformer by model energy", file=sys.stderr)
    return ConformersOutcome(results, str(out), summary, n_written, refine_failed)


def input_counts(results: list[MoleculeResult]) -> tuple[int, int, int]:
    """``(input molecules, of which done, stereoisomer groups)``: an input molecule is done when one of
    its groups produced conformers; enumerated stereoisomers count under their input."""
    inputs: dict[str, bool] = {}
    for r in results:
        key = f"{r.where}|{r.input_name or r.name}"
        inputs[key] = inputs.get(key, False) or r.ok
    return len(inputs), sum(inputs.values()), len(results)


def _summary_line(results: list[MoleculeResult], model_name: str, seconds: float, n_written: int, out: Path,
                  summary: str, processes: int = 1) -> str:
    n_in, n_done, n_groups = input_counts(results)
    n_relaxed = sum(r.n_embedded - r.n_mmff_duplicates for r in results)
    n_mmff_dup = sum(r.n_mmff_duplicates for r in results)
    dropped = sum(r.n_graph_changed + r.n_stereo_changed for r in results)
    failed = [r for r in results if not r.ok]
    groups = f" ({n_groups} stereoisomer groups)" if n_groups != n_in else ""
    mmff = f" (MMFF94 starts; {n_mmff_dup} duplicate MMFF minima not relaxed)" if n_mmff_dup else ""
    return (f"golf conformers: {n_done}/{n_in} molecules{groups}, {n_relaxed} conformers relaxed with {model_name}{mmff} "
            f"in {seconds:.1f} s{f' by {processes} processes' if processes > 1 else ''} "
            f"({n_relaxed / max(seconds, 1e-9):.1f} conformers/s), {dropped} dropped (bonds/stereo "
            f"changed), {n_written} kept -> {out}, {summary}"
            + (f"; {len(failed)} failed: {', '.join(r.name for r in failed[:5])}{' ...' if len(failed) > 5 else ''}"
               if failed else ""))


def _report_refine_failures(results: list[MoleculeResult], oracle: str) -> int:
    """One stderr line per molecule with conformers the oracle could not refine; returns how many."""
    total = 0
    for res in results:
        if not res.ok or not res.n_refine_failed:
            continue
        total += res.n_refine_failed
        first = next((rec.refine_reason for rec in res.conformers if rec.refine_reason), "")
        print(f"golf conformers: {res.name}: {oracle} refinement failed for {res.n_refine_failed} of "
              f"{res.n_refine_failed + sum(rec.refined for rec in res.conformers)} conformers ({first}); "
              "those rank after the refined ones, by model energy", file=sys.stderr)
    return total
