"""Measure the memory model of ``golf.batch.auto_batch_size``: peak memory of one PaiNN energy + force
evaluation per neighbour pair and per atom.

Each batch (conformers of the drugs of ``bench/conformers_drugs.py``, ETKDG as in ``golf conformers``) is
evaluated once in a fresh process, 1 torch thread, after a one-conformer warm-up; the growth of the peak
resident size (``ru_maxrss``) over that call is its memory. A least-squares fit of bytes = a * pairs +
b * atoms gives ``PAINN_PAIR_BYTES`` (a) and ``PAINN_ATOM_BYTES`` (b) for the model measured. The resident
size of each process once torch and the model are loaded, before RDKit and any batch (what a relaxation worker
holds), gives ``PROCESS_BYTES``.

    python bench/bench_memory.py [--model GOLF-10k]
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
BATCHES = [("caffeine", 10), ("atorvastatin", 8), ("atorvastatin", 32), ("caffeine,celecoxib,propranolol", 60),
           ("imatinib,sildenafil", 64), ("atorvastatin,imatinib", 90)]


def child(model_name: str, names: str, k: int) -> None:
    import torch

    torch.set_num_threads(1)
    from golf.models import load_model

    model = load_model(model_name)
    # torch and the model, before RDKit and any batch: what a relaxation worker holds (golf.runs.relax_pool)
    status = Path("/proc/self/status")
    rss = [ln for ln in status.read_text().splitlines() if ln.startswith("VmRSS:")] if status.exists() else []
    process_bytes = int(rss[0].split()[1]) * 1024 if rss else None
    sys.path.insert(0, str(HERE))
    from conformers_drugs import DRUGS

    from golf.batch import Batch, count_pairs
    from golf.chem import generate_conformers
    from golf.conformer_search import default_n_conformers
    from rdkit import Chem

    wanted = names.split(",")
    confs = []
    for name, smi in DRUGS:
        if name in wanted:
            mol = Chem.MolFromSmiles(smi)
            confs.extend(generate_conformers(mol, default_n_conformers(mol), 0))
    confs = confs[:k]
    model.energy_and_forces(Batch.from_conformations(confs[:1]))
    batch = Batch.from_conformations(confs)
    pairs = sum(count_pairs(batch, model.cutoff))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model.energy_and_forces(batch)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(dict(batch=names, k=len(confs), atoms=int(batch.positions.shape[0]), pairs=pairs,
                          bytes=(after - before) * 1024, process_bytes=process_bytes)))


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--_child":
        child(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="GOLF-10k")
    args = ap.parse_args()
    rows = []
    for names, k in BATCHES:
        out = subprocess.run([sys.executable, __file__, "--_child", args.model, names, str(k)], check=True,
                             capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    a = np.array([[r["pairs"], r["atoms"]] for r in rows], float)
    y = np.array([r["bytes"] for r in rows], float)
    (per_pair, per_atom), *_ = np.linalg.lstsq(a, y, rcond=None)
    worst = float(np.max(np.abs(a @ [per_pair, per_atom] - y) / y))
    print(f"bytes per pair {per_pair:.0f}, per atom {per_atom:.0f}; largest relative residual {worst:.1%}")
    fixed = [r["process_bytes"] for r in rows if r.get("process_bytes")]
    if fixed:  # golf.batch.PROCESS_BYTES: what each relaxation process beyond the first adds
        print(f"resident size of a process with torch and the model loaded, before RDKit and any batch: median "
              f"{np.median(fixed) / 2**20:.0f} MiB over {len(fixed)} processes")


if __name__ == "__main__":
    main()
