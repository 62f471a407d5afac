"""``DaskExecutor``: oracle calls on a Dask cluster (see ``golf.oracles.executors``)."""
from __future__ import annotations

import itertools
import os
import re
import time
from collections import deque
from typing import Any, Hashable

from golf.errors import GolfError, InputError
from golf.oracles.base import OracleSpec
from golf.oracles.executors.executor import Call, OracleExecutor
from golf.oracles.executors.worker import THREAD_VARS, HiddenMain, failure, run_task


#: the transport schemes of a Dask scheduler address
SCHEMES = ("tcp", "tls", "ws", "wss", "ucx", "inproc")
_ADDRESS = re.compile(
    r"(?:(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://)?"
    r"(?P<host>[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
    r"(?::(?P<port>[0-9]{1,5}))?/?")


def check_scheduler_address(address: str) -> str:
    """``address`` if it is a Dask scheduler address (``[SCHEME://]HOST[:PORT]``, SCHEME one of
    ``SCHEMES``, an IPv6 host in brackets), else InputError. Only the form is checked (no
    connection, no import of distributed): Dask itself raises a ValueError for a malformed one, and
    leaves behind a client whose clean-up waits a minute at exit."""
    text = str(address).strip()
    m = _ADDRESS.fullmatch(text)
    scheme = (m.group("scheme") or "tcp").lower() if m else ""
    if text.lower().startswith("inproc://") and len(text) > len("inproc://") and " " not in text:
        return text
    if m is None or scheme not in SCHEMES or (m.group("port") is not None and not 0 < int(m.group("port")) < 65536):
        raise InputError(f"{address!r} is not a Dask scheduler address ([{'|'.join(SCHEMES[:-1])}://]HOST[:PORT], "
                         "e.g. tcp://10.0.0.1:8786)")
    return text


def _abandon(client_error: BaseException, distributed: Any) -> None:
    """Mark the client a failed ``distributed.Client(...)`` left half-made as closed: its finaliser
    would otherwise wait a minute at exit for an event loop that is gone."""
    tb = client_error.__traceback__
    while tb is not None:
        client = tb.tb_frame.f_locals.get("self")
        if isinstance(client, distributed.Client):
            try:
                client.status = "closed"
                client._loop_runner.stop()
            except Exception:  # noqa: BLE001 - best effort on a broken object
                pass
            return
        tb = tb.tb_next


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
        if address:
            address = check_scheduler_address(address)
        self._cluster = None
        thread_env = {v: str(self.threads_per_worker) for v in THREAD_VARS}
        try:
            if address:
                self._client = distributed.Client(address, set_as_default=False)
            else:
                with HiddenMain():  # worker processes must not re-import a torch-importing script
                    self._cluster = distributed.LocalCluster(
                        n_workers=int(n_workers), threads_per_worker=1, processes=True,
                        dashboard_address=None, env=thread_env, silence_logs=40,
                    )
                self._client = distributed.Client(self._cluster, set_as_default=False)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is reported in one line
            _abandon(exc, distributed)
            if self._cluster is not None:
                self._cluster.close()
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise GolfError(f"cannot connect to the Dask scheduler {address!r}: {first}") from None
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

    def _submit(self, call: Call) -> None:
        self._queue.append(call.key)
        self._fill()

    def _fill(self) -> None:
        cap = self._capacity() if self._queue else None
        while self._queue and (cap is None or len(self._futures) < cap):
            key = self._queue.popleft()
            call = self._pending[key]
            call.started = time.monotonic()
            dkey = f"golf-{self.spec.name}-{os.getpid()}-{id(self)}-{next(self._counter)}"
            fut = self._client.submit(run_task, call.payload, key=dkey, pure=False, retries=self.retries)
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
                return self._finish(key, failure(task, f"{type(exc).__name__}: {exc}".splitlines()[0]))
        exc = fut.exception() if fut.status == "error" else None
        if exc is not None and type(exc).__name__ == "KilledWorker":
            reason = f"worker died (KilledWorker: {exc})".splitlines()[0]
        elif exc is not None:
            reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        else:
            reason = f"dask future {fut.status}"
        return self._finish(key, failure(task, reason))

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
                        out.append(self._finish(key, failure(task, f"timeout after {self.timeout:g}s")))
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
        if not hasattr(self, "_client"):  # never connected: nothing to shut down
            return
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
