"""Run many oracle calls behind one futures-style interface: serial, local process pool, or Dask.

Usage::

    from golf.oracles import OracleSpec
    from golf.oracles.executors import make_executor

    with make_executor(OracleSpec("xtb"), kind="local", n_workers=2, timeout=600) as ex:
        for i, conf in enumerate(confs):
            ex.submit(conf, key=i)                 # task="relax" relaxes instead (fmax=, max_steps=)
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

import itertools
import os
import sys
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Hashable, Iterator

from golf.conformation import Conformation
from golf.errors import GolfError
from golf.oracles.base import OracleResult, OracleSpec, RelaxResult

_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
_TASKS = ("compute", "relax")
_TORCH_INCOMPATIBLE = ("xtb", "dft")



# ----------------------------------------------------------------------------------------------
# worker side (runs in spawned processes / dask workers; imports nothing heavy, never torch)
# ----------------------------------------------------------------------------------------------

_ORACLE_CACHE: dict[tuple[str, str], Any] = {}


def _set_threads(threads: int) -> None:
    for var in _THREAD_VARS:
        os.environ[var] = str(int(threads))


def _init_worker(threads: int) -> None:
    """ProcessPool initializer: thread env before any backend import."""
    _set_threads(threads)


def _spec_key(spec: OracleSpec) -> tuple[str, str]:
    import json

    return spec.name, json.dumps(spec.settings, sort_keys=True, default=str)


def _failure(task: str, reason: str, seconds: float = 0.0):
    if task == "relax":
        return RelaxResult(ok=False, reason=reason, seconds=seconds)
    return OracleResult.failure(reason, seconds)


def _run_task(payload: dict[str, Any]):
    """Execute one call in a worker: build (cached) oracle, compute or relax, never raise."""
    t0 = time.perf_counter()
    task = payload["task"]
    spec: OracleSpec = payload["spec"]
    threads = payload.get("threads")
    if threads is not None and "OMP_NUM_THREADS" not in os.environ:
        _set_threads(threads)
    try:
        from golf.oracles import ORACLES

        # registry entries added at runtime (plugins, test doubles) travel with the call
        if payload.get("registry_entry") and spec.name not in ORACLES:
            ORACLES[spec.name] = payload["registry_entry"]
        if spec.name in _TORCH_INCOMPATIBLE and "torch" in sys.modules:
            return _failure(task, f"{spec.name} cannot run in a worker that imported torch")
        key = _spec_key(spec)
        oracle = _ORACLE_CACHE.get(key)
        if oracle is None:
            oracle = spec.build()
            _ORACLE_CACHE[key] = oracle
        conf: Conformation = payload["conf"]
        kwargs = payload.get("kwargs") or {}
        if task == "relax":
            return oracle.relax(conf, **kwargs)
        return oracle.compute(conf)
    except Exception as exc:  # oracle construction errors (missing backend...) -> per-call failure
        return _failure(
            task, f"{type(exc).__name__}: {exc}".splitlines()[0], time.perf_counter() - t0
        )


def _worker_probe() -> dict[str, Any]:
    """Diagnostics from a worker: pid, whether torch is imported, thread env (used in tests)."""
    return {
        "pid": os.getpid(),
        "torch": "torch" in sys.modules,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


class _HiddenMain:
    """Hide the parent's ``__main__`` from spawned children while they start.

    A spawned child normally re-imports the parent's main script (as ``__mp_main__``); a training
    script that imports torch at top level would thereby pull torch into every oracle worker. The
    workers only need ``golf.oracles.executors._run_task``, so the main module is not needed there.
    """

    def __enter__(self):
        self._main = sys.modules.get("__main__")
        self._saved = {}
        if self._main is not None:
            for attr in ("__file__", "__spec__"):
                if hasattr(self._main, attr):
                    self._saved[attr] = getattr(self._main, attr)
            try:
                self._main.__spec__ = None
                if hasattr(self._main, "__file__"):
                    del self._main.__file__
            except Exception:
                pass
        return self

    def __exit__(self, *exc):
        if self._main is not None:
            for attr, value in self._saved.items():
                try:
                    setattr(self._main, attr, value)
                except Exception:
                    pass
        return False


# ----------------------------------------------------------------------------------------------
# executor API
# ----------------------------------------------------------------------------------------------


@dataclass
class _Call:
    key: Hashable
    payload: dict[str, Any]
    attempts: int = 0  # worker deaths while this call ran alone (certainly its own)
    suspect: bool = False  # in flight during a worker death shared with other calls
    started: float = 0.0


class OracleExecutor:
    """Futures-style execution of oracle calls (see module docstring). Use as a context manager."""

    kind: str = ""

    def __init__(self, spec: OracleSpec, threads_per_worker: int = 1, timeout: float | None = None,
                 retries: int = 1) -> None:
        from golf.oracles import ORACLES

        self.spec = spec
        self.threads_per_worker = int(threads_per_worker)
        self.timeout = None if timeout is None else float(timeout)
        self.retries = int(retries)
        self._registry_entry = ORACLES.get(spec.name)
        self._pending: dict[Hashable, _Call] = {}
        self._closed = False

    # -- public ---------------------------------------------------------------------------------
    def submit(self, conf: Conformation, key: Hashable, task: str = "compute", **task_kwargs: Any) -> None:
        """Queue one call. ``key`` identifies it in results (must be unique among pending calls).

        task="compute": energy (eV) and forces (eV/A) -> OracleResult.
        task="relax": relaxation with ``fmax`` (eV/A) / ``max_steps`` -> RelaxResult.
        """
        if self._closed:
            raise GolfError("executor is closed")
        if task not in _TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(_TASKS)}")
        if key in self._pending:
            raise ValueError(f"key {key!r} is already pending")
        payload = {
            "spec": self.spec,
            "conf": conf,
            "task": task,
            "kwargs": dict(task_kwargs),
            "threads": self.threads_per_worker,
            "registry_entry": self._registry_entry,
        }
        call = _Call(key=key, payload=payload)
        self._pending[key] = call
        self._submit(call)

    def poll(self, timeout: float | None = 0.0) -> list[tuple[Hashable, Any]]:
        """Results finished so far as (key, result); waits up to ``timeout`` s (None = until one
        is ready) when none is ready yet. Returns [] when nothing is pending."""
        if not self._pending:
            return []
        return self._poll(timeout)

    def as_completed(self) -> Iterator[tuple[Hashable, Any]]:
        """Yield (key, result) for every pending call as it finishes."""
        while self._pending:
            for item in self._poll(None):
                yield item

    @property
    def n_pending(self) -> int:
        """Calls submitted whose result has not been returned yet."""
        return len(self._pending)

    @property
    def n_workers(self) -> int:
        raise NotImplementedError

    def close(self) -> None:
        self._closed = True

    def __enter__(self) -> "OracleExecutor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:  # best effort
        try:
            if not self._closed:
                self.close()
        except Exception:
            pass

    # -- backend hooks --------------------------------------------------------------------------
    def _submit(self, call: _Call) -> None:
        raise NotImplementedError

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, Any]]:
        raise NotImplementedError

    def _finish(self, key: Hashable, result: Any) -> tuple[Hashable, Any]:
        self._pending.pop(key, None)
        return key, result


class SerialExecutor(OracleExecutor):
    """Computes in this process, lazily, when results are polled. ``timeout`` is not enforced."""

    kind = "serial"

    def __init__(self, spec: OracleSpec, **kw: Any) -> None:
        super().__init__(spec, **kw)
        if spec.name in _TORCH_INCOMPATIBLE and "torch" in sys.modules:
            raise GolfError(
                f"the serial executor cannot run oracle {spec.name!r} in a process that imported torch; "
                "use kind='local' or 'dask'"
            )
        self._queue: deque[Hashable] = deque()

    @property
    def n_workers(self) -> int:
        return 1

    def _submit(self, call: _Call) -> None:
        self._queue.append(call.key)

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, Any]]:
        out = []
        t0 = time.perf_counter()
        while self._queue:
            key = self._queue.popleft()
            out.append(self._finish(key, _run_task(self._pending[key].payload)))
            if timeout is None or time.perf_counter() - t0 >= timeout:
                break
        return out

    def close(self) -> None:
        self._queue.clear()
        super().close()


class LocalExecutor(OracleExecutor):
    """Spawned process pool (see module docstring)."""

    kind = "local"

    def __init__(self, spec: OracleSpec, n_workers: int = 2, **kw: Any) -> None:
        super().__init__(spec, **kw)
        if n_workers < 1:
            raise ValueError("n_workers must be >= 1")
        self._n_workers = int(n_workers)
        self._queue: deque[Hashable] = deque()  # waiting for a worker
        self._running: dict[Any, Hashable] = {}  # future -> key
        self._pool = None

    @property
    def n_workers(self) -> int:
        return self._n_workers

    def _new_pool(self):
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        return ProcessPoolExecutor(
            max_workers=self._n_workers,
            mp_context=mp.get_context("spawn"),
            initializer=_init_worker,
            initargs=(self.threads_per_worker,),
        )

    def _kill_pool(self) -> None:
        """Terminate the pool's worker processes (stuck or broken) and drop the pool."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        procs = list(getattr(pool, "_processes", {}) .values()) if getattr(pool, "_processes", None) else []
        for p in procs:
            try:
                p.terminate()
            except Exception:
                pass
        try:
            pool.shutdown(wait=False, cancel_futures=True)
        except Exception:
            pass
        for p in procs:
            try:
                p.join(timeout=5)
                if p.is_alive():
                    p.kill()
            except Exception:
                pass

    def _submit(self, call: _Call) -> None:
        self._queue.append(call.key)
        self._fill()

    def _fill(self) -> None:
        """Hand queued calls to the pool, at most n_workers in flight; suspects run alone."""
        while self._queue and len(self._running) < self._n_workers:
            key = self._queue[0]
            call = self._pending[key]
            if (call.suspect or call.attempts > 0) and self._running:
                break  # a suspect of a worker death waits to run in isolation
            if any(self._pending[k].suspect or self._pending[k].attempts > 0 for k in self._running.values()):
                break  # a suspect is running: keep it alone
            self._queue.popleft()
            if self._pool is None:
                self._pool = self._new_pool()
            call.started = time.monotonic()
            with _HiddenMain():  # worker processes are started inside submit()
                fut = self._pool.submit(_run_task, call.payload)
            self._running[fut] = key

    def _requeue_front(self, keys: list[Hashable]) -> None:
        for k in reversed(keys):
            self._queue.appendleft(k)

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, Any]]:
        from concurrent.futures import FIRST_COMPLETED
        from concurrent.futures import wait as fwait
        from concurrent.futures.process import BrokenProcessPool

        out: list[tuple[Hashable, Any]] = []
        t_end = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        while True:
            self._fill()
            if not self._running:
                break
            now = time.monotonic()
            wait_for = None if t_end is None else max(t_end - now, 0.0)
            if self.timeout is not None:
                first_deadline = min(self._pending[k].started for k in self._running.values()) + self.timeout
                dl = max(first_deadline - now, 0.0)
                wait_for = dl if wait_for is None else min(wait_for, dl)
            done, _ = fwait(list(self._running), timeout=wait_for, return_when=FIRST_COMPLETED)
            broken = False
            for fut in done:
                key = self._running.pop(fut)
                try:
                    out.append(self._finish(key, fut.result()))
                except BrokenProcessPool:
                    broken = True
                    self._running[fut] = key  # handled below with the other victims
                except Exception as exc:  # e.g. unpicklable payload
                    out.append(self._finish(
                        key, _failure(self._pending[key].payload["task"], f"{type(exc).__name__}: {exc}")))
            if broken:
                out.extend(self._handle_death())
            if self.timeout is not None:
                out.extend(self._handle_timeouts())
            if out:
                break
            if t_end is not None and time.monotonic() >= t_end:
                break
        return out

    def _handle_death(self) -> list[tuple[Hashable, Any]]:
        """The pool broke. A call that was alone in flight is charged one attempt (reported once
        attempts exceed ``retries``); calls that shared the death become suspects and are rerun
        one at a time, so only a call that kills a worker on its own is ever charged."""
        out = []
        victims = list(self._running.values())
        self._running.clear()
        self._kill_pool()
        retry = []
        for key in victims:
            call = self._pending[key]
            if len(victims) > 1:
                call.suspect = True
                retry.append(key)
                continue
            call.attempts += 1
            if call.attempts > self.retries:
                n = call.attempts
                out.append(self._finish(key, _failure(
                    call.payload["task"],
                    f"worker died ({n} time{'s' if n > 1 else ''} running this call alone)")))
            else:
                retry.append(key)
        self._requeue_front(retry)
        return out

    def _handle_timeouts(self) -> list[tuple[Hashable, Any]]:
        now = time.monotonic()
        late = [(f, k) for f, k in self._running.items()
                if not f.done() and now - self._pending[k].started >= self.timeout]
        if not late:
            return []
        out = []
        for f, k in late:
            del self._running[f]
            call = self._pending[k]
            out.append(self._finish(k, _failure(call.payload["task"], f"timeout after {self.timeout:g}s")))
        # kill the stuck workers; resubmit the other in-flight calls (not counted as an attempt)
        others = []
        for f, k in list(self._running.items()):
            if f.done():
                continue  # finished meanwhile: collected just below
            others.append(k)
            del self._running[f]
        done_left = {f: k for f, k in self._running.items()}
        for f, k in done_left.items():
            try:
                out.append(self._finish(k, f.result()))
            except Exception:
                others.append(k)
        self._running.clear()
        self._kill_pool()
        self._requeue_front(others)
        return out

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        self._queue.clear()
        self._running.clear()
        if self._pool is not None:
            if self._pending:
                self._kill_pool()
            else:
                pool, self._pool = self._pool, None
                pool.shutdown(wait=True)
        self._pending.clear()


class DaskExecutor(OracleExecutor):
    """Dask distributed execution (see module docstring)."""

    kind = "dask"

    def __init__(self, spec: OracleSpec, n_workers: int = 2, scheduler: str | None = None, **kw: Any) -> None:
        super().__init__(spec, **kw)
        try:
            import distributed
        except ImportError as exc:
            raise GolfError("the dask executor needs dask.distributed: pip install 'golf[cluster]'") from exc
        self._distributed = distributed
        address = scheduler or os.environ.get("DASK_SCHEDULER_ADDRESS")
        self._cluster = None
        thread_env = {v: str(self.threads_per_worker) for v in _THREAD_VARS}
        try:
            if address:
                self._client = distributed.Client(address, set_as_default=False)
            else:
                with _HiddenMain():  # worker processes must not re-import a torch-importing script
                    self._cluster = distributed.LocalCluster(
                        n_workers=int(n_workers), threads_per_worker=1, processes=True,
                        dashboard_address=None, env=thread_env, silence_logs=40,
                    )
                self._client = distributed.Client(self._cluster, set_as_default=False)
        except OSError as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise GolfError(f"cannot connect to the Dask scheduler {address!r}: {exc}") from exc
        self._futures: dict[Hashable, Any] = {}  # key -> distributed.Future (every pending one)
        self._dask_keys: dict[str, Hashable] = {}  # dask key -> our key
        self._ac = distributed.as_completed(loop=self._client.loop)  # finished futures stream in here
        self._queue: deque[Hashable] = deque()
        self._counter = itertools.count()

    @property
    def client(self):
        return self._client

    @property
    def n_workers(self) -> int:
        return max(len(self._client.scheduler_info(n_workers=-1)["workers"]), 1) if not self._closed else 0

    def _capacity(self) -> int | None:
        if self.timeout is None:
            return None
        try:
            return max(sum(self._client.nthreads().values()), 1)
        except Exception:
            return 1

    def _submit(self, call: _Call) -> None:
        self._queue.append(call.key)
        self._fill()

    def _fill(self) -> None:
        cap = self._capacity() if self._queue else None
        while self._queue and (cap is None or len(self._futures) < cap):
            key = self._queue.popleft()
            call = self._pending[key]
            call.started = time.monotonic()
            dkey = f"golf-{self.spec.name}-{os.getpid()}-{id(self)}-{next(self._counter)}"
            fut = self._client.submit(_run_task, call.payload, key=dkey, pure=False, retries=self.retries)
            self._futures[key] = fut
            self._dask_keys[dkey] = key
            self._ac.add(fut)

    def _collect(self, key: Hashable, fut) -> tuple[Hashable, Any]:
        del self._futures[key]
        self._dask_keys.pop(fut.key, None)
        task = self._pending[key].payload["task"]
        if fut.status == "finished":
            try:
                return self._finish(key, fut.result())
            except Exception as exc:
                return self._finish(key, _failure(task, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        exc = fut.exception() if fut.status == "error" else None
        if exc is not None and type(exc).__name__ == "KilledWorker":
            reason = f"worker died (KilledWorker: {exc})".splitlines()[0]
        elif exc is not None:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        else:
            reason = f"dask future {fut.status}"
        return self._finish(key, _failure(task, reason))

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, Any]]:
        out: list[tuple[Hashable, Any]] = []
        t_end = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        sleep = 0.001
        while True:
            self._fill()
            if not self._futures:
                break
            for fut in self._ac.next_batch(block=False) if not self._ac.is_empty() else []:
                key = self._dask_keys.get(fut.key)
                if key is not None and self._futures.get(key) is fut:
                    out.append(self._collect(key, fut))
            if self.timeout is not None:
                now = time.monotonic()
                for key, fut in list(self._futures.items()):
                    if now - self._pending[key].started >= self.timeout and not fut.done():
                        del self._futures[key]
                        self._dask_keys.pop(fut.key, None)
                        fut.cancel()
                        task = self._pending[key].payload["task"]
                        out.append(self._finish(key, _failure(task, f"timeout after {self.timeout:g}s")))
            if out:
                break
            if t_end is not None and time.monotonic() >= t_end:
                break
            time.sleep(sleep)  # as_completed has no blocking-with-timeout; back off up to 20 ms
            sleep = min(sleep * 2, 0.02)
        return out

    def close(self) -> None:
        if self._closed:
            return
        super().close()
        for fut in self._futures.values():
            try:
                fut.cancel()
            except Exception:
                pass
        self._futures.clear()
        self._dask_keys.clear()
        self._ac.clear()
        self._queue.clear()
        self._pending.clear()
        try:
            self._client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


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
