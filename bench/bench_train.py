"""Training throughput and validation force error against training wall-clock time: golf before vs golf now.

Both arms train the same model (same initial weights, atomrefs, data split, batch order, optimiser and
learning-rate schedule: ``golf train``'s preset, quick by default, on the given labelled database) in ONE process, in
alternation: each step goes to the arm whose training clock is behind, so both see the same machine load (this
project's 2-core machine is shared and noisy). An arm's training clock is the wall time of its own training
steps (collate + ``Trainer.update``); validation, every ``--checkpoint-s`` seconds of each clock, is not counted.

"before" is PaiNN's code at git revision ``--before`` (default 22b0516, main before the training-speed work): its
``src/golf/models/painn.py`` is read with ``git show`` and loaded beside the current package; the rest of golf is
the current tree. The script lists which files under ``src/golf`` differ from that revision, and refuses to run
when anything but painn.py does (then "before" would not be the old golf), unless ``--allow-other-changes``.
Both models hold the same weights and give the same energies and forces (checked, reported).

Recorded per checkpoint and arm: training seconds (wall and CPU), steps, conformations, conformations/s, and
validation energy/force MAE; plus the paired per-step time ratio (step k of both arms is the same batch),
threads, allocator setting and the load average. Writes ``bench/results/bench_train.json`` and prints a table.

Usage:  python bench/bench_train.py --data D0.db [--minutes 3] [--threads 1] [--checkpoint-s 30]
(D0.db: a labelled database, e.g. ``<golf run>/data/D0.db``; nothing is built here.)
"""
from __future__ import annotations

import argparse
import copy
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PAINN = "src/golf/models/painn.py"


def git(*argv: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *argv], check=True, capture_output=True, text=True).stdout


def load_before_painn(rev: str):
    """The ``golf.models.painn`` module of revision ``rev``, importable beside the current one."""
    source = git("show", f"{rev}:{PAINN}")
    tmp = Path(tempfile.mkdtemp(prefix="golf_before_")) / "painn_before.py"
    tmp.write_text(source)
    spec = importlib.util.spec_from_file_location("golf_painn_before", tmp)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class Arm:
    """One model in training: its trainer, epoch batches as ``Trainer.fit`` draws them, clocks and records."""

    def __init__(self, name, trainer, train, val, batch_size, eval_batch_size):
        self.name, self.trainer, self.train, self.val = name, trainer, train, val
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.reset()

    def reset(self) -> None:
        self.wall = self.cpu = 0.0
        self.steps = self.confs = 0
        self.step_times: list[float] = []
        self.records: list[dict] = []
        self._queue: list[np.ndarray] = []

    def next_indices(self) -> np.ndarray:
        if not self._queue:
            perm = torch.randperm(len(self.train), generator=self.trainer.generator).numpy()
            n = len(perm)
            self._queue = [perm[k : k + self.batch_size] for k in range(0, n, self.batch_size)][::-1]
        return self._queue.pop()

    def step(self) -> None:
        idx = self.next_indices()
        c0, t0 = time.process_time(), time.perf_counter()
        self.trainer.update(self.train.collate(idx, self.trainer.device, self.trainer.dtype))
        dt = time.perf_counter() - t0
        self.wall += dt
        self.cpu += time.process_time() - c0
        self.step_times.append(dt)
        self.steps += 1
        self.confs += len(idx)

    def record(self, checkpoint_s: float) -> dict:
        ev = self.trainer.evaluate(self.val, self.eval_batch_size)
        row = {
            "checkpoint_s": checkpoint_s,
            "train_wall_s": round(self.wall, 2),
            "train_cpu_s": round(self.cpu, 2),
            "steps": self.steps,
            "conformations": self.confs,
            "conformations_per_s": round(self.confs / self.wall, 2) if self.wall else None,
            "val_forces_mae_mev_a": round(ev["forces_mae_mev_a"], 2),
            "val_energy_mae_mev": round(ev["energy_mae_mev"], 2),
            "load_avg_1min": round(os.getloadavg()[0], 2),
        }
        self.records.append(row)
        return row


def main(argv=None) -> int:
    from golf.presets import TRAIN_PRESETS

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True, help="labelled ASE database (e.g. <golf run>/data/D0.db)")
    ap.add_argument("--minutes", type=float, default=3.0, help="training wall-clock budget of each arm")
    ap.add_argument("--checkpoint-s", type=float, default=30.0, help="validate every this many training seconds")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--before", default="22b0516", help="git revision of the 'before' PaiNN")
    ap.add_argument("--allow-other-changes", action="store_true",
                    help="run even when files besides painn.py differ from --before")
    ap.add_argument("--preset", default="quick", choices=sorted(TRAIN_PRESETS),
                    help="golf train preset: model size and training settings (quick: PaiNN 64x3, batch 32)")
    ap.add_argument("--batch-size", type=int, help="default: the preset's")
    ap.add_argument("--eval-batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=str(HERE / "results" / "bench_train.json"))
    args = ap.parse_args(argv)
    settings = TRAIN_PRESETS[args.preset]
    args.batch_size = args.batch_size or settings.batch_size

    torch.set_num_threads(args.threads)
    from golf.models.ops import tune_cpu_allocator

    tuned = tune_cpu_allocator()  # as every golf torch command does
    from golf.dataset import LabelledData
    from golf.models import build_model
    from golf.trainer import Trainer, prepare_model

    changed = [p for p in git("diff", "--name-only", args.before, "--", "src/golf").split() if p]
    others = [p for p in changed if p != PAINN]
    if others and not args.allow_other_changes:
        print(f"files besides {PAINN} differ from {args.before}: {others}; 'before' would not be golf at "
              f"{args.before} (--allow-other-changes to run anyway)", file=sys.stderr)
        return 2
    before_painn = load_before_painn(args.before)
    head = git("rev-parse", "--short", "HEAD").strip()
    dirty = bool(git("status", "--porcelain", "--", "src/golf").strip())

    data = LabelledData.from_db(args.data)
    train, val = data.split_by_molecule(settings.val_fraction, seed=args.seed)
    hparams = dict(n_atom_basis=settings.features, n_interactions=settings.interactions, cutoff=settings.cutoff,
                   n_rbf=settings.n_rbf)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(args.seed)
        after_model = build_model(settings.model, **hparams)
    prepare_model(after_model, train)
    before_model = copy.deepcopy(after_model)
    old_rep = before_painn.PaiNN(**after_model.config["hparams"])
    old_rep.load_state_dict(after_model.representation.state_dict())
    before_model.representation = old_rep

    # same function: energies and forces of both on the first validation batch
    probe = val.collate(np.arange(min(len(val), args.eval_batch_size)))[0]
    e_b, f_b = before_model.energy_and_forces(probe)
    e_a, f_a = after_model.energy_and_forces(probe)
    same = {"max_abs_energy_diff_ev": float((e_a - e_b).abs().max()),
            "max_abs_force_diff_ev_a": float((f_a - f_b).abs().max()),
            "max_abs_force_ev_a": float(f_b.abs().max())}

    steps_per_epoch = -(-len(train) // args.batch_size)
    arms = []
    for name, model in (("before", before_model), ("after", after_model)):
        trainer = Trainer(model, lr=settings.lr, lr_min=settings.lr_min, clip=settings.clip or None,
                          weight_decay=settings.weight_decay, w_energy=settings.w_energy, w_forces=settings.w_forces,
                          seed=args.seed, total_steps=settings.epochs * steps_per_epoch)
        arms.append(Arm(name, trainer, train, val, args.batch_size, args.eval_batch_size))
    for arm in arms:  # warm-up (allocator, first-call costs), not counted; then back to the same start
        state = arm.trainer.state_dict()
        arm.step()
        arm.trainer.load_state_dict(state)
        arm.reset()

    budget = 60.0 * args.minutes
    load_start = os.getloadavg()
    t_start = time.perf_counter()
    next_checkpoint = {arm.name: 0.0 for arm in arms}
    print(f"training {len(train)} conformations ({len(val)} validation), PaiNN {settings.features}x"
          f"{settings.interactions}, batch {args.batch_size}, {args.threads} thread(s), {args.minutes:g} min per arm",
          file=sys.stderr)
    while True:
        for arm in arms:
            while next_checkpoint[arm.name] <= min(arm.wall, budget) + 1e-9:
                row = arm.record(next_checkpoint[arm.name])
                print(f"  {arm.name:6s} t={row['checkpoint_s']:5.0f} s  steps {row['steps']:5d}  "
                      f"{row['conformations_per_s'] or 0:6.1f} conf/s  "
                      f"val force MAE {row['val_forces_mae_mev_a']:7.1f}",
                      file=sys.stderr, flush=True)
                next_checkpoint[arm.name] += args.checkpoint_s
        live = [arm for arm in arms if arm.wall < budget]
        if not live:
            break
        min(live, key=lambda a: a.wall).step()
    for arm in arms:  # the end of the budget, when it is no multiple of --checkpoint-s
        if arm.records[-1]["checkpoint_s"] < budget - 1e-9:
            arm.record(budget)
    elapsed = time.perf_counter() - t_start
    load_end = os.getloadavg()

    before, after = arms
    n_paired = min(before.steps, after.steps)
    ratios = [b / a for b, a in zip(before.step_times[:n_paired], after.step_times[:n_paired])]
    summary = {arm.name: {"steps": arm.steps, "conformations": arm.confs, "train_wall_s": round(arm.wall, 2),
                          "train_cpu_s": round(arm.cpu, 2),
                          "conformations_per_s": round(arm.confs / arm.wall, 2),
                          "conformations_per_cpu_s": round(arm.confs / arm.cpu, 2),
                          "median_step_ms": round(1e3 * statistics.median(arm.step_times), 1),
                          "final_val_forces_mae_mev_a": arm.records[-1]["val_forces_mae_mev_a"]}
               for arm in arms}
    summary["speedup_conformations_per_s"] = round(summary["after"]["conformations_per_s"]
                                                   / summary["before"]["conformations_per_s"], 3)
    summary["speedup_conformations_per_cpu_s"] = round(summary["after"]["conformations_per_cpu_s"]
                                                       / summary["before"]["conformations_per_cpu_s"], 3)
    summary["paired_step_time_ratio_median"] = round(statistics.median(ratios), 3)
    summary["paired_steps"] = n_paired

    result = {
        "benchmark": "training throughput and validation force MAE vs training wall-clock time, one process, "
                     "arms alternating step by step",
        "data": os.path.abspath(args.data), "n_train": len(train), "n_val": len(val),
        "atoms_per_conformation_mean": round(float(np.mean(data.n_atoms)), 2),
        "model": f"PaiNN {settings.features} features x {settings.interactions} interactions, "
                 f"{settings.n_rbf} Bessel RBF, cutoff {settings.cutoff} A (golf train --preset {args.preset})",
        "training": {"batch_size": args.batch_size, "lr": settings.lr, "lr_min": settings.lr_min, "clip": settings.clip,
                     "schedule_steps": settings.epochs * steps_per_epoch, "seed": args.seed, "dtype": "float32"},
        "before": f"{PAINN} at {args.before}, rest of golf as after",
        "after": f"golf at {head}" + (" + uncommitted changes" if dirty else ""),
        "files_differing_from_before": changed,
        "same_function_check": same,
        "budget_minutes_per_arm": args.minutes, "checkpoint_s": args.checkpoint_s,
        "threads": torch.get_num_threads(), "tuned_allocator": tuned,
        "load_avg_start": [round(x, 2) for x in load_start], "load_avg_end": [round(x, 2) for x in load_end],
        "machine_note": f"{os.cpu_count()} cores shared with other jobs; both arms interleaved in one process",
        "elapsed_s": round(elapsed, 1),
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "summary": summary,
        "checkpoints": {arm.name: arm.records for arm in arms},
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nPaiNN {settings.features}x{settings.interactions} on {len(train)} conformations "
          f"({result['atoms_per_conformation_mean']} atoms on average), batch {args.batch_size}, "
          f"{result['threads']} thread(s), load average {load_start[0]:.1f} -> {load_end[0]:.1f}\n")
    print("| training time (min) | before: steps | before: conf/s | before: val force MAE (meV/A) "
          "| after: steps | after: conf/s | after: val force MAE (meV/A) |")
    print("|---|---|---|---|---|---|---|")
    for rb, ra in zip(before.records, after.records):
        print(f"| {rb['checkpoint_s'] / 60:.1f} | {rb['steps']} | {rb['conformations_per_s'] or '-'} | "
              f"{rb['val_forces_mae_mev_a']:.1f} | {ra['steps']} | {ra['conformations_per_s'] or '-'} | "
              f"{ra['val_forces_mae_mev_a']:.1f} |")
    print(f"\nconformations/s: before {summary['before']['conformations_per_s']}, after "
          f"{summary['after']['conformations_per_s']} ({summary['speedup_conformations_per_s']}x; per CPU second "
          f"{summary['speedup_conformations_per_cpu_s']}x; paired step-time ratio, median of {n_paired}: "
          f"{summary['paired_step_time_ratio_median']}x)")
    print(f"same function: max |dE| {same['max_abs_energy_diff_ev']:.2e} eV, max |dF| "
          f"{same['max_abs_force_diff_ev_a']:.2e} eV/A (max |F| {same['max_abs_force_ev_a']:.2f})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
