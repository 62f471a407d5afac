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
    from golf.cli._types import setting_type
    from golf.presets import DTYPES
    from golf.runs.batch_run import EXIT_CODES
    from golf.runs.predict import PredictSettings as S

    parser.epilog = EXIT_CODES
    parser.add_argument("input", help="structures: .sdf/.mol, .xyz/.extxyz, .db (ASE), .smi/.csv")
    parser.add_argument("--model", required=True,
                        help="golf checkpoint or official GOLF/schnetpack state dict (.pt), or a model name")
    parser.add_argument("-o", "--output", required=True, help="output file (.extxyz; also .sdf or .db; an existing .db is replaced only when it "
                             "is an earlier golf predict output)")
    # options left out stay None: the settings dataclass holds the defaults
    parser.add_argument("--device", type=setting_type(S, "device"), default=None,
                        help=f"cpu, cuda, cuda:N or auto (default: {S.device})")
    parser.add_argument("--dtype", type=setting_type(S, "dtype"), default=None, choices=DTYPES,
                        help=f"(default {S.dtype})")
    parser.add_argument("--threads", type=setting_type(S, "threads"), default=None, help="torch threads (default: torch's)")
    parser.add_argument("--batch-size", type=setting_type(S, "batch_size"), default=None,
                        help="molecules per forward pass (default: automatic)")
    parser.add_argument("--keep-fragments", action="store_true", default=None,
                        help="keep counter-ions and solvents (default: strip them, keeping the largest organic fragment)")


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What ``golf predict`` reads and writes (``golf.cli._paths``)."""
    from golf.cli._paths import given
    from golf.runs.guard import Output
    from golf.runs.predict import implicit_outputs

    inputs = [(given(args, "input"), ""), (given(args, "model"), "--model")]
    out = given(args, "output")
    outputs = [Output(out, option="-o", db="predict"), *implicit_outputs(out)] if out else []
    return [(i, o) for i, o in inputs if i], outputs


def run(args: argparse.Namespace) -> int:
    from golf.cli._common import override
    from golf.formats import check_writable
    from golf.runs.predict import PredictSettings, predict

    settings = override(PredictSettings(model=args.model), args)
    check_writable(args.output)  # before any work
    out = predict(args.input, args.output, settings)
    left_out = f"; {len(out.skipped)} left out (reported above)" if out.skipped else ""
    print(f"wrote {out.n_written} structures to {args.output}{left_out}")
    return out.exit_code
