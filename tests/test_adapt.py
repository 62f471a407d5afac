"""``golf adapt``: the budget covers every oracle call, the offset refit, the generic set and its share,
the level-of-theory rule for teacher labels, registration, and kill -9 / resume.

MMFF94 stands in for the user's oracle (serial executor, milliseconds per call); a tiny PaiNN trained
briefly on MMFF labels stands in for the pretrained model (its level of theory is unknown to golf, so
its offsets are refit); the refit itself is checked on GOLF-10k.
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

from golf.db import count_rows, iter_rows

DATA = Path(__file__).parent / "data"
SERIES = "CC(=S)N1CCCCC1 224\nCC(=S)SCC(C)C 246\nS=C(N)c1ccccc1 5\n"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    """A small PaiNN trained for 100 updates on MMFF labels of a few thioamides and alcohols."""
    from golf.chem import generate_conformers
    from golf.dataset import LabelledData
    from golf.models import build_model, save_model
    from golf.oracles import make_oracle
    from golf.trainer import Trainer, prepare_model

    mmff = make_oracle("mmff")
    confs = [c for i, smi in enumerate(["CC(=S)N", "CCO", "CSC", "NC(=S)c1ccccc1", "CC(C)O"])
             for c in generate_conformers(smi, 3, seed=1, displacement=0.05, mol_id=i)]
    results = [mmff.compute(c) for c in confs]
    data = LabelledData.from_conformations(confs, [r.energy for r in results], [r.forces for r in results])
    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=16, n_interactions=2, cutoff=5.0, n_rbf=12)
    prepare_model(model, data)
    trainer = Trainer(model, lr=2e-3, total_steps=100, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(100):
        trainer.update(data.collate(rng.choice(len(data), 8)))
    path = tmp_path_factory.mktemp("adapt") / "tiny.pt"
    save_model(model, path, provenance={"kind": "test-model"})
    return path


MODEL: list[Path] = []


@pytest.fixture(autouse=True)
def _model(tiny_model):
    MODEL[:] = [tiny_model]


def _args(series: Path, out: Path, budget: int, *extra: str) -> list[str]:
    return [sys.executable, "-m", "golf", "adapt", str(series), "--model", str(MODEL[0]), "--oracle", "mmff",
            "--budget", str(budget), "--out", str(out), "--conformers", "1", "--generic-molecules", "6",
            "--n-parallel", "3", "--batch-size", "4", "--utd-ratio", "2", "--max-episode-steps", "6",
            "--executor", "serial", "--no-progress", *extra]


def _golf_calls(out: Path) -> list[int]:
    run = out / "golf"
    calls = [int(r["kvp"]["call"]) for r in iter_rows(run / "oracle.db")] if (run / "oracle.db").exists() else []
    if (run / "failures.jsonl").exists():
        calls += [json.loads(x)["call"] for x in (run / "failures.jsonl").read_text().splitlines()]
    return sorted(calls)


@pytest.fixture()
def series(tmp_path) -> Path:
    p = tmp_path / "series.smi"
    p.write_text(SERIES)
    return p


def test_adapt_spends_the_budget_once_refits_offsets_and_registers(series, tmp_path):
    from golf.batch import Batch
    from golf.chem import generate_conformers
    from golf.models import load_model

    out = tmp_path / "ad"
    env = dict(os.environ, GOLF_MODELS_DIR=str(tmp_path / "models"))
    res = subprocess.run(_args(series, out, 24, "--name", "thio-mmff"), capture_output=True, text=True,
                         timeout=600, env=env)
    assert res.returncode == 0, res.stderr
    n_start, n_generic, golf = count_rows(out / "start.db"), count_rows(out / "generic.db"), _golf_calls(out)
    assert (n_start, n_generic) == (3, 6)
    assert golf == list(range(24 - 9))  # start set + oracle-labelled generic set + GOLF = the budget
    cfg = json.loads((out / "golf" / "config.json").read_text())
    assert cfg["generic_share"] == 0.2 and cfg["generic_rows"] == 6 and cfg["lr"] == 1e-4
    # the refit changes per-element energy offsets only: forces of init.pt are the start model's
    conf = generate_conformers("CC(=S)N1CCCCC1", 1, seed=3)[0]
    batch = Batch.from_conformations([conf])
    e0, f0 = load_model(MODEL[0]).energy_and_forces(batch)
    e1, f1 = load_model(out / "init.pt").energy_and_forces(batch)
    assert torch.allclose(f0, f1, atol=1e-5) and abs(float(e0 - e1)) > 1e-3
    # the same on GOLF-10k (wB97X-D -> MMFF: offsets move by tens of eV, forces stay)
    from golf.runs.train import refit_pretrained

    fit = refit_pretrained("GOLF-10k", [out / "start.db"], tmp_path / "g.pt")
    e0, f0 = load_model("GOLF-10k").energy_and_forces(batch)
    e1, f1 = load_model(tmp_path / "g.pt").energy_and_forces(batch)
    assert torch.allclose(f0, f1, atol=1e-5) and abs(float(e0 - e1)) > 1.0
    assert fit["energy_mae_mev_after"] < fit["energy_mae_mev_before"]
    # registered under its name and usable as --model NAME
    listing = subprocess.run([sys.executable, "-m", "golf", "models", "--json"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert "thio-mmff" in listing.stdout
    xyz = tmp_path / "m.xyz"
    from ase.io import write

    from golf.chem import conformation_to_atoms

    write(xyz, conformation_to_atoms(conf))
    pred = subprocess.run([sys.executable, "-m", "golf", "predict", "--model", "thio-mmff", str(xyz), "-o",
                           str(tmp_path / "p.extxyz")], capture_output=True, text=True, env=env, timeout=120)
    assert pred.returncode == 0, pred.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["calls_start_and_generic"] == 9 and summary["heldout_forces_mae_mev_a_end"] is not None
    # bench/adapt_demo.py polish rebuilds this run's buffer and validation split: before any extra update
    # its validation error is the run's own final one
    import importlib.util

    spec = importlib.util.spec_from_file_location("adapt_demo", Path(__file__).parents[1] / "bench" / "adapt_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    curve = tmp_path / "polish.json"
    demo.main(["polish", "--db", str(tmp_path / "demo.db"), "--adapt-dir", str(out), "--adapt-model",
               str(out / "model.pt"), "--polish-updates", "2", "--polish-every", "1", "--polish-json", str(curve)])
    doc = json.loads(curve.read_text())
    used = sum(1 for r in iter_rows(out / "golf" / "oracle.db") if r["kvp"].get("used", 1))
    assert (doc["labels"], doc["generic"], len(doc["curve"])) == (used, 6, 3)
    assert doc["curve"][0]["forces_mae_mev_a"] == pytest.approx(summary["heldout_forces_mae_mev_a_end"], rel=1e-6)


def test_adapt_refuses_to_restart_or_change_a_run(series, tmp_path):
    out = tmp_path / "ad"
    first = subprocess.run(_args(series, out, 8, "--generic", "none"), capture_output=True, text=True, timeout=600)
    assert first.returncode == 0, first.stderr
    again = subprocess.run(_args(series, out, 8, "--generic", "none"), capture_output=True, text=True, timeout=120)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    other = subprocess.run(_args(series, out, 12, "--generic", "none", "--resume"), capture_output=True, text=True,
                           timeout=120)
    assert other.returncode == 2 and "adaptation" in other.stderr and "Traceback" not in other.stderr


def test_teacher_labels_only_at_the_models_level_of_theory(series, tmp_path):
    from golf.errors import InputError
    from golf.oracles.base import OracleSpec
    from golf.presets import Molecules
    from golf.runs.adapt import Adaptation, adapt, level_of_theory, model_level
    from golf.models.registry import resolve_model

    path, info = resolve_model("GOLF-10k")
    assert level_of_theory(OracleSpec("dft", {})) == "wb97x-d/def2-svp" == model_level(path, info)
    assert level_of_theory(OracleSpec("dft", {"xc": "wb97x-d3bj"})) != model_level(path, info)
    with pytest.raises(InputError, match="two levels of theory"):
        adapt(Molecules(smiles=str(series)), tmp_path / "x", Adaptation(generic="teacher"))
    assert not (tmp_path / "x").exists()
    res = subprocess.run(_args(series, tmp_path / "y", 20, "--generic", "teacher"), capture_output=True, text=True,
                         timeout=120)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1


def test_trigger_option_reaches_the_loop(series, tmp_path):
    """--trigger/--signal-threshold go into the GOLF run's configuration (the rules: test_loop.py)."""
    out = tmp_path / "ad"
    res = subprocess.run(_args(series, out, 8, "--generic", "none", "--trigger", "both", "--signal-threshold", "0.01"),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    golf = json.loads((out / "golf" / "config.json").read_text())["golf"]
    assert golf["trigger"] == "both" and golf["signal_threshold"] == 0.01


def test_budget_must_leave_calls_for_golf(series, tmp_path):
    res = subprocess.run(_args(series, tmp_path / "ad", 9), capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "budget" in res.stderr and not (tmp_path / "ad").exists()


def test_adapt_kill_and_resume_loses_nothing(series, tmp_path):
    out, budget = tmp_path / "ad", 30
    proc = subprocess.Popen(_args(series, out, budget, "--utd-ratio", "10"), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 600
    while proc.poll() is None and len(_golf_calls(out)) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _golf_calls(out)
    assert 0 < len(before) < budget - 9, "the kill should land in the GOLF stage"
    res = subprocess.run(_args(series, out, budget, "--utd-ratio", "10", "--resume"), capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stderr
    assert count_rows(out / "start.db") == 3 and count_rows(out / "generic.db") == 6  # not relabelled
    assert _golf_calls(out) == list(range(budget - 9))
    assert (out / "model.pt").exists()


def test_offsets_are_refit_on_the_generic_set_too(tmp_path):
    """An element only the generic set has (S here, the series is C, H, O) gets its offset refit too.
    A refit on the series alone sets it to 0, hundreds of eV off at xTB or DFT (GOLF-10k adapted to xTB
    on C/H/N/O molecules with an NCI generic set: GOLF's first updates wrecked the model)."""
    from golf.dataset import LabelledData
    from golf.models import load_model

    generic = tmp_path / "generic_s.db"
    smi = tmp_path / "g.smi"
    smi.write_text("CSC 1\nCCS 2\nCSSC 3\n")
    build = subprocess.run([sys.executable, "-m", "golf", "data", "build", "--smiles", str(smi), "--conformers", "2",
                            "--oracle", "mmff", "--executor", "serial", "--out", str(generic)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr
    series = tmp_path / "series.smi"
    series.write_text("CCO 10\nCC(C)O 11\n")
    out = tmp_path / "ad"
    args = _args(series, out, 4, "--generic", str(generic), "--refit-offsets", "always")
    res = subprocess.run(args, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, GOLF_MODELS_DIR=str(tmp_path / "models")))
    assert res.returncode == 0, res.stderr
    data = LabelledData.from_db([generic])
    batch, labels, _ = data.collate(np.arange(len(data)))
    energy, _ = load_model(out / "init.pt").energy_and_forces(batch)
    err = (energy.double() - labels.double()).abs().max().item()
    assert err < 20.0, f"init.pt is {err:.0f} eV off the generic set's labels"
    # fitted, not left at 0 (what a refit gives an element it never saw: hundreds of eV off at xTB or DFT)
    assert load_model(out / "init.pt").atomrefs[16].item() != 0.0


@pytest.mark.slow
@pytest.mark.parametrize("oracle", [["--oracle", "xtb"], ["--oracle", "dft", "--dft-basis", "sto-3g", "--dft-xc", "pbe"]],
                         ids=["xtb", "dft"])
def test_adapt_runs_with_the_real_oracles(tmp_path, oracle):
    """GOLF-10k adapted by name with GFN2-xTB and with PySCF (a small basis: the same code path as the
    paper's wB97X-D/def2-SVP, seconds per call): the budget is kept, every label is the oracle's."""
    pytest.importorskip("tblite" if oracle[1] == "xtb" else "pyscf")
    series = tmp_path / "series.smi"
    series.write_text("CC(N)=S 1\nNC(=S)N 2\n")
    out = tmp_path / "ad"
    cmd = [sys.executable, "-m", "golf", "adapt", str(series), "--model", "GOLF-10k", *oracle, "--budget", "6",
           "--out", str(out), "--conformers", "1", "--generic", "none", "--n-parallel", "2", "--batch-size", "4",
           "--utd-ratio", "1", "--max-episode-steps", "4", "--workers", "1", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    spent = count_rows(out / "start.db") + len(_golf_calls(out))
    assert 2 <= spent <= 6
    assert summary["model"].endswith("model.pt") and (out / "model.pt").exists()
    assert {r["kvp"].get("oracle") for r in iter_rows(out / "start.db")} == {oracle[1]}


def test_resume_accepts_an_adapt_json_written_before_the_golf_settings_were_merged(tmp_path):
    """An adaptation begun by an earlier golf (its loop settings left to the loop's default stored as null,
    no generic_share and max_unlabelled_episodes in its GOLF settings) is resumed by the same command line;
    a changed GOLF setting is still refused. No oracle call: only the identity check."""
    import dataclasses
    import shutil

    from golf.errors import GolfError
    from golf.presets import Molecules, OracleRun
    from golf.runs.adapt import ADAPT_GOLF, Adaptation, _check_identity, adapt_identity

    # adapt.json of the DFT demonstration as an earlier golf wrote it (bench/results/adapt_dft, before a resume
    # rewrote it); a copy, so the test does not depend on a run in progress
    stored = DATA / "adapt_json_before_generic_share.json"
    run = tmp_path / "adapt_dft"
    run.mkdir()
    shutil.copy(stored, run / "adapt.json")
    # golf adapt bench/results/adapt_train.smi --oracle dft --budget 240 --conformers 1 --name GOLF-10k-adapt-thio
    settings = Adaptation(budget=240, conformers=1, name="GOLF-10k-adapt-thio")
    molecules = Molecules(smiles="bench/results/adapt_train.smi")
    now = adapt_identity(molecules, settings, ADAPT_GOLF, OracleRun(oracle="dft"))
    doc = json.loads((run / "adapt.json").read_text())
    assert doc["golf"]["max_episode_steps"] is None and "max_unlabelled_episodes" not in doc["golf"]
    doc["model_file"] = now["model_file"]  # the shipped model of this checkout
    (run / "adapt.json").write_text(json.dumps(doc))
    # that run did not refit GOLF-10k's offsets at its own level of theory (golf then did not know that the
    # official checkpoints have none): its labels mix two energy scales, so it is not resumed
    assert doc["refit"] is False and now["refit"] is True
    with pytest.raises(GolfError, match="refit False -> True"):
        _check_identity(run, now, resume=True)
    doc["refit"] = True
    (run / "adapt.json").write_text(json.dumps(doc))
    _check_identity(run, now, resume=True)
    changed = adapt_identity(molecules, settings, dataclasses.replace(ADAPT_GOLF, max_episode_steps=50),
                             OracleRun(oracle="dft"))
    with pytest.raises(GolfError, match="golf"):
        _check_identity(run, changed, resume=True)


@pytest.mark.parametrize("offsets", ["zero", "fitted"])
def test_a_model_without_energy_offsets_is_refit_even_at_the_oracles_level(series, tmp_path, offsets):
    """The official checkpoints predict total energies minus per-element references the repository does
    not hold (their atomrefs are zero): at their own level of theory their energies still sit far from the
    oracle's, so "auto" refits the offsets, and the teacher labels of the generic set come from the refit
    model (the energy scale of the oracle's labels). A model with fitted offsets at the oracle's level
    is not refit."""
    import dataclasses

    from golf.batch import Batch
    from golf.models import load_model, save_model
    from golf.oracles import make_oracle
    from golf.presets import Molecules, OracleRun
    from golf.runs.adapt import ADAPT_GOLF, Adaptation, adapt

    model = load_model(MODEL[0])
    if offsets == "zero":
        with torch.no_grad():
            model.atomrefs.zero_()
    spec = make_oracle("mmff").spec
    path = tmp_path / "at-mmff.pt"
    save_model(model, path, provenance={"kind": "test-model", "oracle": spec.name, "oracle_settings": spec.settings})
    out = tmp_path / "ad"
    golf = dataclasses.replace(ADAPT_GOLF, n_parallel=2, batch_size=4, utd_ratio=1, max_episode_steps=4,
                               eval_every=1000, checkpoint_every=1000)
    adapt(Molecules(smiles=str(series)), out, Adaptation(model=str(path), budget=6, conformers=1, generic_molecules=4),
          golf, OracleRun(oracle="mmff", executor="serial"), progress=False)
    doc = json.loads((out / "adapt.json").read_text())
    assert doc["generic"] == "teacher" and doc["refit"] == (offsets == "zero")
    # forgetting without oracle calls: the start model's energy at the adapted model's minima of unseen molecules
    from golf.runs.adapt import DRIFT_MOLECULES

    summary = json.loads((out / "summary.json").read_text())
    assert summary["teacher_drift_n"] == DRIFT_MOLECULES == len(set(summary["teacher_drift_molecules"]))
    assert np.isfinite(summary["teacher_drift_median_kcal_mol"])
    assert not set(summary["teacher_drift_molecules"]) & {int(x.split()[1]) for x in (out / "generic.smi").read_text().splitlines()}
    assert (out / "init.pt").exists() == (offsets == "zero")
    labeller = load_model(out / "init.pt" if offsets == "zero" else path)
    rows = list(iter_rows(out / "generic.db"))
    confs = [r["conformation"] for r in rows]
    energy, _ = labeller.energy_and_forces(Batch.from_conformations(confs, dtype=labeller.dtype))
    np.testing.assert_allclose([r["energy"] for r in rows], energy.detach().double().numpy(), atol=1e-3)


def test_a_golf_run_warns_when_the_start_models_energy_offsets_are_not_the_labels(tmp_path):
    """GOLF-10k's energies (no per-element offsets) on MMFF labels: tens of keV apart, a warning; the same
    model with its offsets refit to those labels: no warning."""
    import warnings

    from golf.chem import generate_conformers
    from golf.dataset import LabelledData
    from golf.errors import GolfWarning
    from golf.models import load_model
    from golf.oracles import make_oracle
    from golf.runs.golf import ENERGY_SCALE_GAP_EV, warn_energy_scale
    from golf.trainer import refit_offsets

    mmff = make_oracle("mmff")
    confs = [c for i, smi in enumerate(["CC(=S)N", "CCO", "CSC"]) for c in generate_conformers(smi, 2, seed=1, mol_id=i)]
    results = [mmff.compute(c) for c in confs]
    data = LabelledData.from_conformations(confs, [r.energy for r in results], [r.forces for r in results])
    model = load_model("GOLF-10k")
    with pytest.warns(GolfWarning, match="energy offsets are not the labels'"):
        assert warn_energy_scale(model, data, "GOLF-10k") > ENERGY_SCALE_GAP_EV
    refit_offsets(model, data)
    with warnings.catch_warnings():
        warnings.simplefilter("error", GolfWarning)
        assert warn_energy_scale(model, data, "GOLF-10k refit") < ENERGY_SCALE_GAP_EV
