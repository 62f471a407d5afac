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
import dataclasses
from pathlib import Path
from typing import Any

from golf.runs.conformers import OPTIMIZERS  # noqa: F401 - re-exported


def add_arguments(p: argparse.ArgumentParser) -> None:
    from golf.chem import MAX_ATOMS
    from golf.cli._types import setting_type
    from golf.conformer_search import ConformerSettings as E
    from golf.presets import DTYPES
    from golf.runs.batch_run import EXIT_CODES
    from golf.runs.conformers import EXECUTORS, ConformersSettings as R
    from golf.cli._common import nnp_process_help

    # Every option sets a field of E (the ensemble) or R (the run); left out it stays None and the field
    # keeps the default declared there. --top-k defaults to the field's default itself: its None (no
    # limit) is the option's 0.
    def opt(g: Any, *flags: str, cls: type, field: str, **kw: Any) -> None:
        kw.setdefault("dest", field)
        g.add_argument(*flags, type=setting_type(cls, field), default=None, **kw)

    p.epilog = EXIT_CODES

    p.add_argument("input", help="molecules: SMILES (.smi .txt .csv) or SDF (.sdf .mol); one molecule per "
                                 f"record (salts stripped to the largest organic fragment; at most {MAX_ATOMS} atoms "
                                 "with hydrogens); a 3D SDF is an ensemble whose coordinates are relaxed as they "
                                 "are (default; --embed re-embeds)")
    p.add_argument("-o", "--output", required=True, help="conformers (.sdf)")
    p.add_argument("--summary", help="per-molecule CSV summary (default: OUTPUT with .csv)")
    p.add_argument("--model", default=None, help="NNP: a model name (golf models) or a checkpoint path "
                                                 f"(default {R.model})")
    g = p.add_argument_group("ensemble")
    opt(g, "--n-conformers", cls=E, field="n_conformers",
        help="ETKDG conformers per molecule (default: 5 x (rotatable bonds + 1), 10..--max-conformers)")
    opt(g, "--max-conformers", cls=E, field="max_conformers", help=f"cap of the automatic count (default {E.max_conformers})")
    g.add_argument("--enumerate-stereo", action="store_true", default=None,
                   help="enumerate unassigned stereocentres/double bonds")
    opt(g, "--max-stereoisomers", cls=E, field="max_stereoisomers", help=f"per input molecule (default {E.max_stereoisomers})")
    opt(g, "--seed", cls=E, field="seed", help=f"ETKDG seed (default {E.seed})")
    g.add_argument("--embed", action="store_true", default=None,
                   help="embed new ETKDG conformers even for a 3D SDF (default: a 3D SDF's own coordinates are "
                        "relaxed, nothing embedded; 2D SDF and SMILES are always embedded)")
    opt(g, "--ph", cls=E, field="ph",
        help="protonate embedded molecules at this pH (needs the optional package dimorphite-dl); "
             "default: the protonation state as given")
    opt(g, "--charge", cls=E, field="charge",
        help="net charge of charged molecules (default: an SDF record's charge field, else neutral); "
             "a model trained on neutral molecules only (every official one) refuses them one by one")
    opt(g, "--multiplicity", cls=E, field="multiplicity", help="accept radicals with this multiplicity")
    o = p.add_argument_group("relaxation")
    opt(o, "--mmff-start", cls=E, field="mmff_start", metavar="ITERS",
        help="relax each embedded conformer with this many MMFF94 iterations first and drop duplicates among "
             f"the MMFF minima before the model relaxes them (default {E.mmff_start}; 0: the model relaxes the "
             "ETKDG conformers themselves)")
    opt(o, "--optimizer", cls=E, field="optimizer", choices=OPTIMIZERS, help=f"(default {E.optimizer})")
    opt(o, "--fmax", cls=E, field="fmax", help=f"convergence, max |F| in eV/A (default {E.fmax})")
    opt(o, "--max-steps", cls=E, field="max_steps", help=f"steps per conformer (default {E.max_steps})")
    opt(o, "--batch-size", cls=E, field="batch_size", help="conformers relaxed at once (default: automatic)")
    opt(o, "--device", cls=R, field="device", help=f"torch device (default {R.device})")
    opt(o, "--dtype", cls=R, field="dtype", choices=DTYPES, help=f"(default {R.dtype})")
    threads_help, processes_help = nnp_process_help()
    opt(o, "--threads", cls=R, field="threads", help=threads_help)
    opt(o, "--processes", cls=R, field="processes", help=processes_help)
    s = p.add_argument_group("selection")
    opt(s, "--rmsd", cls=E, field="rmsd_threshold", metavar="RMSD",
        help=f"duplicate heavy-atom RMSD threshold, A (default {E.rmsd_threshold})")
    opt(s, "--energy-threshold", cls=E, field="energy_threshold",
        help=f"duplicates also differ by less than this, kcal/mol (default {E.energy_threshold})")
    s.add_argument("--top-k", type=setting_type(E, "top_k", means_none=0), default=E.top_k,
                   help=f"keep the k lowest per molecule (default {E.top_k}; 0 = all)")
    opt(s, "--window", cls=E, field="window", help="keep those within this many kcal/mol of the lowest")
    opt(s, "--temperature", cls=E, field="temperature", help=f"K, of the Boltzmann weights (default {E.temperature})")
    r = p.add_argument_group("refinement")
    r.add_argument("--refine", default=None, metavar="ORACLE",
                   help="oracle single points of kept conformers: xtb, dft, mmff or a plugin module:Class")
    r.add_argument("--refine-opt", action="store_true", default=None,
                   help="re-relax with the oracle instead of single points")
    opt(r, "--refine-fmax", cls=R, field="refine_fmax", help=f"oracle re-relaxation fmax, eV/A (default {R.refine_fmax})")
    opt(r, "--workers", cls=R, field="workers", help=f"oracle worker processes (default {R.workers})")
    opt(r, "--executor", cls=R, field="executor", choices=EXECUTORS, help=f"(default {R.executor})")
    opt(r, "--scheduler", cls=R, field="scheduler", help="Dask scheduler address (--executor dask)")
    opt(r, "--timeout", cls=R, field="timeout", help="seconds per oracle call")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What ``golf conformers`` reads and writes (``golf.cli._paths``): the conformers and the summary
    (named with --summary, else the one ``golf.runs.conformers.implicit_outputs`` declares)."""
    from golf.cli._paths import given
    from golf.runs.conformers import implicit_outputs
    from golf.runs.guard import Output

    inputs = [(given(args, "input"), ""), (given(args, "model"), "--model")]
    out, summary = given(args, "output"), given(args, "summary")
    outputs = []
    if out:
        named = [Output(summary, option="--summary")] if summary else []
        implicit = [dataclasses.replace(o, option=f"{o.option}; another with --summary") for o in implicit_outputs(out)]
        outputs = [Output(out, option="-o"), *(named or implicit)]
    return [(i, o) for i, o in inputs if i], outputs


def run(args: argparse.Namespace) -> int:
    from golf.errors import InputError
    from golf.formats import check_writable
    from golf.runs.conformers import conformers
    from golf.runs.guard import summary_path

    out = Path(args.output)
    if out.suffix.lower() != ".sdf":
        raise InputError(f"{out}: conformers are written as .sdf")
    summary = Path(args.summary or summary_path(out))  # checked and locked by golf.runs.guard
    check_writable(out, (".sdf",))  # both outputs, before any work
    check_writable(summary, None, option="--summary")
    if args.refine_opt and not args.refine:
        raise InputError("--refine-opt needs --refine xtb|dft")
    return conformers(args.input, str(out), resolve_settings(args), summary=str(summary)).exit_code


def resolve_settings(args: argparse.Namespace) -> Any:
    """The ``ConformersSettings`` of a ``golf conformers`` command line: the options given over the
    dataclasses' defaults."""
    from golf.cli._common import override
    from golf.conformer_search import ConformerSettings
    from golf.runs.conformers import ConformersSettings

    ensemble = dataclasses.replace(override(ConformerSettings(), args), top_k=args.top_k)
    return override(ConformersSettings(ensemble=ensemble, progress=not args.no_progress), args)
