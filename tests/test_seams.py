"""The seams of the upper floors: the pipelines are library functions of typed settings, the GOLF loop
runs over any executor, and nothing below the CLI drives the CLI."""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from golf import db as D
from golf.errors import SettingError
from golf.presets import EXPERIMENT_PRESETS, GOLF_PRESETS, TRAIN_PRESETS, GolfTraining, Molecules, OracleRun, Relaxation

SRC = Path(__file__).resolve().parents[1] / "src" / "golf"
DATA = Path(__file__).parent / "data"
MMFF_HERE = OracleRun(oracle="mmff", executor="serial")


def test_no_module_outside_cli_imports_the_cli():
    below_cli = [p for p in SRC.rglob("*.py") if "cli" not in p.relative_to(SRC).parts and p.name != "__main__.py"]
    offenders = [str(p.relative_to(SRC)) for p in below_cli
                 if re.search(r"golf\.cli|from golf import cli", p.read_text())]
    assert offenders == []


def test_paper_values_are_stated_once():
    paper, train, golf = EXPERIMENT_PRESETS["paper"], TRAIN_PRESETS["paper"], GOLF_PRESETS["paper"]
    assert (paper.features, paper.interactions, paper.n_rbf, paper.batch_size, paper.lr) == \
        (train.features, train.interactions, train.n_rbf, train.batch_size, train.lr) == (128, 3, 50, 64, 1e-4)
    assert (paper.budget, paper.n_parallel, paper.utd_ratio, paper.max_episode_steps) == \
        (golf.budget, golf.n_parallel, golf.utd_ratio, golf.max_episode_steps) == (10000, 120, 50, 100)
    assert (golf.w_energy, golf.w_forces) == (train.w_energy, train.w_forces) == (0.01, 0.99)
    assert GOLF_PRESETS["quick"] == GolfTraining()  # the defaults, declared once in the dataclass


def test_data_pipelines_as_functions(tmp_path):
    from golf.runs.build import build
    from golf.runs.reference import reference
    from golf.runs.trajectories import trajectories

    d0 = str(tmp_path / "d0.db")
    counts = build(d0, Molecules(smiles=str(DATA / "tiny.smi"), conformers=1), MMFF_HERE, quiet=True)
    n = counts["labelled"]
    assert n > 0 and counts["failed"] == 0 and D.count_rows(d0) == n
    assert build(d0, Molecules(smiles=str(DATA / "tiny.smi"), conformers=1), MMFF_HERE, quiet=True) == \
        {"labelled": 0, "skipped (already in db)": n, "duplicates in input": 0, "failed": 0, "bad input records": 0}

    ref = str(tmp_path / "ref.db")
    counts = reference(ref, Molecules(input=d0), MMFF_HERE, Relaxation(max_steps=300), quiet=True)
    assert counts["relaxed"] == n and counts["failed"] == 0
    records = D.read_reference(ref)
    assert len(records) == n and all(r.opt_energy <= r.conf.info["start_energy"] + 1e-8 for r in records)

    traj = str(tmp_path / "traj.db")
    counts = trajectories(traj, 7, Molecules(input=d0), MMFF_HERE, Relaxation(max_steps=50), quiet=True)
    assert counts["written"] == 7 and D.count_rows(traj) == 7
    D.sample_rows(traj, tmp_path / "traj-3.db", 3, seed=0)
    rows = list(D.iter_rows(tmp_path / "traj-3.db"))
    all_rows = {(r["kvp"]["traj_key"], r["kvp"]["step"]) for r in D.iter_rows(traj)}
    picked = [(r["kvp"]["traj_key"], r["kvp"]["step"]) for r in rows]
    assert len(picked) == 3 == len(set(picked)) and set(picked) <= all_rows  # a random subset, no repeats
    D.sample_rows(traj, tmp_path / "traj-3b.db", 3, seed=0)
    assert picked == [(r["kvp"]["traj_key"], r["kvp"]["step"]) for r in D.iter_rows(tmp_path / "traj-3b.db")]


def test_build_counts_input_duplicates_apart_from_stored_records(tmp_path):
    from golf.runs.build import build

    smi = tmp_path / "twice.smi"
    smi.write_text("CCO ethanol\nCCN ethylamine\nCCO ethanol_again\n")
    d0 = str(tmp_path / "d0.db")
    counts = build(d0, Molecules(smiles=str(smi), conformers=1), MMFF_HERE, quiet=True)
    assert (counts["labelled"], counts["duplicates in input"], counts["skipped (already in db)"]) == (2, 1, 0)
    assert D.count_rows(d0) == 2
    counts = build(d0, Molecules(smiles=str(smi), conformers=1), MMFF_HERE, quiet=True)
    assert (counts["labelled"], counts["duplicates in input"], counts["skipped (already in db)"]) == (0, 1, 2)


def test_experiment_plan_from_settings(tmp_path):
    from golf.runs.experiment import Experiment, ExperimentSettings

    ex = Experiment(ExperimentSettings(out=str(tmp_path), preset="smoke", budget=3, oracle=MMFF_HERE))
    assert ex.traj_sizes == [30] and ex.p.budget == 3
    assert list(ex.models()) == ["baseline", "traj-30", "GOLF-3", "MMFF"]
    smoke = EXPERIMENT_PRESETS["smoke"]
    training = ex._training(100, smoke.lr)
    assert (training.features, training.n_rbf, training.batch_size) == (smoke.features, smoke.n_rbf, smoke.batch_size)
    assert training.epochs == 100 * smoke.batch_size  # no data yet: counted as one training conformation
    assert training.seed == 0 and ex._training(100, smoke.lr, seed=2).seed == 2


def test_experiment_plan_with_training_seeds(tmp_path):
    """Further training seeds add their own baseline and GOLF rows, paths and stages; seed 0 keeps the
    one-seed names, and traj-N stays single (from the seed-0 baseline)."""
    from golf.runs.experiment import Experiment, ExperimentSettings

    ex = Experiment(ExperimentSettings(out=str(tmp_path), preset="smoke", budget=3, seeds=3, seed=5, oracle=MMFF_HERE))
    assert ex.seeds == (0, 1, 2)
    assert list(ex.models()) == ["baseline", "traj-30", "GOLF-3", "baseline-s1", "GOLF-3-s1", "baseline-s2",
                                 "GOLF-3-s2", "MMFF"]
    assert ex.models()["baseline-s2"] == (tmp_path / "models" / "baseline-s2.pt", 0)
    assert ex.models()["GOLF-3-s1"] == (tmp_path / "golf-s1" / "model.pt", 3)
    assert ex._training(100, 1e-3, seed=2).seed == 7  # offsets added to the run's seed
    (tmp_path / "golf-s1").mkdir()
    (tmp_path / "golf-s1" / "model-at-2.pt").touch()  # a snapshot of seed 1's run
    assert [n for n in ex.models() if n.endswith("-s1")] == ["baseline-s1", "GOLF-2-s1", "GOLF-3-s1"]
    assert EXPERIMENT_PRESETS["standard"].seeds == (0, 1, 2) and EXPERIMENT_PRESETS["quick"].seeds == (0,)
    standard = Experiment(ExperimentSettings(out=str(tmp_path / "std"), preset="standard"))
    assert standard.traj_sizes == [1000, 5000]
    assert [n for n in standard.models() if n.startswith("GOLF")] == ["GOLF-200", "GOLF-200-s1", "GOLF-200-s2"]
    # the block cadence's rounds of n_parallel calls end exactly at the standard preset's snapshots
    p = standard.p
    assert all(round(f * p.budget) % p.n_parallel == 0 for f in p.golf_snapshots)
    with pytest.raises(SettingError, match="starting with 0"):
        dataclasses.replace(EXPERIMENT_PRESETS["smoke"], seeds=(1, 2))


class _StubExecutor:
    """An in-process executor that answers with MMFF: the loop needs submit, poll and n_workers only."""

    n_workers = 1

    def __init__(self):
        from golf.oracles.mmff import MMFFOracle

        self.oracle = MMFFOracle()
        self.waiting: list = []
        self.keys: list = []

    def submit(self, conf, key):
        self.keys.append(key)
        self.waiting.append((key, conf))

    def poll(self, timeout=0.0):
        out = [(key, self.oracle.compute(conf)) for key, conf in self.waiting]
        self.waiting = []
        return out


@pytest.mark.usefixtures("one_torch_thread")
def test_golf_loop_over_a_stub_executor():
    import torch

    from golf.chem import generate_conformers
    from golf.dataset import LabelledData
    from golf.loop import GolfLoop
    from golf.presets import GolfTraining
    from golf.models import ModelEnergyForces, build_model
    from golf.oracles.mmff import MMFFOracle
    from golf.replay import ReplayBuffer
    from golf.trainer import Trainer, prepare_model

    mmff = MMFFOracle()
    confs = [c for i, s in enumerate(["CCO", "CC(=O)C", "OCCO"]) for c in generate_conformers(s, 2, seed=0, mol_id=i)]
    results = [mmff.compute(c) for c in confs]
    d0 = LabelledData.from_conformations(confs, [r.energy for r in results], [r.forces for r in results])
    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=16, n_interactions=1, cutoff=5.0, n_rbf=8)
    prepare_model(model, d0)
    # golf's bounded L-BFGS: the official optimizer's unbounded steps on this untrained model break every
    # structure (the stall guard is tested in test_loop.py)
    config = GolfTraining(budget=5, n_parallel=3, max_episode_steps=4, utd_ratio=2, batch_size=4, seed=0,
                        conf_optimizer="lbfgs")
    trainer = Trainer(model, lr=1e-3, total_steps=config.budget * config.utd_ratio, seed=0)
    buffer = ReplayBuffer(d0, initial_conf_pct=config.initial_conf_pct)
    executor = _StubExecutor()
    seen = []
    progress = []
    loop = GolfLoop(ModelEnergyForces(model), trainer, buffer, d0.conformations(), executor, config,
                    on_result=lambda request, result, used: seen.append((request, result, used)),
                    on_progress=lambda stats, metrics: progress.append(stats.calls_done))
    stats = loop.run()

    assert stats.calls_done == len(seen) == len(executor.keys) == config.budget
    assert len(set(executor.keys)) == config.budget  # one key per genuine-oracle call
    # block cadence: one progress report per result, after its round (3 + 2 calls)
    assert progress == [3, 3, 3, 5, 5] and stats.rounds == 2
    used = sum(u for _, _, u in seen)
    assert len(buffer.new) == used
    # n_parallel * utd_ratio updates after each round that ends with batch_size new labels
    assert stats.updates == config.n_parallel * config.utd_ratio * (used >= config.batch_size)
    assert trainer.step + trainer.n_skipped == stats.updates
    for request, result, _ in seen:  # every request is a conformation of a D0 molecule
        assert result.ok and request.conf.n_atoms in {c.n_atoms for c in confs}
        assert np.isfinite(result.energy)


def _module_names() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    names = {}
    for p in SRC.rglob("*.py"):
        parts = list(p.relative_to(SRC.parent).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = p
    return names


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The golf modules ``name`` imports anywhere in its code (inside functions too: a lazy import is an
    import), except under ``if TYPE_CHECKING:`` (never executed)."""
    import ast

    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    skipped = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
               and "TYPE_CHECKING" in ast.unparse(node.test) for stmt in node.body for n in ast.walk(stmt)}
    out = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in modules}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base)
    return (out & set(modules)) - {name}


def test_no_import_cycle_lazy_imports_included():
    """No module imports, at any depth and even inside a function, a module that imports it back:
    the layers of docs/architecture.md form a DAG."""
    modules = _module_names()
    graph = {n: _imports(n, p, modules) for n, p in modules.items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles = []

    def visit(n: str, path: list[str]) -> None:
        state[n] = 1
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                cycles.append(" -> ".join(path[path.index(m):] + [m]) if m in path else f"{n} -> {m}")
            elif m not in state:
                visit(m, path + [m])
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n, [n])
    assert cycles == []


def test_every_module_imports():
    """Every module imports on its own (an import cycle or a stale path would fail here first)."""
    import importlib

    for name in sorted(_module_names()):
        if name.endswith("__main__"):
            continue
        importlib.import_module(name)


def test_module_names_do_not_collide():
    """A module name appears once in the package, except a command's ``cli/X.py`` over its ``runs/X.py``."""
    from collections import Counter

    counts = Counter(p.name for p in SRC.rglob("*.py") if p.name != "__init__.py")
    repeated = {n for n, k in counts.items() if k > 1}
    paired = {n for n in repeated if (SRC / "cli" / n).exists() and (SRC / "runs" / n).exists() and counts[n] == 2}
    assert repeated - paired == set()


def test_library_errors_name_settings_not_options():
    """No error raised below the CLI names a command-line option: it names the setting (SettingError) or
    the path, and the CLI maps a setting to its option (``golf.cli._types.setting_error``)."""
    import ast

    pending: set[str] = set()
    offenders = []
    for p in SRC.rglob("*.py"):
        rel = p.relative_to(SRC)
        if "cli" in rel.parts or str(rel) in pending:
            continue
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                texts = [c.value for c in ast.walk(node.exc) if isinstance(c, ast.Constant) and isinstance(c.value, str)]
                if any(re.search(r"(^|[\s(])--[a-z]", t) for t in texts):
                    offenders.append(f"{rel}:{node.lineno}")
    assert offenders == []


def test_the_guard_knows_no_command():
    """``golf.runs.guard`` is given the paths a command writes; it parses no command line."""
    text = (SRC / "runs" / "guard.py").read_text()
    assert "argparse" not in text and "args." not in text and not re.search(r"[\"']--[a-z]", text)


def test_a_setting_error_is_reported_on_its_option(capsys, tmp_path):
    """A check across settings fails after parsing: the CLI reports it on the field's option, one line."""
    from golf.cli import main

    smi = tmp_path / "s.smi"
    smi.write_text("CCO\n")
    assert main(["data", "build", "--smiles", str(smi), "--min-heavy", "9", "--max-heavy", "3", "--oracle", "mmff",
                 "--executor", "serial", "--out", str(tmp_path / "d.db")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"golf data: error: argument --min-heavy: 9 is larger than max_heavy 3 (see golf data --help)"]
    assert not (tmp_path / "d.db").exists()


def test_a_setting_error_is_reported_on_the_option_declared_for_its_field():
    """The option that sets a field (``setting_type``) reports its SettingError, whatever its name:
    ``golf conformers --rmsd`` sets ``rmsd_threshold``."""
    from golf.cli import build_parser
    from golf.cli._types import setting_error

    args = build_parser().parse_args(["conformers", "x.smi", "-o", "y.sdf"])
    assert setting_error("conformers", SettingError("rmsd_threshold", "too close"), args) == \
        "golf conformers: error: argument --rmsd: too close (see golf conformers --help)"
    assert setting_error("conformers", SettingError("top_k", "none left"), args) == \
        "golf conformers: error: argument --top-k: none left (see golf conformers --help)"
    assert setting_error("conformers", SettingError("nothing", "x"), args) == "golf conformers: error: nothing: x"


def test_help_is_import_light():
    """``golf --help`` (every command's parser, its settings and their checks) imports neither torch nor RDKit."""
    import subprocess
    import sys

    code = ("import sys\nfrom golf.cli import build_parser\nbuild_parser().parse_args(['train', '--out', 'x'])\n"
            "print(sorted(m for m in ('torch', 'rdkit') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "PYTHONPATH": str(SRC.parent)})
    assert out.stdout.strip() == "[]"


def test_commands_agree_on_device_step_limit_and_threads():
    """Every command's model runs on the same default device ("auto": a GPU when there is one); every NNP
    relaxation has the same step limit; every command that runs a model takes --threads."""
    import golf.cli as cli
    from golf.conformer_search import ConformerSettings
    from golf.optim import DEFAULT_MAX_STEPS
    from golf.optim.state import OptimConfig
    from golf.presets import DEFAULT_DEVICE, Evaluation, Training
    from golf.runs.conformers import ConformersSettings
    from golf.runs.experiment import ExperimentSettings
    from golf.runs.optimize import OptimizeSettings
    from golf.runs.predict import PredictSettings
    from golf.thresholds import NNP_MAX_STEPS

    with_device = [Training, GolfTraining, Evaluation, ExperimentSettings, OptimizeSettings, PredictSettings,
                   ConformersSettings]
    assert DEFAULT_DEVICE == "auto"
    from golf.presets import DEFAULT_MODEL
    from golf.runs.adapt import Adaptation

    assert ConformersSettings.model == PredictSettings.model == Adaptation.model == DEFAULT_MODEL == "GOLF-10k"
    assert {cls.__name__: cls.device for cls in with_device} == {cls.__name__: DEFAULT_DEVICE for cls in with_device}
    assert OptimizeSettings.max_steps == ConformerSettings.max_steps == DEFAULT_MAX_STEPS == \
        OptimConfig.max_steps == NNP_MAX_STEPS
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    for name in ("optimize", "predict", "conformers", "evaluate"):
        flags = {f for a in sub[name]._actions for f in a.option_strings}
        assert {"--device", "--threads"} <= flags, name
