"""A GOLF run on disk (``golf train --golf``): persistence, resume, logging and evaluation around
``golf.loop`` (the algorithm).

RUN_DIR layout:
    oracle.db        every genuine-oracle result, committed the moment it arrives (ASE SQLite; kvp
                     ``call`` orders them, ``used`` = 1 when it entered the replay buffer)
    failures.jsonl   every failed genuine-oracle call (one JSON line each, fsynced)
    checkpoint.pt    model + trainer (optimizer, scheduler, RNG) + counters, written atomically
    log.csv          progress rows (calls, buffer, loss, surrogate share, throughput, held-out errors)
    config.json      the run's configuration
    model.pt         the final model (a golf checkpoint), written when the budget is spent
    model-at-<N>.pt  the model after N oracle calls, saved when the calls first reach an entry of
                     ``GolfTraining.snapshots`` (mid-run: its learning rate has not decayed as a run with
                     budget N would)

Resume (after a kill -9 too): results in oracle.db beyond the checkpoint are added to the buffer and
get the NNP updates an uninterrupted run would have given them (``GolfLoop.catch_up`` replays the
cadence; a round the kill cut short is completed before it trains); failed calls stay counted; calls that were in flight are simply not counted,
so the budget always equals results stored. A resume first checks what it resumes: the settings that
define the run (``RUN_IDENTITY``: oracle and its settings, loop and trainer settings but
``RESUMABLE_KNOBS``, baseline, D0)
must equal config.json's, checkpoint.pt must be intact, and oracle.db and failures.jsonl must hold at
least the calls the checkpoint counted (a lost oracle.db would silently restart the budget).

A run that added nothing to the buffer (every oracle call failed) writes no model.pt and ends with a
``GolfError``; failed calls are counted on stderr with the first reason. A start that fails before
the first oracle result leaves no run directory behind.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from golf.errors import GolfError, InputError, RunExists
from golf.io import append_jsonl, atomic_write_json, count_lines
from golf.loop import GolfLoop, GolfStats, LabelRequest
from golf.presets import GolfTraining, OracleRun
from golf.runs.rundir import RunDir

ORACLE_DB = "oracle.db"
FAILURES = "failures.jsonl"
CHECKPOINT = "checkpoint.pt"
MODEL = "model.pt"
LOG = "log.csv"
CONFIG = "config.json"

#: config.json entries that define a run: resuming with other values would mix two runs in one buffer
RUN_IDENTITY = ("oracle", "oracle_settings", "golf", "baseline", "data", "data_rows", "lr", "lr_min", "clip",
                "w_energy", "w_forces", "eval_fraction", "generic", "generic_rows", "generic_share")
#: loop settings a resume may change: how much work is done per label (oracle calls in flight, NNP
#: updates per label), not what is labelled or by whom
RESUMABLE_KNOBS = ("max_pending", "utd_ratio")


class RunStore(RunDir):
    """Files of one GOLF run (see the module docstring); config, checkpoint and log as every run
    directory's (``golf.runs.rundir``)."""

    def __init__(self, run_dir: str | os.PathLike, oracle_spec: Any) -> None:
        super().__init__(run_dir, CONFIG)
        self.dir = self.path  # made by the first file written into it
        self.oracle_spec = oracle_spec

    def record(self, call: int, request: LabelRequest, result: Any, used: bool) -> None:
        """Persist one genuine-oracle result before it is used."""
        if result.ok:
            from golf.db import append_labelled

            append_labelled(
                self.dir / ORACLE_DB, request.conf, result, self.oracle_spec, key=f"golf-{call}",
                extra_kvp=dict(call=call, used=int(used), reason=request.reason, episode_step=request.episode_step),
            )
        else:
            append_jsonl(self.dir / FAILURES, dict(call=call, reason=result.reason, mol_id=int(request.conf.mol_id),
                                                   conf_id=int(request.conf.conf_id), end=request.reason))

    def stored_results(self) -> list[dict[str, Any]]:
        """Stored successful results in call order (rows of ``golf.db.iter_rows``)."""
        path = self.dir / ORACLE_DB
        if not path.exists():
            return []
        from golf.db import iter_rows
        from golf.runs.guard import check_sqlite

        check_sqlite(path)
        try:
            return sorted(iter_rows(path), key=lambda r: int(r["kvp"]["call"]))
        except Exception as exc:  # noqa: BLE001 - a damaged results db is bad input, named
            raise InputError(f"{path}: unreadable GOLF results ({type(exc).__name__}: {exc})") from None

    def first_failure(self) -> str:
        """The reason of the first failed call in failures.jsonl ("" if none or unreadable)."""
        import json

        try:
            with open(self.dir / FAILURES) as f:
                return str(json.loads(f.readline()).get("reason", ""))
        except (OSError, ValueError, AttributeError):
            return ""

    def n_failures(self) -> int:
        return count_lines(self.dir / FAILURES)

    def has_state(self) -> bool:
        return any((self.dir / f).exists() for f in (ORACLE_DB, FAILURES, CHECKPOINT))


def check_resume(run_dir: Path, current: dict[str, Any]) -> None:
    """GolfError unless the run in ``run_dir`` was started with the ``RUN_IDENTITY`` entries of
    ``current`` (a config.json dict), under the run-directory rules (``golf.runs.rundir``): entries an
    older config.json lacks are not compared, loop settings it lacks are read at their default, and
    ``RESUMABLE_KNOBS`` may change."""
    from golf.oracles import same_settings
    from golf.runs.guard import same_path

    rundir = RunDir(run_dir, CONFIG)
    stored = rundir.stored_config()
    if stored is None:
        raise GolfError(f"{rundir.config_path} is missing: cannot check what a resume would continue; "
                        "choose another output directory")
    now_oracle = current.get("oracle")

    def same_paths(old: Any, new: Any) -> bool:
        return len(old) == len(new) and all(a == b or same_path(a, b) for a, b in zip(old, new))

    rundir.check_identity(
        current, keys=RUN_IDENTITY, defaults={"golf": GolfTraining().loop_settings()},
        skip={"golf": RESUMABLE_KNOBS},
        compare={"oracle_settings": lambda old, new: stored.get("oracle") != now_oracle
                 or same_settings(now_oracle, old or {}, new or {}),
                 "baseline": lambda old, new: old == new or same_path(old, new),
                 "data": same_paths, "generic": same_paths})


#: eV per conformation: a start model whose energies are further than this from D0's labels on average has
#: other per-element energy offsets (another level of theory, or none: the official checkpoints); a
#: model's own errors are a few tenths of an eV
ENERGY_SCALE_GAP_EV = 10.0


def warn_energy_scale(model: Any, data: Any, name: Any, sample: int = 64) -> float:
    """Warn (``GolfWarning``) when ``model``'s energies on up to ``sample`` conformations of ``data`` are on
    average more than ``ENERGY_SCALE_GAP_EV`` from their labels: its per-element energy offsets do not
    match the labels', and with the paper's energy loss weight the first updates would go to the offsets,
    not the forces. Returns that mean absolute error (eV)."""
    import warnings

    import numpy as np

    from golf.errors import GolfWarning
    from golf.models import ModelEnergyForces

    idx = np.linspace(0, len(data) - 1, min(sample, len(data))).astype(int)
    batch, energy, _ = data.collate(idx, model.device, model.dtype)
    pred = ModelEnergyForces(model)(batch)[0].detach().double().cpu().numpy()
    gap = float(np.abs(pred - energy.double().cpu().numpy()).mean())
    if gap > ENERGY_SCALE_GAP_EV:
        warnings.warn(GolfWarning(
            f"the energies of {name} are {gap:.4g} eV per conformation from the training labels: its per-element "
            "energy offsets are not the labels' (another level of theory, or none, as in the official "
            "checkpoints); refit them first (refit_offsets), or training will spend its first updates on them"),
            stacklevel=2)
    return gap


def _load_run_checkpoint(store: RunStore, device: Any) -> dict[str, Any]:
    """checkpoint.pt of a run, verified (CheckpointError naming it when damaged or unreadable)."""
    def complete(ckpt: Any) -> None:
        _ = ckpt["trainer"], ckpt["stats"], int(ckpt["calls_done"])

    return store.load_checkpoint(CHECKPOINT, device, what="GOLF checkpoint", check=complete)


def train_golf(
    baseline: str | os.PathLike,
    data: Sequence[str | os.PathLike],
    run_dir: str | os.PathLike,
    settings: GolfTraining = GolfTraining(),
    oracle: OracleRun = OracleRun(),
    resume: bool = False,
    progress: bool = True,
    generic: Sequence[str | os.PathLike] = (),
) -> Path:
    """Run GOLF from a baseline model on D0 (``data``) until ``settings.budget`` oracle calls are spent.

    ``generic`` (golf's option, ``golf adapt``): labelled databases of generic conformations, of which
    ``settings.generic_share`` of every replay batch is drawn (``golf.replay.ReplayBuffer``); they are
    never episode starts.

    ``settings.lr_min`` (None: ``lr / 1000``, the official ``CosineAnnealing`` with ``final_div_factor``
    1e3 in ``GOLF/GOLF_trainer.py``) is where the cosine schedule ends after ``budget * utd_ratio`` updates.
    Returns the path of the final model (RUN_DIR/model.pt). See the module docstring for the files.
    """
    import shutil

    run_dir = Path(run_dir)
    created = not run_dir.exists()
    try:
        return _train_golf(baseline, data, run_dir, settings, oracle, resume, progress, generic)
    except BaseException:
        if created and run_dir.is_dir() and not RunStore(run_dir, None).has_state():
            shutil.rmtree(run_dir, ignore_errors=True)  # a failed start leaves nothing behind
        raise


def _train_golf(baseline: str | os.PathLike, data: Sequence[str | os.PathLike], run_dir: Path,
                settings: GolfTraining, oracle: OracleRun, resume: bool, progress: bool,
                generic: Sequence[str | os.PathLike] = ()) -> Path:
    """``train_golf`` without the clean-up of a failed start."""
    import sys

    from golf.progress import progress_bar

    from golf.dataset import LabelledData
    from golf.models import ModelEnergyForces, load_model, save_model
    from golf.runs.data import open_executor, oracle_spec
    from golf.replay import ReplayBuffer
    from golf.models.checkpoint import resolve_device
    from golf.trainer import Trainer

    config = settings  # the loop takes the run's settings (checked when they were made)
    device = resolve_device(settings.device)
    spec = oracle_spec(oracle)
    store = RunStore(run_dir, spec)
    if (run_dir / MODEL).exists() and not resume:
        raise RunExists(f"{run_dir} already holds a finished GOLF run")
    if store.has_state() and not resume:
        raise RunExists(f"{run_dir} holds an unfinished GOLF run")

    model = load_model(baseline, device=device)
    d0 = LabelledData.from_db(list(data))
    if len(d0) == 0:
        raise InputError("the initial dataset is empty")
    model.check_elements(np.unique(d0.numbers))
    eval_fraction = settings.eval_fraction
    train_data, held_out = d0.split_by_molecule(eval_fraction, seed=config.seed) if eval_fraction > 0 else (d0, None)
    pool = train_data.conformations()
    generic_data = LabelledData.from_db(list(generic)) if generic else None
    if settings.generic_share > 0 and (generic_data is None or len(generic_data) == 0):
        raise InputError("a generic share needs generic conformations (none given or the databases are empty)")
    if generic_data is not None and len(generic_data):
        model.check_elements(np.unique(generic_data.numbers))
    buffer = ReplayBuffer(train_data, initial_conf_pct=config.initial_conf_pct, generic=generic_data,
                          generic_pct=settings.generic_share)
    s = settings
    lr_min = s.lr / 1000.0 if s.lr_min is None else s.lr_min
    trainer = Trainer(model, lr=s.lr, lr_min=lr_min, total_steps=config.budget * config.utd_ratio, clip=s.clip,
                      w_energy=s.w_energy, w_forces=s.w_forces, device=device, seed=config.seed)
    run_config = dict(
        golf=config.loop_settings(), baseline=str(baseline), data=[str(d) for d in data], data_rows=len(d0),
        oracle=oracle.oracle, oracle_settings=spec.settings, lr=s.lr, lr_min=lr_min, clip=s.clip,
        w_energy=s.w_energy, w_forces=s.w_forces, eval_fraction=eval_fraction, executor=oracle.executor,
        workers=oracle.workers, generic=[str(g) for g in generic],
        generic_rows=0 if generic_data is None else len(generic_data), generic_share=s.generic_share)
    if resume and store.has_state():
        check_resume(run_dir, run_config)
    d0.check_level(spec.name, spec.settings, "the GOLF oracle labels")  # D0 is part of every replay batch
    resuming = resume and (run_dir / CHECKPOINT).exists()
    if not resuming:  # a checkpoint's model has already trained on these labels
        warn_energy_scale(model, d0, baseline)
    ckpt = _load_run_checkpoint(store, device) if resuming else None
    stored = store.stored_results()
    n_failed = store.n_failures()
    if ckpt is not None:
        seen = GolfStats(**ckpt["stats"])
        if len(stored) < seen.calls_ok or n_failed < seen.calls_failed:
            raise GolfError(
                f"{run_dir / CHECKPOINT} counts {seen.calls_ok} results and {seen.calls_failed} failures but "
                f"{ORACLE_DB} holds {len(stored)} and {FAILURES} {n_failed}: missing or truncated; not resuming "
                "(that would restart the budget)")
    store.write_config(run_config)

    # ---- resume: checkpoint first, then every stored result it has not seen
    stats = GolfStats()
    trained_calls = 0
    if ckpt is not None:
        trainer.load_state_dict(ckpt["trainer"], restore_global_rng=False)
        stats = GolfStats(**ckpt["stats"])
        trained_calls = int(ckpt["calls_done"])
    late = {}  # call -> label of the results stored after the checkpoint (trained in catch_up)
    for row in stored:
        if not row["kvp"].get("used", 1):
            continue
        label = (row["conformation"], row["energy"], row["forces"])
        if int(row["kvp"]["call"]) >= trained_calls:
            late[int(row["kvp"]["call"])] = label
        else:
            buffer.add(*label)
    stats.calls_done = len(stored) + n_failed
    stats.calls_ok = len(stored)
    stats.calls_failed = n_failed
    stats.skipped_force = sum(1 for r in stored if not r["kvp"].get("used", 1))
    stats.conformations_added = len(buffer.new) + len(late)

    def provenance() -> dict[str, Any]:
        from golf import __version__

        return dict(kind="golf", baseline=str(baseline), budget=config.budget, oracle=oracle.oracle,
                    oracle_settings=spec.settings, data=[str(d) for d in data], golf_version=__version__)

    provider = ModelEnergyForces(model)
    t_start = time.perf_counter()
    calls_at_start = stats.calls_done
    bar = progress_bar(total=config.budget, initial=stats.calls_done, desc="GOLF oracle calls", unit="call",
                       disable=not progress)

    def save_checkpoint() -> None:
        payload = dict(trainer=trainer.state_dict(), stats=stats.as_dict(), calls_done=stats.calls_done,
                       config=config.loop_settings())
        store.save_checkpoint(CHECKPOINT, payload)

    first_failure = [store.first_failure()]

    def on_result(request: LabelRequest, result: Any, used: bool) -> None:
        store.record(stats.calls_done, request, result, used)
        if not result.ok and not first_failure[0]:
            first_failure[0] = str(result.reason)

    def log(s: GolfStats, metrics: dict[str, float]) -> None:
        row = _log_row(s, metrics, buffer, golf_loop, t_start, calls_at_start)
        if held_out is not None and len(held_out):
            ev = trainer.evaluate(held_out, batch_size=config.batch_size)
            row.update(heldout_energy_mae_mev=ev["energy_mae_mev"], heldout_forces_mae_mev_a=ev["forces_mae_mev_a"])
        store.log(LOG, row)

    # calls_done jumps by a whole round under the block cadence, so act when it crosses a multiple
    last = {"checkpoint": stats.calls_done, "eval": stats.calls_done, "snapshot": stats.calls_done}

    def crossed(kind: str, every: int, calls: int) -> bool:
        hit = calls // every > last[kind] // every
        if hit:
            last[kind] = calls
        return hit

    def on_progress(s: GolfStats, metrics: dict[str, float]) -> None:
        bar.update(1)
        bar.set_postfix(added=s.conformations_added, loss=f"{metrics.get('loss', float('nan')):.3g}", refresh=False)
        if crossed("checkpoint", settings.checkpoint_every, s.calls_done):
            save_checkpoint()
        if crossed("eval", settings.eval_every, s.calls_done) or (s.calls_done == config.budget
                                                                  and last["eval"] != config.budget):
            last["eval"] = s.calls_done
            log(s, metrics)
        if any(last["snapshot"] < b <= s.calls_done < config.budget for b in settings.snapshots):
            save_model(model, snapshot_path(run_dir, s.calls_done),
                       provenance=dict(provenance(), calls_done=s.calls_done, stats=s.as_dict()))
        last["snapshot"] = s.calls_done

    with open_executor(oracle, spec) as ex:
        golf_loop = GolfLoop(provider, trainer, buffer, pool, ex, config, on_result=on_result,
                             on_progress=on_progress, stats=stats, device=device, dtype=model.dtype)
        golf_loop.catch_up(trained_calls, late)  # results stored after the last checkpoint owe their updates
        if not (run_dir / LOG).exists():
            log(stats, {})  # the starting point of the learning curve
        golf_loop.run()
    bar.close()
    save_checkpoint()
    if stats.calls_failed:
        print(f"golf train --golf: {stats.calls_failed} of {stats.calls_done} oracle calls failed (first: "
              f"{first_failure[0] or 'unknown'}); all in {run_dir / FAILURES}", file=sys.stderr)
    if stats.conformations_added == 0:
        why = (f"all {stats.calls_done} oracle calls failed (first: {first_failure[0] or 'unknown'})"
               if stats.calls_ok == 0 else f"none of the {stats.calls_ok} oracle results entered the buffer")
        raise GolfError(f"{why}; no GOLF model written to {run_dir / MODEL}")

    save_model(model, run_dir / MODEL, provenance=dict(provenance(), calls_done=stats.calls_done,
                                                       stats=stats.as_dict()))
    atomic_write_json(run_dir / "summary.json", dict(stats=stats.as_dict(), seconds=time.perf_counter() - t_start))
    return run_dir / MODEL


def snapshot_path(run_dir: str | os.PathLike, calls: int) -> Path:
    """The model of a GOLF run after ``calls`` oracle calls (saved when the calls first reach a
    ``snapshots`` entry; under the block cadence that is the end of the round that crosses it)."""
    return Path(run_dir) / f"model-at-{int(calls)}.pt"


def snapshots(run_dir: str | os.PathLike) -> dict[int, Path]:
    """Oracle calls -> snapshot model of a GOLF run directory, in increasing order."""
    found = {int(p.stem.removeprefix("model-at-")): p for p in Path(run_dir).glob("model-at-*.pt")
             if p.stem.removeprefix("model-at-").isdigit()}
    return dict(sorted(found.items()))


def _log_row(stats: GolfStats, metrics: dict[str, float], buffer: Any, loop: GolfLoop, t_start: float,
             calls_at_start: int) -> dict[str, Any]:
    ended = stats.episodes_ended
    n_ended = max(1, sum(ended.values()))
    elapsed = max(time.perf_counter() - t_start, 1e-9)
    return dict(
        calls=stats.calls_done, ok=stats.calls_ok, failed=stats.calls_failed, skipped_force=stats.skipped_force,
        skipped_surrogate=stats.skipped_surrogate, conformations_added=stats.conformations_added,
        resets_nonfinite=stats.resets_nonfinite, updates=stats.updates,
        nnp_steps=stats.nnp_steps, loss=metrics.get("loss", float("nan")),
        surrogate_share=ended.get("surrogate", 0) / n_ended,
        calls_per_s=(stats.calls_done - calls_at_start) / elapsed,
        oracle_utilization=min(1.0, len(loop.pending) / max(1, loop.executor.n_workers)),
        seconds=elapsed,
    )
