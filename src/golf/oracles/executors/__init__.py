"""Run many oracle calls behind one futures-style interface: serial, local process pool, or Dask.

Modules: ``worker`` (what runs in a worker process), ``base`` (the interface), ``local`` (serial and
process pool), ``dask``; ``make_executor`` here picks one.

Usage::

    from golf.oracles import OracleSpec
    from golf.oracles.executors import make_executor

    with make_executor(OracleSpec("xtb"), kind="local", n_workers=2, timeout=600) as ex:
        for i, conf in enumerate(confs):
            ex.submit(conf, key=i)                 # task="relax" relaxes (fmax=, max_steps=); "energy": energy only
        for key, result in ex.as_completed():      # or ex.poll(timeout) inside a training loop
            ...                                    # OracleResult / RelaxResult, ok=False + reason on failure

Kinds:

* ``"local"`` (default for parallel work): a ``concurrent.futures.ProcessPoolExecutor`` with the
  *spawn* start method. Each worker sets ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` /
  ``OPENBLAS_NUM_THREADS`` to ``threads_per_worker`` before any backend is imported, builds the
  oracle once per spec and caches it. Workers never import torch (tblite and torch's bundled libgomp
  conflict). At most ``n_workers`` calls are handed to the pool at a time, so a call's timeout is
  measured from when a worker picks it up. A worker that dies (segfault, OOM kill, ``os._exit``)
  breaks the pool: the pool is recreated and the calls that were in flight are resubmitted. Calls
  that were in flight together at a death are rerun one at a time, so a death is only charged to a
  call that was running alone; a call charged ``retries + 1`` deaths is reported as
  ``OracleResult(ok=False, reason="worker died ...")``; innocent neighbours are not blamed. A call exceeding ``timeout`` seconds is reported as failed
  (``"timeout after Xs"``, not retried: a deterministic computation would time out again) and the
  pool is recreated to kill the stuck worker, resubmitting the other in-flight calls.
* ``"dask"``: a ``distributed.Client`` connected to ``scheduler`` (or the ``DASK_SCHEDULER_ADDRESS``
  environment variable); otherwise a ``LocalCluster(n_workers, threads_per_worker=1,
  processes=True)`` is started (and closed with the executor). Every pending future is kept in a
  dict (a dropped Dask future is cancelled) and finished ones stream back through
  ``distributed.as_completed``. Dask reschedules tasks of workers that die; a task that
  kills ``distributed.scheduler.allowed-failures`` workers comes back as a failure (``KilledWorker``).
  With ``timeout`` set, only as many calls as the cluster has threads are submitted at a time, and a
  call running longer is cancelled and reported as failed (Dask cannot interrupt a running Python
  call: the worker thread finishes it in the background).
* ``"serial"``: computes in this process when ``poll``/``as_completed`` is called (MMFF, tests). xTB
  and DFT are refused with a ``GolfError`` in a process that has imported torch.

Clusters (SLURM, PBS, ...) with dask-jobqueue -- start the cluster yourself and pass its scheduler
address (``golf ... --scheduler ADDRESS`` or ``DASK_SCHEDULER_ADDRESS``)::

    from dask_jobqueue import SLURMCluster
    cluster = SLURMCluster(
        queue="cpu", cores=8, processes=8, memory="16GB", walltime="04:00:00",
        job_script_prologue=["export OMP_NUM_THREADS=1", "source /path/to/venv/bin/activate"],
    )
    cluster.scale(jobs=4)            # or cluster.adapt(minimum_jobs=1, maximum_jobs=10)
    print(cluster.scheduler_address) # tcp://10.0.0.1:8786 -> export DASK_SCHEDULER_ADDRESS=...

(``PBSCluster``, ``SGECluster``, ``LSFCluster`` take the same arguments.) Worker processes must have
golf installed and must not import torch; ``processes == cores`` with one thread per worker process
is the efficient layout for xTB on small molecules.
"""
from __future__ import annotations

from golf.errors import GolfError
from golf.oracles.base import OracleSpec
from golf.oracles.executors.executor import OracleExecutor
from golf.oracles.executors.dask import DaskExecutor
from golf.oracles.executors.local import LocalExecutor, SerialExecutor

_KINDS = {"serial": SerialExecutor, "local": LocalExecutor, "dask": DaskExecutor}


def make_executor(
    spec: OracleSpec,
    kind: str = "local",
    n_workers: int = 2,
    threads_per_worker: int = 1,
    scheduler: str | None = None,
    timeout: float | None = None,
    retries: int = 1,
) -> OracleExecutor:
    """Create an executor for oracle ``spec``.

    Args:
        spec: which oracle (name + settings); built once per worker.
        kind: "local" (spawned process pool), "serial" (this process) or "dask".
        n_workers: worker processes (local pool; LocalCluster when no scheduler is given).
        threads_per_worker: OMP/MKL/OpenBLAS threads in each worker.
        scheduler: Dask scheduler address (kind="dask"); default env DASK_SCHEDULER_ADDRESS, else LocalCluster.
        timeout: seconds per call before it is reported as failed (None = no limit).
        retries: re-executions after a worker death before the call is reported failed.
    """
    if isinstance(spec, str):
        spec = OracleSpec(spec)
    if kind not in _KINDS:
        raise GolfError(f"unknown executor kind {kind!r}; choose one of {', '.join(_KINDS)}")
    from golf.oracles import resolve_oracle

    resolve_oracle(spec.name)  # unknown names fail here, before any worker starts
    common = dict(threads_per_worker=threads_per_worker, timeout=timeout, retries=retries)
    if kind == "serial":
        return SerialExecutor(spec, **common)
    if kind == "local":
        return LocalExecutor(spec, n_workers=n_workers, **common)
    return DaskExecutor(spec, n_workers=n_workers, scheduler=scheduler, **common)


__all__ = [
    "OracleExecutor", "SerialExecutor", "LocalExecutor", "DaskExecutor", "make_executor",
]
