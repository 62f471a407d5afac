"""``golf optimize``: relax conformations with an NNP (batched, golf.optim) or with an oracle
(the work: ``golf.runs.optimize``).

    golf optimize --model MODEL.pt INPUT -o OUTPUT.sdf [--conformers K] [--optimizer lbfgs-precon]
    golf optimize --oracle xtb INPUT -o OUTPUT.sdf

INPUT: SMILES (.smi/.txt/.csv, ``--conformers`` ETKDG conformers each), SDF, XYZ/extXYZ or ASE db.
OUTPUT: .sdf (bonds kept, the input's SDF fields passed through), .extxyz/.xyz or .db, with the fields
of ``golf.outputs`` (golf_energy_eV, golf_fmax_eV_A, golf_steps, golf_converged, golf_model...).

One structure never aborts the batch: a structure that cannot be read, that the method cannot handle
(an NNP: unseen elements, charged or open-shell for a model trained on neutral molecules only, fragments
kept with --keep-fragments, more than ``golf.chem.MAX_ATOMS`` atoms; MMFF: bond orders that cannot be
assigned) or whose relaxation fails is reported on one stderr line and left out of OUTPUT; the exit
code is then 3. Salts are stripped to their largest organic fragment unless --keep-fragments.
"""
from __future__ import annotations

import argparse
from typing import Any

from golf.runs.optimize import METHODS  # noqa: F401 - re-exported


def add_arguments(p: argparse.ArgumentParser) -> None:
    from golf.chem import MAX_ATOMS
    from golf.cli._types import setting_type
    from golf.cli._common import nnp_process_help
    from golf.presets import DTYPES
    from golf.runs.batch_run import EXIT_CODES
    from golf.runs.optimize import METHODS, OptimizeSettings as S

    def opt(*flags: str, field: str, **kw) -> None:  # an option of a settings field; its default is the field's
        p.add_argument(*flags, type=setting_type(S, field), default=None, **kw)

    p.epilog = EXIT_CODES
    p.add_argument("input", help="structures or SMILES (.smi .txt .csv .sdf .mol .xyz .extxyz .db); salts and "
                                 "mixtures are stripped to the largest organic fragment; an NNP relaxes single "
                                 f"molecules of at most {MAX_ATOMS} atoms with hydrogens")
    p.add_argument("-o", "--output", required=True, help="relaxed structures (.sdf .extxyz .xyz .db; an existing .db "
                                                     "is replaced only when it is an earlier golf optimize output)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="NNP checkpoint (golf or official GOLF/schnetpack) or model name")
    src.add_argument("--oracle", help="relax with an oracle instead (xtb, mmff, dft), in worker processes")
    opt("--conformers", field="conformers", help=f"ETKDG conformers per SMILES (default {S.conformers})")
    opt("--seed", field="seed", help=f"conformer generation seed (default {S.seed})")
    opt("--optimizer", field="optimizer", choices=METHODS,
        help=f"lbfgs-precon: robust L-BFGS preconditioned with Lindh's model Hessian (default {S.optimizer}; "
             "about half the force evaluations of lbfgs); lbfgs: the same without preconditioner; "
             "lbfgs-golf: the GOLF paper's torch L-BFGS setting (5 evaluations per step); "
             "lbfgs-ase: ASE's LBFGS; fire; gd")
    opt("--fmax", field="fmax", help=f"convergence: max |force| in eV/A (default {S.fmax})")
    opt("--max-steps", field="max_steps", help=f"step limit per conformation (default {S.max_steps})")
    opt("--batch-size", field="batch_size", help="conformations optimized at once (default: automatic; others stream in)")
    opt("--device", field="device", help=f"torch device for the model: cpu, cuda, cuda:N or auto (default {S.device})")
    threads_help, processes_help = nnp_process_help()
    opt("--threads", field="threads", help=threads_help)
    opt("--processes", field="processes", help=processes_help)
    opt("--dtype", field="dtype", choices=DTYPES, help=f"model precision (default {S.dtype}; oracle runs use float64)")
    opt("--workers", field="workers", help=f"oracle worker processes (default {S.workers})")
    opt("--charge", field="charge",
        help="total charge of charged molecules (default: an SDF record's charge field, else neutral); "
             "a model trained on neutral molecules only (every official one) refuses them one by one")
    opt("--multiplicity", field="multiplicity", help="spin multiplicity 2S+1 of radicals")
    p.add_argument("--keep-fragments", action="store_true", default=None,
                   help="keep counter-ions and solvents (for --oracle; an NNP refuses several fragments)")
    opt("--ph", field="ph", help="protonate SMILES/2D input at this pH (needs the optional package dimorphite-dl); "
                                 "default: the protonation state as given")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What ``golf optimize`` reads and writes (``golf.cli._paths``)."""
    from golf.cli._paths import given
    from golf.runs.guard import Output
    from golf.runs.optimize import implicit_outputs

    inputs = [(given(args, "input"), ""), (given(args, "model"), "--model")]
    out = given(args, "output")
    outputs = [Output(out, option="-o", db="optimize"), *implicit_outputs(out)] if out else []
    return [(i, o) for i, o in inputs if i], outputs


def resolve_settings(args: argparse.Namespace) -> Any:
    """The ``OptimizeSettings`` of a ``golf optimize`` command line: the options given over the defaults."""
    from golf.cli._common import override
    from golf.runs.optimize import OptimizeSettings

    return override(OptimizeSettings(model=args.model, oracle=args.oracle, progress=not args.no_progress), args)


def run(args: argparse.Namespace) -> int:
    from golf.formats import check_writable
    from golf.runs.optimize import optimize

    settings = resolve_settings(args)
    check_writable(args.output)  # before any work
    return optimize(args.input, args.output, settings).exit_code
