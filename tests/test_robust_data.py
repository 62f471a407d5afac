"""Data safety (issue 16): no input, interruption or second process can lose, mix or fake data.

Output equal to input, output locks, resume that checks what it resumes, runs that produced nothing,
damaged checkpoints and databases, failed starts. The CLI runs in this process (``golf.cli.main``)
with the MMFF oracle on the serial executor, except where a second process is the point.
"""
from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli

from golf import db as D

DATA = Path(__file__).parent / "data"
TESTS = str(Path(__file__).parent)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


golf = run_cli


def build(out: Path, smiles: Path = DATA / "tiny.smi", *extra: str) -> tuple[int, str]:
    return golf("data", "build", "--smiles", smiles, "--oracle", "mmff", "--executor", "serial", "--quiet",
                "--out", out, *extra)


@pytest.fixture(scope="module")
def d0_and_baseline(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny MMFF-labelled D0 and an untrained tiny PaiNN (atomrefs fitted): GOLF's inputs."""
    from golf.dataset import LabelledData
    from golf.models import build_model, save_model
    from golf.trainer import prepare_model

    root = tmp_path_factory.mktemp("robust")
    d0 = root / "d0.db"
    rc, err = build(d0, DATA / "tiny.smi", "--conformers", "2", "--displacement", "0.05")
    assert rc == 0, err
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)  # a fixed model: some random ones break every structure they relax
        model = build_model("painn", n_atom_basis=8, n_interactions=1, n_rbf=4, cutoff=4.0)
    prepare_model(model, LabelledData.from_db(d0))
    baseline = root / "baseline.pt"
    save_model(model, baseline)
    return d0, baseline


def golf_run(d0: Path, baseline: Path, out: Path, *extra: str, budget: int = 3) -> tuple[int, str]:
    return golf("train", "--golf", "--from", baseline, "--data", d0, "--out", out, "--budget", budget,
                "--oracle", "mmff", "--executor", "serial", "--n-parallel", "2", "--utd-ratio", "1",
                "--max-episode-steps", "3", "--batch-size", "4", "--checkpoint-every", "1", "--no-progress",
                # an untrained model may break structures: label them anyway (the test is about the files)
                "--max-surrogate-energy", "1e9", "--max-force-norm", "1e9", *extra)


# ---------------------------------------------------------------------------------------------
# 1. an output is never one of the inputs


@pytest.mark.parametrize("command", ["train", "predict", "optimize", "data-build", "conformers", "evaluate",
                                     "symlink"])
def test_output_that_is_an_input_is_refused(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "tiny.sdf", "in.sdf")
    Path("in.db").write_bytes(b"not looked at")
    os.symlink("in.sdf", "link.sdf")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    argv = {
        "train": ["train", "--data", "in.db", "--out", "./in.db"],
        "predict": ["predict", "in.db", "--model", "m.pt", "-o", "in.db"],
        "optimize": ["optimize", "in.sdf", "--oracle", "mmff", "-o", str(tmp_path / "in.sdf")],
        "data-build": ["data", "build", "--input", "in.db", "--oracle", "mmff", "--out", "in.db"],
        "conformers": ["conformers", "in.sdf", "-o", "in.sdf"],
        "evaluate": ["evaluate", "--model", "m.pt", "--reference", "in.db", "--out", "in.db"],
        "symlink": ["optimize", "in.sdf", "--oracle", "mmff", "-o", "link.sdf"],
    }[command]
    one_line_error(*golf(*argv), "both an input", "choose another output")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing written, input intact


# ---------------------------------------------------------------------------------------------
# 2. one process per output


def test_second_process_on_the_same_output_is_refused(tmp_path):
    from golf.runs.guard import OutputLock

    out = tmp_path / "d.db"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from golf.runs.guard import OutputLock; OutputLock(sys.argv[1]).acquire(); "
        "print('locked', flush=True); time.sleep(60)"), str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        one_line_error(*build(out), "being written by another golf process", f"pid {holder.pid}")
        assert not out.exists()
    finally:
        holder.kill()
        holder.wait()
    # the holder died by SIGKILL and left its lock file: the kernel dropped the lock, so it is no obstacle
    assert (tmp_path / "d.db.golf-lock").exists()
    rc, err = build(out, DATA / "tiny.smi", "--conformers", "1")
    assert rc == 0, err
    assert not (tmp_path / "d.db.golf-lock").exists()
    # a run directory is locked too
    lock = OutputLock(tmp_path / "run")
    lock.acquire()
    try:
        one_line_error(*golf("train", "--golf", "--from", "b.pt", "--data", out, "--out", tmp_path / "run"),
                       "another golf process", f"pid {os.getpid()}")
    finally:
        lock.release()
    assert not (tmp_path / "run").exists()


def test_two_builds_at_once_never_duplicate(tmp_path):
    """The issue's case: two `golf data build` on one output started together. One stops at the lock
    (or, if the machine serialised them, the second finds every record there); never a record twice."""
    out = tmp_path / "d.db"
    argv = [sys.executable, "-m", "golf", "data", "build", "--smiles", str(DATA / "tiny.smi"), "--oracle", "mmff",
            "--executor", "serial", "--quiet", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = [subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    refused = [err for rc, err in results if rc != 0]
    assert len(refused) <= 1 and all("another golf process" in err for err in refused), results
    if not refused:
        assert any("12 skipped" in err for _, err in results), results
    keys = [r["kvp"]["identity"] for r in D.iter_rows(out)]
    assert len(keys) == 12 == len(set(keys))


# ---------------------------------------------------------------------------------------------
# 3. resume checks what it resumes


def test_data_build_resume_is_keyed_by_molecule_not_line(tmp_path):
    first, second = tmp_path / "a.smi", tmp_path / "b.smi"
    first.write_text("CCO\nCCN\n")
    second.write_text("CCCC\nCCO\nCCN\n")  # one line added at the top
    out = tmp_path / "d.db"
    assert build(out, first, "--conformers", "2")[0] == 0
    before = {r["kvp"]["identity"]: (r["kvp"]["mol_id"], r["energy"]) for r in D.iter_rows(out)}
    rc, err = build(out, second, "--conformers", "2")
    assert rc == 0, err
    assert "4 skipped" in err and "2 labelled" in err
    rows = list(D.iter_rows(out))
    assert len(rows) == 6
    after = {r["kvp"]["identity"]: (r["kvp"]["mol_id"], r["energy"]) for r in rows}
    assert {k: after[k] for k in before} == before  # nothing relabelled, mol_ids kept
    mol_of = {}
    for r in rows:  # one mol_id per molecule, never shared by two molecules
        assert mol_of.setdefault(r["kvp"]["mol_id"], r["kvp"]["smiles"]) == r["kvp"]["smiles"]
    assert len(mol_of) == 3


def test_golf_resume_refuses_another_oracle_settings_or_lost_results(d0_and_baseline, tmp_path, monkeypatch):
    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    rc, err = golf_run(d0, baseline, run)
    assert rc == 0, err
    assert (run / "model.pt").exists() and D.count_rows(run / "oracle.db") > 0
    monkeypatch.syspath_prepend(TESTS)
    one_line_error(*golf_run(d0, baseline, run, "--resume", "--oracle", "flaky_oracle:FlakyMMFF"),
                   "other settings", "oracle 'mmff' -> 'flaky_oracle:FlakyMMFF'")
    one_line_error(*golf_run(d0, baseline, run, "--resume", "--max-episode-steps", "5"), "other settings",
                   "max_episode_steps 3 -> 5")
    shutil.copy(baseline, tmp_path / "other.pt")
    one_line_error(*golf_run(d0, tmp_path / "other.pt", run, "--resume"), "other settings", "baseline")
    one_line_error(*golf_run(d0, baseline, run, "--resume", "--oracle-option", "variant=MMFF94s"),
                   "other settings", "oracle settings")
    rc, err = golf_run(d0, baseline, run, "--resume", "--workers", "3", "--utd-ratio", "2")  # work, not data: fine
    assert rc == 0, err
    # a lost oracle.db would restart the budget
    (run / "oracle.db").rename(tmp_path / "oracle.db")
    one_line_error(*golf_run(d0, baseline, run, "--resume"), "oracle.db holds 0", "not resuming")
    # a damaged one is named
    data = bytearray((tmp_path / "oracle.db").read_bytes())
    (run / "oracle.db").write_bytes(bytes(data[: len(data) // 2]))
    one_line_error(*golf_run(d0, baseline, run, "--resume"), "oracle.db")
    shutil.copy(tmp_path / "oracle.db", run / "oracle.db")
    # a truncated checkpoint too
    ckpt = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(ckpt[: len(ckpt) // 2])
    one_line_error(*golf_run(d0, baseline, run, "--resume"), "checkpoint.pt", "unreadable GOLF checkpoint")
    (run / "checkpoint.pt").write_bytes(ckpt)
    rc, err = golf_run(d0, baseline, run, "--resume")
    assert rc == 0, err


def test_train_resume_refuses_other_data(d0_and_baseline, tmp_path):
    d0, _ = d0_and_baseline
    small = ["--features", "8", "--interactions", "1", "--n-rbf", "4", "--cutoff", "4.0", "--batch-size", "8",
             "--no-progress", "--val-fraction", "0.25"]
    model = tmp_path / "m.pt"
    rc, err = golf("train", "--data", d0, "--out", model, "--epochs", "1", *small)
    assert rc == 0, err
    other = tmp_path / "other.db"
    assert build(other, DATA / "tiny.smi", "--conformers", "1")[0] == 0
    one_line_error(*golf("train", "--data", d0, "--data", other, "--out", model, "--epochs", "2", "--resume", *small),
                   "trained on", "same data")


# ---------------------------------------------------------------------------------------------
# 4. a run that produced nothing is not a success


def test_golf_run_where_every_call_failed_exits_nonzero(d0_and_baseline, tmp_path, monkeypatch):
    d0, baseline = d0_and_baseline
    monkeypatch.syspath_prepend(TESTS)
    run = tmp_path / "run"
    rc, err = golf_run(d0, baseline, run, "--oracle", "flaky_oracle:FlakyMMFF", "--oracle-option", "fail_every=1",
                       budget=2)
    line = one_line_error(rc, err, "all 2 oracle calls failed", "injected", "no GOLF model")
    assert "2 of 2 oracle calls failed (first:" in err  # the count and first reason on stderr
    assert not (run / "model.pt").exists() and (run / "failures.jsonl").exists(), line


def test_golf_oracle_of_another_level_of_theory_than_d0_is_refused(d0_and_baseline, tmp_path, monkeypatch):
    """D0 is part of every replay batch: GOLF labels of another level of theory would be mixed with
    it. A plugin oracle's level is unknown to golf: it is accepted with a warning line."""
    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    one_line_error(*golf_run(d0, baseline, run, "--oracle", "xtb"), "labelled with mmff", "xtb", "level of theory")
    one_line_error(*golf_run(d0, baseline, run, "--oracle-option", "variant=MMFF94s"), "MMFF94s", "level of theory")
    assert not run.exists()
    monkeypatch.syspath_prepend(TESTS)
    rc, err = golf_run(d0, baseline, run, "--oracle", "flaky_oracle:FlakyMMFF", "--oracle-option", "fail_every=1",
                       budget=1)
    warned = [x for x in err.splitlines() if "warning:" in x]
    assert len(warned) == 1 and "plugin oracle" in warned[0], err


def test_bad_oracle_option_is_refused_up_front(d0_and_baseline, tmp_path):
    """Unknown settings, and bad values of xtb settings even beside torch (where the oracle is not built)."""
    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    one_line_error(*golf_run(d0, baseline, run, "--oracle-option", "bogus=1"), "unknown mmff setting")
    one_line_error(*golf_run(d0, baseline, run, "--oracle", "xtb", "--oracle-option", "method=GFN9-xTB"),
                   "bad xtb settings", "GFN9-xTB")
    one_line_error(*golf_run(d0, baseline, run, "--oracle", "xtb", "--oracle-option", "accuracy=-1"), "accuracy")
    assert not run.exists()


def test_plugin_oracle_in_data_build_reports_failures(tmp_path, monkeypatch):
    """A module:Class oracle works in data build; its failures are counted on stderr with the first
    reason; a build where every call failed and nothing is stored exits non-zero."""
    monkeypatch.syspath_prepend(TESTS)
    out = tmp_path / "p.db"

    def flaky_build(target: Path, fail_every: int) -> tuple[int, str]:
        return golf("data", "build", "--smiles", DATA / "tiny.smi", "--conformers", "1", "--oracle",
                    "flaky_oracle:FlakyMMFF", "--oracle-option", f"fail_every={fail_every}", "--executor", "serial",
                    "--quiet", "--out", target)

    rc, err = flaky_build(out, 2)
    assert rc == 0, err
    assert "2 of 4 oracle calls failed (first:" in err and "injected" in err
    assert D.count_rows(out) == 2 and D.db_oracle(out)[0] == "flaky_oracle:FlakyMMFF"
    one_line_error(*flaky_build(tmp_path / "none.db", 1), "all 4 oracle calls failed", "nothing written")
    assert not (tmp_path / "none.db").exists()


# ---------------------------------------------------------------------------------------------
# 5. damaged files are found before use


def _flip_member_byte(path: Path, member_suffix: str) -> None:
    """Flip one byte inside a zip member's stored data (a bit-rotted checkpoint)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(member_suffix))
    h = info.header_offset
    name_len, extra_len = struct.unpack("<HH", data[h + 26:h + 30])
    data[h + 30 + name_len + extra_len + info.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_damaged_checkpoint_is_refused(d0_and_baseline, tmp_path):
    _, baseline = d0_and_baseline
    bad = tmp_path / "bad.pt"
    shutil.copy(baseline, bad)
    with zipfile.ZipFile(bad) as z:
        biggest = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    _flip_member_byte(bad, biggest.filename)
    one_line_error(*golf("predict", DATA / "tiny.sdf", "--model", bad, "-o", tmp_path / "out.extxyz"),
                   str(bad), "CRC mismatch")
    assert not (tmp_path / "out.extxyz").exists()


def test_database_with_a_broken_index_is_refused_before_work(d0_and_baseline, tmp_path):
    d0, baseline = d0_and_baseline
    broken = tmp_path / "broken.db"
    shutil.copy(d0, broken)
    con = sqlite3.connect(broken)
    page = con.execute("PRAGMA page_size").fetchone()[0]
    root = con.execute("SELECT rootpage FROM sqlite_master WHERE type='index' AND rootpage > 0").fetchone()[0]
    con.close()
    with open(broken, "r+b") as f:  # garbage over the cell pointers of an index page
        f.seek((root - 1) * page + 8)
        f.write(b"\xff" * 64)
    for argv in (["train", "--data", broken, "--out", tmp_path / "m.pt", "--epochs", "1"],
                 ["predict", broken, "--model", baseline, "-o", tmp_path / "p.extxyz"],
                 ["data", "build", "--smiles", DATA / "tiny.smi", "--oracle", "mmff", "--out", broken]):
        one_line_error(*golf(*argv), str(broken), "damaged")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.db"]


# ---------------------------------------------------------------------------------------------
# 6. failed starts and outputs of the wrong kind


def test_failed_start_leaves_no_run_directory(d0_and_baseline, tmp_path):
    d0, _ = d0_and_baseline
    run = tmp_path / "deep" / "run"
    one_line_error(*golf_run(d0, tmp_path / "missing.pt", run), "missing.pt")
    assert not (tmp_path / "deep").exists()


@pytest.mark.parametrize("argv", [["train", "--golf", "--from", "b.pt", "--data", "d.db", "--out", "f"],
                                  ["run", "--out", "f"]])
def test_out_that_is_a_regular_file_is_refused(argv, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("f").write_text("precious")
    one_line_error(*golf(*argv), "f: exists and is not a directory")
    assert Path("f").read_text() == "precious" and sorted(os.listdir()) == ["f"]


def test_lock_and_integrity_helpers(tmp_path):
    """The guard's pieces on their own: same-path detection, lock exclusivity and clean-up."""
    from golf.errors import InputError
    from golf.io import zip_damage
    from golf.runs.guard import OutputLock, check_sqlite, same_path

    (tmp_path / "a").write_text("x")
    os.link(tmp_path / "a", tmp_path / "hard")
    assert same_path(tmp_path / "a", tmp_path / "sub" / ".." / "a") and same_path(tmp_path / "a", tmp_path / "hard")
    assert not same_path(tmp_path / "a", tmp_path / "b")
    first, second = OutputLock(tmp_path / "x" / "y.db"), OutputLock(tmp_path / "x" / "y.db")
    first.acquire()
    with pytest.raises(InputError, match=f"pid {os.getpid()}"):
        second.acquire()
    first.release()
    assert not (tmp_path / "x").exists()  # the directory the lock made is gone with it
    second.acquire()
    second.release()
    check_sqlite(tmp_path / "missing.db")
    (tmp_path / "junk.db").write_bytes(b"x" * 2048)
    with pytest.raises(InputError, match="junk.db"):
        check_sqlite(tmp_path / "junk.db")
    assert zip_damage(tmp_path / "a") is None  # not a zip: not judged
    with zipfile.ZipFile(tmp_path / "z.zip", "w") as z:
        z.writestr("m", b"payload" * 100)
    assert zip_damage(tmp_path / "z.zip") is None


@pytest.mark.parametrize("spec,message", [("nomod_golf_test:X", "cannot import module"),
                                          ("json:Nope", "has no class")])
def test_unimportable_plugin_oracle_is_one_line(tmp_path, spec, message):
    smi = tmp_path / "in.smi"
    smi.write_text("CCO\n")
    for argv in (["data", "build", "--smiles", str(smi), "--oracle", spec, "--out", str(tmp_path / "o.db")],
                 ["optimize", "--oracle", spec, str(smi), "-o", str(tmp_path / "o.sdf")]):
        res = subprocess.run([sys.executable, "-m", "golf", *argv], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
        assert len(res.stderr.strip().splitlines()) == 1 and message in res.stderr
    assert not any(tmp_path.glob("o.*"))
