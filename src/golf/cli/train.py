"""``golf train``: train an NNP on labelled databases (baseline on D0, traj-N on D0 + trajectories,
``golf.runs.train``), or run GOLF with ``--golf`` (``golf.runs.golf``).

Outputs: ``--out model.pt`` (the best checkpoint by validation loss, a golf checkpoint) and a run
directory (``--log-dir``, default ``<out>.d/``) with ``last.pt``, ``trainer_state.pt`` (for
``--resume``), ``metrics.csv``, ``config.json`` and ``tensorboard/`` when TensorBoard is installed.
With ``--golf``, ``--out`` is the GOLF run directory.

Settings: explicit options > ``--preset`` > ``golf.presets`` (``TRAIN_PRESETS``, ``GOLF_PRESETS``).
"""
from __future__ import annotations

import argparse

from golf.cli._common import add_trigger_args
from golf.cli._types import call_counts, setting_type
from golf.presets import DEFAULT_GOLF_PRESET, DEFAULT_TRAIN_PRESET, GOLF_PRESETS, TRAIN_PRESETS, GolfTraining, OracleRun, Training


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", metavar="DB", default=None,
                        help="labelled ASE database (repeat to combine, e.g. D0.db and traj.db)")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output model file (best checkpoint); with --golf the run directory")
    parser.add_argument("--preset", choices=sorted(TRAIN_PRESETS), default=None,
                        help=f"settings bundle (default {DEFAULT_TRAIN_PRESET}); 'paper' = PaiNN 128x3, cutoff 5, "
                             "50 RBF, Adam 1e-4 cosine, batch 64, clip 1.0")
    m = parser.add_argument_group("model")
    m.add_argument("--model", type=setting_type(Training, "model"), choices=["painn", "schnet"], default=None)
    m.add_argument("--features", type=setting_type(Training, "features"), default=None, help="atom feature size (n_atom_basis)")
    m.add_argument("--interactions", type=setting_type(Training, "interactions"), default=None, help="interaction blocks")
    m.add_argument("--cutoff", type=setting_type(Training, "cutoff"), default=None, help="neighbour cutoff (Angstrom)")
    m.add_argument("--n-rbf", type=setting_type(Training, "n_rbf"), default=None, help="radial basis functions")
    t = parser.add_argument_group("training")
    t.add_argument("--epochs", type=setting_type(Training, "epochs"), default=None)
    t.add_argument("--batch-size", type=setting_type(Training, "batch_size"), default=None)
    t.add_argument("--lr", type=setting_type(Training, "lr"), default=None, help="initial learning rate (Adam)")
    t.add_argument("--lr-min", type=setting_type(Training, "lr_min"), default=None, help="final learning rate of the cosine decay")
    t.add_argument("--clip", type=setting_type(Training, "clip"), default=None, help="gradient-norm clipping (0: off)")
    t.add_argument("--weight-decay", type=setting_type(Training, "weight_decay"), default=None)
    t.add_argument("--w-energy", type=setting_type(Training, "w_energy"), default=None, help=f"energy loss weight ({Training.w_energy})")
    t.add_argument("--w-forces", type=setting_type(Training, "w_forces"), default=None, help=f"force loss weight ({Training.w_forces})")
    t.add_argument("--val-fraction", type=setting_type(Training, "val_fraction"), default=None,
                   help=f"fraction of molecules held out for validation ({Training.val_fraction})")
    t.add_argument("--seed", type=setting_type(Training, "seed"), default=None)
    t.add_argument("--device", type=setting_type(Training, "device"), default=None, help=f"auto, cpu, cuda, cuda:N (default {Training.device})")
    t.add_argument("--init", default=None, metavar="MODEL",
                   help="start from this model (file or pretrained name such as baseline-NNP): its weights and "
                        "atomrefs (fine-tuning, e.g. traj-N from the baseline); its architecture overrides the model "
                        "options")
    t.add_argument("--refit-offsets", action="store_true",
                   help="with --init: first refit its per-element energy offsets to the training data by least "
                        "squares (a model trained at another level of theory, e.g. DFT -> xTB)")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's last state")
    t.add_argument("--log-dir", default=None, metavar="DIR", help="run directory (default <out>.d)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = parser.add_argument_group("GOLF (--golf; see golf.runs.golf and golf.loop)")
    g.add_argument("--golf", action="store_true", help="run the GOLF loop instead of plain training")
    g.add_argument("--from", dest="from_model", default=None, metavar="MODEL",
                   help="baseline model to start GOLF from")
    g.add_argument("--budget", type=setting_type(GolfTraining, "budget"), default=None, help="genuine-oracle calls")
    g.add_argument("--oracle", default=None, help="genuine oracle (xtb, dft, mmff)")
    g.add_argument("--n-parallel", type=setting_type(GolfTraining, "n_parallel"), default=None, help="parallel relaxation episodes")
    g.add_argument("--utd-ratio", type=setting_type(GolfTraining, "utd_ratio"), default=None, help="NNP updates per new conformation")
    g.add_argument("--initial-conf-pct", type=setting_type(GolfTraining, "initial_conf_pct"), default=None,
                   help="share of every batch drawn from D0")
    g.add_argument("--scheduler", type=setting_type(OracleRun, "scheduler"), default=None, metavar="ADDRESS", help="Dask scheduler address")
    g.add_argument("--workers", type=setting_type(OracleRun, "workers"), default=None, help="oracle worker processes")
    g.add_argument("--executor", type=setting_type(OracleRun, "executor"), choices=["local", "serial", "dask"], default=None,
                   help="where genuine-oracle calls run")
    g.add_argument("--timeout", type=setting_type(OracleRun, "timeout"), default=None, help="seconds per oracle call before it is retried")
    g.add_argument("--oracle-option", action="append", default=None, metavar="KEY=VALUE",
                   help="oracle setting (repeatable)")
    g.add_argument("--max-episode-steps", type=setting_type(GolfTraining, "max_episode_steps"), default=None, help="NNP optimizer steps per episode")
    g.add_argument("--cadence", type=setting_type(GolfTraining, "cadence"), choices=["block", "stream"], default=None,
                   help="block (official, default): rounds of n-parallel labels, then n-parallel x utd-ratio "
                        "updates; stream: utd-ratio updates per label as it arrives")
    g.add_argument("--max-pending", type=setting_type(GolfTraining, "max_pending"), default=None, help="stream cadence: oracle calls in flight at once")
    g.add_argument("--max-force-norm", type=setting_type(GolfTraining, "max_force_norm"), default=None,
                   help="labels whose force-matrix norm reaches this (eV/A) stay out of the buffer "
                        "(official 10.5 Hartree/A = 285.7 eV/A)")
    g.add_argument("--max-surrogate-energy", type=setting_type(GolfTraining, "max_surrogate_energy"), default=None,
                   help="no label when the MMFF energy after the step reaches this (eV; official 300 kcal/mol)")
    add_trigger_args(g)
    g.add_argument("--conf-optimizer", default=None, help="optimizer preset driving the episodes")
    g.add_argument("--checkpoint-every", type=setting_type(GolfTraining, "checkpoint_every"), default=None, help="checkpoint every N oracle calls")
    g.add_argument("--eval-every", type=setting_type(GolfTraining, "eval_every"), default=None, help="held-out evaluation every N oracle calls")
    g.add_argument("--snapshots", type=call_counts, default=None, metavar="N,N,...",
                   help="also save the model as OUT/model-at-<calls>.pt when the oracle calls first reach each N")
    # Options stay None unless given: the preset (golf.presets) supplies the rest.


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What ``golf train`` reads and writes (``golf.cli._paths``)."""
    from golf.cli._paths import given
    from golf.runs.guard import Output

    inputs = [*((d, "--data") for d in (args.data or [])), (given(args, "init"), "--init"),
              (given(args, "from_model"), "--from")]
    out = given(args, "out")
    outputs = []
    if out and args.golf:
        outputs = [Output(out, "dir", option="--out")]
    elif out:
        from golf.runs.train import implicit_outputs

        named = [Output(args.log_dir, "dir", option="--log-dir")] if args.log_dir else []
        outputs = [Output(out, option="--out"), *(named or implicit_outputs(out))]
    return [(i, o) for i, o in inputs if i], outputs


def resolve_settings(args: argparse.Namespace) -> Training:
    """``golf train`` settings: explicit options > preset > defaults."""
    from golf.cli._common import override

    return override(TRAIN_PRESETS[args.preset or DEFAULT_TRAIN_PRESET], args)


def run(args: argparse.Namespace) -> int:
    from golf.errors import InputError

    if args.golf:
        return _run_golf(args)
    if not args.data:
        raise InputError("--data DB is required (labelled ASE database; repeat for several)")
    from golf.runs.train import train

    if args.refit_offsets and not args.init:
        raise InputError("--refit-offsets needs --init MODEL")
    init = args.init
    if init:
        from golf.models.registry import resolve_model

        init = resolve_model(init)[0]
    train(resolve_settings(args), args.data, args.out, init=init, resume=args.resume, log_dir=args.log_dir,
          progress=not args.no_progress, preset=args.preset or DEFAULT_TRAIN_PRESET, refit_offsets=args.refit_offsets)
    return 0


def _run_golf(args: argparse.Namespace) -> int:
    """``golf train --golf``: options over the GOLF preset, then ``golf.runs.golf.train_golf``."""
    from pathlib import Path

    from golf.cli._common import oracle_run, override
    from golf.errors import InputError
    from golf.runs.golf import MODEL, train_golf

    if not args.from_model:
        raise InputError("--golf needs --from BASELINE.pt (the model GOLF starts from)")
    if not args.data:
        raise InputError("--golf needs --data D0.db (the initial dataset)")
    settings = override(GOLF_PRESETS[args.preset or DEFAULT_GOLF_PRESET], args)
    train_golf(args.from_model, args.data, args.out, settings, oracle_run(args), resume=bool(args.resume),
               progress=not args.no_progress)
    print(f"GOLF model: {Path(args.out) / MODEL}")
    return 0
