"""The end-to-end GOLF experiment behind ``golf run`` (see ``golf.cli.run`` for the stages).

Each stage runs the same code as the corresponding ``golf`` subcommand, writes its outputs, then a
marker ``stages/<name>.json`` (timing and settings). A finished stage is skipped on the next run; an
interrupted one resumes through its subcommand's own resume (data builds skip stored records,
GOLF continues from its run directory).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable

from golf.errors import GolfError
from golf.io import atomic_path, atomic_write_text

MMFF = "mmff"


class Experiment:
    """One ``golf run`` in directory ``args.out`` at the scale of ``args.preset``."""

    def __init__(self, args: argparse.Namespace) -> None:
        from golf.cli.run import PRESETS

        self.args = args
        self.p = dict(PRESETS[args.preset])
        if args.budget is not None:
            self.p["budget"] = int(args.budget)
        self.out = Path(args.out)
        self.budget = int(self.p["budget"])
        self.traj_sizes = [f * self.budget for f in self.p["traj_factors"]]
        self.progress = [] if not args.no_progress else ["--no-progress"]
        self.timings: dict[str, float] = {}

    # ------------------------------------------------------------------ plumbing
    def path(self, rel: str) -> Path:
        return self.out / rel

    def _golf(self, *argv: Any) -> None:
        from golf.cli import main

        argv = [str(a) for a in argv]
        print(f"$ golf {' '.join(argv)}", file=sys.stderr, flush=True)
        if main(argv) != 0:
            raise GolfError(f"stage failed: golf {' '.join(argv[:2])}")

    def stage(self, name: str, fn: Callable[[], None]) -> None:
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
        atomic_write_text(marker, json.dumps({"seconds": seconds, "preset": self.args.preset, "settings": self.p},
                                             default=str))
        print(f"[golf run] {name}: {seconds:.1f} s", file=sys.stderr, flush=True)

    def _oracle_args(self) -> list[str]:
        a = self.args
        out = ["--oracle", a.oracle, "--executor", a.executor, "--workers", a.workers]
        if a.scheduler:
            out += ["--scheduler", a.scheduler]
        return out

    def _model_args(self) -> list[str]:
        p = self.p
        return ["--model", "painn", "--features", p["features"], "--interactions", p["interactions"],
                "--cutoff", 5.0, "--n-rbf", p["n_rbf"], "--batch-size", p["batch_size"], "--seed", self.args.seed,
                "--device", self.args.device]

    # ------------------------------------------------------------------ stages
    def build_data(self) -> None:
        p, quiet = self.p, (["--quiet"] if self.args.no_progress else [])
        pool = ["--min-heavy", p["min_heavy"], "--max-heavy", p["max_heavy"], "--seed", self.args.seed]
        self.stage("d0", lambda: self._golf(
            "data", "build", "--split", "train", "--molecules", p["train_molecules"], "--conformers",
            p["conformers"], *pool, *self._oracle_args(), "--out", self.path("data/D0.db"), *quiet))
        self.stage("test", lambda: self._golf(
            "data", "build", "--split", "test", "--molecules", p["test_molecules"], "--conformers", 1, *pool,
            *self._oracle_args(), "--out", self.path("data/test.db"), *quiet))
        self.stage("reference", lambda: self._golf(
            "data", "reference", "--input", self.path("data/test.db"), "--max-steps", p["ref_max_steps"],
            *self._oracle_args(), "--out", self.path("data/test_ref.db"), *quiet))
        self.stage("trajectories", lambda: self._golf(
            "data", "trajectories", "--input", self.path("data/D0.db"), "--budget", max(self.traj_sizes),
            *self._oracle_args(), "--out", self.path("data/traj.db"), *quiet))
        for n in self.traj_sizes:
            self.stage(f"traj-{n}-data", lambda n=n: _copy_first_rows(
                self.path("data/traj.db"), self.path(f"data/traj-{n}.db"), n))

    def _resume(self, model: str) -> list[str]:
        """``--resume`` when an interrupted ``golf train`` left its state in ``<model>.d``."""
        return ["--resume"] if (self.path(model + ".d") / "trainer_state.pt").exists() else []

    def _epochs(self, updates: int, *dbs: Path) -> int:
        """Epochs that make about ``updates`` optimizer steps over ``dbs`` (90% train split)."""
        from golf.db import count_rows

        n_train = max(1, int(0.9 * sum(count_rows(db) for db in dbs)))
        return max(1, round(updates * self.p["batch_size"] / n_train))

    def train_models(self) -> None:
        """Baseline on D0; traj-N fine-tuned from it with as many updates as GOLF makes (a fair share).

        The baseline trains from scratch with ``lr``; traj-N and GOLF start from it with ``finetune_lr``
        (the same for all three, so only their data differ).
        """
        p = self.p
        d0 = self.path("data/D0.db")
        self.stage("baseline", lambda: self._golf(
            "train", "--data", d0, "--out", self.path("models/baseline.pt"),
            "--epochs", self._epochs(p["baseline_updates"], d0), "--lr", p["lr"], *self._model_args(),
            *self._resume("models/baseline.pt"), *self.progress))
        golf_updates = self.budget * p["utd_ratio"]
        for n in self.traj_sizes:
            traj = self.path(f"data/traj-{n}.db")
            self.stage(f"traj-{n}", lambda n=n, traj=traj: self._golf(
                "train", "--data", d0, "--data", traj, "--init", self.path("models/baseline.pt"),
                "--out", self.path(f"models/traj-{n}.pt"), "--epochs", self._epochs(golf_updates, d0, traj),
                "--lr", p["finetune_lr"], *self._model_args(), *self._resume(f"models/traj-{n}.pt"),
                *self.progress))
        self.stage("golf", lambda: self._golf(
            "train", "--golf", "--from", self.path("models/baseline.pt"), "--data", self.path("data/D0.db"),
            "--budget", self.budget, "--n-parallel", p["n_parallel"], "--utd-ratio", p["utd_ratio"],
            "--max-episode-steps", p["max_episode_steps"], "--batch-size", p["batch_size"],
            "--lr", p["finetune_lr"],
            "--eval-every", max(1, self.budget // 10),
            "--seed", self.args.seed, "--device", self.args.device, *self._oracle_args(),
            *(["--resume"] if self.path("golf").exists() else []), "--out", self.path("golf"), *self.progress))

    def models(self) -> dict[str, tuple[Path | str, int]]:
        """name -> (model, genuine-oracle calls beyond D0)."""
        out: dict[str, tuple[Path | str, int]] = {"baseline": (self.path("models/baseline.pt"), 0)}
        for n in self.traj_sizes:
            out[f"traj-{n}"] = (self.path(f"models/traj-{n}.pt"), n)
        out[f"GOLF-{self.budget}"] = (self.path("golf/model.pt"), self.budget)
        out["MMFF"] = (MMFF, 0)
        return out

    def evaluate(self) -> None:
        steps = ",".join(str(s) for s in self.p["steps"])
        for name, (model, _) in self.models().items():
            self.stage(f"eval-{name}", lambda name=name, model=model: self._golf(
                "evaluate", "--model", model, "--name", name, "--reference", self.path("data/test_ref.db"),
                "--steps", steps, "--optimizer", "lbfgs-golf", *self._oracle_args(), "--device",
                self.args.device, "--out", self.path(f"eval/{name}"), *self.progress))

    def report(self) -> None:
        from golf.report import write_report

        write_report(self.out, self.models(), self.p, self.timings, preset_name=self.args.preset, oracle=self.args.oracle)

    def run(self) -> None:
        from golf.oracles import resolve_oracle

        resolve_oracle(self.args.oracle)  # an unknown oracle fails before anything is written
        if self.budget < 1 or self.args.workers < 1:
            raise GolfError("--budget and --workers must be >= 1")
        self.out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        self.build_data()
        self.train_models()
        self.evaluate()
        self.timings["total"] = time.perf_counter() - t0
        self.report()
        print(f"[golf run] report: {self.path('report.md')}", file=sys.stderr)


def _copy_first_rows(src: Path, dst: Path, n: int) -> None:
    """The first ``n`` rows of an ASE db (the paper's traj-N: the first N oracle calls), atomically."""
    from ase.db import connect

    with atomic_path(dst) as tmp:
        tmp.unlink()  # ASE's SQLite backend creates the database itself
        source, target = connect(str(src), type="db"), connect(str(tmp), type="db")
        with target:  # one transaction
            for i, row in enumerate(source.select(sort="id")):
                if i >= n:
                    break
                target.write(row.toatoms(), key_value_pairs=row.key_value_pairs, data=row.data)
