"""``golf run``: the end-to-end GOLF experiment, the project's main job.

Stages (each cached in OUT and skipped when finished; an interrupted stage resumes):
    data/D0.db            training molecules (NCI pool, train split), ETKDG conformers, oracle labels
    data/test.db          held-out molecules (test split; no molecule in both)
    data/test_ref.db      their reference optima, relaxed with the genuine oracle
    data/traj.db          genuine-oracle optimization trajectories of training conformations (traj-N data)
    models/baseline.pt    NNP trained on D0
    data/traj-<N>.db      N conformations drawn at random from those trajectories (the paper's D-traj-N)
    models/traj-<N>.pt    NNP fine-tuned from the baseline on traj-<N>.db alone (official protocol)
    golf/model.pt         GOLF from the baseline with the oracle budget
    eval/<model>/         the paper's metrics for every model and for MMFF
    report.md, report.json, metrics.png, learning_curves.png

Every stage calls the same code as the corresponding ``golf`` subcommand.
"""
from __future__ import annotations

import argparse

#: Scale of the experiment. "quick" fits ~15 minutes on a 2-core CPU; "smoke" is for tests;
#: "paper" is the paper's scale (a GPU and a DFT cluster).
PRESETS: dict[str, dict] = {
    "smoke": dict(train_molecules=6, test_molecules=3, conformers=2, min_heavy=3, max_heavy=6,
                  features=32, interactions=2, n_rbf=16, baseline_updates=200, batch_size=8,
                  lr=1e-3, finetune_lr=1e-3, budget=8, traj_factors=(10,), traj_molecules=6, n_parallel=4, utd_ratio=4, max_episode_steps=10,
                  steps=(1, 2, 5, 10), ref_max_steps=200),
    "quick": dict(train_molecules=500, test_molecules=32, conformers=4, min_heavy=4, max_heavy=9,
                  features=64, interactions=3, n_rbf=20, baseline_updates=1500, batch_size=16,
                  lr=2e-3, finetune_lr=5e-4, budget=100, traj_factors=(10, 50), traj_molecules=50, n_parallel=16, utd_ratio=10,
                  max_episode_steps=50, steps=(1, 2, 3, 5, 8, 13, 21, 30, 50, 75, 100), ref_max_steps=500),
    "paper": dict(train_molecules=4000, test_molecules=1000, conformers=3, min_heavy=8, max_heavy=30,
                  features=128, interactions=3, n_rbf=50, baseline_updates=500_000, batch_size=64,
                  lr=1e-4, finetune_lr=1e-4, budget=10000, traj_factors=(10, 50), traj_molecules=4000, n_parallel=120, utd_ratio=50,
                  max_episode_steps=100, steps=(1, 2, 3, 5, 8, 13, 21, 30, 50, 75, 100), ref_max_steps=1000),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="golf-run", metavar="DIR", help="report directory (default golf-run/)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="quick",
                        help="scale: quick (default, ~15 min on 2 CPU cores), smoke (minutes), paper")
    parser.add_argument("--oracle", default="xtb", help="genuine oracle: xtb (default) or dft")
    parser.add_argument("--executor", choices=["local", "serial", "dask"], default="local",
                        help="where genuine-oracle calls run (default: spawned local processes)")
    parser.add_argument("--workers", type=int, default=2, help="oracle worker processes (default 2)")
    parser.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address")
    parser.add_argument("--budget", type=int, default=None, help="GOLF genuine-oracle budget (preset's)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from golf.experiment import Experiment

    Experiment(args).run()
    return 0
