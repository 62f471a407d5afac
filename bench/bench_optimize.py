"""Benchmark: golf's batched L-BFGS vs ASE's LBFGS looping over molecules, same PaiNN model, same fmax.

Relaxes N drug-like conformations (RDKit ETKDG of NCI SMILES with 15-30 heavy atoms) and reports wall
time, conformations/s, force evaluations per conformation and final-energy agreement (median |dE|
against ASE). Writes a table to stdout and bench/results/optimize.json.

Methods (``--methods``, comma separated): any golf method (``lbfgs``, ``lbfgs-precon``, ``fire``, ...),
``ase`` (ASE's LBFGS, one molecule at a time) and ``torchsim-fire`` (TorchSim's batched FIRE on the
same model, when ``torch-sim-atomistic`` is installed; skipped otherwise).

    OMP_NUM_THREADS=1 python bench/bench_optimize.py --n 128 [--model NAME|PATH] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from golf.thresholds import NNP_FMAX

DEFAULT_MODEL = "GOLF-10k"  # shipped with golf; --model takes a name or a checkpoint file


def make_calculator(model):
    """golf.models.calculator.GolfCalculator when present; otherwise an equivalent minimal one."""
    try:
        from golf.models.calculator import GolfCalculator

        return GolfCalculator(model)
    except ImportError:
        from ase.calculators.calculator import Calculator, all_changes

        from golf.batch import Batch
        from golf.models import ModelEnergyForces

        provider = ModelEnergyForces(model)

        class _Calc(Calculator):
            implemented_properties = ["energy", "forces"]

            def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
                super().calculate(atoms, properties, system_changes)
                n = len(self.atoms)
                b = Batch(torch.as_tensor(self.atoms.numbers, dtype=torch.long),
                          torch.as_tensor(self.atoms.positions, dtype=torch.float32),
                          torch.zeros(n, dtype=torch.long), 1)
                e, f = provider(b)
                self.results = {"energy": float(e[0]), "forces": f.double().numpy()}

        return _Calc()


def torchsim_fire(model, confs, fmax: float, max_steps: int) -> tuple[list[float], list[float], list[bool]] | None:
    """Relax with TorchSim's batched FIRE (ASE flavour, max step 0.2 A) and the golf model behind a
    TorchSim ``ModelInterface``; None when torch-sim is not installed.

    Returns per-conformation final energy (eV), force evaluations and converged flag. Evaluations are
    counted as model calls x systems in the call: TorchSim checks convergence every 5 steps
    (``steps_between_swaps``), so converged systems stay in the batch, and are evaluated, until then.
    """
    try:
        import torch_sim as ts
    except ImportError:
        return None
    from torchsim_compare import make_torchsim_model  # bench/, the TorchSim benchmark's wrapper

    from golf.chem import conformation_to_atoms
    from golf.optim.state import segment_max

    ts_model = make_torchsim_model(model)
    atoms = [conformation_to_atoms(c) for c in confs]
    optimizer = getattr(getattr(ts, "Optimizer", None), "fire", None) or ts.optimizers.fire
    final = ts.optimize(
        system=atoms, model=ts_model, optimizer=optimizer, max_steps=max_steps,
        convergence_fn=ts.generate_force_convergence_fn(force_tol=fmax, include_cell_forces=False),
    )
    energies = final.energy.detach().double().tolist()
    fmax_per = segment_max(final.forces.norm(dim=-1), final.system_idx, final.n_systems)
    per_conf = ts_model.n_system_evals / len(confs)  # batched: only the total is countable
    return energies, [per_conf] * len(confs), (fmax_per <= fmax).tolist()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="conformations")
    ap.add_argument("--model", default=DEFAULT_MODEL, help="model name or checkpoint file (default GOLF-10k)")
    ap.add_argument("--fmax", type=float, default=NNP_FMAX)
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="lbfgs,lbfgs-precon,ase",
                    help="comma list of golf methods, 'ase' and 'torchsim-fire'")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "optimize.json"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from golf.models.ops import tune_cpu_allocator

    tune_cpu_allocator()  # as golf's CLI does; applies to both contenders (same process)

    from golf.models import ModelEnergyForces, load_model
    from golf.chem import generate_conformers
    from golf.pool import nci_pool
    from golf.optim import relax

    confs = []
    for mol_id, smi in nci_pool(15, 30):
        if len(confs) >= args.n:
            break
        confs += generate_conformers(smi, 1, seed=0, mol_id=mol_id)
    confs = confs[: args.n]
    from golf.errors import GolfError

    try:
        model, model_name = load_model(args.model), Path(args.model).name
    except GolfError as exc:  # neither a file nor a known name: never fall back to random weights
        raise SystemExit(f"bench_optimize.py: {exc}") from None
    provider = ModelEnergyForces(model)
    print(f"{len(confs)} conformations, {np.mean([c.n_atoms for c in confs]):.1f} atoms on average, "
          f"model {model_name}, fmax {args.fmax} eV/A, {args.threads} thread(s)")

    rows: dict[str, dict] = {}
    energies: dict[str, np.ndarray] = {}
    for method in args.methods.split(","):
        t0 = time.perf_counter()
        if method == "ase":
            from ase.optimize import LBFGS

            from golf.chem import conformation_to_atoms

            calc = make_calculator(model)
            e, calls, conv = [], [], []
            for c in confs:
                atoms = conformation_to_atoms(c)
                atoms.calc = calc
                opt = LBFGS(atoms, logfile=None)
                ok = opt.run(fmax=args.fmax, steps=args.max_steps)
                e.append(atoms.get_potential_energy())
                calls.append(opt.nsteps + 1)
                conv.append(bool(ok))
            name = "ASE LBFGS loop"
        elif method == "torchsim-fire":
            out = torchsim_fire(model, confs, args.fmax, args.max_steps)
            if out is None:
                print("torchsim-fire: torch-sim-atomistic is not installed, column skipped")
                continue
            e, calls, conv = out
            name = "TorchSim FIRE (batched)"
        else:
            recs = relax(provider, confs, method=method, fmax=args.fmax, max_steps=args.max_steps)
            e = [r.energy for r in recs]
            calls = [r.n_force_calls for r in recs]
            conv = [r.converged for r in recs]
            name = f"golf {method} (batched)"
        wall = time.perf_counter() - t0
        energies[method] = np.asarray(e)
        rows[method] = dict(name=name, wall_s=wall, confs_per_s=len(confs) / wall,
                            force_evals_per_conf=float(np.mean(calls)),
                            median_force_evals=float(np.median(calls)), converged=int(sum(conv)))
    if "ase" in energies:
        for m, row in rows.items():
            signed = energies[m] - energies["ase"]
            row["median_abs_dE_vs_ase_eV"] = float(np.nanmedian(np.abs(signed)))
            # different optimizers may end in different local minima: say which side they land on
            row["lower_than_ase_by_1meV"] = int(np.sum(signed < -1e-3))
            row["higher_than_ase_by_1meV"] = int(np.sum(signed > 1e-3))
            row["speedup_vs_ase"] = rows["ase"]["wall_s"] / row["wall_s"]

    print("\n| method | wall s | conf/s | force evals/conf (median) | converged | median abs dE vs ASE (eV) "
          "| lower/higher than ASE | speedup |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows.values():
        print(f"| {row['name']} | {row['wall_s']:.1f} | {row['confs_per_s']:.2f} | "
              f"{row['force_evals_per_conf']:.1f} ({row['median_force_evals']:.0f}) | {row['converged']}/{len(confs)} | "
              f"{row.get('median_abs_dE_vs_ase_eV', float('nan')):.2e} | "
              f"{row.get('lower_than_ase_by_1meV', '-')}/{row.get('higher_than_ase_by_1meV', '-')} | "
              f"{row.get('speedup_vs_ase', float('nan')):.2f}x |")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(dict(n_confs=len(confs), model=model_name, fmax=args.fmax, threads=args.threads,
                                   torch=torch.__version__, machine=platform.processor() or platform.machine(),
                                   omp_num_threads=os.environ.get("OMP_NUM_THREADS"), results=rows), indent=2))
    os.replace(tmp, out)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
