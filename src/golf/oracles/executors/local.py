"""Executors on this machine: ``SerialExecutor`` (in this process) and ``LocalExecutor`` (a spawned
process pool that survives worker deaths and enforces per-call timeouts); see ``golf.oracles.executors``."""
from __future__ import annotations

import sys
import time
from collections import deque
from typing import Any, Hashable

from golf.errors import GolfError
from golf.oracles.base import OracleSpec
from golf.oracles.executors.executor import Call, OracleExecutor
from golf.oracles.executors.worker import TORCH_INCOMPATIBLE, HiddenMain, failure, init_worker, run_task


#: fresh pools ``LocalExecutor`` starts in a row for a pool that broke with no call in flight.
MAX_FRESH_POOLS = 3


class SerialExecutor(OracleExecutor):
    """Computes in this process, lazily, when results are polled. ``timeout`` is not enforced."""

    kind = "serial"

    def __init__(self, spec: OracleSpec, **kw: Any) -> None:
        super().__init__(spec, **kw)
        if spec.name in TORCH_INCOMPATIBLE and "torch" in sys.modules:
            raise GolfError(
                f"the serial executor cannot run oracle {spec.name!r} in a process that imported torch; "
                "use kind='local' or 'dask'"
            )
        self._queue: deque[Hashable] = deque()

    @property
    def n_workers(self) -> int:
        return 1

    def _submit(self, call: Call) -> None:
        self._queue.append(call.key)

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, Any]]:
        out = []
        t0 = time.perf_counter()
        while self._queue:
            key = self._queue.popleft()
            out.append(self._finish(key, run_task(self._pending[key].payload)))
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
        """A pool whose workers exit when this process dies (``worker.exit_with_parent``)."""
        import multiprocessing as mp
        import os
        import threading
        from concurrent.futures import ProcessPoolExecutor

        # workers are started by the thread that submits: the death signal only from the main thread
        main_thread = threading.current_thread() is threading.main_thread()
        return ProcessPoolExecutor(
            max_workers=self._n_workers,
            mp_context=mp.get_context("spawn"),
            initializer=init_worker,
            initargs=(self.threads_per_worker, os.getpid(), main_thread),
        )

    def _kill_pool(self) -> None:
        """Terminate the pool's worker processes (stuck or broken) and drop the pool."""
        pool, self._pool = self._pool, None
        if pool is not None:
            kill_pool(pool)

    def _submit(self, call: Call) -> None:
        self._queue.append(call.key)
        self._fill()

    def _fill(self) -> None:
        """Hand queued calls to the pool, at most n_workers in flight; suspects run alone.

        A pool found broken at submission (a worker died since the last poll) is not an error: the
        call goes back to the queue; the calls in flight come back broken and ``_handle_death``
        replaces the pool and retries them; with none in flight the pool is replaced here, at most
        ``MAX_FRESH_POOLS`` times in a row.
        """
        from concurrent.futures.process import BrokenProcessPool

        fresh = 0
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
            try:
                with HiddenMain():  # worker processes are started inside submit()
                    fut = self._pool.submit(run_task, call.payload)
            except BrokenProcessPool:
                self._queue.appendleft(key)
                if self._running:
                    break  # they come back broken: _poll's death handling replaces the pool
                fresh += 1
                if fresh > MAX_FRESH_POOLS:
                    raise GolfError(f"oracle worker processes keep dying as they start ({fresh} pools)") from None
                self._kill_pool()
                continue
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
                        key, failure(self._pending[key].payload["task"], f"{type(exc).__name__}: {exc}")))
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
                out.append(self._finish(key, failure(
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
            out.append(self._finish(k, failure(call.payload["task"], f"timeout after {self.timeout:g}s")))
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


def kill_pool(pool: Any) -> None:
    """End a ``ProcessPoolExecutor`` now: its worker processes terminated (killed if they do not go within 5 s),
    pending calls cancelled. For stuck or broken pools, and after Ctrl-C."""
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
