"""``golf train``: train an NNP on labelled databases (baseline on D0, traj-N on D0 + trajectories),
or run GOLF with ``--golf`` (handled by ``golf.loop.run_golf``).

Outputs: ``--out model.pt`` (the best checkpoint by validation loss, a golf checkpoint) and a run
directory (``--log-dir``, default ``<out>.d/``) with ``last.pt``, ``trainer_state.pt`` (for
``--resume``), ``metrics.csv``, ``config.json`` and ``tensorboard/`` when TensorBoard is installed.
"""
from __future__ import annotations

import argparse

#: Model/training settings of the presets. Explicit options override them.
PRESETS: dict[str, dict] = {
    # The GOLF paper (Tsypin et al. 2024): PaiNN 128 x 3, cutoff 5 A, 50 RBF, Adam 1e-4 cosine,
    # batch 64, gradient clipping at 1.0, loss 0.99 forces + 0.01 energy.
    "paper": dict(model="painn", features=128, interactions=3, cutoff=5.0, n_rbf=50, lr=1e-4,
                  lr_min=1e-7, batch_size=64, clip=1.0, epochs=100),
    # A small model that trains in minutes on a laptop CPU (also the default).
    "quick": dict(model="painn", features=64, interactions=3, cutoff=5.0, n_rbf=20, lr=5e-4,
                  lr_min=1e-5, batch_size=32, clip=1.0, epochs=30),
}
DEFAULT_PRESET = "quick"
_OTHER_DEFAULTS = dict(val_fraction=0.1, seed=0, device="cpu", weight_decay=0.0, w_energy=0.01,
                       w_forces=0.99)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", action="append", metavar="DB", default=None,
                        help="labelled ASE database (repeat to combine, e.g. D0.db and traj.db)")
    parser.add_argument("--out", required=True, metavar="PATH",
                        help="output model file (best checkpoint); with --golf the run directory")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help=f"settings bundle (default {DEFAULT_PRESET}); 'paper' = PaiNN 128x3, cutoff 5, "
                             "50 RBF, Adam 1e-4 cosine, batch 64, clip 1.0")
    m = parser.add_argument_group("model")
    m.add_argument("--model", choices=["painn", "schnet"], default=None)
    m.add_argument("--features", type=int, default=None, help="atom feature size (n_atom_basis)")
    m.add_argument("--interactions", type=int, default=None, help="interaction blocks")
    m.add_argument("--cutoff", type=float, default=None, help="neighbour cutoff (Angstrom)")
    m.add_argument("--n-rbf", type=int, default=None, help="radial basis functions")
    t = parser.add_argument_group("training")
    t.add_argument("--epochs", type=int, default=None)
    t.add_argument("--batch-size", type=int, default=None)
    t.add_argument("--lr", type=float, default=None, help="initial learning rate (Adam)")
    t.add_argument("--lr-min", type=float, default=None, help="final learning rate of the cosine decay")
    t.add_argument("--clip", type=float, default=None, help="gradient-norm clipping (0: off)")
    t.add_argument("--weight-decay", type=float, default=None)
    t.add_argument("--w-energy", type=float, default=None, help="energy loss weight (0.01)")
    t.add_argument("--w-forces", type=float, default=None, help="force loss weight (0.99)")
    t.add_argument("--val-fraction", type=float, default=None,
                   help="fraction of molecules held out for validation (0.1)")
    t.add_argument("--seed", type=int, default=None)
    t.add_argument("--device", default=None, help="cpu, cuda, cuda:0 ... (cpu)")
    t.add_argument("--init", default=None, metavar="MODEL",
                   help="start from this model's weights and atomrefs (fine-tuning, e.g. traj-N from the baseline); "
                        "its architecture overrides the model options")
    t.add_argument("--resume", action="store_true", help="continue from the run directory's last state")
    t.add_argument("--log-dir", default=None, metavar="DIR", help="run directory (default <out>.d)")
    t.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = parser.add_argument_group("GOLF (--golf; see golf.loop)")
    g.add_argument("--golf", action="store_true", help="run the GOLF loop instead of plain training")
    g.add_argument("--from", dest="from_model", default=None, metavar="MODEL",
                   help="baseline model to start GOLF from")
    g.add_argument("--budget", type=int, default=None, help="genuine-oracle calls")
    g.add_argument("--oracle", default=None, help="genuine oracle (xtb, dft, mmff)")
    g.add_argument("--n-parallel", type=int, default=None, help="parallel relaxation episodes")
    g.add_argument("--utd-ratio", type=int, default=None, help="NNP updates per new conformation")
    g.add_argument("--initial-conf-pct", type=float, default=None,
                   help="share of every batch drawn from D0")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS", help="Dask scheduler address")
    g.add_argument("--workers", type=int, default=None, help="oracle worker processes")
    g.add_argument("--executor", choices=["local", "serial", "dask"], default=None,
                   help="where genuine-oracle calls run")
    g.add_argument("--timeout", type=float, default=None, help="seconds per oracle call before it is retried")
    g.add_argument("--oracle-option", action="append", default=None, metavar="KEY=VALUE",
                   help="oracle setting (repeatable)")
    g.add_argument("--max-episode-steps", type=int, default=None, help="NNP optimizer steps per episode")
    g.add_argument("--cadence", choices=["block", "stream"], default=None,
                   help="block (official, default): rounds of n-parallel labels, then n-parallel x utd-ratio "
                        "updates; stream: utd-ratio updates per label as it arrives")
    g.add_argument("--max-pending", type=int, default=None, help="stream cadence: oracle calls in flight at once")
    g.add_argument("--max-force-norm", type=float, default=None,
                   help="labels whose force-matrix norm reaches this (eV/A) stay out of the buffer "
                        "(official 10.5 Hartree/A = 285.7 eV/A)")
    g.add_argument("--max-surrogate-energy", type=float, default=None,
                   help="no label when the MMFF energy after the step reaches this (eV; official 300 kcal/mol)")
    g.add_argument("--conf-optimizer", default=None, help="optimizer preset driving the episodes")
    g.add_argument("--checkpoint-every", type=int, default=None, help="checkpoint every N oracle calls")
    g.add_argument("--eval-every", type=int, default=None, help="held-out evaluation every N oracle calls")
    # Shared options (--data, --out, --preset, --lr, --lr-min, --clip, --batch-size, --seed, --device,
    # --resume, --val-fraction, model options) stay None unless given, so golf.loop applies its own defaults.


def resolve_settings(args: argparse.Namespace) -> dict:
    """Explicit options > preset > defaults."""
    preset = PRESETS[args.preset or DEFAULT_PRESET]
    out = {}
    for key, default in {**preset, **_OTHER_DEFAULTS}.items():
        value = getattr(args, key, None)
        out[key] = default if value is None else value
    out["preset"] = args.preset or DEFAULT_PRESET
    return out


def run(args: argparse.Namespace) -> int:
    from golf.errors import InputError

    if args.golf:
        from golf.golf_run import run_golf

        return run_golf(args)
    if not args.data:
        raise InputError("--data DB is required (labelled ASE database; repeat for several)")
    return _train(args, resolve_settings(args))


def _train(args: argparse.Namespace, s: dict) -> int:
    import json
    import os
    import platform
    import sys
    import time
    from pathlib import Path

    import numpy as np
    import torch

    from golf import __version__
    from golf.dataset import LabelledData
    from golf.errors import InputError
    from golf.models import build_model
    from golf.io import atomic_write_text
    from golf.train import LAST_CHECKPOINT_FILE, METRICS_FILE, Trainer

    out = Path(args.out)
    if out.suffix == "" or out.is_dir():
        raise InputError(f"--out {out}: give a model file name such as model.pt")
    run_dir = Path(args.log_dir) if args.log_dir else out.with_name(out.name + ".d")
    for key in ("epochs", "batch_size", "features", "interactions", "n_rbf"):
        if int(s[key]) < 1:
            raise InputError(f"--{key.replace('_', '-')} must be >= 1")
    if not 0.0 <= s["val_fraction"] < 1.0:
        raise InputError("--val-fraction must be in [0, 1)")
    if s["cutoff"] <= 0 or s["lr"] <= 0:
        raise InputError("--cutoff and --lr must be positive")
    try:
        device = torch.device(s["device"])
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as exc:
        raise InputError(f"--device {s['device']}: not available ({exc})") from exc

    data = LabelledData.from_db(args.data)
    train, val = data.split_by_molecule(s["val_fraction"], seed=s["seed"])
    if len(train) == 0:
        raise InputError("no training conformations after the validation split")

    state_exists = (run_dir / "trainer_state.pt").exists()
    if state_exists and not args.resume:
        raise InputError(f"{run_dir} already holds a training run: use --resume, or another --out/--log-dir")
    config_path = run_dir / "config.json"
    if args.resume and config_path.exists():
        saved = json.loads(config_path.read_text())
        keep = ("model", "features", "interactions", "cutoff", "n_rbf", "batch_size", "lr", "lr_min",
                "clip", "weight_decay", "w_energy", "w_forces", "val_fraction", "seed")
        for k in keep:  # a resumed run keeps its architecture, schedule and split
            s[k] = saved["settings"].get(k, s[k])

    hparams = dict(n_atom_basis=int(s["features"]), n_interactions=int(s["interactions"]),
                   cutoff=float(s["cutoff"]), n_rbf=int(s["n_rbf"]))
    if args.init:
        from golf.models.checkpoint import load_model

        model = load_model(args.init, device=str(device))
        model.check_elements(np.unique(data.numbers))
        cfg = model.config
        s["model"] = cfg["architecture"]
        hparams = dict(cfg["hparams"])
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(s["seed"])
            model = build_model(s["model"], **hparams)
    trainer = Trainer(
        model, lr=s["lr"], lr_min=s["lr_min"], clip=(s["clip"] or None), weight_decay=s["weight_decay"],
        w_energy=s["w_energy"], w_forces=s["w_forces"], device=device, seed=s["seed"],
    )
    run_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "command": "golf train",
        "golf_version": __version__,
        "data": [os.path.abspath(p) for p in args.data],
        "out": os.path.abspath(out),
        "settings": s,
        "model_hparams": {"name": s["model"], **hparams},
        "n_train": len(train),
        "n_val": len(val),
        "n_train_molecules": len(set(train.molecule_keys())),
        "n_val_molecules": len(set(val.molecule_keys())),
        "elements": train.elements,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    atomic_write_text(config_path, json.dumps(config, indent=2, default=str) + "\n")
    provenance = {"command": "golf train", "data": config["data"], "settings": s, "init": args.init,
                  "n_train": len(train), "n_val": len(val), "golf_version": __version__}

    print(f"golf train: {len(train)} training / {len(val)} validation conformations "
          f"({config['n_train_molecules']} / {config['n_val_molecules']} molecules), "
          f"{s['model']} {s['features']}x{s['interactions']}, run dir {run_dir}", file=sys.stderr)
    t0 = time.perf_counter()
    history = trainer.fit(
        train, val, epochs=int(s["epochs"]), batch_size=int(s["batch_size"]), log_dir=run_dir,
        progress=not args.no_progress, best_path=out, resume=args.resume, provenance=provenance,
        prepare=not args.init,
    )
    elapsed = time.perf_counter() - t0
    total_time = history[-1]["time_s"] if history else elapsed
    if not out.exists():  # e.g. resumed a finished run whose best was written elsewhere
        from golf.models.checkpoint import save_model

        save_model(trainer.model, out, provenance)

    from golf.models.checkpoint import load_model

    best = load_model(out, device=str(device))
    ev_trainer = Trainer(best, device=device, seed=s["seed"])
    final = ev_trainer.evaluate(val if len(val) else train, int(s["batch_size"]))
    which = "val" if len(val) else "train"
    summary = {
        "n_train": len(train), "n_val": len(val), "epochs": trainer.epoch, "steps": trainer.step,
        "time_s": round(total_time, 2), "evaluated_on": which, **{f"{which}_{k}": v for k, v in final.items()},
    }
    atomic_write_text(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    print(
        f"trained {trainer.epoch} epochs ({trainer.step} steps) in {total_time:.1f} s on "
        f"{len(train)} conformations; {which} ({final['n']}): energy MAE {final['energy_mae_mev']:.1f} meV "
        f"({final['energy_mae_kcal_mol']:.2f} kcal/mol), force MAE {final['forces_mae_mev_a']:.1f} meV/A\n"
        f"best model: {out}\nlast: {run_dir / LAST_CHECKPOINT_FILE}  metrics: {run_dir / METRICS_FILE}"
    )
    return 0
