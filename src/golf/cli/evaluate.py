"""``golf evaluate``: the paper's relaxation metrics of a model (and/or RDKit MMFF) on a reference set.

    golf evaluate --model GOLF-10k.pt --reference test.db --out eval/ [--mmff]
    golf evaluate --model mmff --reference test.db --out eval-mmff/

Relaxes every test conformation with the model for max(--steps) optimizer steps, evaluates the
genuine oracle (the one that made the reference optima) at the start and after each T through an
oracle executor, prints one table row per T and writes OUT/metrics.json and OUT/metrics.png.
"""
from __future__ import annotations

import argparse

from golf.cli._types import setting_type
from golf.presets import EXECUTORS, Evaluation, OracleRun

DEFAULT_STEPS = ",".join(str(t) for t in Evaluation.steps)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model", required=True,
        help="model checkpoint (golf or official GOLF .pt), or 'mmff' for the RDKit MMFF94 row only",
    )
    parser.add_argument(
        "--reference", required=True, metavar="REF.db",
        help="test set with reference optima (made by `golf data reference`)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument(
        "--steps", default=DEFAULT_STEPS,
        help=f"comma-separated optimizer steps T at which the genuine oracle is evaluated (default {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--mmff", action="store_true", help="also evaluate the RDKit MMFF94 relaxation reference row"
    )
    parser.add_argument("--name", default=None, help="label of the model (default: checkpoint file stem)")
    parser.add_argument("--limit", type=setting_type(Evaluation, "limit"), default=None, metavar="N", help="evaluate only the first N conformations")
    g = parser.add_argument_group("genuine oracle")
    g.add_argument(
        "--oracle", default=None,
        help="genuine oracle (default: the oracle recorded in the reference db; must match it)",
    )
    g.add_argument("--executor", default=None, choices=EXECUTORS,
                   help=f"where oracle calls run (default {OracleRun.executor})")
    g.add_argument("--workers", type=setting_type(OracleRun, "workers"), default=None,
                   help=f"oracle worker processes (local/dask; default {OracleRun.workers})")
    g.add_argument("--threads-per-worker", type=setting_type(OracleRun, "threads_per_worker"), default=None,
                   help=f"threads per oracle worker (default {OracleRun.threads_per_worker})")
    g.add_argument("--scheduler", type=setting_type(OracleRun, "scheduler"), default=None, metavar="ADDR", help="Dask scheduler address (--executor dask)")
    g.add_argument("--timeout", type=setting_type(OracleRun, "timeout"), default=None, help="seconds per oracle call before it is retried/failed")
    o = parser.add_argument_group("model optimizer")
    o.add_argument(
        "--optimizer", default=None,
        help="golf.optim method: lbfgs-golf (default: the paper's evaluation, torch L-BFGS lr 1, 5 inner "
             "iterations, in Hartree), lbfgs-precon, lbfgs, lbfgs-ase, fire, gd",
    )
    o.add_argument(
        "--fmax", type=setting_type(Evaluation, "fmax"), default=None,
        help="force threshold eV/A (default: tiny, so relaxations run all max(--steps) steps)",
    )
    o.add_argument("--batch-size", type=setting_type(Evaluation, "batch_size"), default=None, help="molecules per optimizer batch")
    o.add_argument("--device", type=setting_type(Evaluation, "device"), default=None, help=f"torch device for the model (default {Evaluation.device})")
    o.add_argument("--threads", type=setting_type(Evaluation, "threads"), default=None, help="torch intra-op threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def parse_steps(text: str) -> list[int]:
    from golf.errors import InputError

    try:
        steps = [int(s) for s in str(text).replace(" ", "").split(",") if s]
    except ValueError:
        raise InputError(f"--steps: expected comma-separated integers, got {text!r}") from None
    if not steps or any(t < 1 for t in steps):
        raise InputError(f"--steps: expected integers >= 1, got {text!r}")
    return sorted(set(steps))


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What ``golf evaluate`` reads and writes (``golf.cli._paths``): its output directory."""
    from golf.cli._paths import given
    from golf.runs.guard import Output

    inputs = [(given(args, "model"), "--model"), (given(args, "reference"), "--reference")]
    out = given(args, "out")
    return [(i, o) for i, o in inputs if i], [Output(out, "dir", option="--out")] if out else []


def run(args: argparse.Namespace) -> int:
    import dataclasses

    from golf.cli._common import override
    from golf.runs.evaluate import evaluate_run

    settings = dataclasses.replace(override(Evaluation(), args, steps="_"), steps=tuple(parse_steps(args.steps)))
    evaluate_run(args.model, args.reference, args.out, settings, override(OracleRun(oracle=""), args),
                 name=args.name, progress=not args.no_progress)
    return 0
