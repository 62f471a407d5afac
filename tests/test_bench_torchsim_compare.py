"""bench/torchsim_compare.py on two conformations (benchmark-only dependency torch-sim-atomistic)."""
from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from conftest import REPO


def _load_bench():
    spec = importlib.util.spec_from_file_location("torchsim_compare", REPO / "bench" / "torchsim_compare.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["torchsim_compare"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_bonds_intact_detects_a_torn_molecule():
    bench = _load_bench()
    z = np.array([8, 1, 1])
    x = np.array([[0.0, 0.0, 0.0], [0.96, 0.0, 0.0], [-0.24, 0.93, 0.0]])
    assert bench.bonds_intact(x, x + 0.01, z)
    far = x.copy()
    far[1] = [5.0, 0.0, 0.0]
    assert not bench.bonds_intact(x, far, z)


def test_unknown_optimizer_is_one_line_exit_2(capsys):
    bench = _load_bench()
    assert bench.main(["--optimizers", "nope", "--n", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nope" in err[0]


def test_two_conformations(tmp_path):
    pytest.importorskip("torch_sim")
    bench = _load_bench()
    out = tmp_path / "ts.json"
    assert bench.main(["--n", "2", "--max-steps", "60", "--optimizers", "torchsim-fire-ase", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["complete"] and doc["n_confs"] == 2 and doc["best_torchsim"] == "torchsim-fire-ase"
    assert set(doc["rows"]) == {"golf", "torchsim-fire-ase"}
    assert doc["speedup"] == pytest.approx(doc["rows"]["torchsim-fire-ase"]["wall_s"] / doc["rows"]["golf"]["wall_s"])
    for row in doc["rows"].values():
        assert len(row["energies_eV"]) == 2 and row["force_calls_per_conf"] > 0
