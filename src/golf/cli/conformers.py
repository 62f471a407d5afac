"""``golf conformers``: low-energy conformer ensembles of molecules, ready for drug design.

    golf conformers mols.smi -o confs.sdf                       # GOLF-10k, ETKDG ensemble, top 10 each
    golf conformers mols.sdf -o confs.sdf --enumerate-stereo --window 5
    golf conformers mols.smi -o confs.sdf --refine xtb          # xTB single points, re-ranked
    golf conformers mols.smi -o confs.sdf --refine xtb --refine-opt

Per molecule: an ETKDG ensemble (5 x (rotatable bonds + 1), 10..--max-conformers, or
--n-conformers), relaxed in one batched stream by the model (any path or name, default GOLF-10k);
conformers whose bonds or stereochemistry changed are dropped and counted; duplicates (heavy-atom
RMSD < --rmsd A, symmetry-aware, and |dE| < --energy-threshold kcal/mol) removed; the --top-k lowest
(and/or those within --window kcal/mol) kept and ranked. Output: SDF (fields model_energy_eV,
rel_energy_kcal_mol, rank, converged, n_steps, model, refined_energy_eV...) and a per-molecule CSV
summary (--summary, default OUT.csv). A molecule that fails is reported and the others go on.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

OPTIMIZERS = ("lbfgs-precon", "lbfgs", "lbfgs-golf", "lbfgs-ase", "fire", "gd")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from golf.cli._batch import EXIT_CODES

    p.epilog = EXIT_CODES
    from golf.chem import MAX_ATOMS

    p.add_argument("input", help="molecules: SMILES (.smi .txt .csv) or SDF (.sdf .mol); one molecule per "
                                 f"record (one fragment, at most {MAX_ATOMS} atoms with hydrogens)")
    p.add_argument("-o", "--output", required=True, help="conformers (.sdf)")
    p.add_argument("--summary", help="per-molecule CSV summary (default: OUTPUT with .csv)")
    p.add_argument("--model", default="GOLF-10k", help="NNP: a model name (golf models) or a checkpoint path "
                                                       "(default GOLF-10k)")
    g = p.add_argument_group("ensemble")
    g.add_argument("--n-conformers", type=int, default=None,
                   help="ETKDG conformers per molecule (default: 5 x (rotatable bonds + 1), 10..--max-conformers)")
    g.add_argument("--max-conformers", type=int, default=50, help="cap of the automatic count (default 50)")
    g.add_argument("--enumerate-stereo", action="store_true", help="enumerate unassigned stereocentres/double bonds")
    g.add_argument("--max-stereoisomers", type=int, default=8, help="per input molecule (default 8)")
    g.add_argument("--seed", type=int, default=0, help="ETKDG seed (default 0)")
    g.add_argument("--charge", type=int, default=None,
                   help="accept charged molecules with this net charge (only with a model trained on charged "
                        "molecules; default: an SDF record's charge field, else neutral)")
    g.add_argument("--multiplicity", type=int, default=None, help="accept radicals with this multiplicity")
    o = p.add_argument_group("relaxation")
    o.add_argument("--optimizer", choices=OPTIMIZERS, default="lbfgs-precon", help="(default lbfgs-precon)")
    o.add_argument("--fmax", type=float, default=0.05, help="convergence, max |F| in eV/A (default 0.05)")
    o.add_argument("--max-steps", type=int, default=500, help="steps per conformer (default 500)")
    o.add_argument("--batch-size", type=int, default=256, help="conformers relaxed at once (default 256)")
    o.add_argument("--device", default="cpu", help="torch device (default cpu)")
    o.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    o.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    s = p.add_argument_group("selection")
    s.add_argument("--rmsd", type=float, default=0.3, help="duplicate heavy-atom RMSD threshold, A (default 0.3)")
    s.add_argument("--energy-threshold", type=float, default=1.0,
                   help="duplicates also differ by less than this, kcal/mol (default 1.0)")
    s.add_argument("--top-k", type=int, default=10, help="keep the k lowest per molecule (default 10; 0 = all)")
    s.add_argument("--window", type=float, default=None, help="keep those within this many kcal/mol of the lowest")
    r = p.add_argument_group("refinement")
    r.add_argument("--refine", default=None, metavar="ORACLE",
                   help="oracle single points of kept conformers: xtb, dft, mmff or a plugin module:Class")
    r.add_argument("--refine-opt", action="store_true", help="re-relax with the oracle instead of single points")
    r.add_argument("--refine-fmax", type=float, default=0.05, help="oracle re-relaxation fmax, eV/A (default 0.05)")
    r.add_argument("--workers", type=int, default=2, help="oracle worker processes (default 2)")
    r.add_argument("--executor", choices=("local", "dask"), default="local", help="(default local)")
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (--executor dask)")
    r.add_argument("--timeout", type=float, default=None, help="seconds per oracle call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from golf.conformers import ConformerSettings
    from golf.errors import InputError

    out = Path(args.output)
    if out.suffix.lower() != ".sdf":
        raise InputError(f"{out}: conformers are written as .sdf")
    from golf.formats import check_writable
    from golf.runs.guard import summary_path

    summary = Path(args.summary or summary_path(out))  # checked and locked by golf.runs.guard

    check_writable(out, (".sdf",))  # both outputs, before any work
    check_writable(summary, None, option="--summary")
    if args.workers < 1:
        raise InputError("--workers must be >= 1")
    if args.refine_opt and not args.refine:
        raise InputError("--refine-opt needs --refine xtb|dft")
    if args.refine:
        from golf.oracles import validated_spec

        validated_spec(args.refine, local=args.executor != "dask")  # unknown or missing backend: before any work
    settings = ConformerSettings(
        n_conformers=args.n_conformers, max_conformers=args.max_conformers, enumerate_stereo=args.enumerate_stereo,
        max_stereoisomers=args.max_stereoisomers, optimizer=args.optimizer, fmax=args.fmax,
        max_steps=args.max_steps, batch_size=args.batch_size, rmsd_threshold=args.rmsd,
        energy_threshold=args.energy_threshold, top_k=None if args.top_k == 0 else args.top_k,
        window=args.window, seed=args.seed, charge=args.charge, multiplicity=args.multiplicity,
    )
    settings.check()

    import torch
    from tqdm import tqdm

    from golf import conformers as gc
    from golf.cli._batch import PARTIAL
    from golf.progress import progress_bar
    from golf.models import load_model

    if args.threads:
        torch.set_num_threads(int(args.threads))
    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise InputError(f"--device {args.device}: {exc}") from None
    dtype = torch.float64 if args.dtype == "float64" else torch.float32
    molecules = gc.read_molecules(args.input, charge=args.charge, multiplicity=args.multiplicity)
    model = load_model(args.model, device=device, dtype=dtype)
    model_name = str((model.provenance or {}).get("name") or Path(str(args.model)).stem)

    def log(msg: str) -> None:
        tqdm.write(f"golf conformers: {msg}", file=sys.stderr)

    # ETKDG first (minutes for large molecules), then one batched relaxation: a bar for each phase
    ebar = progress_bar(total=len(molecules), unit="mol", disable=args.no_progress, desc="embed")
    bars = [ebar]

    def total(n: int) -> None:
        ebar.close()
        bars.append(progress_bar(total=n, unit="conf", disable=args.no_progress, desc="relax"))

    t0 = time.perf_counter()
    try:
        results = gc.generate_conformer_ensembles(molecules, model, settings, device=device, dtype=dtype,
                                                  progress=lambda k: bars[-1].update(k), on_total=total, log=log,
                                                  embedded=ebar.update)
    finally:
        for b in bars:
            b.close()
    seconds = time.perf_counter() - t0
    n_ok = sum(r.ok for r in results)
    if n_ok == 0:
        raise InputError(f"{args.input}: no molecule produced conformers ({len(results)} failed)")
    if args.refine:
        n_kept = sum(len(r.conformers) for r in results if r.ok)
        rbar = progress_bar(total=n_kept, unit="conf", disable=args.no_progress, desc=f"refine {args.refine}")
        gc.refine(results, args.refine, optimize=args.refine_opt, fmax=args.refine_fmax, executor=args.executor,
                  n_workers=args.workers, scheduler=args.scheduler, timeout=args.timeout, progress=rbar.update)
        rbar.close()
    method = None
    if args.refine:
        method = f"{args.refine}{' relaxation' if args.refine_opt else ' single point'}"
    n_written = gc.write_sdf(out, results, model_name, refine_method=method)
    from golf.errors import OutputError

    try:
        gc.write_summary(summary, results)
    except OutputError as exc:  # the conformers themselves are saved: say so
        raise OutputError(exc.path, exc.cause, f"{exc.note}; the {n_written} conformers are in {out}") from None
    refine_failed = _report_refine_failures(results, args.refine) if args.refine else 0
    n_embedded = sum(r.n_embedded for r in results)
    dropped = sum(r.n_graph_changed + r.n_stereo_changed for r in results)
    failed = [r for r in results if not r.ok]
    print(
        f"golf conformers: {n_ok}/{len(results)} molecules, {n_embedded} conformers relaxed with {model_name} in "
        f"{seconds:.1f} s ({n_embedded / max(seconds, 1e-9):.1f} conformers/s), {dropped} dropped (bonds/stereo "
        f"changed), {n_written} kept -> {out}, {summary}"
        + (f"; {len(failed)} failed: {', '.join(r.name for r in failed[:5])}{' ...' if len(failed) > 5 else ''}"
           if failed else ""),
        file=sys.stderr,
    )
    if args.refine and refine_failed and not any(rec.refined for r in results if r.ok for rec in r.conformers):
        first = next((rec.refine_reason for r in results if r.ok for rec in r.conformers if rec.refine_reason), "")
        print(f"golf conformers: every {args.refine} refinement failed ({refine_failed} calls; first: {first}); "
              f"{out} ranks every conformer by model energy", file=sys.stderr)
    return PARTIAL if failed or refine_failed else 0


def _report_refine_failures(results: list, oracle: str) -> int:
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
