"""Benchmark: golf's default batched relaxation vs TorchSim's batched optimizers, same model, same starts.

TorchSim (PyPI ``torch-sim-atomistic``) is the reference for batched relaxation of many systems with one
machine-learned potential. Both sides relax the same N drug-like conformations (NCI pool, test split,
15-30 heavy atoms, one ETKDG conformer each) with the same GOLF-10k PaiNN, in one process, to the same
fmax (0.05 eV/A) with the same step cap (1000):

- golf: ``golf.optim.relax.relax`` with its defaults (method, batch size, dtype);
- TorchSim: ``torch_sim.optimize`` with each of its molecular optimizers (FIRE in its ASE flavour and in
  the original velocity-Verlet flavour, and gradient descent), the golf model wrapped as a TorchSim
  ``ModelInterface``; TorchSim removes converged systems from the batch every ``steps_between_swaps``
  (5) steps, checked with ``generate_force_convergence_fn(fmax)``.

Reported per optimizer: wall and CPU time (process CPU, all threads), force calls (golf: per molecule;
TorchSim: model calls x systems in the call, divided by N, since a batched call has no per-molecule
identity), converged count, final energy per conformation (eV) and the median (signed and absolute)
difference from golf's final energy, and whether the bonds of the start survived (``intact``: FIRE without
a step cap can fling atoms apart, and a torn-apart molecule has small forces). ``speedup`` = wall of the
best TorchSim optimizer (most conformations converged with bonds intact, then the fastest) / golf's wall;
``speedup_cpu`` the same with CPU time, steadier on a shared machine.
The JSON is rewritten after each optimizer (``complete`` false until the last one).

    OMP_NUM_THREADS=2 nice -n 10 python bench/torchsim_compare.py --n 128 --threads 2

Writes bench/results/torchsim.json (``--out``), atomically.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
# name -> (TorchSim optimizer factory name, keyword arguments)
TORCHSIM_OPTIMIZERS: dict[str, tuple[str, dict[str, Any]]] = {
    "torchsim-fire-ase": ("fire", {"md_flavor": "ase_fire"}),
    "torchsim-fire-vv": ("fire", {"md_flavor": "vv_fire"}),
    "torchsim-gd": ("gradient_descent", {"lr": 0.01}),
}


def pool_conformations(n: int, seed: int = 0) -> list:
    """N single-ETKDG-conformer drug-like molecules from the NCI pool's test split (15-30 heavy atoms)."""
    from golf.chem import generate_conformers
    from golf.errors import GolfError
    from golf.pool import select_pool_molecules

    confs: list = []
    for mol_id, smi in select_pool_molecules(None, split="test", min_heavy=15, max_heavy=30):
        if len(confs) >= n:
            break
        try:
            confs += generate_conformers(smi, 1, seed=seed, mol_id=mol_id)
        except GolfError as exc:  # an unembeddable molecule is skipped, the next one is taken
            print(f"torchsim_compare.py: molecule {mol_id} skipped: {exc}", file=sys.stderr)
    return confs[:n]


def bonds_intact(start: np.ndarray, final: np.ndarray, numbers: np.ndarray) -> bool:
    """True when every bond of the start geometry (distance < 1.2 x the sum of covalent radii) is still
    shorter than 1.5 x that sum in the final geometry: the relaxation did not tear the molecule apart.
    """
    from ase.data import covalent_radii

    r = covalent_radii[numbers]
    rsum = r[:, None] + r[None, :]
    d0 = np.linalg.norm(start[:, None] - start[None, :], axis=-1)
    d1 = np.linalg.norm(final[:, None] - final[None, :], axis=-1)
    bonded = (d0 < 1.2 * rsum) & ~np.eye(len(numbers), dtype=bool)
    return bool(np.all(d1[bonded] < 1.5 * rsum[bonded]))


def make_torchsim_model(model: torch.nn.Module):
    """The golf potential as a TorchSim ``ModelInterface`` (energy [n_systems] eV, forces [n_atoms, 3] eV/A).

    ``n_system_evals`` counts systems per call, summed over calls.
    """
    from torch_sim.models.interface import ModelInterface

    from golf.batch import Batch
    from golf.models import ModelEnergyForces

    provider = ModelEnergyForces(model)

    class GolfTorchSimModel(ModelInterface):
        def __init__(self) -> None:
            super().__init__()
            self._device, self._dtype = torch.device("cpu"), torch.float32
            self._compute_stress, self._compute_forces = False, True
            self._memory_scales_with = "n_atoms"
            self.n_system_evals = 0
            self.n_calls = 0

        def forward(self, state, **kwargs) -> dict[str, torch.Tensor]:
            batch = Batch(state.atomic_numbers.long(), state.positions, state.system_idx.long(), state.n_systems)
            energy, forces = provider(batch)
            self.n_system_evals += int(state.n_systems)
            self.n_calls += 1
            return {"energy": energy.to(self._dtype), "forces": forces.to(self._dtype)}

    return GolfTorchSimModel()


def run_torchsim(model, confs, opt_name: str, opt_kwargs: dict[str, Any], fmax: float,
                 max_steps: int) -> dict[str, Any]:
    """Relax ``confs`` with one TorchSim optimizer; per-conformation energies (eV), fmax, converged flags."""
    import warnings

    import torch_sim as ts

    from golf.chem import conformation_to_atoms
    from golf.optim.state import segment_max

    ts_model = make_torchsim_model(model)
    atoms = [conformation_to_atoms(c) for c in confs]
    optimizer = getattr(ts.optimizers, opt_name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "reached max steps" is recorded as converged=False instead
        final = ts.optimize(
            system=atoms, model=ts_model, optimizer=optimizer, max_steps=max_steps,
            convergence_fn=ts.generate_force_convergence_fn(force_tol=fmax, include_cell_forces=False),
            **opt_kwargs,
        )
    energies = final.energy.detach().double().numpy()
    pos = final.positions.detach().double().numpy()
    idx = final.system_idx.numpy()
    positions = [pos[idx == i] for i in range(final.n_systems)]
    fmax_per = segment_max(final.forces.detach().norm(dim=-1), final.system_idx, final.n_systems).double().numpy()
    return dict(energies=energies, fmax=fmax_per, converged=fmax_per <= fmax, positions=positions,
                force_calls_per_conf=ts_model.n_system_evals / len(confs), model_calls=ts_model.n_calls)


def run_golf(model, confs, fmax: float, max_steps: int) -> dict[str, Any]:
    """Relax ``confs`` with ``golf.optim.relax.relax`` at its defaults (only fmax and the cap given)."""
    from golf.models import ModelEnergyForces
    from golf.optim import relax

    recs = relax(ModelEnergyForces(model), confs, fmax=fmax, max_steps=max_steps)
    calls = np.asarray([r.n_force_calls for r in recs], dtype=float)
    return dict(energies=np.asarray([r.energy for r in recs]), fmax=np.asarray([r.fmax for r in recs]),
                converged=np.asarray([r.converged for r in recs]),
                positions=[r.positions for r in recs], force_calls_per_conf=float(calls.mean()),
                median_force_calls=float(np.median(calls)))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=128, help="conformations (default 128)")
    ap.add_argument("--model", default="GOLF-10k", help="model name or checkpoint file (default GOLF-10k)")
    ap.add_argument("--fmax", type=float, default=0.05, help="eV/A (default 0.05)")
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    ap.add_argument("--optimizers", default=",".join(TORCHSIM_OPTIMIZERS),
                    help=f"comma list of TorchSim optimizers (default all: {','.join(TORCHSIM_OPTIMIZERS)})")
    ap.add_argument("--out", default=str(RESULTS / "torchsim.json"))
    args = ap.parse_args(argv)
    names = [s for s in args.optimizers.split(",") if s]
    bad = [s for s in names if s not in TORCHSIM_OPTIMIZERS]
    if bad or args.n < 1:
        print(f"torchsim_compare.py: unknown optimizer {bad[0]!r}" if bad else "torchsim_compare.py: --n must be >= 1",
              file=sys.stderr)
        return 2
    try:
        import torch_sim  # noqa: F401
    except ImportError:
        print("torchsim_compare.py: torch-sim-atomistic is not installed (pip install torch-sim-atomistic)",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    from golf.errors import GolfError
    from golf.models import load_model
    from golf.models.ops import tune_cpu_allocator

    tune_cpu_allocator()  # as golf's CLI does; applies to both contenders (same process)
    try:
        model = load_model(args.model)
    except GolfError as exc:
        print(f"torchsim_compare.py: {exc}", file=sys.stderr)
        return 2
    model.eval()
    confs = pool_conformations(args.n)
    print(f"{len(confs)} conformations, {np.mean([c.n_atoms for c in confs]):.1f} atoms on average, "
          f"model {args.model}, fmax {args.fmax} eV/A, cap {args.max_steps}, {args.threads} thread(s)", flush=True)

    raw: dict[str, dict[str, Any]] = {}
    order = ["golf"] + names
    start = [np.asarray(c.positions, dtype=float) for c in confs]
    for name in order:
        t0, c0 = time.perf_counter(), time.process_time()
        if name == "golf":
            out = run_golf(model, confs, args.fmax, args.max_steps)
        else:
            opt, kw = TORCHSIM_OPTIMIZERS[name]
            out = run_torchsim(model, confs, opt, kw, args.fmax, args.max_steps)
        out["wall_s"], out["cpu_s"] = time.perf_counter() - t0, time.process_time() - c0
        out["intact"] = np.asarray([bonds_intact(s0, p, np.asarray(c.numbers))
                                    for s0, p, c in zip(start, out.pop("positions"), confs)])
        raw[name] = out
        print(f"{name}: wall {out['wall_s']:.1f} s, cpu {out['cpu_s']:.1f} s, converged "
              f"{int(out['converged'].sum())}/{len(confs)}, intact {int(out['intact'].sum())}", flush=True)
        write_report(args, confs, raw, final=name == order[-1])
    return 0


def write_report(args: argparse.Namespace, confs: list, raw: dict[str, dict[str, Any]], final: bool) -> None:
    """Rows for the optimizers done so far; the JSON is rewritten (atomically) after each optimizer."""
    import importlib.metadata as md

    e_golf = raw["golf"]["energies"]
    rows: dict[str, dict[str, Any]] = {}
    for name, r in raw.items():
        d = r["energies"] - e_golf
        ok = r["converged"] & r["intact"]
        rows[name] = dict(
            wall_s=r["wall_s"], cpu_s=r["cpu_s"], confs_per_s=len(confs) / r["wall_s"],
            force_calls_per_conf=r["force_calls_per_conf"], converged=int(r["converged"].sum()),
            intact=int(r["intact"].sum()), converged_intact=int(ok.sum()),
            median_dE_vs_golf_eV=float(np.nanmedian(d)), median_abs_dE_vs_golf_eV=float(np.nanmedian(np.abs(d))),
            lower_than_golf_by_1meV=int(np.sum(d < -1e-3)), higher_than_golf_by_1meV=int(np.sum(d > 1e-3)),
            energies_eV=[float(x) for x in r["energies"]], final_fmax=[float(x) for x in r["fmax"]],
        )
        for k in ("median_force_calls", "model_calls"):
            if k in r:
                rows[name][k] = r[k]
        if name != "golf":
            rows[name]["wall_vs_golf"] = r["wall_s"] / raw["golf"]["wall_s"]
    ts_names = [n for n in raw if n != "golf"]
    # best TorchSim optimizer: most conformations converged with bonds intact, then the fastest
    best = min(ts_names, key=lambda s: (-rows[s]["converged_intact"], rows[s]["wall_s"])) if ts_names else None
    speedup = rows[best]["wall_s"] / rows["golf"]["wall_s"] if best else None
    speedup_cpu = rows[best]["cpu_s"] / rows["golf"]["cpu_s"] if best else None
    if final:
        print("\n| optimizer | wall s | CPU s | force calls/conf | converged (bonds intact) | median dE vs golf (eV) "
              "| median abs dE |")
        print("|---|---|---|---|---|---|---|")
        for name, r in rows.items():
            print(f"| {name} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['force_calls_per_conf']:.1f} | "
                  f"{r['converged']}/{len(confs)} ({r['converged_intact']}) | {r['median_dE_vs_golf_eV']:+.2e} | "
                  f"{r['median_abs_dE_vs_golf_eV']:.2e} |")
        if best:
            print(f"speedup (TorchSim {best} wall / golf wall): {speedup:.2f}x (CPU time: {speedup_cpu:.2f}x)")
    report = dict(
        complete=final, n_confs=len(confs), model=args.model, fmax=args.fmax, max_steps=args.max_steps,
        threads=args.threads, mol_ids=[int(c.mol_id) for c in confs], n_atoms=[int(c.n_atoms) for c in confs],
        torch=torch.__version__, torch_sim=md.version("torch-sim-atomistic"),
        machine=platform.processor() or platform.machine(), omp_num_threads=os.environ.get("OMP_NUM_THREADS"),
        load_average_1min=os.getloadavg()[0], golf_settings="golf.optim.relax.relax defaults",
        intact_definition="every start bond (d < 1.2 x sum of covalent radii) still < 1.5 x that sum",
        best_torchsim=best, speedup=speedup, speedup_cpu=speedup_cpu, rows=rows,
        optimizers_not_run=[n for n in TORCHSIM_OPTIMIZERS if n not in raw and n not in args.optimizers.split(",")],
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, out)
    if final:
        print(f"wrote {out}")


if __name__ == "__main__":
    sys.exit(main())
