"""bench/bench_train.py end to end on a tiny MMFF-labelled database (seconds): both arms train, same function,
the JSON records the checkpoints; it refuses a 'before' revision whose other golf files differ."""
from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from conftest import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

BEFORE = "22b0516"


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_train", REPO / "bench" / "bench_train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _has_revision(rev: str) -> bool:
    done = subprocess.run(["git", "-C", str(REPO), "cat-file", "-e", f"{rev}:src/golf/models/painn.py"],
                          capture_output=True)
    return done.returncode == 0


@pytest.fixture(scope="module")
def tiny_db(tmp_path_factory):
    from golf.chem import generate_conformers
    from golf.db import append_labelled
    from golf.oracles import make_oracle

    db = tmp_path_factory.mktemp("bench_train") / "d0.db"
    mmff = make_oracle("mmff")
    for mol_id, smi in enumerate(["CCO", "CC(=O)C", "CCN", "OCCO", "CC(C)O", "C1CC1O", "CCCl", "c1ccccc1"]):
        for conf in generate_conformers(smi, 3, seed=1, displacement=0.05, mol_id=mol_id):
            append_labelled(db, conf, mmff.compute(conf), mmff.spec, key=f"{mol_id}:{conf.conf_id}")
    return db


def test_bench_train_runs_both_arms(tiny_db, tmp_path):
    if not _has_revision(BEFORE):
        pytest.skip(f"git history without {BEFORE}")
    out = tmp_path / "bench.json"
    bench = _load_bench()
    # --allow-other-changes: later commits may change other golf files; the arms still differ in PaiNN only
    assert bench.main(["--data", str(tiny_db), "--minutes", "0.04", "--checkpoint-s", "1", "--batch-size", "4",
                       "--allow-other-changes", "--output", str(out)]) == 0
    res = json.loads(out.read_text())
    assert "src/golf/models/painn.py" in res["files_differing_from_before"]
    assert res["same_function_check"]["max_abs_force_diff_ev_a"] < 1e-4
    assert res["threads"] == 1 and len(res["load_avg_start"]) == 3
    for arm in ("before", "after"):
        rows = res["checkpoints"][arm]
        assert rows[0]["checkpoint_s"] == 0 and rows[0]["steps"] == 0 and len(rows) >= 3
        assert [r["checkpoint_s"] for r in rows] == sorted(r["checkpoint_s"] for r in rows)
        assert rows[-1]["steps"] > 0 and rows[-1]["train_wall_s"] >= 0.04 * 60
        assert res["summary"][arm]["conformations_per_s"] > 0
    # the same start: equal validation error before any step
    assert res["checkpoints"]["before"][0]["val_forces_mae_mev_a"] == res["checkpoints"]["after"][0][
        "val_forces_mae_mev_a"]
    assert res["summary"]["paired_steps"] == min(res["summary"]["before"]["steps"], res["summary"]["after"]["steps"])


def test_bench_train_refuses_a_before_with_other_changes(tiny_db, tmp_path):
    older = "fc4d168"  # 22b0516's parent: golf/presets.py differs from the current tree too
    if not _has_revision(older):
        pytest.skip(f"git history without {older}")
    bench = _load_bench()
    assert bench.main(["--data", str(tiny_db), "--before", older, "--minutes", "0.01",
                       "--output", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()
