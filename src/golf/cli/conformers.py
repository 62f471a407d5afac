"""``golf conformers``: low-energy conformer ensembles of molecules, ready for drug design (the work:
``golf.runs.conformers``).

    golf conformers mols.smi -o confs.sdf                       # GOLF-10k, ETKDG ensemble, top 10 each
    golf conformers crest.sdf -o confs.sdf                      # a 3D ensemble: its coordinates relaxed
    golf conformers mols.sdf -o confs.sdf --enumerate-stereo --window 5
    golf conformers mols.smi -o confs.sdf --refine xtb          # xTB single points, re-ranked

Per molecule: salts stripped to the largest organic fragment; an ETKDG ensemble (5 x (rotatable bonds
+ 1), 10..--max-conformers, or --n-conformers), or, for a 3D SDF, its own coordinates (records grouped
into molecules by title, else canonical isomeric SMILES; --embed re-embeds), relaxed in one batched
stream by the model (any path or name, default GOLF-10k); conformers whose bonds or stereochemistry
changed are dropped and counted; duplicates (heavy-atom RMSD < --rmsd A, symmetry-aware, and |dE| <
--energy-threshold kcal/mol; mirror images where stereo is unassigned) removed; the --top-k lowest
(and/or those within --window kcal/mol) kept, ranked and Boltzmann-weighted at --temperature. Output:
SDF with the fields of ``golf.outputs`` and a per-molecule CSV summary (--summary, default OUT.csv).
A molecule that fails is reported on one line and the others go on.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from golf.runs.conformers import OPTIMIZERS  # noqa: F401 - re-exported


def add_arguments(p: argparse.ArgumentParser) -> None:
    from golf.runs.batch_run import EXIT_CODES

    from golf.chem import MAX_ATOMS
    from golf.conformer_search import ConformerSettings
    from golf.runs.conformers import ConformersSettings

    e, r0 = ConformerSettings(), ConformersSettings()  # the defaults, declared there
    p.epilog = EXIT_CODES

    p.add_argument("input", help="molecules: SMILES (.smi .txt .csv) or SDF (.sdf .mol); one molecule per "
                                 f"record (salts stripped to the largest organic fragment; at most {MAX_ATOMS} atoms "
                                 "with hydrogens); a 3D SDF is an ensemble whose coordinates are relaxed as they "
                                 "are (default; --embed re-embeds)")
    p.add_argument("-o", "--output", required=True, help="conformers (.sdf)")
    p.add_argument("--summary", help="per-molecule CSV summary (default: OUTPUT with .csv)")
    p.add_argument("--model", default=r0.model, help="NNP: a model name (golf models) or a checkpoint path "
                                                     f"(default {r0.model})")
    g = p.add_argument_group("ensemble")
    g.add_argument("--n-conformers", type=int, default=None,
                   help="ETKDG conformers per molecule (default: 5 x (rotatable bonds + 1), 10..--max-conformers)")
    g.add_argument("--max-conformers", type=int, default=e.max_conformers,
                   help=f"cap of the automatic count (default {e.max_conformers})")
    g.add_argument("--enumerate-stereo", action="store_true", help="enumerate unassigned stereocentres/double bonds")
    g.add_argument("--max-stereoisomers", type=int, default=e.max_stereoisomers,
                   help=f"per input molecule (default {e.max_stereoisomers})")
    g.add_argument("--seed", type=int, default=e.seed, help=f"ETKDG seed (default {e.seed})")
    g.add_argument("--embed", action="store_true",
                   help="embed new ETKDG conformers even for a 3D SDF (default: a 3D SDF's own coordinates are "
                        "relaxed, nothing embedded; 2D SDF and SMILES are always embedded)")
    g.add_argument("--ph", type=float, default=None,
                   help="protonate embedded molecules at this pH (needs the optional package dimorphite-dl); "
                        "default: the protonation state as given")
    g.add_argument("--charge", type=int, default=None,
                   help="net charge of charged molecules (default: an SDF record's charge field, else neutral); "
                        "a model trained on neutral molecules only (every official one) refuses them one by one")
    g.add_argument("--multiplicity", type=int, default=None, help="accept radicals with this multiplicity")
    o = p.add_argument_group("relaxation")
    o.add_argument("--optimizer", choices=OPTIMIZERS, default=e.optimizer, help=f"(default {e.optimizer})")
    o.add_argument("--fmax", type=float, default=e.fmax, help=f"convergence, max |F| in eV/A (default {e.fmax})")
    o.add_argument("--max-steps", type=int, default=e.max_steps, help=f"steps per conformer (default {e.max_steps})")
    o.add_argument("--batch-size", type=int, default=None, help="conformers relaxed at once (default: automatic)")
    o.add_argument("--device", default=r0.device, help=f"torch device (default {r0.device})")
    o.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    o.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    s = p.add_argument_group("selection")
    s.add_argument("--rmsd", type=float, default=e.rmsd_threshold,
                   help=f"duplicate heavy-atom RMSD threshold, A (default {e.rmsd_threshold})")
    s.add_argument("--energy-threshold", type=float, default=e.energy_threshold,
                   help=f"duplicates also differ by less than this, kcal/mol (default {e.energy_threshold})")
    s.add_argument("--top-k", type=int, default=e.top_k, help=f"keep the k lowest per molecule (default {e.top_k}; 0 = all)")
    s.add_argument("--window", type=float, default=None, help="keep those within this many kcal/mol of the lowest")
    s.add_argument("--temperature", type=float, default=e.temperature,
                   help=f"K, of the Boltzmann weights (default {e.temperature})")
    r = p.add_argument_group("refinement")
    r.add_argument("--refine", default=None, metavar="ORACLE",
                   help="oracle single points of kept conformers: xtb, dft, mmff or a plugin module:Class")
    r.add_argument("--refine-opt", action="store_true", help="re-relax with the oracle instead of single points")
    r.add_argument("--refine-fmax", type=float, default=r0.refine_fmax,
                   help=f"oracle re-relaxation fmax, eV/A (default {r0.refine_fmax})")
    r.add_argument("--workers", type=int, default=r0.workers, help=f"oracle worker processes (default {r0.workers})")
    r.add_argument("--executor", choices=("local", "dask"), default="local", help="(default local)")
    r.add_argument("--scheduler", default=None, help="Dask scheduler address (--executor dask)")
    r.add_argument("--timeout", type=float, default=None, help="seconds per oracle call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from golf.conformer_search import ConformerSettings
    from golf.errors import InputError
    from golf.formats import check_writable
    from golf.runs.conformers import ConformersSettings, conformers
    from golf.runs.guard import summary_path

    out = Path(args.output)
    if out.suffix.lower() != ".sdf":
        raise InputError(f"{out}: conformers are written as .sdf")
    summary = Path(args.summary or summary_path(out))  # checked and locked by golf.runs.guard
    check_writable(out, (".sdf",))  # both outputs, before any work
    check_writable(summary, None, option="--summary")
    if args.refine_opt and not args.refine:
        raise InputError("--refine-opt needs --refine xtb|dft")
    ensemble = ConformerSettings(
        n_conformers=args.n_conformers, max_conformers=args.max_conformers, enumerate_stereo=args.enumerate_stereo,
        max_stereoisomers=args.max_stereoisomers, optimizer=args.optimizer, fmax=args.fmax,
        max_steps=args.max_steps, batch_size=args.batch_size, rmsd_threshold=args.rmsd,
        energy_threshold=args.energy_threshold, top_k=None if args.top_k == 0 else args.top_k,
        window=args.window, seed=args.seed, charge=args.charge, multiplicity=args.multiplicity, embed=args.embed,
        ph=args.ph, temperature=args.temperature,
    )
    settings = ConformersSettings(
        model=args.model, device=args.device, dtype=args.dtype, threads=args.threads, ensemble=ensemble,
        refine=args.refine, refine_opt=args.refine_opt, refine_fmax=args.refine_fmax, workers=args.workers,
        executor=args.executor, scheduler=args.scheduler, timeout=args.timeout, progress=not args.no_progress)
    return conformers(args.input, str(out), settings, summary=str(summary)).exit_code
