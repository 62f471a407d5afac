"""``golf predict``: energies (eV) and forces (eV/Angstrom) of every structure in a file, with an NNP
(the work: ``golf.runs.predict``).

One structure never aborts the batch: an unreadable structure, an element the model never saw, or a
charged/open-shell structure (for a model trained on neutral closed-shell molecules only) is
reported on one stderr line and left out of the output (exit code 3). Salts are stripped to their
largest organic fragment (one stderr line each) unless --keep-fragments.
"""
from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from golf.runs.batch_run import EXIT_CODES
    from golf.runs.predict import PredictSettings

    d = PredictSettings()
    parser.epilog = EXIT_CODES
    parser.add_argument("input", help="structures: .sdf/.mol, .xyz/.extxyz, .db (ASE), .smi/.csv")
    parser.add_argument("--model", required=True,
                        help="golf checkpoint or official GOLF/schnetpack state dict (.pt), or a model name")
    parser.add_argument("-o", "--output", required=True, help="output file (.extxyz; also .sdf or .db; an existing .db is replaced only when it "
                             "is an earlier golf predict output)")
    parser.add_argument("--device", default=d.device, help=f"cpu, cuda, cuda:N or auto (default: {d.device})")
    parser.add_argument("--dtype", default=d.dtype, choices=["float32", "float64"])
    parser.add_argument("--batch-size", type=int, default=d.batch_size,
                        help="molecules per forward pass (default: automatic)")
    parser.add_argument("--keep-fragments", action="store_true",
                        help="keep counter-ions and solvents (default: strip them, keeping the largest organic fragment)")


def run(args: argparse.Namespace) -> int:
    from golf.formats import check_writable
    from golf.runs.predict import PredictSettings, predict

    settings = PredictSettings(model=args.model, device=args.device, dtype=args.dtype, batch_size=args.batch_size,
                               keep_fragments=args.keep_fragments)
    check_writable(args.output)  # before any work
    out = predict(args.input, args.output, settings)
    left_out = f"; {len(out.skipped)} left out (reported above)" if out.skipped else ""
    print(f"wrote {out.n_written} structures to {args.output}{left_out}")
    return out.exit_code
