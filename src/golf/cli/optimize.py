"""``golf optimize``: relax conformations with an NNP (batched, golf.optim) or with an oracle.

    golf optimize --model MODEL.pt INPUT -o OUTPUT.sdf [--conformers K] [--optimizer lbfgs-precon]
    golf optimize --oracle xtb INPUT -o OUTPUT.sdf

INPUT: SMILES (.smi/.txt/.csv, ``--conformers`` ETKDG conformers each), SDF, XYZ/extXYZ or ASE db.
OUTPUT: .sdf (bonds kept), .extxyz/.xyz or .db, with per-structure energy (eV), fmax (eV/A; ``max_force``
in .db, where ASE reserves ``fmax``), n_steps, n_force_calls, converged and reason. Oracles run in spawned
worker processes, never in this process.

One structure never aborts the batch (``golf.cli._batch``): a structure that cannot be read, that the
method cannot handle (an NNP: unseen elements, charged or open-shell for a model trained on neutral
molecules only, several fragments, more than ``golf.chem.MAX_ATOMS`` atoms; MMFF: bond orders that cannot be
assigned) or whose relaxation fails is reported on one stderr line and left out of OUTPUT; the exit
code is then 3. NNPs need no bond orders: XYZ structures whose bond orders RDKit cannot assign keep
their connectivity only.
"""
from __future__ import annotations

import argparse
import sys
import time

METHODS = ("lbfgs", "lbfgs-precon", "lbfgs-golf", "lbfgs-ase", "fire", "gd")


def add_arguments(p: argparse.ArgumentParser) -> None:
    from golf.cli._batch import EXIT_CODES

    p.epilog = EXIT_CODES
    from golf.chem import MAX_ATOMS

    p.add_argument("input", help="structures or SMILES (.smi .txt .csv .sdf .mol .xyz .extxyz .db); an NNP "
                                 f"relaxes single molecules (one fragment) of at most {MAX_ATOMS} atoms with "
                                 "hydrogens, SMILES of more fragments or atoms are never embedded")
    p.add_argument("-o", "--output", required=True, help="relaxed structures (.sdf .extxyz .xyz .db; an existing .db "
                                                     "is replaced only when it is an earlier golf optimize output)")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="NNP checkpoint (golf or official GOLF/schnetpack)")
    src.add_argument("--oracle", help="relax with an oracle instead (xtb, mmff, dft), in worker processes")
    p.add_argument("--conformers", type=int, default=1, help="ETKDG conformers per SMILES (default 1)")
    p.add_argument("--seed", type=int, default=0, help="conformer generation seed (default 0)")
    p.add_argument("--optimizer", choices=METHODS, default="lbfgs-precon",
                   help="lbfgs-precon: robust L-BFGS preconditioned with Lindh's model Hessian (default; "
                        "about half the force evaluations of lbfgs); lbfgs: the same without preconditioner; "
                        "lbfgs-golf: the GOLF paper's torch L-BFGS setting (5 evaluations per step); "
                        "lbfgs-ase: ASE's LBFGS; fire; gd")
    p.add_argument("--fmax", type=float, default=0.05, help="convergence: max |force| in eV/A (default 0.05)")
    p.add_argument("--max-steps", type=int, default=1000, help="step limit per conformation (default 1000)")
    p.add_argument("--batch-size", type=int, default=256,
                   help="conformations optimized at once (default 256; others stream in)")
    p.add_argument("--device", default="cpu", help="torch device for the model: cpu, cuda, cuda:N or auto (default cpu)")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32",
                   help="model precision (default float32; oracle runs use float64)")
    p.add_argument("--workers", type=int, default=2, help="oracle worker processes (default 2)")
    p.add_argument("--charge", type=int, default=None,
                   help="total charge of charged molecules (default: an SDF record's charge field, else neutral; "
                        "with --model only for a model trained on charged molecules)")
    p.add_argument("--multiplicity", type=int, default=None,
                   help="spin multiplicity 2S+1 of radicals (--oracle only)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from golf.errors import InputError

    if args.fmax <= 0:
        raise InputError(f"--fmax must be positive (got {args.fmax})")
    if args.max_steps < 0 or args.batch_size < 1 or args.conformers < 1 or args.workers < 1:
        raise InputError("--max-steps must be >= 0 and --batch-size, --conformers, --workers >= 1")
    from golf.cli._batch import describe, read_batch, split_supported
    from golf.formats import check_writable

    check_writable(args.output)  # before any work
    import torch

    if args.model:
        from golf.models import load_model
        from golf.models.checkpoint import resolve_device

        dtype = torch.float64 if args.dtype == "float64" else torch.float32
        try:
            device = resolve_device(args.device)  # validated by golf.cli._types; "auto" resolved here
        except RuntimeError as exc:
            raise InputError(f"--device {args.device}: {exc}") from None
        model = load_model(args.model, device=device, dtype=dtype)  # before reading: what it can take
        if model.neutral_only and (args.charge or (args.multiplicity or 1) != 1):
            raise InputError("--charge/--multiplicity: the model was trained on neutral closed-shell molecules "
                             "only (they apply to --oracle relaxations)")
        bond_orders = False
    else:
        from golf.oracles import oracle_class
        from golf.presets import OracleRun
        from golf.runs.data import oracle_spec

        oracle = OracleRun(oracle=args.oracle, workers=args.workers)
        spec = oracle_spec(oracle)  # the oracle and its settings, before any work
        bond_orders = bool(getattr(oracle_class(spec.name), "needs_bond_orders", False))
    from golf.progress import progress_bar

    embed_bar: list = []  # made at the first molecule embedded: a SMILES file's ETKDG can take minutes

    def embedded(done: int, total: int) -> None:
        if not embed_bar:
            embed_bar.append(progress_bar(total=total, unit="mol", desc="embed", disable=args.no_progress))
        embed_bar[0].update(1)
        if done == total:
            embed_bar[0].close()

    confs, skipped = read_batch("optimize", args.input, bond_orders=bond_orders,
                                neutral_only=bool(args.model) and model.neutral_only,
                                conformers=args.conformers, seed=args.seed, charge=args.charge,
                                multiplicity=args.multiplicity, embedded=embedded)

    import numpy as np

    from golf.formats import write_conformations
    from golf.optim import relax

    t0 = time.perf_counter()
    if args.model:
        from golf.models import ModelEnergyForces

        confs = split_supported(model, confs, skipped, relax=True)
        with progress_bar(total=len(confs), unit="conf", desc="optimize", disable=args.no_progress) as bar:
            recs = relax(ModelEnergyForces(model), confs, device=device, dtype=dtype, method=args.optimizer,
                         fmax=args.fmax, max_steps=args.max_steps, batch_size=args.batch_size,
                         progress=bar.update)
    else:
        from golf.optim import OracleEnergyForces
        from golf.runs.data import open_executor

        with open_executor(oracle, spec) as ex, \
                progress_bar(total=len(confs), unit="conf", desc="optimize", disable=args.no_progress) as bar:
            recs = relax(OracleEnergyForces(ex, templates=confs), confs, dtype=torch.float64, method=args.optimizer,
                         fmax=args.fmax, max_steps=args.max_steps, batch_size=args.batch_size,
                         progress=bar.update)
    seconds = time.perf_counter() - t0

    from golf.optim.state import MAX_STEPS

    done, props, n_failed = [], [], 0
    for c, r in zip(confs, recs):
        if not r.converged and r.reason != MAX_STEPS:  # the relaxation itself failed
            n_failed += 1
            skipped(f"{describe(c)}: relaxation failed: {r.reason}")
            continue
        done.append(c.with_positions(r.positions))
        props.append(dict(energy=r.energy, fmax=r.fmax, n_steps=r.n_steps, n_force_calls=r.n_force_calls,
                          converged=r.converged, reason=r.reason))
    if not done:
        raise InputError(f"no structure could be relaxed ({skipped.reasons[-1]})")
    if args.model:  # how far to trust each NNP relaxation (golf.trust); NaN where MMFF cannot type it
        from golf.trust import mmff_energy_drop
        from golf.units import EV_TO_KCAL_MOL

        for p, drop in zip(props, mmff_energy_drop(done)):
            p["trust_mmff_drop_kcal_mol"] = float(drop) * EV_TO_KCAL_MOL
    from golf.errors import OutputError

    try:
        write_conformations(args.output, done, props, kind="optimize")
    except OutputError as exc:  # say that the relaxations are lost, not only that the file is missing
        raise OutputError(exc.path, exc.cause, f"{exc.note}; the {len(done)} relaxed conformations were not "
                                               "saved: free space or choose another -o and run again") from None
    n_mols = len({(c.mol_id, c.smiles) for c in confs})
    n_conv = sum(p["converged"] for p in props)
    print(
        f"golf optimize: {n_mols} molecules, {len(recs)} conformations, {n_conv} converged"
        f"{f', {n_failed} failed' if n_failed else ''}"
        f"{f', {len(skipped)} left out (reported above)' if len(skipped) else ''}, "
        f"median steps {np.median([r.n_steps for r in recs]):.0f}, "
        f"{len(recs) / max(seconds, 1e-9):.2f} conformations/s -> {args.output}",
        file=sys.stderr,
    )
    return skipped.exit_code()
