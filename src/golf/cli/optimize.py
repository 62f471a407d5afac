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

from golf.runs.optimize import METHODS  # noqa: F401 - re-exported


def add_arguments(p: argparse.ArgumentParser) -> None:
    from golf.chem import MAX_ATOMS
    from golf.runs.batch_run import EXIT_CODES
    import dataclasses

    from golf.runs.optimize import METHODS, OptimizeSettings

    d = {f.name: f.default for f in dataclasses.fields(OptimizeSettings)}  # the defaults, declared there
    p.epilog = EXIT_CODES
    p.add_argument("input", help="structures or SMILES (.smi .txt .csv .sdf .mol .xyz .extxyz .db); salts and "
                                 "mixtures are stripped to the largest organic fragment; an NNP relaxes single "
                                 f"molecules of at most {MAX_ATOMS} atoms with hydrogens")
    p.add_argument("-o", "--output", required=True, help="relaxed structures (.sdf .extxyz .xyz .db; an existing .db "
                                                     "is replaced only when it is an earlier golf optimize output)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="NNP checkpoint (golf or official GOLF/schnetpack) or model name")
    src.add_argument("--oracle", help="relax with an oracle instead (xtb, mmff, dft), in worker processes")
    p.add_argument("--conformers", type=int, default=d["conformers"], help=f"ETKDG conformers per SMILES (default {d['conformers']})")
    p.add_argument("--seed", type=int, default=d["seed"], help=f"conformer generation seed (default {d['seed']})")
    p.add_argument("--optimizer", choices=METHODS, default=d["optimizer"],
                   help="lbfgs-precon: robust L-BFGS preconditioned with Lindh's model Hessian (default; "
                        "about half the force evaluations of lbfgs); lbfgs: the same without preconditioner; "
                        "lbfgs-golf: the GOLF paper's torch L-BFGS setting (5 evaluations per step); "
                        "lbfgs-ase: ASE's LBFGS; fire; gd")
    p.add_argument("--fmax", type=float, default=d["fmax"], help=f"convergence: max |force| in eV/A (default {d['fmax']})")
    p.add_argument("--max-steps", type=int, default=d["max_steps"], help=f"step limit per conformation (default {d['max_steps']})")
    p.add_argument("--batch-size", type=int, default=None,
                   help="conformations optimized at once (default: automatic; others stream in)")
    p.add_argument("--device", default=d["device"], help=f"torch device for the model: cpu, cuda, cuda:N or auto (default {d['device']})")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="model precision (default float32; oracle runs use float64)")
    p.add_argument("--workers", type=int, default=d["workers"], help=f"oracle worker processes (default {d['workers']})")
    p.add_argument("--charge", type=int, default=None,
                   help="total charge of charged molecules (default: an SDF record's charge field, else neutral); "
                        "a model trained on neutral molecules only (every official one) refuses them one by one")
    p.add_argument("--multiplicity", type=int, default=None, help="spin multiplicity 2S+1 of radicals")
    p.add_argument("--keep-fragments", action="store_true",
                   help="keep counter-ions and solvents (for --oracle; an NNP refuses several fragments)")
    p.add_argument("--ph", type=float, default=None,
                   help="protonate SMILES/2D input at this pH (needs the optional package dimorphite-dl); "
                        "default: the protonation state as given")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from golf.formats import check_writable
    from golf.runs.optimize import OptimizeSettings, optimize

    settings = OptimizeSettings(
        model=args.model, oracle=args.oracle, optimizer=args.optimizer, fmax=args.fmax, max_steps=args.max_steps,
        batch_size=args.batch_size, conformers=args.conformers, seed=args.seed, device=args.device,
        dtype=args.dtype, workers=args.workers, charge=args.charge, multiplicity=args.multiplicity,
        keep_fragments=args.keep_fragments, ph=args.ph, progress=not args.no_progress)
    check_writable(args.output)  # before any work
    return optimize(args.input, args.output, settings).exit_code
