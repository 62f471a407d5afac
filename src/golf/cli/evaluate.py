"""``golf evaluate``: the paper's relaxation metrics of a model (and/or RDKit MMFF) on a reference set.

    golf evaluate --model GOLF-10k.pt --reference test.db --out eval/ [--mmff]
    golf evaluate --model mmff --reference test.db --out eval-mmff/

Relaxes every test conformation with the model for max(--steps) optimizer steps, evaluates the
genuine oracle (the one that made the reference optima) at the start and after each T through an
oracle executor, prints one table row per T and writes OUT/metrics.json and OUT/metrics.png.
"""
from __future__ import annotations

import argparse

DEFAULT_STEPS = "1,2,3,5,8,13,21,30,50,75,100"


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
    parser.add_argument("--limit", type=int, default=None, metavar="N", help="evaluate only the first N conformations")
    g = parser.add_argument_group("genuine oracle")
    g.add_argument(
        "--oracle", default=None,
        help="genuine oracle (default: the oracle recorded in the reference db; must match it)",
    )
    g.add_argument("--executor", default="local", choices=("local", "serial", "dask"), help="where oracle calls run")
    g.add_argument("--workers", type=int, default=2, help="oracle worker processes (local/dask)")
    g.add_argument("--threads-per-worker", type=int, default=1, help="threads per oracle worker")
    g.add_argument("--scheduler", default=None, metavar="ADDR", help="Dask scheduler address (--executor dask)")
    g.add_argument("--timeout", type=float, default=None, help="seconds per oracle call before it is retried/failed")
    o = parser.add_argument_group("model optimizer")
    o.add_argument(
        "--optimizer", default="lbfgs",
        help="golf.optim method: lbfgs (default), lbfgs-ase, lbfgs-golf (the paper's torch L-BFGS), fire, gd",
    )
    o.add_argument(
        "--fmax", type=float, default=None,
        help="force threshold eV/A (default: tiny, so relaxations run all max(--steps) steps)",
    )
    o.add_argument("--batch-size", type=int, default=None, help="molecules per optimizer batch")
    o.add_argument("--device", default="cpu", help="torch device for the model (default cpu)")
    o.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _parse_steps(text: str) -> list[int]:
    from golf.errors import InputError

    try:
        steps = [int(s) for s in str(text).replace(" ", "").split(",") if s]
    except ValueError:
        raise InputError(f"--steps: expected comma-separated integers, got {text!r}") from None
    if not steps or any(t < 1 for t in steps):
        raise InputError(f"--steps: expected integers >= 1, got {text!r}")
    return sorted(set(steps))


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from golf.errors import InputError
    from golf.evaluate import (
        DEFAULT_FMAX,
        evaluate_mmff,
        evaluate_model,
        load_reference,
        reference_oracle,
        write_metrics,
    )

    steps = _parse_steps(args.steps)
    if args.limit is not None and args.limit < 1:
        raise InputError("--limit must be >= 1")
    if args.workers < 1:
        raise InputError("--workers must be >= 1")
    model_arg = str(args.model)
    mmff_only = model_arg.lower() == "mmff"
    from golf.models.registry import resolve_model  # model names ("GOLF-10k") resolve to files

    model_path = None if mmff_only else resolve_model(model_arg)[0]
    if model_path is not None and not model_path.is_file():
        raise InputError(f"{model_path}: model checkpoint not found")
    ref_path = Path(args.reference)
    reference = load_reference(ref_path, limit=args.limit)

    # the genuine oracle must be the one that made the reference optima
    ref_oracle, ref_settings = reference_oracle(ref_path)
    oracle_name = args.oracle or ref_oracle or "xtb"
    if ref_oracle and oracle_name != ref_oracle:
        raise InputError(
            f"{ref_path}: reference optima were computed with oracle {ref_oracle!r}, not {oracle_name!r}"
        )
    oracle_settings = dict(ref_settings) if oracle_name == ref_oracle else {}

    if not mmff_only:
        from golf.optim import METHODS

        if args.optimizer not in METHODS:
            raise InputError(f"--optimizer: unknown method {args.optimizer!r}; choose one of {', '.join(METHODS)}")
    model = None
    name = args.name
    if not mmff_only:
        import torch

        if args.threads:
            torch.set_num_threads(int(args.threads))
        from golf.models.checkpoint import load_model

        model = load_model(str(model_path), device=args.device)
        model.eval()
        check = getattr(model, "check_elements", None)
        if check is not None:
            check([r.conf.numbers for r in reference])
        name = name or model_path.stem

    from golf.oracles.base import OracleSpec
    from golf.oracles.executors import make_executor

    spec = OracleSpec(oracle_name, oracle_settings)
    fmax = DEFAULT_FMAX if args.fmax is None else float(args.fmax)
    results = []
    t0 = time.perf_counter()
    with make_executor(
        spec,
        kind=args.executor,
        n_workers=args.workers,
        threads_per_worker=args.threads_per_worker,
        scheduler=args.scheduler,
        timeout=args.timeout,
    ) as executor:
        if model is not None:
            results.append(
                evaluate_model(
                    model,
                    reference,
                    executor,
                    steps=steps,
                    optimizer=args.optimizer,
                    fmax=fmax,
                    batch_size=args.batch_size,
                    name=name,
                    progress=not args.no_progress,
                )
            )
        if mmff_only or args.mmff:
            results.append(
                evaluate_mmff(
                    reference, executor, steps=steps, name="mmff" if not mmff_only else (args.name or "mmff"),
                    progress=not args.no_progress,
                )
            )
    settings = {
        "model": None if model_path is None else str(model_path),
        "reference": str(ref_path),
        "n_conformations": len(reference),
        "limit": args.limit,
        "steps": steps,
        "oracle": oracle_name,
        "oracle_settings": oracle_settings,
        "executor": args.executor,
        "workers": args.workers,
        "optimizer": args.optimizer,
        "fmax": fmax,
        "batch_size": args.batch_size,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_metrics(out / "metrics.json", results, settings)
    from golf.plots import plot_metrics

    plot_metrics(
        {r.name: r.aggregate for r in results},
        out / "metrics.png",
        title=f"{ref_path.name}: genuine oracle {oracle_name}, {len(reference)} conformations",
    )
    for r in results:
        print(r.table())
        print()
    print(f"wrote {out / 'metrics.json'} and {out / 'metrics.png'}")
    return 0
