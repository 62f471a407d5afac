"""The GOLF loop: budget, persistence, kill-and-resume, failure handling, and that it learns.

MMFF94 stands in for the genuine oracle here (serial executor, milliseconds per call), so the
tests exercise the algorithm, not xTB.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.db import append_labelled, count_rows, iter_rows
from golf.chem import generate_conformers
from golf.oracles import make_oracle
from conftest import interrupt_like_a_terminal

SMILES = ["CCO", "CC(=O)C", "CCN", "OCCO", "CC(C)O", "C1CC1O"]


@pytest.fixture(scope="module")
def d0_and_baseline(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny MMFF-labelled D0 (displaced ETKDG conformers) and a baseline PaiNN trained briefly on it."""
    from golf.dataset import LabelledData
    from golf.models import build_model, save_model
    from golf.trainer import Trainer, prepare_model

    root = tmp_path_factory.mktemp("golf")
    d0 = root / "d0.db"
    mmff = make_oracle("mmff")
    for mol_id, smi in enumerate(SMILES):
        for conf in generate_conformers(smi, 4, seed=1, displacement=0.05, mol_id=mol_id):
            res = mmff.compute(conf)
            append_labelled(d0, conf, res, mmff.spec, key=f"{mol_id}:{conf.conf_id}")
    data = LabelledData.from_db(d0)
    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=32, n_interactions=2, cutoff=5.0, n_rbf=16)
    prepare_model(model, data)
    trainer = Trainer(model, lr=1e-3, total_steps=150, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(150):
        trainer.update(data.collate(rng.choice(len(data), 16)))
    baseline = root / "baseline.pt"
    save_model(model, baseline, provenance={"kind": "test-baseline"})
    return d0, baseline


def _golf_args(d0: Path, baseline: Path, out: Path, budget: int, oracle: str = "mmff", extra=()) -> list[str]:
    return [sys.executable, "-m", "golf", "train", "--golf", "--from", str(baseline), "--data", str(d0),
            "--budget", str(budget), "--out", str(out), "--oracle", oracle, "--executor", "serial",
            "--n-parallel", "4", "--utd-ratio", "3", "--max-episode-steps", "8", "--batch-size", "8",
            "--checkpoint-every", "2", "--seed", "0", *extra]


def _calls(run: Path) -> list[int]:
    calls = [int(r["kvp"]["call"]) for r in iter_rows(run / "oracle.db")] if (run / "oracle.db").exists() else []
    if (run / "failures.jsonl").exists():
        calls += [json.loads(line)["call"] for line in (run / "failures.jsonl").read_text().splitlines()]
    return sorted(calls)


def _progress(run: Path, log: Path | None = None) -> tuple:
    """Everything a working GOLF run changes: its files' sizes and mtimes, and its stderr."""
    files = sorted(run.rglob("*")) if run.exists() else []
    if log is not None:
        files.append(log)
    return tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files if f.is_file())


def _wait_while_progressing(proc: subprocess.Popen, run: Path, log: Path | None = None,
                            until=lambda: False, stall: float = 240) -> bool:
    """Wait until ``proc`` exits or ``until()`` holds, as long as ``_progress`` changes at least every
    ``stall`` s (a loaded machine slows the test down instead of failing it). True if it stalled."""
    seen, last_change = _progress(run, log), time.monotonic()
    while proc.poll() is None and not until():
        time.sleep(0.2)
        if (now := _progress(run, log)) != seen:
            seen, last_change = now, time.monotonic()
        elif time.monotonic() - last_change > stall:
            return True
    return False


def _run_or_dump(args: list[str], log: Path, run: Path, stall: float = 240) -> subprocess.CompletedProcess:
    """Run ``args`` while it makes progress (``_wait_while_progressing``); when it stalls, fail with
    the Python stacks of the stuck process (faulthandler on SIGABRT) and its last status lines."""
    env = dict(os.environ, PYTHONFAULTHANDLER="1")
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, text=True, env=env)
        if _wait_while_progressing(proc, run, log, stall=stall):
            proc.send_signal(signal.SIGABRT)
            proc.wait(timeout=30)
            pytest.fail(f"{' '.join(args[2:5])} made no progress for {stall} s; its stderr ends:\n"
                        f"{log.read_text()[-6000:]}")
    return subprocess.CompletedProcess(args, proc.returncode, "", log.read_text())


def test_golf_run_respects_budget_and_stores_every_result(d0_and_baseline, tmp_path):
    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    out = subprocess.run(_golf_args(d0, baseline, run, budget=10), capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert _calls(run) == list(range(10))  # exactly the budget, every call stored once
    assert (run / "model.pt").exists() and (run / "log.csv").exists()
    stored = list(iter_rows(run / "oracle.db"))
    assert {r["kvp"]["reason"] for r in stored} <= {"surrogate", "limit", "converged", "failed"}
    from golf import load_model

    model = load_model(run / "model.pt")
    assert model.config["architecture"] == "painn"


def test_same_seed_one_worker_is_bitwise_reproducible(d0_and_baseline, tmp_path):
    """With one oracle worker the labels arrive in one order, so two runs of one seed store the same
    labels in the same order and end with bitwise-equal weights (several workers return labels in a
    run-dependent order, as in the paper's asynchronous loop)."""
    from golf.models import load_model

    runs = [tmp_path / "a", tmp_path / "b"]
    for run in runs:
        out = subprocess.run(_golf_args(*d0_and_baseline, run, budget=16), capture_output=True, text=True,
                             timeout=300)
        assert out.returncode == 0, out.stderr
    labels = [[(r["kvp"]["call"], r["energy"]) for r in iter_rows(run / "oracle.db")] for run in runs]
    assert len(labels[0]) == 16 and labels[0] == labels[1]
    log = (runs[0] / "log.csv").read_text().splitlines()
    assert int(log[-1].split(",")[log[0].split(",").index("updates")]) > 0  # it trained
    a, b = (load_model(run / "model.pt").state_dict() for run in runs)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_kill_and_resume_loses_nothing(d0_and_baseline, tmp_path):
    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    budget = 16
    proc = subprocess.Popen(_golf_args(d0, baseline, run, budget=budget, extra=["--utd-ratio", "20"]),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_while_progressing(proc, run, until=lambda: len(_calls(run)) >= 4)  # then kill it mid-run
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _calls(run)
    assert 0 < len(before) < budget, "the kill should land mid-run"
    out = _run_or_dump(_golf_args(d0, baseline, run, budget=budget, extra=["--resume"]), tmp_path / "resume.log", run)
    assert out.returncode == 0, out.stderr
    after = _calls(run)
    assert after == list(range(budget))  # nothing lost, nothing recomputed, budget counted once
    kept = {r["kvp"]["call"]: r["energy"] for r in iter_rows(run / "oracle.db")}
    assert all(c in kept for c in before if c in kept)


@pytest.mark.slow
def test_resumed_run_makes_the_updates_of_an_uninterrupted_one(d0_and_baseline, tmp_path):
    """Killed with results stored but no checkpoint, a resumed run makes exactly the NNP updates an
    uninterrupted run makes (rounds of 4 calls, 4 x 3 updates each once 8 labels exist: 4 rounds
    train, 48 updates), not utd-ratio updates for every result stored before the buffer could train."""
    d0, baseline = d0_and_baseline
    budget, extra = 20, ["--checkpoint-every", "1000"]
    whole = tmp_path / "whole"
    out = _run_or_dump(_golf_args(d0, baseline, whole, budget=budget, extra=extra), tmp_path / "whole.log", whole)
    assert out.returncode == 0, out.stderr
    expected = json.loads((whole / "summary.json").read_text())["stats"]["updates"]
    assert expected == 48
    run = tmp_path / "run"
    proc = subprocess.Popen(_golf_args(d0, baseline, run, budget=budget, extra=extra),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_while_progressing(proc, run, until=lambda: len(_calls(run)) >= 10)  # past the first training round
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 10 <= len(_calls(run)) < budget and not (run / "checkpoint.pt").exists(), "the kill should land mid-run"
    out = _run_or_dump(_golf_args(d0, baseline, run, budget=budget, extra=[*extra, "--resume"]),
                       tmp_path / "resume.log", run)
    assert out.returncode == 0, out.stderr
    assert _calls(run) == list(range(budget))
    assert json.loads((run / "summary.json").read_text())["stats"]["updates"] == expected


def test_ctrl_c_stops_a_golf_run_without_worker_tracebacks(d0_and_baseline, tmp_path):
    """Ctrl-C in a terminal interrupts the whole process group: the oracle workers (mostly idle,
    waiting for the parent's next round) must leave it to the parent, which prints one
    "interrupted" line and exits 130."""
    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    budget = 400  # far more than the seconds before the signal can spend: it must land mid-run, not at exit
    args = _golf_args(d0, baseline, run, budget=budget, oracle="flaky_oracle:SlowMMFF",
                      extra=["--oracle-option", "delay=0.05", "--no-progress"])
    args[args.index("serial")] = "local"
    log = tmp_path / "err.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
        try:
            stalled = _wait_while_progressing(proc, run, log, until=lambda: len(_calls(run)) >= 1)
            assert not stalled and proc.poll() is None, log.read_text()
            time.sleep(3)  # the parent relaxes its episodes and trains; the workers wait
            assert proc.poll() is None and len(_calls(run)) < budget, "the run ended before the signal"
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        interrupt_like_a_terminal(proc, log)


def test_oracle_failure_is_skipped_and_counted(d0_and_baseline, tmp_path, monkeypatch):
    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    args = _golf_args(d0, baseline, run, budget=9, oracle="mmff", extra=["--oracle-option", "fail_every=3"])
    # golf accepts "module:Class" oracle names (user-defined oracles); tests/flaky_oracle.py injects failures
    args[args.index("mmff")] = "flaky_oracle:FlakyMMFF"
    out = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    failures = [json.loads(x) for x in (run / "failures.jsonl").read_text().splitlines()]
    assert len(failures) == 3 and all("injected" in f["reason"] for f in failures)
    assert count_rows(run / "oracle.db") == 6
    assert _calls(run) == list(range(9))
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stats"]["calls_failed"] == 3


def test_golf_lowers_force_error_along_its_own_trajectories(d0_and_baseline, tmp_path):
    """The point of GOLF: on conformations the NNP visits while relaxing, its force error drops."""
    from golf import load_model
    from golf.batch import Batch
    from golf.dataset import LabelledData
    from golf.models import ModelEnergyForces
    from golf.optim import relax

    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    out = subprocess.run(_golf_args(d0, baseline, run, budget=30, extra=["--utd-ratio", "10"]),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    base, golf_model = load_model(baseline), load_model(run / "model.pt")
    starts = LabelledData.from_db(d0).conformations()[::3]
    mmff = make_oracle("mmff")

    def trajectory_force_mae(model) -> float:
        records = relax(ModelEnergyForces(model), starts, method="lbfgs-golf", fmax=0.0, max_steps=10,
                        trajectory=True)
        errs = []
        for conf, rec in zip(starts, records):
            for x in rec.trajectory_positions[1:]:
                c = conf.with_positions(x)
                ref = mmff.compute(c)
                if not ref.ok:
                    continue
                _, f = ModelEnergyForces(model)(Batch.from_conformations([c]))
                errs.append(np.abs(f.numpy() - ref.forces).mean())
        return float(np.mean(errs))

    # each model on its own trajectories (the distribution it would be used on)
    e_base, e_golf = trajectory_force_mae(base), trajectory_force_mae(golf_model)
    assert e_golf < 0.8 * e_base, (e_base, e_golf)
