"""The executor interface: submit oracle calls by key, poll or stream their results."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Iterator

from golf.conformation import Conformation
from golf.errors import GolfError
from golf.oracles.base import OracleSpec

TASKS = ("compute", "energy", "relax")


@dataclass
class Call:
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
        self._pending: dict[Hashable, Call] = {}
        self._closed = False

    # -- public ---------------------------------------------------------------------------------
    def submit(self, conf: Conformation, key: Hashable, task: str = "compute", **task_kwargs: Any) -> None:
        """Queue one call. ``key`` identifies it in results (must be unique among pending calls).

        task="compute": energy (eV) and forces (eV/A) -> OracleResult.
        task="energy": the energy alone (eV; forces None; cheaper for DFT) -> OracleResult.
        task="relax": relaxation with ``fmax`` (eV/A) / ``max_steps`` -> RelaxResult.
        """
        if self._closed:
            raise GolfError("executor is closed")
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
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
        call = Call(key=key, payload=payload)
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
    def _submit(self, call: Call) -> None:
        raise NotImplementedError

    def _poll(self, timeout: float | None) -> list[tuple[Hashable, Any]]:
        raise NotImplementedError

    def _finish(self, key: Hashable, result: Any) -> tuple[Hashable, Any]:
        self._pending.pop(key, None)
        return key, result
