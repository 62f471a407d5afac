"""NNP relaxation of many conformations in several processes, each with one torch thread.

Why processes: on the CPU, the model's ops on drug-sized batches are too small for torch's intra-op threads to
pay. One process with two threads spent about 20% more CPU than two one-thread processes on the same ten
drugs, and it was slower on the clock too (``bench/results/conformers_drugs.json``, ``docs/results.md`` §12). So a
long CPU relaxation is cut into chunks that a pool of spawned processes relaxes in turn (``golf.optim.relax`` in
each, the same optimizer and settings). Each conformation's relaxation is independent of the others in its
batch, so the records are those of one process up to float rounding. The memory budget of one process is shared
among the processes, less the fixed size of each extra one (``worker_budget``).

Workers start with ``golf.oracles.executors.worker.init_worker``: thread variables set before torch is
imported, SIGINT ignored (the parent handles Ctrl-C and ends them), exit with the parent.
"""
from __future__ import annotations

import math
import os
from typing import Any, Callable, Sequence

from golf.conformation import Conformation
from golf.errors import GolfError

#: A process pays off from about this many conformations per process: starting one (imports, model) costs a few
#: CPU seconds, about the relaxation of 5-10 drug-sized conformations with one thread.
MIN_CONFORMATIONS_PER_PROCESS = 32
#: Conformations per task handed to a worker: small enough that the processes finish together, large enough for
#: batches of the memory-sized width.
CHUNK = 24

__all__ = ["MIN_CONFORMATIONS_PER_PROCESS", "usable_cores", "auto_processes", "worker_budget", "relax_in_processes",
           "relax_nnp"]


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def auto_processes(n_conformations: int, device: Any = "cpu", cores: int | None = None) -> int:
    """Processes for relaxing ``n_conformations`` when the user gave none: one per usable core on the CPU, but at
    most one per ``MIN_CONFORMATIONS_PER_PROCESS`` conformations; 1 on a GPU (one device, one process)."""
    import torch

    if torch.device(device).type != "cpu":
        return 1
    cores = usable_cores() if cores is None else int(cores)
    return max(1, min(cores, n_conformations // MIN_CONFORMATIONS_PER_PROCESS))


def worker_budget(processes: int, total: int | None = None) -> int:
    """Bytes for one batch in each of ``processes`` workers: the budget of one process (``total``, default
    ``golf.batch.DEFAULT_MEMORY_BUDGET``) less the fixed size of every process beyond the first
    (``golf.batch.PROCESS_BYTES``), shared equally; so the processes together take about the memory one would."""
    from golf.batch import DEFAULT_MEMORY_BUDGET, PROCESS_BYTES

    total = DEFAULT_MEMORY_BUDGET if total is None else int(total)
    return max(1, (total - (processes - 1) * PROCESS_BYTES) // processes)


# ---------------------------------------------------------------------------------------------- worker side

_WORKER: dict[str, Any] = {}


def _init(threads: int, parent_pid: int, queue: Any, model: Any, device: str, dtype: str,
          budget: int) -> None:
    from golf.oracles.executors.worker import init_worker

    init_worker(threads, parent_pid)  # thread variables before torch is imported
    _WORKER.update(queue=queue, model=model, device=device, dtype=dtype, budget=budget, threads=threads)


class _Report:
    """The progress callback of a worker's ``relax``: finished conformations (and the worker's batch width)
    go to the parent through the queue."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue

    def __call__(self, k: int) -> None:
        self.queue.put(("done", os.getpid(), int(k)))

    def set_concurrency(self, n: int | None) -> None:
        self.queue.put(("width", os.getpid(), int(n or 1)))


def _relax_chunk(items: list[tuple[Any, Any, int, int]], kwargs: dict[str, Any]) -> list[Any]:
    """Relax one chunk in a worker: ``items`` are (numbers, positions, charge, multiplicity)."""
    from golf.models import ModelEnergyForces
    from golf.optim import relax
    from golf.runs.batch_run import load_nnp

    if "potential" not in _WORKER:
        _WORKER["potential"], _WORKER["dev"], _WORKER["dt"], _ = load_nnp(
            _WORKER["model"], _WORKER["device"], _WORKER["dtype"], _WORKER["threads"])
    confs = [Conformation(z, x, charge=q, multiplicity=m) for z, x, q, m in items]
    return relax(ModelEnergyForces(_WORKER["potential"]), confs, device=_WORKER["dev"], dtype=_WORKER["dt"],
                 memory_budget=_WORKER["budget"], progress=_Report(_WORKER["queue"]), **kwargs)


# ---------------------------------------------------------------------------------------------- parent side

def relax_in_processes(
    model: Any,
    confs: Sequence[Conformation],
    processes: int,
    threads: int = 1,
    device: str = "cpu",
    dtype: str = "float32",
    progress: Callable[[int], None] | None = None,
    chunk: int = CHUNK,
    **relax_kwargs: Any,
) -> list[Any]:
    """``golf.optim.relax`` of ``confs`` by ``processes`` spawned processes; one ``RelaxRecord`` per input, in order.

    Args:
        model: what each worker loads (``golf.runs.batch_run.load_nnp``): a model name, a checkpoint path or a
            ``golf.models.Potential`` (pickled to the workers).
        confs: conformations (numbers, positions, charge and multiplicity are sent; nothing else is needed).
        processes: worker processes (>= 1; 1 still relaxes in a worker, which callers avoid).
        threads: torch threads per worker.
        device, dtype: of the model in the workers ("cpu", "float32"...).
        progress: called with the number of conformations that just finished; a golf progress bar (or a
            ``golf.progress.ProgressHook``) is also told how many run at once, over all workers.
        chunk: conformations per task.
        **relax_kwargs: ``golf.optim.relax`` settings (method, fmax, max_steps, batch_size...).

    Raises:
        GolfError: a worker process died (out of memory, killed); one line that says what to try.
    """
    import multiprocessing as mp
    import queue as queue_mod
    import time
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    from golf.optim.driver import tell_concurrency
    from golf.oracles.executors.local import kill_pool

    if not confs:
        return []
    processes = max(1, int(processes))
    budget = worker_budget(processes, relax_kwargs.pop("memory_budget", None))
    ctx = mp.get_context("spawn")
    reports = ctx.Queue()
    items = [(c.numbers, c.positions, int(c.charge), int(c.multiplicity)) for c in confs]
    n_chunks = max(processes, math.ceil(len(items) / max(1, int(chunk))))
    bounds = [round(k * len(items) / n_chunks) for k in range(n_chunks + 1)]
    widths: dict[int, int] = {}
    reported = 0  # conformations whose progress arrived

    def drain(patience: float = 0.0) -> None:
        """Pass the workers' reports on; for up to ``patience`` seconds, until every conformation is reported (a
        report can arrive after its chunk's result: the queue's feeder thread and the result pipe are not ordered)."""
        nonlocal reported
        deadline = time.monotonic() + patience
        while True:
            left = deadline - time.monotonic()
            try:
                if patience and reported < len(items) and left > 0:
                    kind, pid, n = reports.get(timeout=left)
                else:
                    kind, pid, n = reports.get_nowait()
            except (queue_mod.Empty, OSError, EOFError):
                return
            if kind == "width":
                widths[pid] = n
                tell_concurrency(progress, sum(widths.values()))
            else:
                reported += n
                if progress is not None:
                    progress(n)

    pool = ProcessPoolExecutor(max_workers=processes, mp_context=ctx, initializer=_init,
                               initargs=(int(threads), os.getpid(), reports, model, str(device), str(dtype), budget))
    records: list[Any] = [None] * len(items)
    try:
        futures = {pool.submit(_relax_chunk, items[a:b], relax_kwargs): a for a, b in zip(bounds, bounds[1:]) if b > a}
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
            drain()
            for fut in done:
                start = futures[fut]
                for k, rec in enumerate(fut.result()):
                    records[start + k] = rec
        drain(patience=10.0)
    except BrokenProcessPool:
        raise GolfError("a relaxation process died (out of memory or killed); try fewer processes or a smaller "
                        "batch size") from None
    finally:
        kill_pool(pool)  # after Ctrl-C or an error; after a normal end the workers are idle
        reports.close()
    return records


def relax_nnp(model: Any, potential: Any, confs: Sequence[Conformation], processes: int | None = None,
              threads: int | None = None, device: Any = "cpu", dtype: Any = None,
              **relax_kwargs: Any) -> tuple[list[Any], int]:
    """Relax ``confs`` with an NNP in this process, or in ``processes`` workers (None: ``auto_processes``);
    ``(records, processes used)``.

    Args:
        model: what workers load (a name, a path or the ``Potential`` itself); potential: the loaded model, for a
            relaxation in this process.
        threads: torch threads per worker (None: the usable cores shared among the workers); in this process the
            caller's setting stands.
        device, dtype: torch device and dtype of ``potential``.
        **relax_kwargs: ``golf.optim.relax`` settings, ``progress`` included.
    """
    import torch

    from golf.models import ModelEnergyForces
    from golf.optim import relax

    dtype = dtype or torch.float32
    n = processes or auto_processes(len(confs), device)
    if n <= 1:
        return relax(ModelEnergyForces(potential), confs, device=device, dtype=dtype, **relax_kwargs), 1
    per = threads or max(1, usable_cores() // n)
    name = str(dtype).rsplit(".", 1)[-1]  # torch.float32 -> "float32"
    return relax_in_processes(model, confs, n, threads=per, device=str(device), dtype=name, **relax_kwargs), n
