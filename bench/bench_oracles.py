"""xTB oracle throughput: serial vs a local pool of 2 spawned workers vs a Dask LocalCluster of 2.

The same conformations (20 small NCI-like molecules x 2 ETKDGv3 conformers = 40) are labelled by
each executor; every worker uses one OpenMP thread. Worker start-up is excluded from calls/s (one
warm-up call per worker first) and reported separately.

    OMP_NUM_THREADS=1 python bench/bench_oracles.py [--repeat 3] [--out bench/results/oracles.json]

Prints a table and writes JSON (atomically). This script never imports torch, so the serial mode
runs tblite in this process.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

from golf.conformation import Conformation  # noqa: E402
from golf.oracles import OracleSpec  # noqa: E402
from golf.oracles.executors import make_executor  # noqa: E402

SMILES = [
    "CCO", "CC(=O)O", "c1ccccc1O", "CC(C)O", "CCN(CC)CC", "CC(=O)Nc1ccccc1", "COc1ccccc1",
    "OC(=O)c1ccccc1", "CCOC(=O)C", "NC(=O)c1ccncc1", "Clc1ccccc1", "CCCCCC", "OCC(O)CO",
    "CC(C)(C)O", "C1CCOC1", "CSC", "FC(F)(F)c1ccccc1", "Brc1ccccc1", "CC#N", "O=C1CCCCC1",
]


def build_conformations(n_conf: int = 2, seed: int = 0) -> list[Conformation]:
    from rdkit import Chem
    from rdkit.Chem import AllChem

    out = []
    for mol_id, smi in enumerate(SMILES):
        mol = Chem.AddHs(Chem.MolFromSmiles(smi))
        params = AllChem.ETKDGv3()
        params.randomSeed = seed
        cids = list(AllChem.EmbedMultipleConfs(mol, numConfs=n_conf, params=params))
        block = Chem.MolToMolBlock(mol)
        for k, cid in enumerate(cids):
            out.append(Conformation(
                numbers=[a.GetAtomicNum() for a in mol.GetAtoms()],
                positions=mol.GetConformer(cid).GetPositions(),
                smiles=smi, mol_id=mol_id, conf_id=k, molblock=block,
            ))
    return out


def run(kind: str, confs: list[Conformation], repeat: int, n_workers: int) -> dict:
    t0 = time.perf_counter()
    ex = make_executor(OracleSpec("xtb"), kind=kind, n_workers=n_workers, threads_per_worker=1)
    try:
        for w in range(ex.n_workers):  # warm-up: start workers, import tblite, build the oracle
            ex.submit(confs[w], key=("warm", w))
        list(ex.as_completed())
        startup = time.perf_counter() - t0
        t1 = time.perf_counter()
        n_ok = n_fail = 0
        energies = {}
        for r in range(repeat):
            for i, c in enumerate(confs):
                ex.submit(c, key=(r, i))
        for (r, i), res in ex.as_completed():
            n_ok += res.ok
            n_fail += not res.ok
            if r == 0 and res.ok:
                energies[i] = res.energy
        wall = time.perf_counter() - t1
    finally:
        ex.close()
    n = repeat * len(confs)
    return {"kind": kind, "workers": ex.n_workers if kind != "dask" else n_workers, "calls": n,
            "ok": n_ok, "failed": n_fail, "seconds": wall, "calls_per_s": n / wall,
            "startup_s": startup, "energies": energies}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3, help="passes over the 40 conformations")
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "oracles.json"))
    ap.add_argument("--kinds", default="serial,local,dask")
    args = ap.parse_args()
    confs = build_conformations()
    rows = []
    for kind in args.kinds.split(","):
        rows.append(run(kind, confs, args.repeat, n_workers=1 if kind == "serial" else 2))
    base = rows[0]["energies"]
    for row in rows:
        e = row.pop("energies")
        row["max_abs_energy_diff_vs_first_eV"] = max((abs(e[i] - base[i]) for i in e if i in base), default=0.0)
    ref = rows[0]["calls_per_s"]
    print(f"xTB (GFN2, tblite) on {len(confs)} conformations x {args.repeat}, OMP_NUM_THREADS=1, "
          f"{os.cpu_count()} CPUs")
    print(f"{'executor':<10}{'workers':>8}{'calls':>7}{'failed':>8}{'wall s':>9}{'calls/s':>9}"
          f"{'speedup':>9}{'startup s':>11}")
    for row in rows:
        print(f"{row['kind']:<10}{row['workers']:>8}{row['calls']:>7}{row['failed']:>8}{row['seconds']:>9.2f}"
              f"{row['calls_per_s']:>9.1f}{row['calls_per_s'] / ref:>9.2f}{row['startup_s']:>11.2f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": "xtb oracle throughput", "n_conformations": len(confs), "repeat": args.repeat,
           "smiles": SMILES, "cpu_count": os.cpu_count(), "python": sys.version.split()[0],
           "machine": platform.machine(), "results": rows,
           "note": "2 CPU cores shared with other jobs during measurement; startup excluded from calls/s"}
    fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(tmp, out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
