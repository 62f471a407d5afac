"""Benchmark golf's PaiNN against schnetpack's PaiNN of the same size on CPU.

Workload: a batch of 64 drug-like conformations (RDKit ETKDGv3 of NCI molecules with 15-30 heavy atoms,
rdkit/Data/NCI/first_5K.smi). Two timings per implementation:
  * forward+forces: energies and forces -dE/dX (eval mode, no graph kept);
  * train step: energy+forces with create_graph=True, loss 0.01*MSE(E) + 0.99*MSE(F), backward, Adam step.
golf's time includes building the neighbour pairs in torch; schnetpack receives precomputed pairs (its
neighbour lists normally come from the data pipeline), which favours schnetpack.
Both models hold the same weights (the official baseline-NNP checkpoint, shipped with golf), and the outputs
are compared.

schnetpack is found either installed (``import schnetpack``) or from an unpacked wheel given with
``--schnetpack-src DIR`` (the directory that contains the ``schnetpack`` package; only its nn, atomistic and
representation modules are imported).

Usage:  OMP_NUM_THREADS=1 python bench/bench_model.py [--threads 1] [--repeats 5] [--schnetpack-src DIR]
                                                      [--tune-allocator]
Writes bench/results/model.json and prints a table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OFFICIAL = "baseline-NNP"  # shipped with golf: golf.load_model resolves the name
ALLOWED = {1, 6, 7, 8, 9, 16, 17, 35}


def drug_like_conformations(n: int, seed: int = 0, min_heavy: int = 15, max_heavy: int = 30):
    """n (numbers [n_i], positions [n_i, 3]) from the first NCI SMILES that pass the filters and embed."""
    from rdkit import Chem, RDConfig
    from rdkit.Chem import AllChem

    path = Path(RDConfig.RDDataDir) / "NCI" / "first_5K.smi"
    out = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if not parts:
            continue
        mol = Chem.MolFromSmiles(parts[0])
        if mol is None or len(Chem.GetMolFrags(mol)) != 1:
            continue
        if not (min_heavy <= mol.GetNumHeavyAtoms() <= max_heavy):
            continue
        if any(a.GetAtomicNum() not in ALLOWED or a.GetFormalCharge() or a.GetNumRadicalElectrons()
               for a in mol.GetAtoms()):
            continue
        mol = Chem.AddHs(mol)
        params = AllChem.ETKDGv3()
        params.randomSeed = seed
        if AllChem.EmbedMolecule(mol, params) != 0:
            continue
        numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
        out.append((numbers, mol.GetConformer().GetPositions()))
        if len(out) == n:
            break
    return out


def import_schnetpack(src: str | None):
    try:
        import schnetpack  # noqa: F401
        import schnetpack.atomistic
        import schnetpack.representation

        return schnetpack, getattr(schnetpack, "__version__", "?")
    except Exception:
        pass
    if not src:
        return None, None
    pkg_dir = Path(src) / "schnetpack"
    if not pkg_dir.is_dir():
        return None, None
    pkg = types.ModuleType("schnetpack")  # a bare package: skip its heavy __init__ (lightning, hydra)
    pkg.__path__ = [str(pkg_dir)]
    sys.modules["schnetpack"] = pkg
    import schnetpack.atomistic  # noqa: F401
    import schnetpack.nn  # noqa: F401
    import schnetpack.representation  # noqa: F401

    version = "?"
    for line in (pkg_dir / "__init__.py").read_text().splitlines():
        if line.startswith("__version__"):
            version = line.split("=")[1].strip().strip("\"'")
    return pkg, version


class SchnetpackPotential(torch.nn.Module):
    """schnetpack's NeuralNetworkPotential pipeline without its data/transform layer."""

    def __init__(self, spk, n_atom_basis=128, n_interactions=3, n_rbf=50, cutoff=5.0):
        super().__init__()
        self.spk = spk
        self.distances = spk.atomistic.PairwiseDistances()
        self.representation = spk.representation.PaiNN(
            n_atom_basis=n_atom_basis, n_interactions=n_interactions,
            radial_basis=spk.nn.BesselRBF(n_rbf=n_rbf, cutoff=cutoff), cutoff_fn=spk.nn.CosineCutoff(cutoff),
        )
        self.output_modules = torch.nn.ModuleList([spk.atomistic.Atomwise(n_in=n_atom_basis, output_key="energy")])
        self.forces = spk.atomistic.Forces()

    def forward(self, inputs):
        inputs = dict(inputs)
        inputs["_positions"] = inputs["_positions"].detach().requires_grad_(True)
        inputs = self.distances(inputs)
        inputs = self.representation(inputs)
        inputs = self.output_modules[0](inputs)
        self.forces.train(self.training)
        inputs = self.forces(inputs)
        return inputs["energy"], inputs["forces"]


def timeit(fn, repeats: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def timeit_interleaved(fns, repeats: int, warmup: int = 1) -> list[float]:
    """Median seconds of each function, timed in alternation so that all see the same machine load."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for k, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-mols", type=int, default=64)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--schnetpack-src", default=os.environ.get("SCHNETPACK_SRC"))
    parser.add_argument("--output", default=str(HERE / "results" / "model.json"))
    parser.add_argument("--tune-allocator", action="store_true",
                        help="call golf.models.ops.tune_cpu_allocator() first (process-wide: helps both models)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.tune_allocator:
        from golf.models.ops import tune_cpu_allocator

        args.tune_allocator = tune_cpu_allocator()

    from golf.batch import Batch
    from golf.models import load_model
    from golf.models.ops import all_pairs

    confs = drug_like_conformations(args.n_mols)
    numbers = torch.as_tensor(np.concatenate([z for z, _ in confs]))
    positions = torch.as_tensor(np.concatenate([p for _, p in confs]), dtype=torch.float32)
    counts = torch.as_tensor([len(z) for z, _ in confs])
    mol_idx = torch.repeat_interleave(torch.arange(len(confs)), counts)
    batch = Batch(numbers, positions, mol_idx, len(confs))
    idx_i, idx_j = all_pairs(mol_idx, len(confs))
    d = (positions[idx_j] - positions[idx_i]).norm(dim=-1)
    n_pairs = int((d < 5.0).sum())

    model = load_model(OFFICIAL)
    weights = "official baseline-NNP"
    model.energy_scale = 1.0  # compare raw network outputs with schnetpack
    rng_target_e = torch.randn(len(confs), generator=torch.Generator().manual_seed(1))
    rng_target_f = torch.randn(len(numbers), 3, generator=torch.Generator().manual_seed(2))

    def loss_fn(e, f):
        return 0.01 * (e - rng_target_e).square().mean() + 0.99 * (f - rng_target_f).square().mean()

    # ---- golf
    def golf_forces():
        model.eval()
        model.energy_and_forces(batch)

    opt = torch.optim.Adam(model.parameters(), lr=1e-9)

    def golf_train():
        model.train()
        opt.zero_grad(set_to_none=True)
        e, f = model.energy_and_forces(batch, create_graph=True)
        loss_fn(e, f).backward()
        opt.step()

    rows = [{"impl": "golf"}]

    # ---- schnetpack
    spk, spk_version = import_schnetpack(args.schnetpack_src)
    comparison = None
    if spk is not None:
        ref = SchnetpackPotential(spk)
        sd = {k: v for k, v in model.state_dict().items() if k.startswith("representation.")}
        sd.update({"output_modules.0." + k[len("output."):]: v for k, v in model.state_dict().items()
                   if k.startswith("output.")})
        missing, unexpected = ref.load_state_dict(sd, strict=False)
        assert not unexpected and not [m for m in missing if not m.startswith("forces")], (missing, unexpected)
        sel = d < 5.0
        inputs = {
            "_atomic_numbers": numbers, "_positions": positions, "_idx_m": mol_idx,
            "_idx_i": idx_i[sel], "_idx_j": idx_j[sel], "_offsets": torch.zeros(int(sel.sum()), 3),
            "_n_atoms": counts,
        }
        ref.eval()
        e_ref, f_ref = ref(inputs)
        model.eval()
        e_golf, f_golf = model.energy_and_forces(batch)
        comparison = {
            "max_rel_energy_diff": float(((e_golf - e_ref).detach().abs() / e_ref.detach().abs()).max()),
            "max_abs_force_diff": float((f_golf - f_ref).detach().abs().max()),
            "max_abs_force": float(f_ref.abs().max()),
        }
        opt_ref = torch.optim.Adam(ref.parameters(), lr=1e-9)

        def spk_forces():
            ref.eval()
            ref(inputs)

        def spk_train():
            ref.train()
            opt_ref.zero_grad(set_to_none=True)
            e, f = ref(inputs)
            loss_fn(e, f).backward()
            opt_ref.step()

        f_golf, f_spk = timeit_interleaved([golf_forces, spk_forces], args.repeats)
        t_golf, t_spk = timeit_interleaved([golf_train, spk_train], args.repeats)
        rows[0].update(forward_forces_s=f_golf, train_step_s=t_golf)
        rows.append({"impl": f"schnetpack {spk_version}", "forward_forces_s": f_spk, "train_step_s": t_spk})
        for key in ("forward_forces_s", "train_step_s"):
            rows[0][key[:-2] + "_speedup"] = rows[1][key] / rows[0][key]

    if len(rows) == 1:
        rows[0].update(forward_forces_s=timeit(golf_forces, args.repeats),
                       train_step_s=timeit(golf_train, args.repeats))

    result = {
        "workload": {"n_mols": len(confs), "n_atoms": int(len(numbers)), "n_pairs_within_cutoff": n_pairs,
                     "atoms_per_mol_mean": float(counts.float().mean()), "atoms_per_mol_max": int(counts.max()),
                     "model": "PaiNN 128 features x 3 interactions, 50 Bessel RBF, cutoff 5 A, MLP 128-64-1",
                     "weights": weights, "dtype": "float32", "device": "cpu"},
        "threads": args.threads, "repeats": args.repeats, "tuned_allocator": bool(args.tune_allocator), "statistic": "median",
        "torch": torch.__version__, "python": platform.python_version(), "machine": platform.machine(),
        "rows": rows, "output_comparison": comparison,
    }
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")

    print(f"PaiNN 128x3, {len(confs)} conformations, {len(numbers)} atoms, {n_pairs} pairs, "
          f"{args.threads} thread(s), median of {args.repeats}"
          + (", tuned allocator" if args.tune_allocator else ""))
    print(f"{'implementation':<20}{'forward+forces (ms)':>22}{'train step (ms)':>18}")
    for r in rows:
        print(f"{r['impl']:<20}{1e3 * r['forward_forces_s']:>22.1f}{1e3 * r['train_step_s']:>18.1f}")
    if len(rows) > 1:
        print(f"{'speedup (x)':<20}{rows[0]['forward_forces_speedup']:>22.2f}{rows[0]['train_step_speedup']:>18.2f}")
        print(f"outputs: max rel energy diff {comparison['max_rel_energy_diff']:.2e}, "
              f"max abs force diff {comparison['max_abs_force_diff']:.2e} (max |F| {comparison['max_abs_force']:.2e})")
    else:
        print("schnetpack not importable: pass --schnetpack-src DIR or install schnetpack for the comparison")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
