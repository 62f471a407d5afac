"""``golf predict``: energies (eV) and forces (eV/Angstrom) of every structure in a file, with an NNP.

One structure never aborts the batch (``golf.cli._batch``): an unreadable structure, an element the
model never saw, or a charged/open-shell structure (for a model trained on neutral closed-shell molecules only) is
reported on one stderr line and left out of the output (exit code 3). Bond orders are not needed:
XYZ structures whose bond orders RDKit cannot assign keep their connectivity only.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from golf.cli._batch import EXIT_CODES

    parser.epilog = EXIT_CODES
    parser.add_argument("input", help="structures: .sdf/.mol, .xyz/.extxyz, .db (ASE), .smi/.csv")
    parser.add_argument("--model", required=True,
                        help="golf checkpoint or official GOLF/schnetpack state dict (.pt)")
    parser.add_argument("-o", "--output", required=True, help="output file (.extxyz; also .sdf or .db; an existing .db is replaced only when it "
                             "is an earlier golf predict output)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--batch-size", type=int, default=64, help="molecules per forward pass (default 64)")


def run(args: argparse.Namespace) -> int:
    from golf.cli._batch import read_batch, split_supported
    from golf.errors import InputError
    from golf.formats import check_writable

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be at least 1 (got {args.batch_size})")
    check_writable(args.output)  # before any work

    import torch

    from golf.batch import Batch
    from golf.formats import write_conformations
    from golf.models.checkpoint import load_model, resolve_device
    from golf.models.potential import ModelEnergyForces

    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise InputError(f"bad --device {args.device!r}: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda requested but CUDA is not available")
    model = load_model(args.model, device=device, dtype=args.dtype)
    confs, skipped = read_batch("predict", args.input, bond_orders=False, neutral_only=model.neutral_only)
    confs = split_supported(model, confs, skipped)
    provider = ModelEnergyForces(model)
    properties = []
    for start in range(0, len(confs), args.batch_size):
        chunk = confs[start : start + args.batch_size]
        batch = Batch.from_conformations(chunk, device=device, dtype=model.dtype)
        energy, forces = provider(batch)
        for e, f in zip(energy.cpu().double().numpy(), batch.split(forces)):
            properties.append({"energy": float(e), "forces": f.cpu().double().numpy()})
    write_conformations(args.output, confs, properties, kind="predict")
    left_out = f"; {len(skipped)} left out (reported above)" if len(skipped) else ""
    print(f"wrote {len(confs)} structures to {args.output}{left_out}")
    return skipped.exit_code()
