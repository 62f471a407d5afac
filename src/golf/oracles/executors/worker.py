"""The worker side of oracle executors: runs in spawned processes and Dask workers.

Imports nothing heavy and never torch (tblite and torch's bundled libgomp conflict): each call builds
its oracle from the spec (cached per worker), computes or relaxes, and never raises.
"""
from __future__ import annotations

import os
import sys
import time
from typing import Any

from golf.conformation import Conformation
from golf.oracles.base import OracleResult, OracleSpec, RelaxResult

THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
#: Oracles whose backends must never share a process with torch.
TORCH_INCOMPATIBLE = ("xtb", "dft")

_ORACLE_CACHE: dict[tuple[str, str], Any] = {}


def _set_threads(threads: int) -> None:
    for var in THREAD_VARS:
        os.environ[var] = str(int(threads))


#: seconds between two checks of a worker that its parent process is still alive.
PARENT_POLL = 1.0


def init_worker(threads: int, parent_pid: int | None = None, death_signal: bool = False) -> None:
    """ProcessPool initializer: thread env before any backend import; exit with the parent.

    Args:
        threads: OpenMP/BLAS threads of this worker.
        parent_pid: the process that started the pool; the worker exits when it is gone (a parent
            killed with SIGKILL cannot shut its pool down, and orphaned workers would go on using CPU).
        death_signal: also ask Linux for SIGKILL when the parent dies (``PR_SET_PDEATHSIG``); only
            when the pool was started from the parent's main thread, since the signal follows the
            thread that started the worker.
    """
    _set_threads(threads)
    ignore_interrupts()
    if parent_pid is not None:
        exit_with_parent(int(parent_pid), death_signal)


def ignore_interrupts() -> None:
    """Ignore SIGINT in a worker. Ctrl-C in a terminal reaches the whole process group: the parent
    handles it (and shuts its workers down); a worker that took it too would print a
    ``KeyboardInterrupt`` traceback from the middle of its call."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def exit_with_parent(parent_pid: int, death_signal: bool = False) -> None:
    """End this process soon after ``parent_pid`` is gone: at once on Linux with ``death_signal``
    (prctl PR_SET_PDEATHSIG), and within ``PARENT_POLL`` seconds everywhere (a daemon thread that
    watches the parent pid; a re-parented process sees another ``getppid()``)."""
    import signal
    import threading

    if death_signal and sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            PR_SET_PDEATHSIG = 1
            libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watcher below suffices
            pass
    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(PARENT_POLL)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="golf-parent-watch", daemon=True).start()


def _spec_key(spec: OracleSpec) -> tuple[str, str]:
    import json

    return spec.name, json.dumps(spec.settings, sort_keys=True, default=str)


def failure(task: str, reason: str, seconds: float = 0.0):
    if task == "relax":
        return RelaxResult(ok=False, reason=reason, seconds=seconds)
    return OracleResult.failure(reason, seconds)


def run_task(payload: dict[str, Any]):
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
        if spec.name in TORCH_INCOMPATIBLE and "torch" in sys.modules:
            return failure(task, f"{spec.name} cannot run in a worker that imported torch")
        key = _spec_key(spec)
        oracle = _ORACLE_CACHE.get(key)
        if oracle is None:
            oracle = spec.build()
            _ORACLE_CACHE[key] = oracle
        conf: Conformation = payload["conf"]
        kwargs = payload.get("kwargs") or {}
        if task == "relax":
            return oracle.relax(conf, **kwargs)
        if task == "energy":
            return oracle.compute_energy(conf)
        return oracle.compute(conf)
    except Exception as exc:  # oracle construction errors (missing backend...) -> per-call failure
        return failure(
            task, f"{type(exc).__name__}: {exc}".splitlines()[0], time.perf_counter() - t0
        )


def _worker_probe() -> dict[str, Any]:
    """Diagnostics from a worker: pid, whether torch is imported, thread env (used in tests)."""
    return {
        "pid": os.getpid(),
        "torch": "torch" in sys.modules,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }


class HiddenMain:
    """Hide the parent's ``__main__`` from spawned children while they start, and start them with
    SIGINT ignored (a disposition a new process inherits; Python then installs no
    ``KeyboardInterrupt`` handler), so a Ctrl-C while a worker starts up cannot reach it either.

    A spawned child normally re-imports the parent's main script (as ``__mp_main__``); a training
    script that imports torch at top level would thereby pull torch into every oracle worker. The
    workers only need ``golf.oracles.executors.worker.run_task``, so the main module is not needed there.
    """

    def __enter__(self):
        import signal
        import threading

        self._sigint = None
        if threading.current_thread() is threading.main_thread():  # only it may set handlers
            self._sigint = signal.signal(signal.SIGINT, signal.SIG_IGN)
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
        if self._sigint is not None:
            import signal

            signal.signal(signal.SIGINT, self._sigint)
        return False
