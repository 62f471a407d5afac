"""Outputs: what a command writes is checked and locked like -o, whether named or implicit; an existing
database of another kind is never replaced; symlinks are written through and file modes kept; the
same path is never two outputs; a full disk or read-only output is one line and leaves no partial file.

The CLI runs in this process (``golf.cli.main``); oracle work uses MMFF on the serial executor and
model work a tiny untrained PaiNN.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import shutil
import sqlite3
import stat
from pathlib import Path

import pytest
from conftest import one_line_error, run_cli

from golf.cli import main

DATA = Path(__file__).parent / "data"
TINY_SDF = DATA / "tiny.sdf"  # 3 structures: ethanol, acetic acid, benzene

pytestmark = pytest.mark.usefixtures("one_torch_thread")


golf = run_cli


def build(out: Path, *extra: object) -> tuple[int, str]:
    return golf("data", "build", "--smiles", DATA / "tiny.smi", "--oracle", "mmff", "--executor", "serial",
                "--quiet", "--conformers", "1", "--out", out, *extra)


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else b"<dir>")
            for p in sorted(root.rglob("*"))}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch

    from golf.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("painn", elements=[1, 6, 7, 8, 16], n_atom_basis=8, n_interactions=1, n_rbf=8)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(model, path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """A small MMFF-labelled dataset (golf data build): 4 paid labels."""
    out = tmp_path_factory.mktemp("dataset") / "d.db"
    rc, err = build(out)
    assert rc == 0, err
    return out


# ---------------------------------------------------------------------------------------------
# 1. implicit outputs go through the guard and the lock


def _parse(*argv: str):
    from golf.cli import build_parser

    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize("argv, implicit", [
    (["conformers", "m.csv", "-o", "m.sdf"], [("m.csv", "file")]),
    (["conformers", "m.smi", "-o", "m.sdf", "--summary", "s.csv"], [("m.sdf", "file"), ("s.csv", "file")]),
    (["predict", "m.sdf", "--model", "x.pt", "-o", "p.db"], [("p.db", "file")]),
    (["optimize", "m.sdf", "--model", "x.pt", "-o", "o.sdf"], [("o.sdf", "file")]),
    (["data", "build", "--out", "d.db"], [("d.db.failures.jsonl", "file")]),
    (["data", "reference", "--out", "r.db"], [("r.db.failures.jsonl", "file")]),
    (["data", "trajectories", "--out", "t.db", "--budget", "3"],
     [("t.db.failures.jsonl", "file"), ("t.db.arrived", "dir")]),
    (["train", "--data", "d.db", "--out", "m.pt"], [("m.pt.d", "dir")]),
])
def test_implicit_outputs_are_declared(argv, implicit):
    from golf.cli._paths import command_paths

    outputs = {(o.path, o.kind) for o in command_paths(_parse(*argv))[1]}
    assert set(implicit) <= outputs


def test_conformers_default_summary_is_never_the_input(tmp_path, monkeypatch):
    """`golf conformers mols.csv -o mols.sdf` would have replaced mols.csv by its summary."""
    monkeypatch.chdir(tmp_path)
    Path("mols.csv").write_text("smiles,name\nCCO,ethanol\n")
    before = snapshot(tmp_path)
    one_line_error(*golf("conformers", "mols.csv", "-o", "mols.sdf"), "mols.csv is both an input",
                   "the summary", "--summary")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("named", [False, True])
def test_conformers_summary_is_locked(tmp_path, named):
    """The summary (OUT.csv, or --summary) is locked like -o: a second golf process is refused before any work."""
    from golf.runs.guard import OutputLock, summary_path

    out = tmp_path / "c.sdf"
    summary = tmp_path / "s.csv" if named else Path(summary_path(out))
    lock = OutputLock(summary)
    lock.acquire()
    try:
        one_line_error(*golf("conformers", DATA / "tiny.smi", "-o", out, *(["--summary", summary] if named else [])),
                       summary.name, "another golf process", f"pid {os.getpid()}")
    finally:
        lock.release()
    assert not out.exists() and not summary.exists()


def test_data_failure_log_is_checked_and_locked(tmp_path):
    from golf.runs.data import failures_path
    from golf.runs.guard import OutputLock

    out = tmp_path / "d.db"
    lock = OutputLock(failures_path(out))
    lock.acquire()
    try:
        one_line_error(*build(out), "d.db.failures.jsonl", "another golf process", f"pid {os.getpid()}")
    finally:
        lock.release()
    assert not out.exists()
    Path(failures_path(out)).mkdir()
    one_line_error(*build(out), "d.db.failures.jsonl", "is a directory")
    assert not out.exists()


def test_trajectories_arrived_dir_is_checked(tmp_path):
    out = tmp_path / "t.db"
    Path(str(out) + ".arrived").write_text("precious")
    one_line_error(*golf("data", "trajectories", "--smiles", DATA / "tiny.smi", "--oracle", "mmff", "--executor",
                         "serial", "--quiet", "--budget", "2", "--out", out), "t.db.arrived", "not a directory")
    assert Path(str(out) + ".arrived").read_text() == "precious" and not out.exists()


def test_train_run_dir_is_checked(tmp_path, dataset):
    Path(tmp_path / "m.pt.d").write_text("precious")
    one_line_error(*golf("train", "--data", dataset, "--out", tmp_path / "m.pt", "--epochs", "1"),
                   "m.pt.d", "not a directory")
    assert (tmp_path / "m.pt.d").read_text() == "precious" and not (tmp_path / "m.pt").exists()


def test_written_paths_are_the_declared_ones(tmp_path, tiny_model, monkeypatch):
    """Every path a command leaves behind is one of (or inside one of) its declared outputs."""
    from golf.cli._paths import command_paths
    from golf.runs.guard import same_path

    monkeypatch.chdir(tmp_path)
    shutil.copy(DATA / "tiny.smi", "in.smi")
    shutil.copy(TINY_SDF, "in.sdf")
    commands = [
        ["conformers", "in.smi", "-o", "c.sdf", "--model", str(tiny_model), "--n-conformers", "2",
         "--max-steps", "3", "--no-progress"],
        ["predict", "in.sdf", "--model", str(tiny_model), "-o", "p.db", "--device", "cpu"],
        ["optimize", "in.sdf", "--model", str(tiny_model), "-o", "o.xyz", "--max-steps", "2", "--no-progress"],
        ["data", "build", "--smiles", "in.smi", "--oracle", "mmff", "--executor", "serial", "--quiet",
         "--conformers", "1", "--out", "d.db"],
        ["data", "reference", "--smiles", "in.smi", "--molecules", "2", "--oracle", "mmff", "--executor", "serial",
         "--quiet", "--out", "r.db"],
        ["data", "trajectories", "--smiles", "in.smi", "--molecules", "1", "--oracle", "mmff", "--executor",
         "serial", "--quiet", "--budget", "2", "--out", "t.db"],
        ["train", "--data", "d.db", "--out", "m.pt", "--epochs", "1", "--features", "8", "--interactions", "1",
         "--no-progress"],
        ["evaluate", "--model", "m.pt", "--reference", "r.db", "--out", "ev", "--steps", "1", "--executor",
         "serial", "--no-progress"],
    ]
    for argv in commands:
        before = set(os.listdir())
        rc, err = golf(*argv)
        assert rc in (0, 3), err
        declared = [o.path for o in command_paths(_parse(*argv))[1]]
        for name in set(os.listdir()) - before:
            assert any(same_path(name, d) for d in declared), (argv, name, declared)


# ---------------------------------------------------------------------------------------------
# 2. an existing database of another kind is never replaced (nor appended to)


@pytest.mark.parametrize("command", ["predict", "optimize"])
def test_batch_output_never_replaces_a_labelled_dataset(command, tmp_path, tiny_model, dataset):
    out = tmp_path / "D.db"
    shutil.copy(dataset, out)
    before = out.read_bytes()
    extra = ["--max-steps", "2", "--no-progress"] if command == "optimize" else []
    one_line_error(*golf(command, TINY_SDF, "--model", tiny_model, "-o", out, *extra),
                   "D.db", "labelled dataset (golf data build), 4 rows", "choose another output")
    assert out.read_bytes() == before


def test_each_command_replaces_only_its_own_kind(tmp_path, tiny_model, dataset):
    from golf.db import db_kind

    p, o = tmp_path / "p.db", tmp_path / "o.db"
    for _ in range(2):  # a predict output is replaced by predict
        rc, err = golf("predict", TINY_SDF, "--model", tiny_model, "-o", p, "--device", "cpu")
        assert rc == 0, err
    assert db_kind(p) == ("predict", 3)
    rc, err = golf("optimize", TINY_SDF, "--model", tiny_model, "-o", o, "--max-steps", "2", "--no-progress")
    assert rc == 0, err
    assert db_kind(o) == ("optimize", 3)
    before = p.read_bytes()
    one_line_error(*golf("optimize", TINY_SDF, "--model", tiny_model, "-o", p, "--no-progress"),
                   "golf predict output", "writing a golf optimize output there")
    assert p.read_bytes() == before
    one_line_error(*golf("train", "--data", dataset, "--out", p), "golf predict output", "not a database")
    assert p.read_bytes() == before
    # the data commands append only to their own kind
    ref = tmp_path / "r.db"
    shutil.copy(dataset, ref)
    one_line_error(*golf("data", "reference", "--smiles", DATA / "tiny.smi", "--oracle", "mmff", "--executor",
                         "serial", "--quiet", "--out", ref), "labelled dataset", "appends only to a reference database")
    assert ref.read_bytes() == dataset.read_bytes()
    one_line_error(*build(p), "golf predict output", "appends only to a labelled dataset")
    assert p.read_bytes() == before
    # an empty database of any kind is no loss
    empty = tmp_path / "e.db"
    sqlite3.connect(empty).close()
    rc, err = golf("predict", TINY_SDF, "--model", tiny_model, "-o", empty, "--device", "cpu")
    assert rc == 0, err


def test_db_kind_of_databases_without_a_recorded_kind(tmp_path):
    """Databases from before kinds were recorded, and ASE databases golf did not write."""
    from ase import Atoms
    from ase.db import connect

    from golf.db import db_kind

    def make(name: str, **kvp: object) -> Path:
        path = tmp_path / name
        with connect(path) as db:
            db.write(Atoms("H2", positions=[[0, 0, 0], [0, 0, 0.74]]), **kvp)
        return path

    assert db_kind(make("p.db", mol_id=0, conf_id=0, charge=0, multiplicity=1, smiles="[H][H]")) == ("predict", 1)
    assert db_kind(make("o.db", mol_id=0, n_steps=3, converged=True, max_force=0.01)) == ("optimize", 1)
    assert db_kind(make("d.db", mol_id=0, oracle="mmff", key="0:0:ab")) == ("dataset", 1)
    assert db_kind(make("r.db", oracle="mmff", key="k", opt_energy=-1.0)) == ("reference", 1)
    assert db_kind(make("t.db", oracle="mmff", key="k:0", traj_key="k", step=0)) == ("trajectories", 1)
    assert db_kind(make("x.db", label="mine")) == ("ase", 1)
    from golf.formats import read_conformations, write_conformations

    write_conformations(tmp_path / "k.db", read_conformations(TINY_SDF), kind="optimize")
    assert db_kind(tmp_path / "k.db") == ("optimize", 3)  # recorded, not judged from keys (it has none)
    (tmp_path / "txt.db").write_text("not sqlite")
    assert db_kind(tmp_path / "txt.db") is None and db_kind(tmp_path / "missing.db") is None


# ---------------------------------------------------------------------------------------------
# 3. symlinks are written through; file modes are the usual ones


def test_symlinked_output_is_written_through(tmp_path, tiny_model):
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "x.sdf"
    target.write_text("old")
    link = tmp_path / "link.sdf"
    link.symlink_to(target)
    rc, err = golf("predict", TINY_SDF, "--model", tiny_model, "-o", link, "--device", "cpu")
    assert rc == 0, err
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text().count("$$$$") == 3
    assert sorted(os.listdir(tmp_path / "real")) == ["x.sdf"] and sorted(os.listdir(tmp_path)) == ["link.sdf", "real"]
    # a dangling link: the target is created
    target.unlink()
    rc, err = golf("predict", TINY_SDF, "--model", tiny_model, "-o", link, "--device", "cpu")
    assert rc == 0, err
    assert link.is_symlink() and target.read_text().count("$$$$") == 3


@pytest.fixture
def umask_027():
    old = os.umask(0o027)
    yield
    os.umask(old)


def test_outputs_get_the_usual_mode(tmp_path, tiny_model, umask_027):
    from golf.formats import read_conformations, write_conformations
    from golf.io import atomic_write_text

    atomic_write_text(tmp_path / "new.txt", "x")
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o640  # 0o666 without the umask
    kept = tmp_path / "kept.txt"
    kept.write_text("old")
    kept.chmod(0o604)
    atomic_write_text(kept, "new")
    assert stat.S_IMODE(kept.stat().st_mode) == 0o604 and kept.read_text() == "new"
    confs = read_conformations(TINY_SDF)
    write_conformations(tmp_path / "s.db", confs)  # SQLite creates the file itself
    assert stat.S_IMODE((tmp_path / "s.db").stat().st_mode) == 0o640
    rc, err = golf("predict", TINY_SDF, "--model", tiny_model, "-o", tmp_path / "p.sdf", "--device", "cpu")
    assert rc == 0, err
    assert stat.S_IMODE((tmp_path / "p.sdf").stat().st_mode) == 0o640


# ---------------------------------------------------------------------------------------------
# 4. the same path is never two outputs, nor an input and an output


def test_same_path_as_two_outputs_names_both(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("in.smi").write_text("CCO\n")
    os.symlink("o.sdf", "alias.csv")
    for argv, names in [
        (["conformers", "in.smi", "-o", "o.sdf", "--summary", "o.sdf"], ("-o and --summary",)),
        (["conformers", "in.smi", "-o", "o.sdf", "--summary", "alias.csv"], ("alias.csv", "-o and --summary")),
        (["conformers", "in.smi", "-o", "o.sdf", "--summary", "./sub/../o.sdf"], ("-o and --summary",)),
        (["train", "--data", "d.db", "--out", "m.pt", "--log-dir", "m.pt"], ("--out and --log-dir",)),
    ]:
        line = one_line_error(*golf(*argv), "given as two outputs", *names)
        assert "another golf process" not in line
    assert sorted(os.listdir()) == ["alias.csv", "in.smi"]


def test_output_that_is_an_input_via_relative_path_names_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copy(TINY_SDF, "in.sdf")
    Path("sub").mkdir()
    line = one_line_error(*golf("predict", "sub/../in.sdf", "--model", "m.pt", "-o", "in.sdf"), "both an input")
    assert "sub/../in.sdf" in line and "(-o)" in line


# ---------------------------------------------------------------------------------------------
# 5. a full disk, a quota, a read-only output: one line, no partial file


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_optimize_on_a_full_disk(tmp_path, tiny_model, monkeypatch):
    from golf import formats

    def half_written(tmp, confs, props):
        Path(tmp).write_text("partial")
        _enospc()

    monkeypatch.setattr(formats, "_write_sdf", half_written)
    out = tmp_path / "out.sdf"
    line = one_line_error(*golf("optimize", TINY_SDF, "--model", tiny_model, "-o", out, "--max-steps", "2",
                                "--no-progress"),
                          f"cannot write {out}: No space left on device", "nothing written",
                          "3 relaxed conformations were not saved")
    assert "Traceback" not in line
    assert os.listdir(tmp_path) == []  # no partial output, no temporary file, no lock
    out.write_text("previous result")
    one_line_error(*golf("optimize", TINY_SDF, "--model", tiny_model, "-o", out, "--max-steps", "2",
                         "--no-progress"), "No space left on device", "unchanged")
    assert out.read_text() == "previous result" and os.listdir(tmp_path) == ["out.sdf"]


def test_data_build_on_a_full_disk(tmp_path, monkeypatch):
    from ase.db.sqlite import SQLite3Database

    from golf.db import count_rows
    from golf.runs.guard import check_sqlite

    out = tmp_path / "d.db"
    rc, err = build(out, "--molecules", "1")
    assert rc == 0, err
    before = count_rows(out)

    def full(self, *args, **kwargs):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(SQLite3Database, "_write", full)
    one_line_error(*build(out), f"cannot write {out}: database or disk is full", "kept", "re-run to resume")
    monkeypatch.undo()
    check_sqlite(out)  # intact
    assert count_rows(out) == before
    assert sorted(os.listdir(tmp_path)) == ["d.db"]


def test_failure_log_on_a_full_disk(tmp_path, monkeypatch):
    from golf.errors import OutputError
    from golf.io import append_jsonl

    monkeypatch.setattr(os, "fsync", _enospc)
    with pytest.raises(OutputError, match=r"cannot write .*log.jsonl: No space left on device"):
        append_jsonl(tmp_path / "log.jsonl", {"a": 1})


@pytest.mark.parametrize("exc, cause", [
    (OSError(errno.EDQUOT, os.strerror(errno.EDQUOT)), os.strerror(errno.EDQUOT)),
    (OSError(errno.EROFS, os.strerror(errno.EROFS)), os.strerror(errno.EROFS)),
    (sqlite3.OperationalError("attempt to write a readonly database"), "readonly database"),
])
def test_unnamed_write_failures_are_one_line(exc, cause, tmp_path, monkeypatch):
    """A writer that does not name its path (a library writing inside a run): the CLI names the outputs."""
    from golf.cli import predict as predict_cli

    def run(args):
        raise exc

    monkeypatch.setattr(predict_cli, "run", run)
    out = tmp_path / "o.sdf"
    one_line_error(*golf("predict", TINY_SDF, "--model", "m.pt", "-o", out), f"cannot write {out}", cause)


def test_other_errors_keep_their_traceback(tmp_path, monkeypatch):
    from golf.cli import predict as predict_cli

    def run(args):
        raise OSError(errno.EBADF, "a bug")

    monkeypatch.setattr(predict_cli, "run", run)
    with pytest.raises(OSError, match="a bug"):
        golf("predict", TINY_SDF, "--model", "m.pt", "-o", tmp_path / "o.sdf")


def test_lock_on_a_full_disk_leaves_no_lock_file(tmp_path, monkeypatch):
    from golf.errors import OutputError
    from golf.runs import guard

    monkeypatch.setattr(guard.os, "write", _enospc)
    with pytest.raises(OutputError, match=r"cannot write .*d.db: No space left on device"):
        guard.OutputLock(tmp_path / "sub" / "d.db").acquire()
    monkeypatch.undo()
    assert os.listdir(tmp_path) == []
