"""The end-to-end GOLF experiment behind ``golf run``, the project's main job.

Stages (each cached in OUT and skipped when finished; an interrupted stage resumes):
    data/D0.db            training molecules (NCI pool, train split), ETKDG conformers, oracle labels
    data/test.db          held-out molecules (test split; no molecule in both)
    data/test_ref.db      their reference optima, relaxed with the genuine oracle
    data/traj.db          genuine-oracle optimization trajectories of every D0 conformation of the first
                          ``traj_molecules`` training molecules
    data/traj-<N>.db      N conformations drawn at random from them (the paper's D-traj-N)
    models/init.pt        with ``--init MODEL`` only: that pretrained model with its per-element
                          energy offsets refit to D0 (``golf.trainer.refit_offsets``)
    models/baseline.pt    NNP trained on D0 (with ``--init``: init.pt fine-tuned on D0)
    models/traj-<N>.pt    NNP fine-tuned from the baseline on traj-<N>.db alone (the official protocol)
    golf/model.pt         GOLF from the baseline with the oracle budget
    models/baseline-s<s>.pt, golf-s<s>/
                          the same for every further training seed s of the preset's ``seeds`` (offsets
                          added to ``--seed``; D0, test set, references and traj-N are shared, and traj-N
                          is trained once, from the seed-0 baseline: rows ``baseline-s<s>``, ``GOLF-<calls>-s<s>``)
    eval/<model>/         the paper's metrics for every model and for MMFF
    report.md, report.json, metrics.png, learning_curves.png, cost_quality.png

Each stage calls the ``golf.runs`` function behind the corresponding ``golf`` subcommand (and prints
that command), writes its outputs, then a marker ``stages/<name>.json`` (timing and settings). A
finished stage is skipped on the next run; an interrupted one resumes through its function's own
resume (data builds skip stored records, training continues from its run directory, GOLF from its
run directory).
"""
from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from golf.errors import GolfError
from golf.io import atomic_write_json
from golf.presets import (
    COUNT,
    DEFAULT_EXPERIMENT_PRESET,
    DEFAULT_DEVICE,
    DEVICE,
    EXPERIMENT_PRESETS,
    REFERENCE_MOLECULES,
    TRAIN_PRESETS,
    TRAJECTORY_MOLECULES,
    Evaluation,
    Experiment as ExperimentPreset,
    INTEGER,
    GolfTraining,
    Molecules,
    OracleRun,
    Relaxation,
    Training,
    check_settings,
    one_of,
    setting,
)
from golf.runs.naming import seed_name

MMFF = "mmff"
#: Learning rate of every fine-tune from a pretrained start (``--init``): the official GOLF's 1e-4
#: (``scripts/training/run_training_GOLF_10k.sh``, ``--lr 1e-4``). Adam restarted at the quick preset's
#: 5e-4 wrecks a converged model within ~100 updates (docs/results.md, section 3, "A pretrained start").
PRETRAINED_FINETUNE_LR: float = TRAIN_PRESETS["paper"].lr


@dataclasses.dataclass(frozen=True)
class ExperimentSettings:
    """One ``golf run``: where, at which scale, with which oracle.

    Attributes:
        out: the report directory.
        preset: name of the scale in ``golf.presets.EXPERIMENT_PRESETS``.
        oracle: the genuine oracle and where its calls run.
        budget: GOLF's genuine-oracle budget (None: the preset's).
        init: a pretrained model (file or name, e.g. ``baseline-NNP``) to start from instead of a
            from-scratch baseline: its offsets are refit to D0, then it is fine-tuned on D0 with the
            official GOLF learning rate (``PRETRAINED_FINETUNE_LR``) and becomes the baseline of traj-N and
            GOLF, which fine-tune with it too (None: from scratch, fine-tunes with the preset's ``finetune_lr``).
        seed: of the data (D0, test set, references, trajectories, the traj-N draws) and of the training
            of the seed-0 models (baseline, traj-N, GOLF); training seed s of the preset trains with seed + s.
        seeds: train the baseline and GOLF with this many training seeds, 0 .. seeds-1 (None: the preset's).
        device: of every stage; progress: progress bars.
    """

    out: str = "golf-run"
    preset: str = setting(DEFAULT_EXPERIMENT_PRESET, one_of(tuple(EXPERIMENT_PRESETS)))
    oracle: OracleRun = OracleRun()
    budget: int | None = setting(None, COUNT)
    init: str | None = None
    seed: int = setting(0, INTEGER)
    seeds: int | None = setting(None, COUNT)
    device: str = setting(DEFAULT_DEVICE, DEVICE)
    progress: bool = True

    def __post_init__(self) -> None:
        check_settings(self)


class Experiment:
    """One ``golf run`` in directory ``settings.out`` at the scale of ``settings.preset``."""

    def __init__(self, settings: ExperimentSettings) -> None:
        self.settings = settings
        p = EXPERIMENT_PRESETS[settings.preset]
        if settings.budget is not None:
            p = dataclasses.replace(p, budget=int(settings.budget))
        if settings.seeds is not None:  # >= 1: checked by ExperimentSettings
            p = dataclasses.replace(p, seeds=tuple(range(int(settings.seeds))))
        self.p: ExperimentPreset = p
        self.out = Path(settings.out)
        self.budget = int(p.budget)
        self.seeds: tuple[int, ...] = tuple(p.seeds)
        self.traj_sizes = [f * self.budget for f in p.traj_factors]
        self.oracle = settings.oracle
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ plumbing
    def path(self, rel: str) -> Path:
        return self.out / rel

    def stage(self, name: str, fn: Callable[[], Any]) -> None:
        marker = self.path(f"stages/{name}.json")
        if marker.exists():
            self.timings[name] = json.loads(marker.read_text())["seconds"]
            print(f"[golf run] {name}: done before, skipped", file=sys.stderr, flush=True)
            return
        print(f"[golf run] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        fn()
        seconds = time.perf_counter() - t0
        self.timings[name] = seconds
        atomic_write_json(marker, {"seconds": seconds, "preset": self.settings.preset, "init": self.settings.init,
                                   "settings": dataclasses.asdict(self.p)}, indent=None)
        print(f"[golf run] {name}: {seconds:.1f} s", file=sys.stderr, flush=True)

    @staticmethod
    def _say(command: str, *args: Any) -> None:
        """The ``golf`` command line that the stage is equivalent to (for the log)."""
        print(f"$ golf {command} {' '.join(str(a) for a in args)}".rstrip(), file=sys.stderr, flush=True)

    def _molecules(self, split: str, n: int, conformers: int) -> Molecules:
        p = self.p
        return Molecules(split=split, molecules=n, conformers=conformers, min_heavy=p.min_heavy,
                         max_heavy=p.max_heavy, seed=self.settings.seed)

    def _training(self, updates: int, lr: float, *dbs: Path, seed: int = 0) -> Training:
        """The quick training preset with the experiment's model, ``updates`` optimizer steps and
        training seed ``seed`` (an offset added to the run's seed)."""
        p = self.p
        base = TRAIN_PRESETS["quick"]
        return dataclasses.replace(base, features=p.features, interactions=p.interactions, n_rbf=p.n_rbf,
                                   batch_size=p.batch_size, lr=lr, epochs=self._epochs(updates, base, *dbs),
                                   seed=self.settings.seed + seed, device=self.settings.device)

    def baseline_path(self, seed: int = 0) -> Path:
        """The baseline of training seed ``seed``: models/baseline.pt, models/baseline-s<seed>.pt."""
        return self.path(f"models/{seed_name('baseline', seed)}.pt")

    def golf_dir(self, seed: int = 0) -> Path:
        """The GOLF run directory of training seed ``seed``: golf/, golf-s<seed>/."""
        return self.path(seed_name("golf", seed))

    def _epochs(self, updates: int, training: Training, *dbs: Path) -> int:
        """Epochs that make about ``updates`` optimizer steps over the training split of ``dbs``."""
        from golf.db import count_rows

        n_train = max(1, int((1.0 - training.val_fraction) * sum(count_rows(db) for db in dbs)))
        return max(1, round(updates * self.p.batch_size / n_train))

    # ------------------------------------------------------------------ stages
    def build_data(self) -> None:
        from golf.db import sample_rows
        from golf.runs.build import build
        from golf.runs.reference import reference
        from golf.runs.trajectories import trajectories

        p, quiet = self.p, not self.settings.progress
        d0, test, ref, traj = (str(self.path(f"data/{n}.db")) for n in ("D0", "test", "test_ref", "traj"))

        def d0_stage() -> None:
            self._say("data build --split train", "--out", d0)
            build(d0, self._molecules("train", p.train_molecules, p.conformers), self.oracle, quiet=quiet)

        def test_stage() -> None:
            self._say("data build --split test", "--out", test)
            build(test, self._molecules("test", p.test_molecules, 1), self.oracle, quiet=quiet)

        def reference_stage() -> None:
            self._say("data reference --input", test, "--out", ref)
            reference(ref, dataclasses.replace(REFERENCE_MOLECULES, input=test),
                      self.oracle, Relaxation(max_steps=p.ref_max_steps), quiet=quiet)

        # the paper's D-traj-N: N conformations drawn at random from genuine-oracle optimization
        # trajectories of D0 conformations; here the complete trajectories of every D0 conformation of
        # the first traj_molecules molecules, so traj-N covers many molecules, not a few long runs
        def trajectories_stage() -> None:
            self._say("data trajectories --input", d0, "--molecules", p.traj_molecules, "--out", traj)
            relax = Relaxation(max_steps=p.ref_max_steps)
            trajectories(traj, p.traj_molecules * p.conformers * relax.max_steps,
                         dataclasses.replace(TRAJECTORY_MOLECULES, input=d0, molecules=p.traj_molecules),
                         self.oracle, relax, quiet=quiet)

        self.stage("d0", d0_stage)
        self.stage("test", test_stage)
        self.stage("reference", reference_stage)
        self.stage("trajectories", trajectories_stage)
        for n in self.traj_sizes:
            self.stage(f"traj-{n}-data", lambda n=n: sample_rows(traj, self.path(f"data/traj-{n}.db"), n,
                                                                  seed=self.settings.seed))

    def _train(self, out: str, data: list[Path], training: Training, init: Path | None = None) -> None:
        from golf.runs.train import TRAINER_STATE_FILE, train

        resume = (self.path(out + ".d") / TRAINER_STATE_FILE).exists()  # an interrupted run left its state
        self._say("train", *(f"--data {d}" for d in data), "--out", self.path(out), *(["--resume"] if resume else []))
        train(training, [str(d) for d in data], self.path(out), init=init, resume=resume,
              progress=self.settings.progress)

    def _finetune_lr(self) -> float:
        """Learning rate of traj-N, GOLF (and, with ``--init``, of the baseline's fine-tune on D0)."""
        return PRETRAINED_FINETUNE_LR if self.settings.init is not None else self.p.finetune_lr

    def _baseline_stage(self, seed: int) -> None:
        """The baseline of training seed ``seed`` (stage ``baseline`` or ``baseline-s<seed>``)."""
        p, d0 = self.p, self.path("data/D0.db")
        out = str(self.baseline_path(seed).relative_to(self.out))
        # from scratch with lr; with --init, init.pt fine-tuned with the pretrained start's learning rate
        lr, init = (p.lr, None) if self.settings.init is None else (self._finetune_lr(), self.path("models/init.pt"))
        self.stage(seed_name("baseline", seed), lambda: self._train(
            out, [d0], self._training(p.baseline_updates, lr, d0, seed=seed), init))

    def _golf_stage(self, seed: int) -> None:
        """GOLF from the baseline of training seed ``seed`` (stage ``golf`` or ``golf-s<seed>``)."""
        from golf.runs.golf import train_golf

        p, d0, baseline, run_dir = self.p, self.path("data/D0.db"), self.baseline_path(seed), self.golf_dir(seed)

        def golf_stage() -> None:
            resume = run_dir.exists()
            self._say("train --golf --from", baseline, "--out", run_dir, *(["--resume"] if resume else []))
            settings = GolfTraining(budget=self.budget, n_parallel=p.n_parallel, utd_ratio=p.utd_ratio,
                                    max_episode_steps=p.max_episode_steps, batch_size=p.batch_size,
                                    lr=self._finetune_lr(), eval_every=max(1, self.budget // 10),
                                    seed=self.settings.seed + seed,
                                    snapshots=tuple(max(1, round(f * self.budget)) for f in p.golf_snapshots),
                                    device=self.settings.device)
            train_golf(baseline, [d0], run_dir, settings, self.oracle, resume=resume, progress=self.settings.progress)

        self.stage(seed_name("golf", seed), golf_stage)

    def train_models(self) -> None:
        """Baseline on D0; traj-N fine-tuned from it with as many updates as GOLF makes (a fair share).

        The baseline trains from scratch with ``lr``; traj-N and GOLF start from it with ``finetune_lr``
        (the same for all three, so only their data differ). traj-N trains on its trajectory
        conformations alone, as the official ``run_training_trajectories-*.sh`` (``initial_conf_pct
        1.0`` on D-traj-N, ``--load_baseline``). Seed 0 first (baseline, traj-N, GOLF), then a baseline
        and a GOLF run for each further training seed; traj-N only from the seed-0 baseline.
        """
        d0 = self.path("data/D0.db")
        if self.settings.init is not None:
            init = self.path("models/init.pt")
            self.stage("init", lambda: self._refit_init(init, d0))
        self._baseline_stage(0)
        golf_updates = self.budget * self.p.utd_ratio
        for n in self.traj_sizes:
            traj = self.path(f"data/traj-{n}.db")
            self.stage(f"traj-{n}", lambda n=n, traj=traj: self._train(
                f"models/traj-{n}.pt", [traj], self._training(golf_updates, self._finetune_lr(), traj),
                self.baseline_path(0)))
        self._golf_stage(0)
        for seed in self.seeds[1:]:
            self._baseline_stage(seed)
            self._golf_stage(seed)

    def _refit_init(self, out: Path, d0: Path) -> None:
        """The pretrained model with its energy offsets refit to D0, saved as ``out``."""
        from golf.runs.train import refit_pretrained

        self._say("train --init", self.settings.init, "--refit-offsets (offsets only)", "--out", out)
        refit_pretrained(self.settings.init, [d0], out)

    def _golf_models(self, seed: int) -> dict[str, tuple[Path | str, int]]:
        """The GOLF rows of training seed ``seed``: its snapshots (once it has run) and its final model."""
        from golf.runs.golf import snapshots

        run_dir = self.golf_dir(seed)
        out: dict[str, tuple[Path | str, int]] = {seed_name(f"GOLF-{calls}", seed): (path, calls)
                                                  for calls, path in snapshots(run_dir).items()}
        out[seed_name(f"GOLF-{self.budget}", seed)] = (run_dir / "model.pt", self.budget)
        return out

    def models(self) -> dict[str, tuple[Path | str, int]]:
        """name -> (model, genuine-oracle calls beyond D0): seed 0's rows (pretrained, baseline, traj-N,
        GOLF-<calls>), then each further seed's (baseline-s<s>, GOLF-<calls>-s<s>), then MMFF."""
        out: dict[str, tuple[Path | str, int]] = {}
        if self.settings.init is not None:
            out["pretrained"] = (self.path("models/init.pt"), 0)
        out["baseline"] = (self.baseline_path(0), 0)
        for n in self.traj_sizes:
            out[f"traj-{n}"] = (self.path(f"models/traj-{n}.pt"), n)
        out.update(self._golf_models(0))
        for seed in self.seeds[1:]:
            out[seed_name("baseline", seed)] = (self.baseline_path(seed), 0)
            out.update(self._golf_models(seed))
        out["MMFF"] = (MMFF, 0)
        return out

    def evaluate(self) -> None:
        from golf.runs.evaluate import evaluate_run

        settings = Evaluation(steps=tuple(self.p.steps), optimizer="lbfgs-golf", device=self.settings.device)
        ref = self.path("data/test_ref.db")

        def eval_stage(name: str, model: Path | str) -> None:
            self._say("evaluate --model", model, "--name", name, "--out", self.path(f"eval/{name}"))
            evaluate_run(model, ref, self.path(f"eval/{name}"), settings, self.oracle, name=name,
                         progress=self.settings.progress)

        for name, (model, _) in self.models().items():
            self.stage(f"eval-{name}", lambda name=name, model=model: eval_stage(name, model))

    def report(self) -> None:
        from golf.evaluation.report import write_report

        write_report(self.out, self.models(), dataclasses.asdict(self.p), self.timings,
                     preset_name=self.settings.preset, oracle=self.oracle.oracle)

    def run(self) -> None:
        from golf.runs.data import oracle_spec

        oracle_spec(self.oracle)  # an unknown or unusable oracle fails before anything is written
        if self.settings.init is not None:
            from golf.models.registry import resolve_model

            resolve_model(self.settings.init)  # an unknown model too
        marker = self.path("stages/baseline.json")
        if marker.exists() and json.loads(marker.read_text()).get("init") != self.settings.init:
            raise GolfError(f"{self.out} holds a run with another start (init); choose another output directory")
        self.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.build_data()
        self.train_models()
        self.evaluate()
        self.timings["total"] = time.perf_counter() - t0
        self.report()
        print(f"[golf run] report: {self.path('report.md')}", file=sys.stderr)


def run_experiment(settings: ExperimentSettings) -> Path:
    """Run (or resume) the whole experiment; returns the path of report.md."""
    Experiment(settings).run()
    return Path(settings.out) / "report.md"
