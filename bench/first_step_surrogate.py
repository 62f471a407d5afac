"""Diagnostic: one step of the paper's L-BFGS (``lbfgs-golf``) from D0 conformations; how often does the
surrogate (MMFF94) energy rise, and the genuine oracle's (xTB)? A rise ends a GOLF episode, so this says
how long GOLF's episodes can be for a model.

Usage: ``python bench/first_step_surrogate.py --d0 golf-run/data/D0.db MODEL [MODEL ...]``
(models: files or pretrained names). Prints one line per model; energies in kcal/mol.
"""
from __future__ import annotations

import argparse

import numpy as np
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+")
    ap.add_argument("--d0", required=True, help="labelled D0 database")
    ap.add_argument("--n", type=int, default=48, help="D0 conformations drawn at random (seed --seed)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from golf.batch import Batch
    from golf.dataset import LabelledData
    from golf.models import ModelEnergyForces, load_model
    from golf.models.registry import resolve_model
    from golf.optim.lbfgs import lbfgs_config, lbfgs_init, lbfgs_step
    from golf.oracles.mmff import mmff_energies
    from golf.presets import OracleRun
    from golf.runs.data import open_executor, oracle_spec
    from golf.units import EV_TO_KCAL_MOL

    torch.set_num_threads(1)
    pool = LabelledData.from_db(args.d0).conformations()
    confs = [pool[i] for i in np.random.default_rng(args.seed).choice(len(pool), args.n, replace=False)]
    run = OracleRun(oracle="xtb", workers=2)
    with open_executor(run, oracle_spec(run)) as ex:  # xTB cannot run in a process that imported torch

        def xtb(cs):
            for k, c in enumerate(cs):
                ex.submit(c, key=k)
            out = dict(ex.as_completed())
            return np.array([out[k].energy if out[k].ok else np.nan for k in range(len(cs))])

        x0, m0 = xtb(confs), mmff_energies(confs)
        for name in args.models:
            model = load_model(resolve_model(name)[0])
            provider = ModelEnergyForces(model)
            cfg = lbfgs_config("lbfgs-golf", fmax=0.0, max_steps=10, max_force=float("inf"))
            state = lbfgs_init(Batch.from_conformations(confs, "cpu", model.dtype), provider,
                               ids=list(range(len(confs))), cfg=cfg)
            state = lbfgs_step(state, provider)
            after = [c.with_positions(x) for c, x in
                     zip(confs, state.batch.split(state.batch.positions.detach().cpu().double()))]
            dm = (mmff_energies(after) - m0) * EV_TO_KCAL_MOL
            dx = (xtb(after) - x0) * EV_TO_KCAL_MOL
            print(f"{name}: MMFF rose {np.mean(dm > 0):.2f}, xTB rose {np.mean(dx > 0):.2f} of {len(confs)}; "
                  f"median change MMFF {np.nanmedian(dm):.2f}, xTB {np.nanmedian(dx):.2f} kcal/mol", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
