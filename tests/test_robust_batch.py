"""Issue 16, batches and processes: one structure never aborts a batch, outputs are checked before the
work, options are validated where they are parsed, workers die with their parent or are replaced,
trajectories are committed as they arrive, and progress does not flood logs.

tests/data/batch_one_bad.xyz: ethanol, bis(4-nitrophenyl) disulfide (RDKit cannot assign its bond
orders from XYZ), water, a single sulfur atom (open shell).
"""
from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from golf.cli import main

DATA = Path(__file__).parent / "data"
MIXED = DATA / "batch_one_bad.xyz"
SRC = str(Path(__file__).resolve().parents[1] / "src")

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from golf.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("painn", elements=[1, 6, 7, 8, 16], n_atom_basis=8, n_interactions=1, n_rbf=8)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "__version__", str(torch.__version__))
        save_model(model, path)
    return path


def _lines(text: str) -> list[str]:
    return [ln for ln in text.strip().splitlines() if ln.strip()]


# ---------------------------------------------------------------------------------------------
# 1. one structure never aborts a batch


def test_reader_reports_bad_structures_and_keeps_connectivity():
    from golf.errors import InputError
    from golf.formats import read_conformations

    with pytest.raises(InputError, match="structure 2: could not assign bond orders"):
        read_conformations(MIXED)  # strict by default: data pipelines need bond orders
    errors: list = []
    confs = read_conformations(MIXED, on_error=errors.append, bond_orders=False)
    assert [c.n_atoms for c in confs] == [9, 28, 3]
    assert confs[1].molblock is None and confs[1].info["bonds"] == "connectivity"
    assert confs[0].molblock and confs[0].smiles == "CCO"
    assert len(errors) == 1 and "structure 4: radical" in str(errors[0])


def test_predict_goes_on_past_bad_structures(tiny_model, tmp_path, capsys):
    from ase.io import read

    out = tmp_path / "p.extxyz"
    assert main(["predict", "--model", str(tiny_model), str(MIXED), "-o", str(out)]) == 3
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "skipped" in err[0] and "structure 4" in err[0]
    assert "neutral closed-shell" in err[0] and "--multiplicity" not in err[0]
    frames = read(out, index=":")
    assert [len(a) for a in frames] == [9, 28, 3]
    assert all(np.isfinite(a.get_potential_energy()) for a in frames)


def test_optimize_model_to_db_and_partial_exit(tiny_model, tmp_path, capsys):
    import ase.db

    from golf.formats import read_conformations

    out = tmp_path / "o.db"
    rc = main(["optimize", "--model", str(tiny_model), str(MIXED), "-o", str(out), "--max-steps", "3",
               "--no-progress"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "structure 4" in err and "Traceback" not in err
    rows = list(ase.db.connect(str(out)).select())
    assert len(rows) == 3 and all("golf_fmax_eV_A" in r.key_value_pairs for r in rows)  # golf.outputs names
    assert len(read_conformations(out, bond_orders=False)) == 3


def test_optimize_mmff_reports_what_needs_bond_orders(tmp_path, capsys):
    out = tmp_path / "o.sdf"
    rc = main(["optimize", "--oracle", "mmff", str(MIXED), "-o", str(out), "--workers", "1", "--max-steps", "5",
               "--no-progress"])
    assert rc == 3
    err = capsys.readouterr().err
    skipped = [ln for ln in err.splitlines() if ln.startswith("golf optimize: skipped")]
    assert len(skipped) == 2
    assert "structure 2: could not assign bond orders" in skipped[0] and "structure 4" in skipped[1]
    from rdkit import Chem

    assert len([m for m in Chem.SDMolSupplier(str(out), removeHs=False)]) == 2


def test_connectivity_only_sdf_round_trip(tiny_model, tmp_path, capsys):
    """An NNP-relaxed structure without bond orders is written to SDF marked as such; reading it
    back never takes its single bonds for chemistry."""
    from golf.errors import InputError
    from golf.formats import read_conformations

    out = tmp_path / "o.sdf"
    assert main(["optimize", "--model", str(tiny_model), str(MIXED), "-o", str(out), "--max-steps", "2",
                 "--no-progress"]) == 3
    confs = read_conformations(out, bond_orders=False)
    assert [c.n_atoms for c in confs] == [9, 28, 3]
    assert confs[1].molblock is None and confs[1].info["bonds"] == "connectivity"
    with pytest.raises(InputError, match="record 2: connectivity only"):
        read_conformations(out)
    # and MMFF, which needs bond orders, reports that record and relaxes the others
    assert main(["optimize", "--oracle", "mmff", str(out), "-o", str(tmp_path / "m.sdf"), "--workers", "1",
                 "--no-progress"]) == 3
    assert "record 2: connectivity only" in capsys.readouterr().err


def test_every_structure_bad_is_one_line_error(tiny_model, tmp_path, capsys):
    single = tmp_path / "atom.xyz"
    single.write_text("1\nC atom\nC 0 0 0\n")
    out = tmp_path / "p.extxyz"
    assert main(["predict", "--model", str(tiny_model), str(single), "-o", str(out)]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and err[0].startswith("golf predict: error:") and "structure 1" in err[0]
    assert not out.exists()


def test_charged_input_gets_right_advice(tiny_model, tmp_path, capsys):
    acetate = tmp_path / "acetate.smi"
    acetate.write_text("CC(=O)[O-] acetate\n")
    ammonium = DATA / "bad" / "ammonium.xyz"
    for path in (acetate, ammonium):  # an NNP has no charge input: no advice to pass one
        assert main(["predict", "--model", str(tiny_model), str(path), "-o", str(tmp_path / "p.extxyz")]) == 2
        err = capsys.readouterr().err
        assert "neutral closed-shell" in err and "--charge" not in err, err
    # optimize has --charge for oracle relaxations, as the advice says
    assert main(["optimize", "--oracle", "mmff", str(acetate), "-o", str(tmp_path / "o.sdf")]) == 2
    assert "pass --charge -1" in capsys.readouterr().err
    assert main(["optimize", "--oracle", "mmff", str(ammonium), "-o", str(tmp_path / "o.sdf")]) == 2
    assert "needs its charge and multiplicity given" in capsys.readouterr().err
    assert main(["optimize", "--oracle", "mmff", str(ammonium), "--charge", "1", "-o", str(tmp_path / "o.sdf"),
                 "--workers", "1", "--no-progress"]) == 0
    assert main(["optimize", "--model", str(tiny_model), str(ammonium), "--charge", "1",
                 "-o", str(tmp_path / "o.sdf")]) == 2
    err = capsys.readouterr().err  # per molecule: why, and what takes it (oracles, a charged model)
    assert "oracle (xtb or dft" in err and "charged_molecules=True" in err


# ---------------------------------------------------------------------------------------------
# 2. outputs checked before the work


@pytest.mark.parametrize("out, message", [("o.pdb", "cannot write '.pdb'"), ("o", "without extension"),
                                          ("afile/o.sdf", "cannot write")])
def test_output_checked_before_work(tiny_model, tmp_path, capsys, monkeypatch, out, message):
    import golf.formats

    (tmp_path / "afile").write_text("not a directory")
    monkeypatch.setattr(golf.formats, "read_conformations", lambda *a, **k: pytest.fail("read before check"))
    for cmd in (["predict", "--model", str(tiny_model)], ["optimize", "--model", str(tiny_model)]):
        assert main([*cmd, str(MIXED), "-o", str(tmp_path / out)]) == 2
        err = _lines(capsys.readouterr().err)
        assert len(err) == 1 and message in err[0], err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_read_only_output_directory(tiny_model, tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["optimize", "--model", str(tiny_model), str(MIXED), "-o", str(ro / "o.sdf")]) == 2
        assert "cannot write" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


# ---------------------------------------------------------------------------------------------
# 3. option validation, one line, every command


BAD_OPTIONS = {
    "optimize --fmax nan": (["optimize", "x.xyz", "-o", "y.sdf", "--model", "m", "--fmax", "nan"], "--fmax"),
    "optimize --device cuda": (["optimize", "x.xyz", "-o", "y.sdf", "--model", "m", "--device", "cuda:7"], "--device"),
    "predict --device": (["predict", "x.xyz", "-o", "y.sdf", "--model", "m", "--device", "tpu"], "--device"),
    "train --workers 0": (["train", "--golf", "--workers", "0"], "--workers"),
    "optimize --workers 0": (["optimize", "x.xyz", "-o", "y.sdf", "--oracle", "mmff", "--workers", "0"], "--workers"),
    "reference --fmax -1": (["data", "reference", "--out", "r.db", "--fmax", "-1"], "--fmax"),
    "reference --fmax 0": (["data", "reference", "--out", "r.db", "--fmax", "0"], "--fmax"),
    "reference --max-steps -1": (["data", "reference", "--out", "r.db", "--max-steps", "-1"], "--max-steps"),
    "build --displacement 5": (["data", "build", "--out", "b.db", "--displacement", "5"], "at most 1"),
    "build --timeout 0": (["data", "build", "--out", "b.db", "--timeout", "0"], "--timeout"),
    "train --timeout -3": (["train", "--golf", "--timeout", "-3"], "--timeout"),
    "conformers --batch-size 0": (["conformers", "x.smi", "-o", "y.sdf", "--batch-size", "0"], "--batch-size"),
    # each by the check of the settings field it sets, where it is parsed, before any settings object
    "optimize --ph 20": (["optimize", "x.smi", "-o", "y.sdf", "--model", "m", "--ph", "20"], "--ph"),
    "optimize --multiplicity 0": (["optimize", "x.smi", "-o", "y.sdf", "--oracle", "xtb", "--multiplicity", "0"],
                                  "--multiplicity"),
    "predict --batch-size 0": (["predict", "x.xyz", "-o", "y.sdf", "--model", "m", "--batch-size", "0"], "--batch-size"),
    "conformers --top-k -1": (["conformers", "x.smi", "-o", "y.sdf", "--top-k", "-1"], "--top-k"),
    "conformers --temperature 0": (["conformers", "x.smi", "-o", "y.sdf", "--temperature", "0"], "--temperature"),
    "conformers --threads 0": (["conformers", "x.smi", "-o", "y.sdf", "--threads", "0"], "--threads"),
    "conformers --max-stereoisomers 0": (["conformers", "x.smi", "-o", "y.sdf", "--max-stereoisomers", "0"],
                                         "--max-stereoisomers"),
    "conformers --timeout 0": (["conformers", "x.smi", "-o", "y.sdf", "--timeout", "0"], "--timeout"),
}


@pytest.mark.parametrize("name", sorted(BAD_OPTIONS))
def test_bad_option_is_one_line(name, capsys):
    argv, option = BAD_OPTIONS[name]
    assert main(argv) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and "error: argument" in err[0], err
    assert option in err[0] or (option == "at most 1" and "between 0 and 1 Angstrom" in err[0])


def test_every_command_validates_its_options():
    """An option that sets the same setting is checked the same way in every command that has it."""
    import argparse

    from golf.cli import build_parser

    seen: dict[str, set[str]] = {}

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    walk(sub)
            elif action.dest in ("workers", "device"):
                with pytest.raises(argparse.ArgumentTypeError):
                    parser._registry_get("type", action.type, action.type)("0" if action.dest == "workers" else "nope")
                seen.setdefault(action.dest, set()).add(parser.prog)

    walk(build_parser())
    assert {"golf optimize", "golf train", "golf data build", "golf run"} <= seen["workers"]
    assert {"golf optimize", "golf predict", "golf train", "golf evaluate"} <= seen["device"]


def _batch_settings():
    from golf.conformer_search import ConformerSettings
    from golf.runs.conformers import ConformersSettings
    from golf.runs.optimize import OptimizeSettings
    from golf.runs.predict import PredictSettings

    return {"optimize": (OptimizeSettings,), "predict": (PredictSettings,),
            "conformers": (ConformerSettings, ConformersSettings)}


@pytest.mark.parametrize("command", ["optimize", "predict", "conformers"])
def test_batch_options_are_their_settings_fields(command):
    """Every option of a checked settings field is parsed by that field's check and defaults to the
    field's default (None: left to the dataclass), so each default and check is declared once."""
    import argparse
    import dataclasses

    from golf.cli import build_parser
    from golf.presets import field_check

    classes = _batch_settings()[command]
    sub = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0].choices[command]
    checked = {(cls, f.name) for cls in classes for f in dataclasses.fields(cls) if field_check(cls, f.name)}
    declared = {getattr(a.type, "setting", None): a for a in sub._actions}
    assert checked <= set(declared), sorted(f for _, f in checked - set(declared))
    for cls, name in checked:
        assert declared[(cls, name)].default in (None, getattr(cls, name)), name


def test_batch_settings_from_the_command_line():
    """Options left out keep the dataclasses' defaults; given ones land on their fields."""
    from golf.cli import build_parser
    from golf.cli.conformers import resolve_settings as conformers_settings
    from golf.cli.optimize import resolve_settings as optimize_settings
    from golf.conformer_search import ConformerSettings
    from golf.runs.conformers import ConformersSettings
    from golf.runs.optimize import OptimizeSettings

    parse = build_parser().parse_args
    assert conformers_settings(parse(["conformers", "x.smi", "-o", "y.sdf"])) == ConformersSettings()
    got = conformers_settings(parse(["conformers", "x.smi", "-o", "y.sdf", "--top-k", "0", "--rmsd", "0.5",
                                     "--refine-fmax", "0.1", "--no-progress"]))
    assert got == ConformersSettings(ensemble=ConformerSettings(top_k=None, rmsd_threshold=0.5), refine_fmax=0.1,
                                     progress=False)
    assert optimize_settings(parse(["optimize", "x.smi", "-o", "y.sdf", "--model", "m"])) == OptimizeSettings(model="m")
    assert optimize_settings(parse(["optimize", "x.smi", "-o", "y.sdf", "--oracle", "mmff", "--workers", "1"])) == \
        OptimizeSettings(oracle="mmff", workers=1)


def test_displacement_maximum_is_documented():
    import argparse

    from golf.cli import build_parser

    def sub(parser, name):
        return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)][0].choices[name]

    build = sub(sub(build_parser(), "data"), "build")
    assert "at most 1;" in " ".join(build.format_help().split())
    assert build_parser().parse_args(["data", "build", "--out", "x.db", "--displacement", "1"]).displacement == 1.0


# ---------------------------------------------------------------------------------------------
# 4-5. processes: workers die with their parent; a worker that dies is replaced, its calls retried

TESTS = str(Path(__file__).resolve().parent)


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, TESTS]), OMP_NUM_THREADS="1")


def _workers(proc, n: int, timeout: float = 60.0) -> list:
    """The descendants of ``proc`` once ``n`` spawned workers run (psutil processes)."""
    import psutil

    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        kids = parent.children(recursive=True)
        spawned = [k for k in kids if "spawn_main" in " ".join(_cmdline(k))]
        if len(spawned) >= n:
            return kids
        time.sleep(0.2)
    pytest.fail(f"{n} workers did not start within {timeout} s")


def _cmdline(p) -> list[str]:
    import psutil

    try:
        return p.cmdline()
    except psutil.Error:
        return []


def test_kill_9_leaves_no_worker_alive(tmp_path):
    import psutil

    cmd = [sys.executable, "-m", "golf", "optimize", "--oracle", "flaky_oracle:SlowMMFF",
           str(DATA / "tiny.smi"), "-o", str(tmp_path / "o.sdf"), "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    kids: list = []
    try:
        kids = _workers(proc, 2)
        proc.kill()  # SIGKILL: no cleanup in the parent
        proc.wait(timeout=10)
        gone, alive = psutil.wait_procs(kids, timeout=5)
        assert not alive, [(p.pid, _cmdline(p)) for p in alive]
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in kids:  # never leave them behind, whatever happened
            try:
                p.kill()
            except psutil.Error:
                pass


def test_dead_worker_is_replaced_and_calls_retried():
    """A worker killed from outside (OOM killer, kill -9) between polls: submitting to the broken
    pool must not raise BrokenProcessPool; the pool is replaced and every call still comes back."""
    import signal

    from golf.chem import generate_conformers
    from golf.oracles import validated_spec
    from golf.oracles.executors import make_executor

    sys.path.insert(0, TESTS)
    try:
        spec = validated_spec("flaky_oracle:SlowMMFF", {"delay": 0.5})
    finally:
        sys.path.remove(TESTS)
    confs = generate_conformers("CCO", 4, seed=0)
    with make_executor(spec, kind="local", n_workers=2) as ex:
        ex.submit(confs[0], key=0)  # one call in flight: a free slot for the next submit
        deadline = time.monotonic() + 60
        while not (getattr(ex._pool, "_processes", None) or {}) and time.monotonic() < deadline:
            time.sleep(0.1)
        for victim in list(ex._pool._processes.values()):
            os.kill(victim.pid, signal.SIGKILL)
            victim.join(timeout=10)
        time.sleep(0.5)  # the pool notices and marks itself broken
        for k in (1, 2, 3):
            ex.submit(confs[k], key=k)  # the first raised BrokenProcessPool before
        results = dict(ex.as_completed())
    assert sorted(results) == [0, 1, 2, 3]
    assert all(r.ok for r in results.values()), {k: r.reason for k, r in results.items()}


# ---------------------------------------------------------------------------------------------
# 6. data trajectories: every relaxation committed as it arrives


def test_trajectories_resume_recomputes_nothing_that_arrived(tmp_path, monkeypatch, capsys):
    import golf.db
    from golf.oracles.mmff import MMFFOracle
    from golf.runs.trajectories import arrived_dir

    d0 = tmp_path / "d0.db"
    assert main(["data", "build", "--smiles", str(DATA / "tiny.smi"), "--oracle", "mmff", "--executor", "serial",
                 "--quiet", "--out", str(d0)]) == 0
    relaxed = []
    real_relax = MMFFOracle.relax
    monkeypatch.setattr(MMFFOracle, "relax", lambda self, conf, **kw: relaxed.append(conf.mol_id) or
                        real_relax(self, conf, **kw))
    args = ["data", "trajectories", "--input", str(d0), "--oracle", "mmff", "--executor", "serial", "--quiet",
            "--max-steps", "30", "--budget", "25"]

    def killed(*a, **k):
        raise KeyboardInterrupt  # the kill: after the relaxation arrived, before the db has it

    with monkeypatch.context() as m:
        m.setattr(golf.db, "append_trajectory_step", killed)
        assert main([*args, "--out", str(tmp_path / "t.db")]) == 130
    assert len(relaxed) == 1 and len(list(arrived_dir(str(tmp_path / "t.db")).iterdir())) == 1
    capsys.readouterr()
    assert main([*args, "--out", str(tmp_path / "t.db")]) == 0
    assert "1 reused" in capsys.readouterr().err
    first = relaxed[0]
    assert relaxed.count(first) == 1, relaxed  # not relaxed again
    resumed = list(golf.db.iter_rows(tmp_path / "t.db"))
    assert main([*args, "--out", str(tmp_path / "fresh.db")]) == 0  # the same without a kill
    fresh = list(golf.db.iter_rows(tmp_path / "fresh.db"))
    assert [r["kvp"]["key"] for r in resumed] == [r["kvp"]["key"] for r in fresh]
    assert np.allclose([r["energy"] for r in resumed], [r["energy"] for r in fresh])


# ---------------------------------------------------------------------------------------------
# 7. logs: status lines, not redrawn bars, when stderr is not a terminal


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_in_a_log_is_a_few_status_lines():
    from golf.progress import LogTqdm, progress_bar

    log = io.StringIO()
    with progress_bar(total=5000, desc="calls", unit="call", file=log) as bar:
        assert isinstance(bar, LogTqdm)
        for k in range(5000):
            bar.update(1)
            bar.set_postfix(loss=k)  # a postfix per step (the trainer's) must not print a line per step
    text = log.getvalue()
    assert "\r" not in text and len(_lines(text)) <= 3, text
    assert _lines(text)[-1].startswith("calls: 5000/5000")
    tty = _Tty()
    assert not isinstance(progress_bar(total=1, file=tty), LogTqdm)  # a terminal keeps its live bar


def test_configure_sets_tqdm_interval_for_logs(monkeypatch):
    from golf.progress import STATUS_INTERVAL, configure

    monkeypatch.delenv("TQDM_MININTERVAL", raising=False)
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    configure()
    assert float(os.environ["TQDM_MININTERVAL"]) == STATUS_INTERVAL


def test_optimize_log_has_no_carriage_returns(tiny_model, tmp_path):
    p = subprocess.run([sys.executable, "-m", "golf", "optimize", "--model", str(tiny_model), str(DATA / "tiny.smi"),
                        "-o", str(tmp_path / "o.sdf"), "--max-steps", "3"], env=_env(), capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "\r" not in p.stderr and len(p.stderr) < 1000, p.stderr


@pytest.fixture(scope="module")
def d0_and_baseline(tmp_path_factory):
    """A tiny MMFF-labelled D0 and a barely trained tiny baseline (the GOLF loop needs both)."""
    from golf.chem import generate_conformers
    from golf.dataset import LabelledData
    from golf.db import append_labelled
    from golf.models import build_model, save_model
    from golf.oracles import make_oracle
    from golf.trainer import prepare_model

    root = tmp_path_factory.mktemp("golf")
    d0 = root / "d0.db"
    mmff = make_oracle("mmff")
    for mol_id, smi in enumerate(["CCO", "CCN", "OCCO"]):
        for conf in generate_conformers(smi, 2, seed=1, displacement=0.05, mol_id=mol_id):
            append_labelled(d0, conf, mmff.compute(conf), mmff.spec, key=f"{mol_id}:{conf.conf_id}")
    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=8, n_interactions=1, cutoff=5.0, n_rbf=8)
    with torch.no_grad():  # no forces at all: episodes end at once at sane D0 structures
        for param in model.parameters():
            param.zero_()
    prepare_model(model, LabelledData.from_db(d0))
    baseline = root / "baseline.pt"
    save_model(model, baseline, provenance={"kind": "test-baseline"})
    return d0, baseline


def test_golf_loop_survives_a_killed_worker(d0_and_baseline, tmp_path):
    """kill -9 of an oracle worker in the middle of ``train --golf``: the call is retried, the run ends
    normally with every oracle call accounted for (no BrokenProcessPool)."""
    import psutil

    from golf.db import count_rows, iter_rows

    d0, baseline = d0_and_baseline
    run = tmp_path / "run"
    budget = 8
    cmd = [sys.executable, "-m", "golf", "train", "--golf", "--from", str(baseline), "--data", str(d0),
           "--budget", str(budget), "--out", str(run), "--oracle", "flaky_oracle:SlowMMFF",
           "--oracle-option", "delay=0.4", "--executor", "local", "--workers", "2", "--n-parallel", "2",
           "--utd-ratio", "10", "--max-episode-steps", "4", "--batch-size", "4", "--seed", "0"]
    proc = subprocess.Popen(cmd, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    kids: list = []
    try:
        kids = _workers(proc, 2)
        deadline = time.monotonic() + 120
        while (count_rows(run / "oracle.db") if (run / "oracle.db").exists() else 0) < 2:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        # the first round is in: the workers wait while the model trains; one dies there
        victim = [k for k in kids if "spawn_main" in " ".join(_cmdline(k))][0]
        victim.kill()
        stdout, stderr = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in kids:
            try:
                p.kill()
            except psutil.Error:
                pass
    assert proc.returncode == 0, stderr
    assert "BrokenProcessPool" not in stderr and "Traceback" not in stderr
    calls = [int(r["kvp"]["call"]) for r in iter_rows(run / "oracle.db")]
    assert sorted(calls) == list(range(budget)), stderr


def test_data_and_conformers_outputs_checked_before_work(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a directory")
    bad = str(tmp_path / "afile" / "x")
    assert main(["data", "build", "--smiles", str(DATA / "tiny.smi"), "--oracle", "mmff", "--executor", "serial",
                 "--out", bad + ".db"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["conformers", str(DATA / "tiny.smi"), "-o", bad + ".sdf"]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert main(["conformers", str(DATA / "tiny.smi"), "-o", str(tmp_path / "c.sdf"), "--summary", bad + ".csv"]) == 2
    err = capsys.readouterr().err
    assert "x.csv" in err and "cannot write" in err
