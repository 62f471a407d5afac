"""Relaxation in several processes (``golf.runs.relax_pool``): the records of one process, progress over all
workers, the automatic process count, and ``golf conformers --processes`` end to end."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf.chem import generate_conformers
from golf.models import ModelEnergyForces, load_model
from golf.optim import relax
from golf.runs import relax_pool

from conftest import interrupt_like_a_terminal

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Bar:
    def __init__(self) -> None:
        self.n, self.widths = 0, []

    def __call__(self, k: int) -> None:
        self.n += k

    def set_concurrency(self, n: int | None) -> None:
        self.widths.append(n)


def test_processes_give_the_records_of_one_process_in_input_order():
    confs = [c for smi, seed in (("CCO", 1), ("CC(=O)Nc1ccccc1", 2), ("OCCN", 3))
             for c in generate_conformers(smi, 3, seed, mol_id=seed)]
    model = load_model("GOLF-10k")
    settings = dict(method="lbfgs-precon", fmax=0.05, max_steps=200)
    one = relax(ModelEnergyForces(model), confs, **settings)
    bar = _Bar()
    two = relax_pool.relax_in_processes("GOLF-10k", confs, processes=2, chunk=4, progress=bar, **settings)
    assert len(two) == len(one) == 9
    for a, b, c in zip(one, two, confs):
        assert b.positions.shape == c.positions.shape
        assert b.converged == a.converged and b.reason == a.reason
        assert abs(b.energy - a.energy) < 1e-4  # eV; batch composition changes float rounding only
        assert np.abs(b.positions - a.positions).max() < 1e-3
    assert bar.n == 9  # every finished conformation reported once, over both workers
    assert bar.widths and max(bar.widths) <= 9


def test_a_loaded_model_is_sent_to_the_workers():
    from golf.models import build_model

    torch.manual_seed(0)
    model = build_model("painn", elements=[1, 6, 8], n_atom_basis=8, n_interactions=1)
    confs = generate_conformers("CCO", 4, 0, mol_id=0)
    one = relax(ModelEnergyForces(model), confs, max_steps=20)
    two = relax_pool.relax_in_processes(model, confs, processes=2, chunk=2, max_steps=20)
    assert [round(r.energy, 5) for r in two] == [round(r.energy, 5) for r in one]


@pytest.mark.parametrize("n, cores, device, expected", [
    (10, 2, "cpu", 1),       # a few conformers: starting a process costs more than it saves
    (63, 2, "cpu", 1),
    (64, 2, "cpu", 2),
    (320, 2, "cpu", 2),      # the ten drugs on this machine
    (320, 16, "cpu", 10),    # at least MIN_CONFORMATIONS_PER_PROCESS each
    (5000, 16, "cpu", 16),
    (5000, 16, "cuda", 1),   # one device, one process
])
def test_automatic_process_count(n, cores, device, expected):
    assert relax_pool.MIN_CONFORMATIONS_PER_PROCESS == 32
    assert relax_pool.auto_processes(n, device, cores=cores) == expected


def test_processes_is_checked_like_every_count():
    from golf.errors import SettingError
    from golf.runs.conformers import ConformersSettings

    with pytest.raises(SettingError, match="processes"):
        ConformersSettings(processes=0)


def test_ctrl_c_ends_golf_conformers_and_its_relaxation_processes(tmp_path):
    """Ctrl-C reaches the whole process group: the workers leave it to the parent, which ends them, writes
    nothing and exits 130 with one "interrupted" line."""
    import os
    import signal
    import subprocess
    import sys
    import time

    smi = tmp_path / "m.smi"
    smi.write_text("".join(f"{s} m{k}\n" for k, s in enumerate(
        ["CCCCCCCCOc1ccc(C(=O)NCCN(C)C)cc1", "CC(C)Cc1ccc(C(C)C(=O)NCCCCO)cc1", "COc1ccc(CCNC(=O)CCCCCC)cc1OC"])))
    out, log = tmp_path / "c.sdf", tmp_path / "err.log"
    args = [sys.executable, "-m", "golf", "conformers", str(smi), "-o", str(out), "--n-conformers", "40",
            "--processes", "2"]
    with open(log, "w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        try:
            deadline = time.monotonic() + 120
            while "relax" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)  # the workers have started and relax
            assert proc.poll() is None, log.read_text()
            children = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        except BaseException:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
        interrupt_like_a_terminal(proc, log)
    assert not out.exists() and not out.with_suffix(".csv").exists()
    time.sleep(1)
    assert len(children) >= 2  # the workers (and multiprocessing's resource tracker)
    def running(pid: str) -> bool:  # a zombie (state Z, not yet reaped by pid 1 in a container) has ended
        try:
            return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z"
        except OSError:
            return False

    assert not [pid for pid in children if running(pid)], "a relaxation process outlived its parent"


def test_processes_share_the_memory_budget_of_one_less_their_fixed_size():
    from golf.batch import DEFAULT_MEMORY_BUDGET, PROCESS_BYTES

    assert relax_pool.worker_budget(1) == DEFAULT_MEMORY_BUDGET
    two = relax_pool.worker_budget(2)
    assert 2 * two + PROCESS_BYTES == DEFAULT_MEMORY_BUDGET  # two workers: about one process's footprint
    assert relax_pool.worker_budget(2, 2 * 2**30) == (2 * 2**30 - PROCESS_BYTES) // 2
    assert relax_pool.worker_budget(64) == 1  # never zero: a batch holds at least one conformer



@pytest.mark.parametrize("command, options", [
    ("conformers", ["--n-conformers", "6"]),
    ("optimize", ["--model", "GOLF-10k", "--conformers", "3"]),
])
def test_nnp_commands_give_the_same_results_with_two_processes(tmp_path, command, options):
    from rdkit import Chem

    from golf.cli import main

    smi = tmp_path / "m.smi"
    smi.write_text("CC(=O)Nc1ccc(O)cc1 paracetamol\nCCOC(=O)C(C)N alanine_ester\n")
    records = {}
    for n in (1, 2):
        out = tmp_path / f"{command}{n}.sdf"
        assert main([command, str(smi), "-o", str(out), *options, "--processes", str(n), "--no-progress"]) == 0
        records[n] = [(m.GetProp("_Name"), float(m.GetProp("golf_energy_eV")))
                      for m in Chem.SDMolSupplier(str(out), removeHs=False)]
    assert [name for name, _ in records[1]] == [name for name, _ in records[2]]  # same records, same order
    assert np.allclose([e for _, e in records[1]], [e for _, e in records[2]], atol=1e-4)
