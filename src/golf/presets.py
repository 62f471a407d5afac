"""Every default of golf's pipelines, stated once, as typed settings.

The ``golf.runs`` functions take these dataclasses; the CLI only maps its options onto them (an option
left out keeps the value here). Presets are named instances: ``TRAIN_PRESETS`` (``golf train``),
``GOLF_PRESETS`` (``golf train --golf``) and ``EXPERIMENT_PRESETS`` (``golf run``); the paper's values
(Tsypin et al. 2024) are written once, in the "paper" training and GOLF presets, and the "paper"
experiment is built from them.

Each setting is declared once: a dataclass field with its default and its check (``setting(default,
check)``); ``__post_init__`` runs the checks and raises ``golf.errors.SettingError`` naming the FIELD
(the command line maps fields to its options). ``check_value`` checks one field's value
alone (the CLI checks an option where it is parsed).

Light on purpose (no torch, no RDKit): ``golf --help`` imports it. Units: eV, Angstrom, eV/Angstrom.
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

from golf.errors import SettingError
from golf.evaluation.metrics import DEFAULT_STEPS
from golf.thresholds import ORACLE_FMAX, ORACLE_MAX_STEPS
from golf.trust import SIGNAL_THRESHOLD, TRIGGERS
from golf.units import HARTREE_TO_EV, KCAL_MOL_TO_EV

# ------------------------------------------------------------------------------------------ checks
# A check returns why a value is impossible (None: fine); ``kind`` is the type an option's text parses to.

Check = Callable[[Any], "str | None"]


def _check(kind: type, test: Callable[[Any], bool], why: str) -> Check:
    def check(value: Any) -> str | None:
        return None if test(value) else why.format(value=value)

    check.kind = kind  # type: ignore[attr-defined]
    return check


#: counts (workers, batch sizes, conformers, budgets): an integer >= 1
COUNT = _check(int, lambda v: v >= 1, "must be at least 1, got {value}")
#: step limits and other integers that may be 0
STEPS = _check(int, lambda v: v >= 0, "must be 0 or more, got {value}")
#: thresholds and weights: a number >= 0
NONNEGATIVE = _check(float, lambda v: v >= 0, "must be 0 or more, got {value:g}")
#: rates and lengths: a number > 0
POSITIVE = _check(float, lambda v: v > 0, "must be positive, got {value:g}")
#: a force threshold (eV/A)
FORCE = _check(float, lambda v: v > 0, "must be a positive force in eV/A, got {value:g}")
#: a time limit (s)
SECONDS = _check(float, lambda v: v > 0, "must be a positive number of seconds, got {value:g}")
#: a share of the data held out: 0 <= value < 1
FRACTION = _check(float, lambda v: 0 <= v < 1, "must be at least 0 and below 1, got {value:g}")
#: a share of a batch: 0 <= value <= 1
SHARE = _check(float, lambda v: 0 <= v <= 1, "must be between 0 and 1, got {value:g}")
#: any finite number
NUMBER = _check(float, lambda v: True, "")
#: any integer
INTEGER = _check(int, lambda v: True, "")

#: Largest ``displacement`` (standard deviation in Angstrom of the Gaussian noise added to generated
#: conformers). The paper perturbs by a few tenths of an Angstrom; beyond 1 Angstrom bonds break and
#: the labels are MeV-scale energies of fragments, not training data.
MAX_DISPLACEMENT = 1.0
DISPLACEMENT = _check(float, lambda v: 0.0 <= v <= MAX_DISPLACEMENT,
                      f"must be between 0 and {MAX_DISPLACEMENT:g} Angstrom, got {{value:g}} "
                      "(larger displacements break bonds)")


def one_of(choices: tuple[str, ...]) -> Check:
    """A name from ``choices``."""
    return _check(str, lambda v: v in choices, f"unknown value {{value!r}}; choose one of {', '.join(choices)}")


#: a pH (protonation of embedded molecules)
PH = _check(float, lambda v: 0 <= v <= 14, "must be a pH between 0 and 14, got {value:g}")
#: the float precisions a model runs in
DTYPES = ("float32", "float64")
DTYPE = one_of(DTYPES)


def _device_problem(text: Any) -> str | None:
    """Why ``text`` is not a torch device of this machine (torch imported only for a GPU name)."""
    name = str(text).strip().lower()
    if name in ("auto", "cpu"):
        return None
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        return f"unknown device {text!r} (use auto, cpu, cuda, cuda:N)"
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return f"{text!r}: CUDA is not available on this machine (use cpu)"
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            return f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            return f"{text!r}: MPS is not available on this machine (use cpu)"
    elif dev.type != "cpu":
        return f"unsupported device {text!r} (use auto, cpu, cuda, cuda:N)"
    return None


def _scheduler_problem(text: Any) -> str | None:
    """Why ``text`` is not a Dask scheduler address (form only)."""
    from golf.errors import InputError
    from golf.oracles.executors.dask import check_scheduler_address

    try:
        check_scheduler_address(str(text))
    except InputError as exc:
        return str(exc)
    return None


DEVICE: Check = _device_problem
DEVICE.kind = str  # type: ignore[attr-defined]
DEVICE.normalize = lambda text: text.strip().lower()  # type: ignore[attr-defined]
#: the model of every command that takes one, unless told otherwise (``golf models`` lists the names)
DEFAULT_MODEL = "GOLF-10k"
#: the device of every command's model unless told otherwise: a CUDA GPU when there is one, else the CPU
#: (``golf.models.checkpoint.resolve_device``)
DEFAULT_DEVICE = "auto"
SCHEDULER: Check = _scheduler_problem
SCHEDULER.kind = str  # type: ignore[attr-defined]
SCHEDULER.normalize = str.strip  # type: ignore[attr-defined]


def setting(default: Any = dataclasses.MISSING, check: Check | None = None, *, loop: bool = False,
            factory: Callable[[], Any] | None = None) -> Any:
    """A settings field: its default, its check (None is always allowed where the default is None) and,
    for ``GolfTraining``, whether the GOLF loop reads it (``loop``: part of a run's identity)."""
    meta = {"check": check, "loop": loop}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def check_value(cls: type, name: str, value: Any) -> Any:
    """``value`` for field ``name`` of settings class ``cls``, checked alone (SettingError naming the
    field when impossible); non-finite numbers are never a setting."""
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    check = f.metadata.get("check")
    if value is None or check is None:
        return value
    if isinstance(value, numbers.Real) and not math.isfinite(value):
        raise SettingError(name, f"must be a finite number, got {value}")
    kind = getattr(check, "kind", None)
    if kind in (int, float) and (isinstance(value, bool) or
                                 not isinstance(value, numbers.Integral if kind is int else numbers.Real)):
        raise SettingError(name, f"expected {'an integer' if check.kind is int else 'a number'}, got {value!r}")
    problem = check(value)
    if problem:
        raise SettingError(name, problem)
    return value


def check_settings(obj: Any) -> None:
    """Check every field of a settings dataclass instance (``__post_init__``)."""
    for f in dataclasses.fields(obj):
        check_value(type(obj), f.name, getattr(obj, f.name))


def field_check(cls: type, name: str) -> Check | None:
    """The check of a settings field (the CLI parses an option's text to its ``kind``)."""
    return {f.name: f for f in dataclasses.fields(cls)}[name].metadata.get("check")

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
    molecules: int | None = setting(None, COUNT)
    min_heavy: int = setting(8, STEPS)
    max_heavy: int = setting(30, STEPS)
    split: str = setting("train", one_of(("train", "test", "all")))
    test_fraction: float = setting(0.2, FRACTION)
    conformers: int = setting(1, COUNT)
    displacement: float = setting(0.0, DISPLACEMENT)
    seed: int = setting(0, INTEGER)
    charge: int | None = setting(None, INTEGER)
    multiplicity: int | None = setting(None, COUNT)

    def __post_init__(self) -> None:
        check_settings(self)
        if self.min_heavy > self.max_heavy:
            raise SettingError("min_heavy", f"{self.min_heavy} is larger than max_heavy {self.max_heavy}")


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
    executor: str = setting("local", one_of(EXECUTORS))
    workers: int = setting(2, COUNT)
    threads_per_worker: int = setting(1, COUNT)
    scheduler: str | None = setting(None, SCHEDULER)
    timeout: float | None = setting(None, SECONDS)

    def __post_init__(self) -> None:
        check_settings(self)


@dataclass(frozen=True)
class Relaxation:
    """Oracle relaxations (reference optima, trajectories): converged when max |F| < ``fmax`` eV/A."""

    fmax: float = setting(ORACLE_FMAX, FORCE)
    max_steps: int = setting(ORACLE_MAX_STEPS, STEPS)

    def __post_init__(self) -> None:
        check_settings(self)


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

    model: str = setting("painn", one_of(("painn", "schnet")))
    features: int = setting(64, COUNT)
    interactions: int = setting(3, COUNT)
    cutoff: float = setting(5.0, POSITIVE)
    n_rbf: int = setting(20, COUNT)
    lr: float = setting(5e-4, POSITIVE)
    lr_min: float = setting(1e-5, NONNEGATIVE)
    batch_size: int = setting(32, COUNT)
    clip: float = setting(1.0, NONNEGATIVE)
    epochs: int = setting(30, COUNT)
    weight_decay: float = setting(0.0, NONNEGATIVE)
    w_energy: float = setting(0.01, NONNEGATIVE)
    w_forces: float = setting(0.99, NONNEGATIVE)
    val_fraction: float = setting(0.1, FRACTION)
    seed: int = setting(0, INTEGER)
    device: str = setting(DEFAULT_DEVICE, DEVICE)

    def __post_init__(self) -> None:
        check_settings(self)


#: "paper": PaiNN 128 x 3, cutoff 5 A, 50 RBF, Adam 1e-4 cosine, batch 64, clip 1.0, loss 0.99 forces
#: + 0.01 energy. "quick": a small model that trains in minutes on a laptop CPU (the default).
TRAIN_PRESETS: dict[str, Training] = {
    # lr_min = lr / 1000: the official CosineAnnealing with final_div_factor 1e3 (GOLF/GOLF_trainer.py)
    "paper": Training(features=128, n_rbf=50, lr=1e-4, lr_min=1e-7, batch_size=64, epochs=100),
    "quick": Training(),
}
DEFAULT_TRAIN_PRESET = "quick"


#: The official ``env/wrappers.py`` ``RDKIT_ENERGY_THRESH``: no genuine label when the MMFF energy
#: after the step is at or above 300 kcal/mol (eV here).
MAX_SURROGATE_ENERGY: float = 300.0 * KCAL_MOL_TO_EV
#: The official ``GOLF/replay_buffer.py`` ``NORM_THRESHOLD``: a label whose force matrix has a
#: Frobenius norm of 10.5 Hartree/A or more stays out of the replay buffer (eV/A here).
MAX_FORCE_NORM: float = 10.5 * HARTREE_TO_EV
#: How the GOLF loop paces its oracle calls and updates (``golf.loop``).
CADENCES = ("block", "stream")


@dataclass(frozen=True)
class GolfTraining:
    """A GOLF run (``golf train --golf``, ``golf adapt``, ``golf run``): the loop's settings
    (``golf.loop.GolfLoop`` takes this object), its trainer's and the run's.

    Loop defaults are the official code's where it has one; its values for the paper's run
    (``scripts/training/run_training_GOLF_10k.sh``) are ``GOLF_PRESETS["paper"]``. The fields marked
    ``loop=True`` are what the loop reads (a run's identity, ``golf.runs.golf``).

    Attributes:
        budget: genuine-oracle calls to spend (successful or failed).
        n_parallel: episodes relaxed at once; also the size of a round (paper 120).
        max_episode_steps: optimizer steps before an episode ends (paper 100).
        utd_ratio: NNP updates per new label (paper 50).
        initial_conf_pct: share of every training batch drawn from D0 (paper 0.1).
        batch_size: training batch size (paper 64); no training until this many labels exist.
        conf_optimizer: L-BFGS preset driving the episodes ("lbfgs-golf": the paper's optimizer).
        cadence: "block" (official: rounds of n_parallel labels, then n_parallel * utd_ratio
            updates) or "stream" (utd_ratio updates per label as it arrives).
        max_pending: "stream" only: genuine-oracle calls in flight (0: twice the executor's workers).
        max_force_norm: labels whose force-matrix norm reaches this (eV/A) are stored but kept out
            of the replay buffer.
        max_surrogate_energy: an ended episode whose MMFF energy after the step reaches this (eV)
            sends no label.
        max_unlabelled_episodes: the loop gives up (``GolfStalled``) when this many episodes in a
            row end without a label (absurd surrogate energy or a non-finite NNP step): the NNP
            breaks every structure it relaxes and would never be trained (golf's guard; the
            official loop has none and would run forever).
        seed: seeds the episode sampler, the replay sampler and the held-out split.
        trigger: what sends a conformation to the genuine oracle: "surrogate" (official), "signal" or
            "both" (``golf.loop``).
        signal_threshold: the trust signal (eV) from which "signal"/"both" label a step-limit conformation.
        lr, lr_min (None: lr / 1000, the official schedule's end), clip, w_energy, w_forces: the trainer.
        generic_share: fraction of every replay batch drawn from generic conformations (``train_golf``'s
            ``generic``; 0 = the official buffer); at most 1 - initial_conf_pct.
        eval_fraction: held-out molecules of D0; eval_every / checkpoint_every: oracle calls between
            held-out evaluations / checkpoints; snapshots: oracle-call counts at which the model is also
            saved as ``model-at-<calls>.pt`` (points of the cost-quality curve from one run); device.
    """

    budget: int = setting(200, COUNT, loop=True)
    n_parallel: int = setting(16, COUNT, loop=True)
    max_episode_steps: int = setting(100, COUNT, loop=True)
    utd_ratio: int = setting(10, STEPS, loop=True)
    initial_conf_pct: float = setting(0.1, SHARE, loop=True)
    batch_size: int = setting(32, COUNT, loop=True)
    conf_optimizer: str = setting("lbfgs-golf", None, loop=True)
    cadence: str = setting("block", one_of(CADENCES), loop=True)
    max_pending: int = setting(0, STEPS, loop=True)
    max_force_norm: float = setting(MAX_FORCE_NORM, POSITIVE, loop=True)
    max_surrogate_energy: float = setting(MAX_SURROGATE_ENERGY, NUMBER, loop=True)
    max_unlabelled_episodes: int = setting(1000, COUNT, loop=True)
    seed: int = setting(0, INTEGER, loop=True)
    trigger: str = setting("surrogate", one_of(TRIGGERS), loop=True)
    signal_threshold: float = setting(SIGNAL_THRESHOLD, NONNEGATIVE, loop=True)
    lr: float = setting(1e-4, POSITIVE)  # the official run_training_GOLF_10k.sh --lr 1e-4: GOLF fine-tunes
    lr_min: float | None = setting(None, NONNEGATIVE)
    clip: float = setting(1.0, NONNEGATIVE)
    w_energy: float = setting(0.01, NONNEGATIVE)
    w_forces: float = setting(0.99, NONNEGATIVE)
    generic_share: float = setting(0.0, SHARE)
    eval_fraction: float = setting(0.1, FRACTION)
    eval_every: int = setting(50, COUNT)
    checkpoint_every: int = setting(25, COUNT)
    snapshots: tuple[int, ...] = ()
    device: str = setting(DEFAULT_DEVICE, DEVICE)

    def __post_init__(self) -> None:
        check_settings(self)
        if any(not isinstance(n, numbers.Integral) or n < 1 for n in self.snapshots):
            raise SettingError("snapshots", f"oracle-call counts must be at least 1, got {self.snapshots}")
        if self.generic_share > 1.0 - self.initial_conf_pct:
            raise SettingError("generic_share", f"must be at most 1 - initial_conf_pct = "
                               f"{1.0 - self.initial_conf_pct:g}, got {self.generic_share:g}")

    def loop_settings(self) -> dict[str, Any]:
        """The settings the loop reads (the ``golf`` entry of a run's config.json), by name."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("loop")}


_PAPER_TRAIN = TRAIN_PRESETS["paper"]
#: "paper": Tsypin et al. 2024 (GOLF-10k). "quick": the default (the defaults above).
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
    fmax: float | None = setting(None, FORCE)
    batch_size: int | None = setting(None, COUNT)
    device: str = setting(DEFAULT_DEVICE, DEVICE)
    threads: int | None = setting(None, COUNT)
    limit: int | None = setting(None, COUNT)
    mmff: bool = False

    def __post_init__(self) -> None:
        check_settings(self)
        if not self.steps or any(not isinstance(t, numbers.Integral) or t < 1 for t in self.steps):
            raise SettingError("steps", f"expected integers >= 1, got {self.steps}")


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
            raise SettingError("seeds", f"must be distinct offsets >= 0 starting with 0, got {self.seeds}")


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
