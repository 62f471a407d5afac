"""Every default of golf's pipelines, stated once, as typed settings.

The ``golf.runs`` functions take these dataclasses; the CLI only maps its options onto them (an option
left out keeps the value here). Presets are named instances: ``TRAIN_PRESETS`` (``golf train``),
``GOLF_PRESETS`` (``golf train --golf``) and ``EXPERIMENT_PRESETS`` (``golf run``); the paper's values
(Tsypin et al. 2024) are written once, in the "paper" training and GOLF presets, and the "paper"
experiment is built from them.

Light on purpose (no torch, no RDKit): ``golf --help`` imports it. Units: eV, Angstrom, eV/Angstrom.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from golf.evaluation.metrics import DEFAULT_STEPS

# ------------------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Molecules:
    """Which conformations a data pipeline works on.

    Attributes:
        smiles: SMILES file (.smi/.txt/.csv), or None.
        input: structure file (.sdf/.mol, .xyz/.extxyz, .db, or SMILES), or None.
        molecules: number of molecules (first ones of a file; pool: the first of the seeded order).
            None: all of them (``golf data build`` draws ``BUILD_POOL_MOLECULES`` from the pool).
        min_heavy, max_heavy: heavy-atom range of the NCI pool.
        split: pool split ("train", "test" or "all"); test_fraction: share of molecules in "test".
        conformers: ETKDGv3 conformers per molecule without 3D coordinates.
        displacement: std (Angstrom) of a Gaussian displacement of generated conformers.
        seed: seed of the split, molecule order, ETKDG and displacement.
        charge, multiplicity: accept charged molecules / radicals (None: neutral closed-shell only).
    """

    smiles: str | None = None
    input: str | None = None
    molecules: int | None = None
    min_heavy: int = 8
    max_heavy: int = 30
    split: str = "train"
    test_fraction: float = 0.2
    conformers: int = 1
    displacement: float = 0.0
    seed: int = 0
    charge: int | None = None
    multiplicity: int | None = None


#: Pool molecules ``golf data build`` labels when the number is not given.
BUILD_POOL_MOLECULES = 100
#: The molecule defaults of the three data pipelines.
BUILD_MOLECULES = Molecules(split="train", conformers=3)
REFERENCE_MOLECULES = Molecules(split="test", conformers=1)
TRAJECTORY_MOLECULES = Molecules(split="train", conformers=1)

#: Where oracle calls can run.
EXECUTORS = ("local", "serial", "dask")


@dataclass(frozen=True)
class OracleRun:
    """An oracle and where its calls run.

    Attributes:
        oracle: registry name (mmff, xtb, dft) or "module:Class".
        settings: oracle constructor settings (validated by ``golf.oracles.validated_spec``).
        executor: "local" (spawned processes), "serial" (this process) or "dask".
        workers: worker processes; threads_per_worker: OpenMP threads in each.
        scheduler: Dask scheduler address (None: $DASK_SCHEDULER_ADDRESS or a local cluster).
        timeout: seconds per call before it is reported as failed (None: no limit).
    """

    oracle: str = "xtb"
    settings: dict[str, Any] = field(default_factory=dict)
    executor: str = "local"
    workers: int = 2
    threads_per_worker: int = 1
    scheduler: str | None = None
    timeout: float | None = None


@dataclass(frozen=True)
class Relaxation:
    """Oracle relaxations (reference optima, trajectories): converged when max |F| < ``fmax`` eV/A."""

    fmax: float = 0.01
    max_steps: int = 500


# ------------------------------------------------------------------------------------------ training


@dataclass(frozen=True)
class Training:
    """Model and training settings of ``golf train`` (Adam + cosine decay + clipping, GOLF loss).

    Attributes:
        model: "painn" or "schnet"; features, interactions, cutoff (Angstrom), n_rbf: its size.
        epochs, batch_size, lr, lr_min (end of the cosine decay), clip (0: off), weight_decay.
        w_energy, w_forces: loss weights (the paper's 0.01 and 0.99).
        val_fraction: share of molecules held out for validation; seed; device.
    """

    model: str = "painn"
    features: int = 64
    interactions: int = 3
    cutoff: float = 5.0
    n_rbf: int = 20
    lr: float = 5e-4
    lr_min: float = 1e-5
    batch_size: int = 32
    clip: float = 1.0
    epochs: int = 30
    weight_decay: float = 0.0
    w_energy: float = 0.01
    w_forces: float = 0.99
    val_fraction: float = 0.1
    seed: int = 0
    device: str = "cpu"


#: "paper": PaiNN 128 x 3, cutoff 5 A, 50 RBF, Adam 1e-4 cosine, batch 64, clip 1.0, loss 0.99 forces
#: + 0.01 energy. "quick": a small model that trains in minutes on a laptop CPU (the default).
TRAIN_PRESETS: dict[str, Training] = {
    # lr_min = lr / 1000: the official CosineAnnealing with final_div_factor 1e3 (GOLF/GOLF_trainer.py)
    "paper": Training(features=128, n_rbf=50, lr=1e-4, lr_min=1e-7, batch_size=64, epochs=100),
    "quick": Training(),
}
DEFAULT_TRAIN_PRESET = "quick"


@dataclass(frozen=True)
class GolfTraining:
    """A GOLF run (``golf train --golf``): the loop's knobs and its trainer's.

    Loop knobs (``golf.loop.GolfConfig``, which states their defaults; None keeps them): budget
    (genuine-oracle calls), n_parallel, max_episode_steps, utd_ratio, initial_conf_pct, batch_size,
    seed, conf_optimizer, cadence ("block" official, "stream"), max_pending, max_force_norm (eV/A),
    max_surrogate_energy (eV), trigger ("surrogate" official, "signal", "both"), signal_threshold (eV). Trainer: lr, lr_min (None: lr / 1000, the official schedule's end), clip,
    w_energy, w_forces. generic_share: fraction of every replay batch drawn from generic conformations
    (``train_golf``'s ``generic``; 0 = the official buffer). Run: eval_fraction (held-out molecules of D0),
    eval_every / checkpoint_every (oracle calls), snapshots (oracle-call counts at which the model is also
    saved as ``model-at-<calls>.pt``: points of the cost-quality curve from one run), device.
    """

    budget: int | None = None
    n_parallel: int | None = None
    max_episode_steps: int | None = None
    utd_ratio: int | None = None
    initial_conf_pct: float | None = None
    batch_size: int | None = None
    seed: int | None = None
    conf_optimizer: str | None = None
    cadence: str | None = None
    max_pending: int | None = None
    max_force_norm: float | None = None
    max_surrogate_energy: float | None = None
    trigger: str | None = None
    signal_threshold: float | None = None
    lr: float = TRAIN_PRESETS["paper"].lr  # the official run_training_GOLF_10k.sh --lr 1e-4: GOLF fine-tunes
    lr_min: float | None = None
    clip: float = 1.0
    w_energy: float = Training.w_energy
    w_forces: float = Training.w_forces
    generic_share: float = 0.0
    eval_fraction: float = 0.1
    eval_every: int = 50
    checkpoint_every: int = 25
    snapshots: tuple[int, ...] = ()
    device: str = "cpu"

    #: the fields that are ``GolfConfig`` knobs
    LOOP_KNOBS = ("budget", "n_parallel", "max_episode_steps", "utd_ratio", "initial_conf_pct", "batch_size",
                  "seed", "conf_optimizer", "cadence", "max_pending", "max_force_norm", "max_surrogate_energy",
                  "trigger", "signal_threshold")


_PAPER_TRAIN = TRAIN_PRESETS["paper"]
#: "paper": Tsypin et al. 2024 (GOLF-10k). "quick": the default (the loop's own defaults).
GOLF_PRESETS: dict[str, GolfTraining] = {
    "paper": GolfTraining(budget=10000, n_parallel=120, max_episode_steps=100, utd_ratio=50, initial_conf_pct=0.1,
                          batch_size=_PAPER_TRAIN.batch_size, lr=_PAPER_TRAIN.lr),
    "quick": GolfTraining(),
}
DEFAULT_GOLF_PRESET = "quick"


# ------------------------------------------------------------------------------------------ evaluation


@dataclass(frozen=True)
class Evaluation:
    """``golf evaluate``: relax with the model for max(steps) optimizer steps, score with the oracle.

    Attributes:
        steps: optimizer steps T at which the genuine oracle is evaluated.
        optimizer: ``golf.optim`` method; fmax: force threshold eV/A (None: tiny, fixed-length runs).
        batch_size: molecules per optimizer batch (None: golf.optim's); device; threads (torch).
        limit: only the first N conformations; mmff: also the RDKit MMFF94 row.
    """

    steps: tuple[int, ...] = DEFAULT_STEPS
    optimizer: str = "lbfgs-golf"  # the paper's evaluation
    fmax: float | None = None
    batch_size: int | None = None
    device: str = "cpu"
    threads: int | None = None
    limit: int | None = None
    mmff: bool = False


# ------------------------------------------------------------------------------------------ golf run


@dataclass(frozen=True)
class Experiment:
    """Scale of ``golf run`` (see ``golf.runs.experiment``).

    Attributes:
        train_molecules, test_molecules: pool molecules of D0 and of the test set; conformers: per
            training molecule; min_heavy, max_heavy: pool heavy-atom range.
        features, interactions, n_rbf, batch_size: the PaiNN models and their batches.
        baseline_updates: optimizer steps of the baseline; lr: its learning rate; finetune_lr: of
            traj-N and GOLF (fine-tuned from the baseline with as many updates as GOLF makes).
        budget: GOLF's genuine-oracle calls; traj_factors: traj-N has N = factor * budget, drawn at
            random from the oracle trajectories of every D0 conformation of the first traj_molecules
            training molecules.
        n_parallel, utd_ratio, max_episode_steps: GOLF loop knobs.
        golf_snapshots: fractions of the budget at which the GOLF run also saves its model; each is
            evaluated as GOLF-<calls> (points of the cost-quality curve from the one run). Under the
            block cadence a snapshot is taken at the end of the round (n_parallel calls) that reaches it.
        steps: evaluated T; ref_max_steps: step limit of the reference relaxations.
        seeds: training seeds of the baseline and of GOLF, as offsets added to the run's ``--seed``;
            the first is 0 (the run's own seed, rows ``baseline``, ``GOLF-<calls>``), each other s
            trains a baseline and a GOLF run of its own (rows ``baseline-s<s>``, ``GOLF-<calls>-s<s>``)
            on the same D0, test set and references. traj-N is trained once, from the seed-0 baseline.
    """

    train_molecules: int
    test_molecules: int
    conformers: int
    min_heavy: int
    max_heavy: int
    features: int
    interactions: int
    n_rbf: int
    baseline_updates: int
    batch_size: int
    lr: float
    finetune_lr: float
    budget: int
    traj_factors: tuple[int, ...]
    traj_molecules: int
    n_parallel: int
    utd_ratio: int
    max_episode_steps: int
    golf_snapshots: tuple[float, ...] = ()
    steps: tuple[int, ...] = DEFAULT_STEPS
    ref_max_steps: int = 1000
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self) -> None:
        if not self.seeds or self.seeds[0] != 0 or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise ValueError(f"seeds must be distinct offsets >= 0 starting with 0, got {self.seeds}")


_PAPER_GOLF = GOLF_PRESETS["paper"]
#: the quick scale, also the base of "standard". lr 5e-3 was chosen on validation molecules of the training
#: split (bench/train_settings.py, bench/results/train_settings.json: final validation force MAE after the
#: baseline's 24,000 conformation passes, 115 meV/A at 5e-3 vs 133 at 2e-3, 247 at 1e-2 (diverging);
#: 8 instead of 4 conformers per molecule at the same passes: 118)
_QUICK = Experiment(train_molecules=500, test_molecules=128, conformers=4, min_heavy=4, max_heavy=9,
                    features=64, interactions=3, n_rbf=20, baseline_updates=1500, batch_size=16,
                    lr=5e-3, finetune_lr=5e-4, budget=100, traj_factors=(10,), traj_molecules=20, n_parallel=16, utd_ratio=10,
                    max_episode_steps=50, golf_snapshots=(0.5,), ref_max_steps=500)
#: "quick" aims at 15 minutes on a 2-core CPU (measured: docs/results.md, section 1): a few points of the
#: cost-quality curve (baseline, GOLF at half and full budget, traj-10B, MMFF94); the curve itself, with
#: traj-50B and GOLF at a quarter budget, is standard's (traj_molecules 20: their 80 xTB trajectories, about
#: 7000 conformations, are the pool traj-N is drawn from); "standard" draws the cost-quality curve with 3
#: seeds in about an hour (arithmetic beside it); "smoke" is for tests; "paper" is the paper's scale (a GPU
#: and a DFT cluster).
EXPERIMENT_PRESETS: dict[str, Experiment] = {
    "smoke": Experiment(train_molecules=6, test_molecules=3, conformers=2, min_heavy=3, max_heavy=6,
                        features=32, interactions=2, n_rbf=16, baseline_updates=200, batch_size=8,
                        lr=1e-3, finetune_lr=1e-3, budget=8, traj_factors=(10,), traj_molecules=6, n_parallel=4, utd_ratio=4,
                        max_episode_steps=10, golf_snapshots=(0.5,), steps=(1, 2, 5, 10), ref_max_steps=200),
    "quick": _QUICK,
    # "standard": the quick scale with GOLF-50/100/200 and the baseline for 3 training seeds, traj-1000 and
    # traj-5000 once. n_parallel 25: the block cadence's rounds of 25 calls end exactly at 50 and 100.
    # Cost on an idle 2-core CPU, from the quick preset's stage times measured there (docs/results.md, section 1; bench/results/
    # golf_run_quick.json: 1469 baseline updates 143 s, traj-1000's 1026 updates 120 s, GOLF's 1000 updates
    # with its 100 xTB calls 110 s, an evaluation on 128 molecules 57 s):
    #   data: as quick's 220 s + the traj-5000 draw ~15 s                                        ~ 235 s
    #   baselines: 3 x 143 s                                                                     ~ 430 s
    #   traj-N: 2 x 2000 updates (budget x utd_ratio) at 0.117 s                                 ~ 470 s
    #   GOLF: 3 x (2000 updates + 200 xTB calls + NNP episodes), 2 x quick's                     ~ 660 s
    #   evaluation: (3 baselines + 2 traj-N + 3 x 3 GOLF) x 57 s + MMFF 16 s                     ~ 815 s
    #   total                                                                                     ~2610 s (~45 min)
    # A GOLF-150 snapshot (golf_snapshots + 0.75) would add 3 evaluations, ~3 min.
    "standard": dataclasses.replace(_QUICK, budget=200, traj_factors=(5, 25), n_parallel=25, golf_snapshots=(0.25, 0.5),
                                    seeds=(0, 1, 2)),
    "paper": Experiment(train_molecules=4000, test_molecules=1000, conformers=3, min_heavy=8, max_heavy=30,
                        features=_PAPER_TRAIN.features, interactions=_PAPER_TRAIN.interactions,
                        n_rbf=_PAPER_TRAIN.n_rbf, baseline_updates=500_000, batch_size=_PAPER_TRAIN.batch_size,
                        lr=_PAPER_TRAIN.lr, finetune_lr=_PAPER_TRAIN.lr, budget=_PAPER_GOLF.budget,
                        traj_factors=(10, 50), traj_molecules=4000, n_parallel=_PAPER_GOLF.n_parallel, utd_ratio=_PAPER_GOLF.utd_ratio,
                        max_episode_steps=_PAPER_GOLF.max_episode_steps, ref_max_steps=1000),
}
DEFAULT_EXPERIMENT_PRESET = "quick"
