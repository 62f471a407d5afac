"""``golf train`` end to end on a tiny synthetic database."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from golf.cli import main
from test_trainer import synthetic_data, write_db

SMALL = ["--model", "painn", "--features", "16", "--interactions", "1", "--n-rbf", "8", "--cutoff", "4.0",
         "--batch-size", "16", "--lr", "2e-3", "--no-progress", "--val-fraction", "0.25", "--seed", "1"]


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return write_db(tmp_path_factory.mktemp("cli") / "d0.db", synthetic_data(n_mols=12, n_confs=3))


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_train_end_to_end_and_resume(db, tmp_path, capsys):
    out = tmp_path / "model.pt"
    assert main(["train", "--data", str(db), "--out", str(out), "--epochs", "2", *SMALL]) == 0
    captured = capsys.readouterr()
    assert "energy MAE" in captured.out and "kcal/mol" in captured.out and "meV/A" in captured.out
    run = tmp_path / "model.pt.d"
    for f in ("last.pt", "trainer_state.pt", "metrics.csv", "config.json", "summary.json"):
        assert (run / f).exists(), f
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["n_train"] + cfg["n_val"] == 36 and cfg["n_val_molecules"] == 3
    assert cfg["settings"]["features"] == 16

    import golf

    model = golf.load_model(out)
    assert model.elements == [1, 6, 7, 8]
    assert model.config["hparams"]["n_atom_basis"] == 16
    assert abs(float(model.atomrefs[8]) + 2041.2) < 3.0  # atomrefs fitted on the training data

    # a second run into the same directory needs --resume
    assert main(["train", "--data", str(db), "--out", str(out), "--epochs", "3", *SMALL]) == 2
    assert "--resume" in capsys.readouterr().err
    assert main(["train", "--data", str(db), "--out", str(out), "--epochs", "3", "--resume", *SMALL]) == 0
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] == 3 and summary["n_val"] == cfg["n_val"]


def test_preset_paper_settings():
    import argparse

    from golf.cli.train import add_arguments, resolve_settings

    p = argparse.ArgumentParser()
    add_arguments(p)
    s = resolve_settings(p.parse_args(["--data", "x.db", "--out", "m.pt", "--preset", "paper"]))
    assert (s.model, s.features, s.interactions, s.cutoff, s.n_rbf) == ("painn", 128, 3, 5.0, 50)
    assert (s.lr, s.batch_size, s.clip, s.w_energy, s.w_forces) == (1e-4, 64, 1.0, 0.01, 0.99)
    s = resolve_settings(p.parse_args(["--data", "x.db", "--out", "m.pt", "--preset", "paper", "--lr", "3e-4"]))
    assert s.lr == 3e-4 and s.features == 128


def _err_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert "Traceback" not in err[0]
    return err[0]


def test_bad_inputs_one_line(db, tmp_path, capsys):
    out = str(tmp_path / "m.pt")
    assert main(["train", "--data", str(tmp_path / "nope.db"), "--out", out, *SMALL]) == 2
    assert "no such file" in _err_line(capsys)
    empty = tmp_path / "empty.db"
    empty.write_bytes(b"")
    assert main(["train", "--data", str(empty), "--out", out, *SMALL]) == 2
    assert "empty" in _err_line(capsys)
    unlab = write_db(tmp_path / "unlab.db", synthetic_data(n_mols=2, n_confs=1), labelled=False)
    assert main(["train", "--data", str(unlab), "--out", out, *SMALL]) == 2
    assert "energy" in _err_line(capsys)
    assert main(["train", "--data", str(db), "--data", str(unlab), "--out", out, *SMALL]) == 2
    _err_line(capsys)
    assert main(["train", "--out", out, *SMALL]) == 2
    assert "--data" in _err_line(capsys)
    assert main(["train", "--data", str(db), "--out", out, "--epochs", "0", *SMALL]) == 2
    _err_line(capsys)
    assert not (tmp_path / "m.pt").exists()


def test_golf_flag_needs_baseline_and_data(db, tmp_path, capsys):
    """``--golf`` dispatches to the GOLF loop, which refuses to start without its inputs."""
    assert main(["train", "--golf", "--data", str(db), "--out", str(tmp_path / "run")]) == 2
    assert "--from" in _err_line(capsys)
    assert main(["train", "--golf", "--from", "base.pt", "--out", str(tmp_path / "run")]) == 2
    assert "--data" in _err_line(capsys)
    assert not (tmp_path / "run").exists()


def test_trained_model_predict(db, tmp_path):
    out = tmp_path / "model.pt"
    assert main(["train", "--data", str(db), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    xyz = tmp_path / "water.xyz"
    xyz.write_text("3\n\nO 0.0 0.0 0.0\nH 0.0 0.76 0.59\nH 0.0 -0.76 0.59\n")
    pred = tmp_path / "pred.extxyz"
    res = subprocess.run([sys.executable, "-m", "golf", "predict", str(xyz), "--model", str(out), "-o", str(pred),
                          "--device", "cpu"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    import ase.io

    import golf
    from golf.batch import Batch
    from golf.conformation import Conformation

    atoms = ase.io.read(pred)
    model = golf.load_model(out)
    conf = Conformation(atoms.numbers, atoms.positions)
    e, _ = model.energy_and_forces(Batch.from_conformations([conf]))
    assert atoms.get_potential_energy() == pytest.approx(float(e[0]), abs=1e-3)


def test_databases_of_two_levels_of_theory_are_refused(tmp_path, capsys):
    """One training set, one level of theory: the oracle recorded in the rows must agree; a db that
    records none is accepted with a one-line warning."""
    a = write_db(tmp_path / "mmff.db", synthetic_data(n_mols=4, n_confs=2, seed=1), oracle="mmff")
    b = write_db(tmp_path / "xtb.db", synthetic_data(n_mols=4, n_confs=2, seed=2), oracle="xtb")
    out = tmp_path / "m.pt"
    assert main(["train", "--data", str(a), "--data", str(b), "--out", str(out), "--epochs", "1", *SMALL]) == 2
    line = _err_line(capsys)
    assert "mmff.db" in line and "xtb.db" in line and "level of theory" in line
    assert not out.exists()
    plain = write_db(tmp_path / "plain.db", synthetic_data(n_mols=4, n_confs=2, seed=3), oracle=None)
    assert main(["train", "--data", str(a), "--data", str(plain), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    warned = [x for x in capsys.readouterr().err.splitlines() if "warning" in x]
    assert len(warned) == 1 and "plain.db" in warned[0] and "level of theory" in warned[0]


def test_a_db_mixing_two_levels_of_theory_is_refused(tmp_path, capsys):
    import ase.db

    db = write_db(tmp_path / "mixed.db", synthetic_data(n_mols=4, n_confs=2, seed=1), oracle="mmff")
    with ase.db.connect(str(db)) as con:
        con.update(3, oracle="xtb")
    assert main(["train", "--data", str(db), "--out", str(tmp_path / "m.pt"), *SMALL]) == 2
    line = _err_line(capsys)
    assert "row 1" in line and "row 3" in line and "xtb" in line


def _corrupted(tmp_path, rows) -> Path:
    """A db whose conformations ``rows`` (data order) carry a force of 3.6e191 eV/A: finite in float64,
    infinite in the float32 the model trains in."""
    data = synthetic_data(n_mols=8, n_confs=3, seed=4)
    for i in rows:
        data.forces[data.offsets[i], 0] = 3.6e191
    return write_db(tmp_path / "bad.db", data)


def test_corrupted_label_rows_are_reported_and_left_out(tmp_path, capsys):
    db = _corrupted(tmp_path, [4])
    out = tmp_path / "m.pt"
    assert main(["train", "--data", str(db), "--out", str(out), "--epochs", "1", *SMALL]) == 0
    err = capsys.readouterr().err.splitlines()
    left_out = [x for x in err if "left out" in x]
    assert len(left_out) == 1 and "row 5" in left_out[0] and "eV/A" in left_out[0], err
    cfg = json.loads((tmp_path / "m.pt.d" / "config.json").read_text())
    assert cfg["n_train"] + cfg["n_val"] == 23
    summary = json.loads((tmp_path / "m.pt.d" / "summary.json").read_text())
    assert all(np.isfinite(summary[k]) for k in ("val_energy_mae_mev", "val_forces_mae_mev_a"))


def test_training_never_exits_0_with_non_finite_validation_errors(tmp_path, capsys, monkeypatch):
    """Past the label check (disabled here), infinite labels give infinite validation errors: the run
    must fail with one line, not report inf and exit 0."""
    monkeypatch.setattr("golf.db.label_problem", lambda energy, forces: None)
    db = _corrupted(tmp_path, range(0, 24, 3))  # one conformation of every molecule
    assert main(["train", "--data", str(db), "--out", str(tmp_path / "m.pt"), "--epochs", "1", *SMALL]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert "not finite" in err[-1] and "error" in err[-1] and not any("Traceback" in x for x in err)
