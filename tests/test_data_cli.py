"""`golf data build / reference / trajectories` end to end on tiny molecules, incl. kill + resume."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from golf import db as D

DATA = Path(__file__).parent / "data"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def golf(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI in a subprocess (as a user would)."""
    p = subprocess.run([sys.executable, "-m", "golf", *args], capture_output=True, text=True, env=ENV, timeout=300)
    if check:
        assert p.returncode == 0, p.stderr
    return p


def golf_inproc(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the CLI in this process (fast; used for mmff + serial executor)."""
    import contextlib
    import io

    from golf.cli import main

    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        rc = main(list(args))
    p = subprocess.CompletedProcess(args, rc, out.getvalue(), err.getvalue())
    if check:
        assert rc == 0, p.stderr
    return p


def _rows(path: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.05)
        try:
            return int(con.execute("SELECT COUNT(*) FROM systems").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _keys(path: Path) -> list[str]:
    return [c.info["key"] for c, _, _ in D.read_labelled(path)]


def test_build_mmff_smiles_and_resume(tmp_path):
    out = tmp_path / "d.db"
    args = ["data", "build", "--smiles", str(DATA / "tiny.smi"), "--conformers", "2", "--oracle", "mmff",
            "--executor", "serial", "--out", str(out)]
    p = golf(*args)
    assert "8 labelled" in p.stderr and "calls/s" in p.stderr
    rows = D.read_labelled(out)
    assert len(rows) == 8
    assert sorted((c.mol_id, c.conf_id) for c, _, _ in rows) == [(m, k) for m in range(4) for k in range(2)]
    for c, e, f in rows:
        assert np.isfinite(e) and f.shape == (c.n_atoms, 3) and c.molblock and c.smiles
        assert c.info["oracle"] == "mmff"
    assert D.db_oracle(out)[0] == "mmff" and "variant" in D.db_oracle(out)[1]
    # re-running is a no-op
    p = golf_inproc(*args)
    assert "0 labelled, 8 skipped" in p.stderr
    assert len(D.read_labelled(out)) == 8
    # same db, different oracle settings: refused
    p = golf_inproc(*args[:-2], "--oracle-option", "variant=\"MMFF94s\"", "--out", str(out), check=False)
    assert p.returncode == 2 and "not mixing" in p.stderr


def test_build_pool_prefix_resume(tmp_path):
    """A partial pool build (fewer molecules) is a prefix of the larger one: the larger run resumes."""
    out = tmp_path / "p.db"
    base = ["data", "build", "--min-heavy", "3", "--max-heavy", "7", "--conformers", "2", "--oracle", "mmff",
            "--executor", "serial", "--quiet", "--out", str(out)]
    golf_inproc(*base, "--molecules", "2")
    first = set(_keys(out))
    assert len(first) == 4
    p = golf_inproc(*base, "--molecules", "4")
    assert "4 labelled, 4 skipped" in p.stderr
    keys = _keys(out)
    assert len(keys) == len(set(keys)) == 8 and first <= set(keys)
    # molecules come from the train split only
    from golf.pool import select_pool_molecules

    test_ids = {m for m, _ in select_pool_molecules(None, split="test", min_heavy=3, max_heavy=7)}
    assert not {c.mol_id for c, _, _ in D.read_labelled(out)} & test_ids


def test_build_xtb_killed_and_resumed(tmp_path):
    """xTB through the spawned local pool; SIGKILL midway; re-run completes with no duplicates."""
    pytest.importorskip("tblite")
    out = tmp_path / "x.db"
    args = [sys.executable, "-m", "golf", "data", "build", "--min-heavy", "9", "--max-heavy", "12",
            "--molecules", "3", "--conformers", "3", "--oracle", "xtb", "--executor", "local",
            "--workers", "1", "--quiet", "--out", str(out)]
    expected = 9
    killed_at = None
    for attempt in range(3):
        for f in tmp_path.iterdir():
            f.unlink()
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=ENV,
                                start_new_session=True)
        try:
            t0 = time.time()
            while proc.poll() is None and time.time() - t0 < 120:
                n = _rows(out) if out.exists() else 0
                if n >= 1:
                    os.killpg(proc.pid, signal.SIGKILL)  # the CLI and its pool workers
                    break
                time.sleep(0.005)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            proc.stderr.close()
        n = _rows(out)
        if 1 <= n < expected:
            killed_at = n
            break
    assert killed_at is not None, "could not kill the build midway"
    partial = set(_keys(out))
    p = golf(*args[3:])
    assert f"{expected - killed_at} labelled, {killed_at} skipped" in p.stderr, p.stderr
    keys = _keys(out)
    assert len(keys) == expected and len(set(keys)) == expected and partial <= set(keys)
    rows = D.read_labelled(out)
    assert sorted({c.mol_id for c, _, _ in rows}).__len__() == 3
    assert all(c.info["oracle"] == "xtb" for c, _, _ in rows)
    # a fresh complete run produces the same records (deterministic conformers and keys)
    out2 = tmp_path / "y.db"
    golf(*args[3:-1], str(out2))
    assert set(_keys(out2)) == set(keys)
    e1 = {c.info["key"]: e for c, e, _ in rows}
    e2 = {c.info["key"]: e for c, e, _ in D.read_labelled(out2)}
    assert all(abs(e1[k] - e2[k]) < 1e-6 for k in e1)


def test_reference_and_trajectories_mmff(tmp_path):
    d0 = tmp_path / "test.db"
    golf_inproc("data", "build", "--smiles", str(DATA / "tiny.smi"), "--conformers", "1", "--oracle", "mmff",
         "--executor", "serial", "--quiet", "--out", str(d0))
    ref = tmp_path / "ref.db"
    rargs = ["data", "reference", "--input", str(d0), "--oracle", "mmff", "--executor", "serial", "--quiet",
             "--fmax", "0.01", "--max-steps", "300", "--out", str(ref)]
    p = golf_inproc(*rargs)
    assert "4 relaxed" in p.stderr
    recs = D.read_reference(ref)
    assert len(recs) == 4
    start_e = {c.info["key"]: e for c, e, _ in D.read_labelled(d0)}
    for start, e_opt, x_opt in recs:
        assert x_opt.shape == start.positions.shape
        assert start.info["start_energy"] == pytest.approx(start_e[start.info["key"]], abs=1e-6)
        assert e_opt <= start.info["start_energy"] + 1e-8
        assert start.info["opt_converged"]
    p = golf_inproc(*rargs)
    assert "0 relaxed" in p.stderr and "4 skipped" in p.stderr
    assert len(D.read_reference(ref)) == 4

    traj = tmp_path / "traj.db"
    targs = ["data", "trajectories", "--input", str(d0), "--oracle", "mmff", "--executor", "serial", "--quiet",
             "--max-steps", "100", "--out", str(traj)]
    golf_inproc(*targs, "--budget", "12")
    rows = list(D.iter_rows(traj))
    assert len(rows) == 12
    # trajectories in input order, steps in order, each with energy + forces
    firsts = [r for r in rows if r["kvp"]["step"] == 0]
    assert firsts[0]["kvp"]["traj_key"] == min(start_e, key=lambda k: list(start_e).index(k))
    for r in rows:
        assert r["energy"] is not None and r["forces"].shape == (r["conformation"].n_atoms, 3)
    steps0 = [r["kvp"]["step"] for r in rows if r["kvp"]["traj_key"] == firsts[0]["kvp"]["traj_key"]]
    assert steps0 == list(range(len(steps0)))
    assert rows[0]["energy"] == pytest.approx(start_e[firsts[0]["kvp"]["traj_key"]], abs=1e-6)
    # resume with a larger budget: exactly the extra rows, no duplicate key
    golf_inproc(*targs, "--budget", "30")
    keys = [r["kvp"]["key"] for r in D.iter_rows(traj)]
    assert len(keys) == 30 == len(set(keys))
    p = golf_inproc(*targs, "--budget", "30")
    assert len(list(D.iter_rows(traj))) == 30


def test_build_failures_logged_not_stored(tmp_path):
    smi = tmp_path / "m.smi"
    smi.write_text("CCO 1\nFS(F)(F)(F)(F)F 2\n")  # MMFF cannot type SF6
    out = tmp_path / "f.db"
    args = ["data", "build", "--smiles", str(smi), "--conformers", "2", "--oracle", "mmff", "--executor", "serial",
            "--quiet", "--out", str(out)]
    p = golf_inproc(*args)
    assert "2 labelled" in p.stderr and "2 failed" in p.stderr
    assert {c.mol_id for c, _, _ in D.read_labelled(out)} == {1}
    log = [json.loads(x) for x in Path(str(out) + ".failures.jsonl").read_text().splitlines()]
    assert len(log) == 2 and all(r["mol_id"] == 2 and "MMFF" in r["reason"] for r in log)
    p = golf_inproc(*args)  # failures are retried on re-run, labelled ones skipped
    assert "0 labelled, 2 skipped" in p.stderr and "2 failed" in p.stderr
    assert len(D.read_labelled(out)) == 2


def test_a_writer_killed_inside_a_write_does_not_block_the_next(tmp_path):
    """ASE's ``DB.lock`` left by a writer killed mid-write must not make the resumed run wait forever."""
    import threading

    from golf.chem import generate_conformers
    from golf.oracles import make_oracle

    out = tmp_path / "x.db"
    mmff = make_oracle("mmff")
    confs = generate_conformers("CCO", 2, seed=0, mol_id=0)
    D.append_labelled(out, confs[0], mmff.compute(confs[0]), mmff.spec, key="0:0")
    (tmp_path / "x.db.lock").write_text("")  # what SIGKILL inside ASE's locked write leaves behind
    done = threading.Event()
    t = threading.Thread(target=lambda: (D.append_labelled(out, confs[1], mmff.compute(confs[1]), mmff.spec,
                                                            key="0:1"), done.set()), daemon=True)
    t.start()
    assert done.wait(30), "append_labelled waited on a stale ASE lock file"
    assert len(_keys(out)) == 2
