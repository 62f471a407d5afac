"""bench/paper_table.py end to end with MMFF standing in for DFT (seconds): every stage, resume
without recomputation, and the table's metrics equal golf.evaluation.metrics on the stored energies."""
from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys

import numpy as np
import pytest

from conftest import CHECKPOINTS, REPO


def _load_bench():
    spec = importlib.util.spec_from_file_location("paper_table", REPO / "bench" / "paper_table.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["paper_table"] = mod
    spec.loader.exec_module(mod)
    return mod


def _mmff_bench(tmp_path, *score_steps: int):
    """(bench module, db path, common argv) for a 2-molecule run with MMFF standing in for DFT;
    skips without the official checkpoints (../shared)."""
    if not (CHECKPOINTS / "GOLF-10k.pt").exists():
        pytest.skip("official checkpoints not available")
    bench = _load_bench()
    bench.CHECKPOINT_DIR = CHECKPOINTS
    db = tmp_path / "pt.db"
    steps = [str(t) for t in score_steps]
    return bench, db, ["--db", str(db), "--n", "2", "--oracle", "mmff", "--ref-steps", "60", "--score-steps", *steps]


def test_geom_hash_is_exact_and_stable():
    bench = _load_bench()
    z = np.array([6, 1])
    x = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.09]])
    assert bench.geom_hash(z, x) == bench.geom_hash(z, x.copy())
    assert bench.geom_hash(z, x) == bench.geom_hash(z, np.asarray(json.loads(bench.to_json(x))))
    assert bench.geom_hash(z, x) != bench.geom_hash(z, x + 1e-6)
    assert bench.geom_hash(z, x) != bench.geom_hash(z[::-1], x)


@pytest.mark.slow
def test_pipeline_with_mmff_oracle_resumes_without_recomputing(tmp_path):
    bench, db, args = _mmff_bench(tmp_path, 100, 5)
    bench.main(["molecules", "references", "evaluate", "score", *args])
    con = sqlite3.connect(str(db))
    n_calls = con.execute("SELECT COUNT(*) FROM dft_calls").fetchone()[0]
    refs = con.execute("SELECT mol_id, ok, n_calls FROM refs").fetchall()
    assert len(refs) == 2 and all(ok for _, ok, _ in refs)
    assert con.execute("SELECT COUNT(DISTINCT row) FROM trajectories").fetchone()[0] == 7
    doc = json.loads(db.with_suffix(".json").read_text())
    assert doc["n_molecules_with_reference"] == 2
    # run again: nothing recomputed
    bench.main(["molecules", "references", "evaluate", "score", *args])
    assert con.execute("SELECT COUNT(*) FROM dft_calls").fetchone()[0] == n_calls
    # kill mid-relaxation: drop the reference row and the last calls; the rerun replays the stored
    # calls and recomputes only the dropped ones
    mol_id = refs[0][0]
    con.execute("DELETE FROM refs WHERE mol_id = ?", (mol_id,))
    last = con.execute("SELECT MAX(id) FROM dft_calls WHERE mol_id = ? AND purpose = 'reference'", (mol_id,)).fetchone()[0]
    con.execute("DELETE FROM dft_calls WHERE id = ?", (last,))
    con.commit()
    bench.main(["references", *args])
    assert con.execute("SELECT COUNT(*) FROM dft_calls").fetchone()[0] == n_calls
    assert con.execute("SELECT n_calls FROM refs WHERE mol_id = ?", (mol_id,)).fetchone()[0] == refs[0][2]
    # a stored failure counts as done for score unless --retry-failed; the table is unchanged by a rerun
    bench.main(["score", *args])
    assert con.execute("SELECT COUNT(*) FROM dft_calls").fetchone()[0] == n_calls
    # the table equals golf.evaluation.metrics on the stored energies (T = 100, MMFF row)
    from golf.evaluation import metrics

    doc = json.loads(db.with_suffix(".json").read_text())
    row = doc["rows"]["GOLF-10k"]
    et = np.array([[np.nan if v is None else v] for v in row["E_T"]["100"]])
    agg = metrics.aggregate(np.array(doc["e0"]), et, np.array(doc["eopt"]), [100])[0]
    got = next(a for a in row["aggregate"] if a["T"] == 100)
    assert got["pct_mean"] == pytest.approx(agg["pct_mean"]) and got["n"] == 2
    # --redo-evaluate replaces trajectories (recording the commit/optimizer)
    bench.main(["evaluate", "--redo-evaluate", *args])
    opt = {r[0] for r in con.execute("SELECT DISTINCT optimizer FROM trajectories WHERE row = 'GOLF-10k'")}
    assert opt == {"lbfgs-golf"}


def test_shard_auto_claims_skip_live_holders_and_take_over_dead_ones(tmp_path):
    """``--shard auto``: a molecule held by a live process is skipped, a dead holder's is taken over,
    finished molecules are never handed out, and the claims are gone when the process is done."""
    import argparse
    import os
    import platform
    import subprocess

    bench = _load_bench()
    db = tmp_path / "pt.db"
    bench.main(["molecules", "--db", str(db), "--n", "3", "--oracle", "mmff"])
    con = bench.connect(db)
    confs = bench.load_molecules(con, 3)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = platform.node()
    con.execute("INSERT INTO claims VALUES (?,?,?,?)", (confs[0].mol_id, os.getppid(), host, "t"))  # alive
    con.execute("INSERT INTO claims VALUES (?,?,?,?)", (confs[1].mol_id, dead.pid, host, "t"))  # dead
    con.execute("INSERT INTO refs (mol_id, ok) VALUES (?, 1)", (confs[2].mol_id,))  # finished
    con.commit()
    args = argparse.Namespace(shard="auto", retry_failed=False)
    work = bench._reference_work(con, confs, args)
    k, conf = next(work)
    assert (k, conf.mol_id) == (1, confs[1].mol_id)
    held = con.execute("SELECT pid FROM claims WHERE mol_id = ?", (conf.mol_id,)).fetchone()[0]
    assert held == os.getpid()
    con.execute("INSERT INTO refs (mol_id, ok) VALUES (?, 1)", (conf.mol_id,))
    con.commit()
    assert next(work, None) is None  # molecule 0 is held by a live process, 2 is done
    bench._release_claims(con)
    assert con.execute("SELECT COUNT(*) FROM claims WHERE pid = ?", (os.getpid(),)).fetchone()[0] == 0
    # a static shard ignores claims
    static = argparse.Namespace(shard=(0, 1), retry_failed=False)
    assert [c.mol_id for _, c in bench._reference_work(con, confs, static)] == [confs[0].mol_id]


@pytest.mark.slow
def test_score_each_leaves_whole_molecules(tmp_path):
    bench, db, args = _mmff_bench(tmp_path, 100)
    bench.main(["molecules", "evaluate", *args])
    bench.main(["references", "--shard", "auto", "--score-each", *args])
    con = sqlite3.connect(str(db))
    scored = dict(con.execute("SELECT mol_id, COUNT(*) FROM dft_calls WHERE purpose = 'score' GROUP BY mol_id"))
    assert sorted(scored) == sorted(r[0] for r in con.execute("SELECT mol_id FROM refs"))
    n_calls = con.execute("SELECT COUNT(*) FROM dft_calls").fetchone()[0]
    bench.main(["score", *args])
    assert con.execute("SELECT COUNT(*) FROM dft_calls").fetchone()[0] == n_calls  # nothing left to score
    doc = json.loads(db.with_suffix(".json").read_text())
    assert all(next(a for a in r["aggregate"] if a["T"] == 100)["n"] == 2 for r in doc["rows"].values())
    assert set(doc["e_res_100"]) == {str(m) for m in scored}


def _load_adapt_demo(tmp_path):
    """bench/adapt_demo.py with the official checkpoints and its training series under tmp_path."""
    spec = importlib.util.spec_from_file_location("adapt_demo", REPO / "bench" / "adapt_demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    demo.pt.CHECKPOINT_DIR = CHECKPOINTS
    demo.TRAIN_SMI = tmp_path / "train.smi"
    return demo


@pytest.mark.slow
def test_adapt_demo_split_scores_and_reports_with_mmff(tmp_path):
    """bench/adapt_demo.py with MMFF standing in for DFT: the class split writes disjoint held-out
    and training molecules, paper_table's stages score them, and report writes the issue's fields."""
    if not (CHECKPOINTS / "GOLF-10k.pt").exists():
        pytest.skip("official checkpoints not available")
    _load_bench().CHECKPOINT_DIR = CHECKPOINTS
    demo = _load_adapt_demo(tmp_path)
    db = tmp_path / "ad.db"
    demo.main(["split", "--db", str(db), "--classes", "thiocarbonyl", "--per-class", "2", "--oracle", "mmff"])
    con = sqlite3.connect(str(db))
    held = {r[0] for r in con.execute("SELECT mol_id FROM molecules")}
    train = {int(line.split()[1]) for line in demo.TRAIN_SMI.read_text().splitlines()}
    assert len(held) == 2 and train and not held & train
    demo.main(["evaluate", "references", "report", "--db", str(db), "--n", "2", "--oracle", "mmff",
               "--ref-steps", "60", "--score-each", "--score-steps", "100"])
    doc = json.loads(db.with_suffix(".report.json").read_text())
    assert doc["n_heldout"] == 2 and [r["name"] for r in doc["rows"]] == ["GOLF-10k", "mmff"]
    assert all(r["e_res_median"] is not None for r in doc["rows"]) and "GOLF-10k - mmff" in doc["pairs"]


def test_adapt_demo_forgetting_reports_the_paired_general_molecules(tmp_path):
    """The forgetting stage relaxes the general molecules with the adapted model, scores them and report copies
    the two-row table with its paired difference; paper_table's own table never lands on adapt's report path."""
    bench, pdb, args = _mmff_bench(tmp_path, 100)
    bench.main(["molecules", "references", "evaluate", "score", *args, "--rows", "GOLF-10k"])
    demo = _load_adapt_demo(tmp_path)
    db = tmp_path / "ad.db"
    demo.main(["split", "--db", str(db), "--classes", "thiocarbonyl", "--per-class", "1", "--oracle", "mmff"])
    common = ["--db", str(db), "--n", "1", "--oracle", "mmff", "--ref-steps", "60", "--score-steps", "100"]
    forget = ["--forgetting-db", str(pdb), "--forgetting-n", "2", "--adapt-model", str(CHECKPOINTS / "GOLF-10k.pt"),
              "--forgetting-json", str(tmp_path / "forgetting.json")]
    demo.main(["evaluate", "references", "forgetting", "report", *common, *forget])
    con = sqlite3.connect(str(pdb))
    assert con.execute("SELECT COUNT(DISTINCT mol_id) FROM trajectories WHERE row = 'adapt'").fetchone()[0] == 2
    doc = json.loads(db.with_suffix(".report.json").read_text())
    f = doc["forgetting"]
    assert f["n_molecules_with_reference"] == 2 and set(f["rows"]) == {"GOLF-10k", "adapt"}
    pair = f["pairs"]["adapt - GOLF-10k"]
    assert pair["n"] == 2  # both scored; the stand-in 'adapted' model is GOLF-10k itself: difference zero
    assert pair["e_res_median"]["value"] == pytest.approx(0.0, abs=1e-6)
    assert doc["goals"]["forgetting"]["met"] is True and doc["goals"]["e_res_median"]["met"] is None  # n_heldout 1
    (bonds,) = doc["sulfur_bonds"].values()  # the one held-out thiocarbonyl: its C=S against the reference
    assert bonds["GOLF-10k"]["intact"] is True and abs(bonds["GOLF-10k"]["s_bond_dev_A"]) < 0.5
    # bench/trust.py reads the adapted row's E_res from any db, whatever rows paper_table last tabled
    spec = importlib.util.spec_from_file_location("trust_bench", REPO / "bench" / "trust.py")
    trust = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trust)
    assert trust.pt is demo.pt
    demo.pt.ROWS = ("GOLF-10k",)
    _, e_res, _, _ = trust.load_stored(pdb, ["GOLF-10k", "adapt"])
    assert len(e_res) == 2 and all(isinstance(v["adapt"], float) for v in e_res.values())
    demo.main(["table", *common])  # paper_table's table goes beside the db, not over the report
    assert json.loads(db.with_suffix(".report.json").read_text())["format"] == "golf-adapt-demo/1"
    assert json.loads(db.with_name("ad_table.json").read_text())["format"] == "golf-paper-table/1"


def test_adapt_demo_goals_pending_met_and_missed(tmp_path):
    """report's goals: pending below 10 held-out molecules or without the forgetting table; then judged
    from the adapted row and the paired intervals (held-out: excludes zero below; general: lower end <= 0)."""
    demo = _load_adapt_demo(tmp_path)

    def iv(value, lo, hi):
        return dict(value=value, lo=lo, hi=hi, excludes_zero=lo > 0 or hi < 0)

    rows = [dict(name="GOLF-10k", e_res_median=20.0, pct_success=0.0),
            dict(name="adapt", e_res_median=0.4, pct_success=75.0), dict(name="mmff", e_res_median=3.0, pct_success=0.0)]
    pairs = {"adapt - GOLF-10k": dict(n=12, e_res_median=iv(-19.0, -30.0, -5.0))}
    forgetting = dict(n_molecules_with_reference=15, pairs={"adapt - GOLF-10k": dict(n=15, e_res_median=iv(0.1, -0.2, 0.9))})
    report = dict(n_heldout=12, rows=rows, pairs=pairs, forgetting=forgetting)
    goals = demo.report_goals(report)
    assert {k: g["met"] for k, g in goals.items()} == {
        "n_heldout": True, "e_res_median": True, "pct_success": True, "better_than_GOLF-10k": True, "forgetting": True}
    pending = demo.report_goals(dict(report, n_heldout=5, forgetting=None))
    assert pending["n_heldout"]["met"] is False
    assert [pending[k]["met"] for k in ("e_res_median", "pct_success", "better_than_GOLF-10k", "forgetting")] == [None] * 4
    partial = dict(forgetting, pairs={"adapt - GOLF-10k": dict(n=9, e_res_median=iv(0.1, -0.2, 0.9))})
    assert demo.report_goals(dict(report, forgetting=partial))["forgetting"]["met"] is None
    worse = dict(report, rows=[rows[0], dict(rows[1], e_res_median=0.6, pct_success=60.0), rows[2]],
                 pairs={"adapt - GOLF-10k": dict(n=12, e_res_median=iv(-1.0, -3.0, 0.5))},
                 forgetting=dict(forgetting, pairs={"adapt - GOLF-10k": dict(n=15, e_res_median=iv(1.0, 0.3, 2.0))}))
    missed = demo.report_goals(worse)
    assert [missed[k]["met"] for k in ("e_res_median", "pct_success", "better_than_GOLF-10k", "forgetting")] == [False] * 4
    assert demo.report_goals(dict(report, rows=[rows[0], rows[2]]))["e_res_median"]["met"] is None  # no adapted row

