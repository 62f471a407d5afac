"""``golf run``: the end-to-end GOLF experiment, the project's main job (``golf.runs.experiment`` has
the stages; ``golf.presets.EXPERIMENT_PRESETS`` the scales)."""
from __future__ import annotations

import argparse

from golf.cli._types import setting_type
from golf.presets import EXECUTORS, EXPERIMENT_PRESETS, OracleRun
from golf.runs.experiment import ExperimentSettings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    d, e = OracleRun(), ExperimentSettings()
    parser.add_argument("--out", default=e.out, metavar="DIR", help=f"report directory (default {e.out}/)")
    parser.add_argument("--preset", choices=sorted(EXPERIMENT_PRESETS), default=e.preset,
                        help="scale: quick (14 min measured on 2 idle CPU cores, one seed), standard (43 min measured: the "
                             f"cost-quality curve with 3 seeds), smoke (minutes), paper (default {e.preset})")
    parser.add_argument("--oracle", default=d.oracle, help=f"genuine oracle: xtb or dft (default {d.oracle})")
    parser.add_argument("--executor", choices=EXECUTORS, default=d.executor,
                        help="where genuine-oracle calls run (default: spawned local processes)")
    parser.add_argument("--workers", type=setting_type(OracleRun, "workers"), default=d.workers, help=f"oracle worker processes (default {d.workers})")
    parser.add_argument("--scheduler", type=setting_type(OracleRun, "scheduler"), default=None, metavar="ADDRESS", help="Dask scheduler address")
    parser.add_argument("--budget", type=setting_type(ExperimentSettings, "budget"), default=None, help="GOLF genuine-oracle budget (preset's)")
    parser.add_argument("--init", default=e.init, metavar="MODEL",
                        help="pretrained start (file or name, e.g. baseline-NNP): offsets refit to D0, fine-tuned "
                             "on D0 as the baseline of traj-N and GOLF (default: a baseline trained from scratch)")
    parser.add_argument("--seed", type=setting_type(ExperimentSettings, "seed"), default=e.seed,
                        help="seed of the data and of the seed-0 models; training seed s uses seed + s")
    parser.add_argument("--seeds", type=setting_type(ExperimentSettings, "seeds"), default=e.seeds, metavar="N",
                        help="train the baseline and GOLF with N training seeds (0 .. N-1; traj-N: seed 0 only; "
                             "default: the preset's: " + ", ".join(f"{name} {len(x.seeds)}" for name, x in
                                                                    sorted(EXPERIMENT_PRESETS.items())) + ")")
    parser.add_argument("--device", type=setting_type(ExperimentSettings, "device"), default=e.device,
                        help=f"auto, cpu, cuda, cuda:N (default {e.device})")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What ``golf run`` reads and writes (``golf.cli._paths``): its output directory."""
    from golf.cli._paths import given
    from golf.runs.guard import Output

    inputs = []
    out = given(args, "out")
    return [(i, o) for i, o in inputs if i], [Output(out, "dir", option="--out")] if out else []


def run(args: argparse.Namespace) -> int:
    from golf.runs.experiment import run_experiment

    oracle = OracleRun(oracle=args.oracle, executor=args.executor, workers=args.workers, scheduler=args.scheduler)
    run_experiment(ExperimentSettings(out=args.out, preset=args.preset, oracle=oracle, budget=args.budget,
                                      init=args.init, seed=args.seed, seeds=args.seeds, device=args.device,
                                      progress=not args.no_progress))
    return 0
