"""``golf adapt MOLECULES --model NAME --oracle ORACLE --budget N --out DIR``: GOLF on your own molecules,
from a pretrained model, at your oracle's level of theory (``golf.runs.adapt``).

Outputs in DIR: ``model.pt`` (the adapted model; registered under ``--name``), ``start.db`` (the labelled
start set), ``generic.db`` (the generic set mixed into training), ``golf/`` (the GOLF run: oracle.db,
log.csv with held-out errors, checkpoint.pt), ``adapt.json`` and ``summary.json``. ``--resume`` continues
an interrupted adaptation (after a kill -9 too) without losing an oracle result that came back.
"""
from __future__ import annotations

import argparse

from golf.cli._common import add_executor_args, add_oracle_args, add_trigger_args
from golf.cli._types import setting_type
from golf.presets import GolfTraining
from golf.runs.adapt import ADAPT_GOLF, GENERIC_KINDS, REFIT_CHOICES, Adaptation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d = Adaptation()
    parser.add_argument("series", metavar="MOLECULES",
                        help="your series: SMILES (.smi/.txt/.csv) or structures (.sdf, .xyz, .db)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--model", default=None, help=f"pretrained model to adapt, name or file (default {d.model})")
    parser.add_argument("--budget", type=setting_type(Adaptation, "budget"), default=None,
                        help=f"every oracle call of the adaptation: start set, generic set, GOLF (default {d.budget})")
    parser.add_argument("--name", default=None, help="register the adapted model under this name (--model NAME)")
    parser.add_argument("--conformers", type=setting_type(Adaptation, "conformers"), default=None,
                        help=f"ETKDGv3 conformers per molecule in the start set (default {d.conformers})")
    parser.add_argument("--generic", default=None, metavar="KIND|DB",
                        help=f"generic conformations against forgetting: {', '.join(GENERIC_KINDS)} or a labelled "
                             f"database (default {d.generic}: teacher labels from the model when the oracle is at its "
                             "level of theory, else oracle labels)")
    parser.add_argument("--generic-molecules", type=setting_type(Adaptation, "generic_molecules"), default=None,
                        help=f"NCI molecules in the generic set (default {d.generic_molecules})")
    parser.add_argument("--generic-share", type=setting_type(Adaptation, "generic_share"), default=None,
                        help=f"fraction of every training batch from the generic set (default {d.generic_share})")
    parser.add_argument("--refit-offsets", type=setting_type(Adaptation, "refit_offsets"), choices=REFIT_CHOICES, default=None,
                        help=f"refit the model's per-element energy offsets to the start set (default {d.refit_offsets}: "
                             "when the oracle's level of theory differs from the model's, or the model has no offsets, "
                             "as the official checkpoints)")
    parser.add_argument("--seed", type=int, default=None, help=f"conformer and generic-set seed (default {d.seed})")
    g = parser.add_argument_group("GOLF loop (see golf train --golf)")
    g.add_argument("--n-parallel", type=setting_type(GolfTraining, "n_parallel"), default=None, help=f"parallel episodes (default {ADAPT_GOLF.n_parallel})")
    g.add_argument("--utd-ratio", type=setting_type(GolfTraining, "utd_ratio"), default=None, help=f"NNP updates per label (default {ADAPT_GOLF.utd_ratio})")
    g.add_argument("--batch-size", type=setting_type(GolfTraining, "batch_size"), default=None, help=f"training batch (default {ADAPT_GOLF.batch_size})")
    g.add_argument("--lr", type=setting_type(GolfTraining, "lr"), default=None, help=f"learning rate (default {ADAPT_GOLF.lr:g}, the official fine-tuning)")
    g.add_argument("--max-episode-steps", type=setting_type(GolfTraining, "max_episode_steps"), default=None,
                   help=f"NNP optimizer steps per episode (default {ADAPT_GOLF.max_episode_steps or 100})")
    add_trigger_args(g)
    g.add_argument("--device", type=setting_type(GolfTraining, "device"), default=None, help=f"auto, cpu, cuda, cuda:N (default {GolfTraining.device})")
    g.add_argument("--resume", action="store_true", help="continue an interrupted adaptation in --out")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_oracle_args(parser)
    add_executor_args(parser)


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What ``golf adapt`` reads and writes (``golf.cli._paths``): its output directory."""
    from golf.cli._paths import given
    from golf.runs.guard import Output

    inputs = [(given(args, "series"), ""), (given(args, "model"), "--model")]
    out = given(args, "out")
    return [(i, o) for i, o in inputs if i], [Output(out, "dir", option="--out")] if out else []


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from golf.cli._common import oracle_run, override
    from golf.presets import Molecules
    from golf.runs.adapt import adapt

    src = Path(args.series)
    is_smiles = src.suffix.lower() in (".smi", ".txt", ".csv")
    molecules = Molecules(smiles=str(src) if is_smiles else None, input=None if is_smiles else str(src))
    settings = override(Adaptation(), args)
    golf = override(ADAPT_GOLF, args)
    model = adapt(molecules, args.out, settings, golf, oracle_run(args), resume=args.resume,
                  progress=not args.no_progress)
    print(f"adapted model: {model}")
    return 0
