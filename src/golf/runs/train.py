"""A training run on disk (``golf train``): an NNP trained on labelled databases, with its run directory.

Outputs: ``out`` (the best checkpoint by validation loss, a golf checkpoint) and a run directory
(default ``<out>.d/``) with ``last.pt``, ``trainer_state.pt`` (for resume), ``metrics.csv``,
``config.json``, ``summary.json`` and ``tensorboard/`` when TensorBoard is installed.

``fit_run`` is ``Trainer.fit`` plus everything that touches files or the terminal: the progress bar,
TensorBoard and CSV logs, best/last checkpoints and the trainer state written after every epoch
(a killed run resumes exactly). ``train`` is the whole ``golf train`` run from typed settings.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from golf.dataset import LabelledData
from golf.errors import SettingError
from golf.io import atomic_write_json
from golf.presets import Training
from golf.runs.rundir import RunDir
from golf.trainer import Trainer

TRAINER_STATE_FILE = "trainer_state.pt"
LAST_CHECKPOINT_FILE = "last.pt"
BEST_CHECKPOINT_FILE = "best.pt"
METRICS_FILE = "metrics.csv"
CONFIG_FILE = "config.json"
SUMMARY_FILE = "summary.json"


def train_run_dir(out: str | os.PathLike) -> str:
    """The default run directory of a training writing the model ``out``: ``OUT.d``."""
    p = Path(out)
    return os.fspath(p.with_name(p.name + ".d"))


def implicit_outputs(out: str | os.PathLike, log_dir: str | os.PathLike | None = None) -> list[Any]:
    """What ``train`` writes besides the model ``out``: its run directory (``log_dir``, default ``OUT.d``)."""
    from golf.runs.guard import Output

    if log_dir:
        return [Output(os.fspath(log_dir), "dir", option="the run directory")]
    return [Output(train_run_dir(out), "dir", option=f"the run directory beside {os.fspath(out)}")]


def save_trainer_state(trainer: Trainer, path: str | os.PathLike) -> None:
    """Write ``trainer.state_dict()`` atomically to ``path`` (``golf.runs.rundir``)."""
    path = Path(path)
    RunDir(path.parent).save_checkpoint(path.name, trainer.state_dict())


def load_trainer_state(trainer: Trainer, path: str | os.PathLike) -> None:
    """Restore a trainer state written by ``save_trainer_state`` (CheckpointError if unreadable)."""
    path = Path(path)
    trainer.load_state_dict(RunDir(path.parent).load_checkpoint(path.name, trainer.device, what="trainer state"))


def _tensorboard_writer(log_dir: Path) -> Any:
    """A SummaryWriter under ``log_dir/tensorboard`` when TensorBoard is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(str(log_dir / "tensorboard"))
    except Exception:  # noqa: BLE001 - TensorBoard is optional
        return None


def fit_run(
    trainer: Trainer,
    train: LabelledData,
    val: LabelledData | None = None,
    epochs: int = 1,
    batch_size: int = 64,
    log_dir: str | os.PathLike | None = None,
    progress: bool = True,
    best_path: str | os.PathLike | None = None,
    last_path: str | os.PathLike | None = None,
    resume: bool = False,
    prepare: bool = True,
    provenance: dict | None = None,
    eval_batch_size: int | None = None,
) -> list[dict[str, Any]]:
    """``trainer.fit`` with its files: returns the per-epoch history.

    After every epoch: a row of ``log_dir/metrics.csv``, ``last_path`` (golf checkpoint, default
    ``log_dir/last.pt``), ``best_path`` (default ``log_dir/best.pt``) when the validation loss
    improved, and ``log_dir/trainer_state.pt`` last (a kill before it re-runs the epoch).

    Args:
        resume: continue from ``log_dir/trainer_state.pt`` when it exists (same result as an
            uninterrupted run on CPU with a fixed seed).
        prepare: fit atomrefs on ``train`` before the first step of a fresh run.
        provenance: stored in the checkpoints.
    """
    from golf.models.checkpoint import save_model

    log_dir = Path(log_dir) if log_dir is not None else None
    state_path = None
    if log_dir is not None:
        log_dir.mkdir(parents=True, exist_ok=True)
        best_path = Path(best_path) if best_path is not None else log_dir / BEST_CHECKPOINT_FILE
        last_path = Path(last_path) if last_path is not None else log_dir / LAST_CHECKPOINT_FILE
        state_path = log_dir / TRAINER_STATE_FILE
        if resume and state_path.exists():
            load_trainer_state(trainer, state_path)
    steps_per_epoch = -(-len(train) // batch_size)
    writer = _tensorboard_writer(log_dir) if log_dir is not None else None
    bar = None
    if progress:
        from golf.progress import progress_bar

        bar = progress_bar(total=epochs * steps_per_epoch, initial=min(trainer.epoch, epochs) * steps_per_epoch,
                           unit="step", desc="train")

    def on_step(t: Trainer, m: dict[str, float]) -> None:
        if writer is not None:
            writer.add_scalar("train/loss", m["loss"], t.step)
            writer.add_scalar("lr", m["lr"], t.step)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=t.epoch + 1, loss=f"{m['loss']:.3g}", f_mae=f"{1000 * m['forces_mae']:.0f}meV/A")

    def on_epoch(t: Trainer, row: dict[str, Any], improved: bool) -> None:
        if writer is not None:
            for key, v in row.items():
                if key not in ("epoch", "step", "best"):
                    writer.add_scalar(f"epoch/{key}", v, t.epoch)
            writer.flush()
        if bar is not None and "val_forces_mae_mev_a" in row:
            bar.write(f"epoch {t.epoch}: train loss {row['train_loss']:.4g}, "
                      f"val E MAE {row['val_energy_mae_mev']:.1f} meV, "
                      f"val F MAE {row['val_forces_mae_mev_a']:.1f} meV/A", file=sys.stderr)
        extra = {"epoch": t.epoch, "step": t.step, "metrics": row}
        if improved and best_path is not None:
            save_model(t.model, best_path, provenance, extra)
        if last_path is not None:
            save_model(t.model, last_path, provenance, extra)
        if log_dir is not None:
            RunDir(log_dir).write_log(METRICS_FILE, t.history)
            save_trainer_state(t, state_path)  # last: a kill before this re-runs the epoch

    try:
        return trainer.fit(train, val, epochs=epochs, batch_size=batch_size, prepare=prepare,
                           eval_batch_size=eval_batch_size, on_step=on_step, on_epoch=on_epoch)
    finally:
        if bar is not None:
            bar.close()
        if writer is not None:
            writer.close()


def refit_pretrained(init: str | os.PathLike, data: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict:
    """A pretrained model (file or name) with its per-element energy offsets refit to the labelled
    databases ``data`` (``golf.trainer.refit_offsets``: forces unchanged), saved as ``out``.

    Returns the fit's energy MAE before/after (meV per conformation).
    """
    import numpy as np

    from golf.models.checkpoint import load_model, save_model
    from golf.models.registry import resolve_model
    from golf.trainer import refit_offsets

    path, info = resolve_model(init)
    model = load_model(path)
    labelled = LabelledData.from_db([str(d) for d in data])
    model.check_elements(np.unique(labelled.numbers))
    fit = refit_offsets(model, labelled)
    save_model(model, out, {"kind": "pretrained model, energy offsets refit", "init": str(path),
                            "pretrained": info, "data": [str(d) for d in data], **fit})
    return fit


def train(
    settings: Training,
    data: Sequence[str | os.PathLike],
    out: str | os.PathLike,
    init: str | os.PathLike | None = None,
    resume: bool = False,
    log_dir: str | os.PathLike | None = None,
    progress: bool = True,
    preset: str = "",
    refit_offsets: bool = False,
) -> Path:
    """Train an NNP on the labelled databases ``data`` (``golf train``); returns ``out``.

    ``init`` fine-tunes that model (its architecture wins over ``settings``; ``refit_offsets``
    first refits its per-element energy offsets to the training data, for a model trained at another
    level of theory: ``golf.trainer.refit_offsets``); ``resume`` continues
    the run in ``log_dir`` (default ``<out>.d``) with its saved architecture, schedule and split.
    ``preset`` is only recorded. InputError (one line) for bad settings or data.
    """
    import dataclasses
    import math
    import platform
    import time

    import numpy as np

    from golf import __version__
    from golf.errors import GolfError, InputError
    from golf.models import build_model
    from golf.models.checkpoint import load_model, resolve_device, save_model

    out = Path(out)
    if out.suffix == "" or out.is_dir():
        raise InputError(f"{out}: the output is a model file; give a file name such as model.pt")
    run_dir = Path(log_dir) if log_dir else Path(train_run_dir(out))
    try:  # the settings checked their values when they were made; this is whether the device works here
        device = resolve_device(settings.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise SettingError("device", f"{settings.device}: not available ({exc})") from exc

    labelled = LabelledData.from_db(list(data))
    train_data, val = labelled.split_by_molecule(settings.val_fraction, seed=settings.seed)
    if len(train_data) == 0:
        raise InputError("no training conformations after the validation split")

    if (run_dir / TRAINER_STATE_FILE).exists() and not resume:
        from golf.errors import RunExists

        raise RunExists(f"{run_dir} already holds a training run")
    rundir = RunDir(run_dir, CONFIG_FILE)
    stored = rundir.stored_config() if resume else None
    if stored is not None:
        saved = stored["settings"]
        given = [os.path.abspath(p) for p in data]
        n_stored = stored.get("n_train", 0) + stored.get("n_val", 0)
        if stored.get("data", given) != given or n_stored not in (0, len(labelled)):
            raise InputError(f"{run_dir} trained on {stored.get('data')} ({n_stored} conformations), not on "
                             f"{given} ({len(labelled)}): resume it with the same data or choose another output")
        keep = ("model", "features", "interactions", "cutoff", "n_rbf", "batch_size", "lr", "lr_min",
                "clip", "weight_decay", "w_energy", "w_forces", "val_fraction", "seed")
        # a resumed run keeps its architecture, schedule and split
        settings = dataclasses.replace(settings, **{k: saved[k] for k in keep if k in saved})
    s = settings
    hparams = dict(n_atom_basis=int(s.features), n_interactions=int(s.interactions), cutoff=float(s.cutoff),
                   n_rbf=int(s.n_rbf))
    if init:
        model = load_model(init, device=str(device))
        model.check_elements(np.unique(labelled.numbers))
        cfg = model.config
        hparams = dict(cfg["hparams"])
        # the recorded settings describe the model actually trained
        s = settings = dataclasses.replace(
            s, model=cfg["architecture"], features=hparams.get("n_atom_basis", s.features),
            interactions=hparams.get("n_interactions", s.interactions), n_rbf=hparams.get("n_rbf", s.n_rbf),
            cutoff=hparams.get("cutoff", s.cutoff))
        if refit_offsets and not resume:
            from golf.trainer import refit_offsets as refit

            fit = refit(model, train_data)
            print(f"golf train: energy offsets of {init} refit to the training data: energy MAE "
                  f"{fit['energy_mae_mev_before']:.4g} -> {fit['energy_mae_mev_after']:.4g} meV", file=sys.stderr)
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s.seed)
            model = build_model(s.model, **hparams)
    trainer = Trainer(model, lr=s.lr, lr_min=s.lr_min, clip=(s.clip or None), weight_decay=s.weight_decay,
                      w_energy=s.w_energy, w_forces=s.w_forces, device=device, seed=s.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    recorded = {**dataclasses.asdict(s), "preset": preset}
    config = {
        "command": "golf train",
        "golf_version": __version__,
        "data": [os.path.abspath(p) for p in data],
        "out": os.path.abspath(out),
        "settings": recorded,
        "model_hparams": {"name": s.model, **hparams},
        "n_train": len(train_data),
        "n_val": len(val),
        "n_train_molecules": len(set(train_data.molecule_keys())),
        "n_val_molecules": len(set(val.molecule_keys())),
        "elements": train_data.elements,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    rundir.write_config(config)
    provenance = {"command": "golf train", "data": config["data"], "settings": recorded,
                  "init": None if init is None else str(init), "refit_offsets": bool(init and refit_offsets),
                  "n_train": len(train_data), "n_val": len(val),
                  "golf_version": __version__}

    print(f"golf train: {len(train_data)} training / {len(val)} validation conformations "
          f"({config['n_train_molecules']} / {config['n_val_molecules']} molecules), "
          f"{s.model} {s.features}x{s.interactions}, run dir {run_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    history = fit_run(trainer, train_data, val, epochs=int(s.epochs), batch_size=int(s.batch_size),
                      log_dir=run_dir, progress=progress, best_path=out, resume=resume,
                      provenance=provenance, prepare=not init)
    total_time = history[-1]["time_s"] if history else time.perf_counter() - t0
    if not out.exists():  # e.g. resumed a finished run whose best was written elsewhere
        save_model(trainer.model, out, provenance)

    best = load_model(out, device=str(device))
    final = Trainer(best, device=device, seed=s.seed).evaluate(val if len(val) else train_data, int(s.batch_size))
    which = "val" if len(val) else "train"
    summary = {
        "n_train": len(train_data), "n_val": len(val), "epochs": trainer.epoch, "steps": trainer.step,
        "time_s": round(total_time, 2), "evaluated_on": which, **{f"{which}_{k}": v for k, v in final.items()},
    }
    atomic_write_json(run_dir / SUMMARY_FILE, summary)
    bad = [k for k in ("energy_mae_mev", "forces_mae_mev_a") if not math.isfinite(final[k])]
    if bad:
        raise GolfError(f"training failed: the {which} {' and '.join(k.split('_')[0] for k in bad)} errors of "
                        f"{out} are not finite (energy MAE {final['energy_mae_mev']} meV, force MAE "
                        f"{final['forces_mae_mev_a']} meV/A); the model is unusable")
    print(
        f"trained {trainer.epoch} epochs ({trainer.step} steps) in {total_time:.1f} s on "
        f"{len(train_data)} conformations; {which} ({final['n']}): energy MAE {final['energy_mae_mev']:.1f} meV "
        f"({final['energy_mae_kcal_mol']:.2f} kcal/mol), force MAE {final['forces_mae_mev_a']:.1f} meV/A\n"
        f"best model: {out}\nlast: {run_dir / LAST_CHECKPOINT_FILE}  metrics: {run_dir / METRICS_FILE}"
    )
    return out
