"""Executors: local spawned pool, serial, Dask LocalCluster; worker deaths, timeouts, no torch in workers.

Test doubles: ``DoubleOracle`` below is registered under the name "double" with monkeypatch; the
executor ships the registry entry ("test_executors:DoubleOracle") to its workers, which import this
module (spawned workers inherit sys.path). This module must not import torch.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
import pytest

from golf.conformation import Conformation
from golf.errors import GolfError, OracleUnavailable
from golf.oracles import ORACLES, OracleSpec
from golf.oracles.base import Oracle, OracleResult, RelaxResult
from golf.oracles.executors import make_executor


class DoubleOracle(Oracle):
    """Energy = conf_id; behaviour driven by conf.info: 'die' (always|once:<marker>), 'sleep' seconds,
    'probe' (energy = 1 if torch is imported in the worker, forces[0,0] = OMP_NUM_THREADS)."""

    name = "double"

    @property
    def settings(self) -> dict[str, Any]:
        return {}

    def _compute(self, conf: Conformation) -> OracleResult:
        die = conf.info.get("die")
        if die == "always":
            os._exit(3)
        if isinstance(die, str) and die.startswith("once:"):
            marker = die[5:]
            if not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(3)
        if conf.info.get("sleep"):
            time.sleep(float(conf.info["sleep"]))
        forces = np.zeros((conf.n_atoms, 3))
        if conf.info.get("probe"):
            forces[0, 0] = float(os.environ.get("OMP_NUM_THREADS", "-1"))
            return OracleResult(ok=True, energy=float("torch" in sys.modules), forces=forces)
        return OracleResult(ok=True, energy=float(conf.conf_id), forces=forces)


@pytest.fixture
def double(monkeypatch):
    monkeypatch.setitem(ORACLES, "double", "test_executors:DoubleOracle")
    return OracleSpec("double")


def tiny(conf_id: int, **info: Any) -> Conformation:
    return Conformation(numbers=[1, 1], positions=[[0, 0, 0], [0, 0, 0.74]], conf_id=conf_id, info=info)


def ethanol(seed: int = 0) -> Conformation:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    return Conformation(numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
                        positions=mol.GetConformer().GetPositions(), smiles="CCO",
                        molblock=Chem.MolToMolBlock(mol), conf_id=seed)


def test_local_pool_results_keep_keys(double):
    with make_executor(double, kind="local", n_workers=2) as ex:
        assert ex.n_workers == 2
        for i in range(6):
            ex.submit(tiny(i), key=("mol", i))
        assert ex.n_pending == 6
        got = dict(ex.poll(timeout=30))  # waits for at least one
        assert got
        got.update(ex.as_completed())
        assert ex.n_pending == 0 and ex.poll() == []
    assert sorted(got) == [("mol", i) for i in range(6)]
    assert all(r.ok and r.energy == k[1] for k, r in got.items())


def test_local_pool_duplicate_key_and_bad_task(double):
    with make_executor(double, kind="serial") as ex:
        ex.submit(tiny(0), key="a")
        with pytest.raises(ValueError, match="already pending"):
            ex.submit(tiny(1), key="a")
        with pytest.raises(ValueError, match="unknown task"):
            ex.submit(tiny(1), key="b", task="dance")


def test_workers_never_import_torch_and_set_threads(double):
    with make_executor(double, kind="local", n_workers=1, threads_per_worker=1) as ex:
        # import every oracle module first in the worker, then probe
        ex.submit(ethanol(), key="mmff-warm")
        ex.submit(tiny(0, probe=True), key="probe")
        res = dict(ex.as_completed())
    assert res["probe"].ok and res["probe"].energy == 0.0, "torch imported in a worker"
    assert res["probe"].forces[0, 0] == 1.0  # OMP_NUM_THREADS=1 in the worker


def test_xtb_worker_import_graph_has_no_torch():
    code = (
        "import sys, golf, golf.conformation, golf.oracles, golf.oracles.mmff, golf.oracles.relax, "
        "golf.oracles.executors, golf.oracles.xtb, golf.oracles.dft, golf.units, golf.errors; "
        "assert 'torch' not in sys.modules, 'torch imported'; print('OK')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-2000:]


def test_killed_worker_is_retried_or_reported(double, tmp_path):
    marker = tmp_path / "died-once"
    with make_executor(double, kind="local", n_workers=2, retries=1) as ex:
        ex.submit(tiny(1, die=f"once:{marker}"), key="once")
        ex.submit(tiny(2, die="always"), key="always")
        for i in range(3, 6):
            ex.submit(tiny(i), key=i)
        res = dict(ex.as_completed())
    assert marker.exists()
    assert res["once"].ok and res["once"].energy == 1.0  # retried after the death
    assert not res["always"].ok and "worker died" in res["always"].reason
    assert all(res[i].ok and res[i].energy == i for i in range(3, 6))  # innocent neighbours fine


def test_timeout_is_reported_and_others_survive(double):
    with make_executor(double, kind="local", n_workers=2, timeout=4.0) as ex:
        ex.submit(tiny(0, sleep=120), key="stuck")
        ex.submit(tiny(1, sleep=0.5), key="slowish")
        ex.submit(tiny(2), key="fast")
        t0 = time.monotonic()
        res = dict(ex.as_completed())
        assert time.monotonic() - t0 < 60
    assert not res["stuck"].ok and res["stuck"].reason == "timeout after 4s"
    assert res["slowish"].ok and res["fast"].ok


def test_relax_task_through_pool():
    conf = ethanol(1)
    with make_executor(OracleSpec("mmff"), kind="local", n_workers=1) as ex:
        ex.submit(conf, key="r", task="relax", fmax=0.02, max_steps=200)
        ex.submit(conf.with_positions(np.full((conf.n_atoms, 3), np.nan)), key="bad", task="relax")
        res = dict(ex.as_completed())
    assert isinstance(res["r"], RelaxResult) and res["r"].ok and res["r"].converged
    assert isinstance(res["bad"], RelaxResult) and not res["bad"].ok and "bad geometry" in res["bad"].reason


def test_serial_executor_and_torch_guard(monkeypatch):
    confs = [ethanol(s) for s in range(3)]
    with make_executor(OracleSpec("mmff"), kind="serial") as ex:
        for c in confs:
            ex.submit(c, key=c.conf_id)
        first = ex.poll(timeout=0.0)
        assert len(first) == 1
        rest = dict(ex.as_completed())
    assert sorted([first[0][0], *rest]) == [0, 1, 2]
    monkeypatch.setitem(sys.modules, "torch", sys.modules.get("torch") or object())
    with pytest.raises(GolfError, match="torch"):
        make_executor(OracleSpec("xtb"), kind="serial")


def test_make_executor_rejects_unknown_names():
    with pytest.raises(GolfError, match="executor kind"):
        make_executor(OracleSpec("mmff"), kind="cloud")
    with pytest.raises(OracleUnavailable, match="unknown oracle"):
        make_executor(OracleSpec("nope"), kind="serial")


def test_dask_local_cluster_two_workers(monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    confs = [ethanol(s) for s in range(4)]
    from golf.oracles.executors.worker import _worker_probe
    from golf.oracles.mmff import MMFFOracle

    with make_executor(OracleSpec("mmff"), kind="dask", n_workers=2, timeout=60) as ex:
        assert ex.n_workers == 2
        for c in confs:
            ex.submit(c, key=("c", c.conf_id))
        ex.submit(confs[0], key="relax", task="relax", fmax=0.05)
        res = dict(ex.as_completed())
        probes = ex.client.run(_worker_probe)
    assert len(probes) == 2 and not any(p["torch"] for p in probes.values())
    assert all(p["OMP_NUM_THREADS"] == "1" for p in probes.values())
    ref = MMFFOracle()
    for c in confs:
        r = res[("c", c.conf_id)]
        assert r.ok and r.energy == pytest.approx(ref.compute(c).energy, abs=1e-8)
    assert res["relax"].ok and res["relax"].converged


@pytest.mark.parametrize("address", ["not a url::/", "tcp://a b:8786", "http://host:8786", "host:99999", ""])
def test_malformed_scheduler_address_is_refused_up_front(address, monkeypatch):
    from golf.errors import InputError
    from golf.oracles.executors.dask import check_scheduler_address

    with pytest.raises(InputError, match="not a Dask scheduler address"):
        check_scheduler_address(address)
    if address:
        monkeypatch.setenv("DASK_SCHEDULER_ADDRESS", address)  # the environment's address is checked too
        with pytest.raises(InputError, match="not a Dask scheduler address"):
            make_executor(OracleSpec("mmff"), kind="dask")


@pytest.mark.parametrize("address", ["tcp://10.0.0.1:8786", "10.0.0.1:8786", "localhost", "tls://[::1]:8786",
                                     "scheduler-0.cluster.local:8786", "inproc://10.0.0.1/123/1"])
def test_scheduler_address_forms_accepted(address):
    from golf.oracles.executors.dask import check_scheduler_address

    assert check_scheduler_address(address) == address


def test_dask_client_that_fails_to_start_is_one_error_and_exits_at_once(tmp_path):
    """Past the form check (bypassed here), a scheduler address Dask refuses gives one GolfError, and
    the process exits at once: the half-made client must not wait a minute for its event loop at exit."""
    pytest.importorskip("distributed")
    code = (
        "import golf.oracles.executors.dask as d\n"
        "d.check_scheduler_address = lambda a: a\n"
        "from golf.errors import GolfError\n"
        "from golf.oracles import OracleSpec\n"
        "try:\n"
        "    d.DaskExecutor(OracleSpec('mmff'), scheduler='not a url::/')\n"
        "except GolfError as exc:\n"
        "    print('refused:', exc)\n"
    )
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.startswith("refused: cannot connect"), out.stderr
    assert "Traceback" not in out.stderr and time.monotonic() - t0 < 45, out.stderr


@pytest.mark.slow
def test_dask_timeout_reported(double, monkeypatch):
    pytest.importorskip("distributed")
    monkeypatch.delenv("DASK_SCHEDULER_ADDRESS", raising=False)
    with make_executor(double, kind="dask", n_workers=2, timeout=2.0) as ex:
        ex.submit(tiny(0, sleep=6), key="stuck")
        ex.submit(tiny(1), key="fast")
        res = dict(ex.as_completed())
    assert res["fast"].ok and res["fast"].energy == 1.0, res["fast"].reason
    assert not res["stuck"].ok and res["stuck"].reason == "timeout after 2s"


def test_main_script_importing_torch_does_not_leak_into_workers(tmp_path):
    """A user script that imports torch at top level (no __main__ guard) must not pull torch
    into the spawned oracle workers (they would otherwise re-import the script)."""
    pytest.importorskip("torch")
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    script = tmp_path / "user_script.py"
    script.write_text(
        "import sys, torch\n"
        f"sys.path.insert(0, {tests_dir!r})\n"
        "from golf.oracles import ORACLES, OracleSpec\n"
        "from golf.oracles.executors import make_executor\n"
        "from golf.conformation import Conformation\n"
        "ORACLES['double'] = 'test_executors:DoubleOracle'\n"
        "c = Conformation(numbers=[1, 1], positions=[[0, 0, 0], [0, 0, 0.74]], info={'probe': True})\n"
        "with make_executor(OracleSpec('double'), kind='local', n_workers=1) as ex:\n"
        "    ex.submit(c, key=0)\n"
        "    (k, r), = list(ex.as_completed())\n"
        "print('TORCH_IN_WORKER', r.energy)\n"
    )
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180)
    assert "TORCH_IN_WORKER 0.0" in out.stdout, out.stdout + out.stderr[-2000:]
