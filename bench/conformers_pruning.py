"""Could ``golf conformers`` stop relaxing conformers that will not be kept? An experiment on recorded trajectories.

The ten drugs of ``bench/conformers_drugs.py`` are embedded as ``golf conformers`` does (same counts and seed) and
relaxed by GOLF-10k with golf's default optimizer and fmax, every step recorded (one process, one thread). A
conformer is *needed* when it ends in the kept set (golf's deduplication and the 10 lowest). Two rules are then
played back on the recorded steps, without changing golf:

* the remaining descent: how far each relaxation still falls after its max force first drops below f (kcal/mol);
* stopping a conformer at the first step where its max force is below f and its energy is more than a gap M above
  the 10th-best *final* energy of its molecule (known only afterwards, so this is an optimistic bound): the
  share of all steps saved, and how many needed conformers it would have stopped.

    OMP_NUM_THREADS=1 python bench/conformers_pruning.py    # ~3 CPU min; writes bench/results/conformers_pruning.json
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KCAL = 23.060547830619026  # kcal/mol per eV
FORCES = (1.0, 0.5, 0.3, 0.2, 0.1)  # eV/A
GAPS = (3.0, 5.0, 10.0, 15.0)  # kcal/mol


def main() -> None:
    import torch

    sys.path.insert(0, str(HERE))
    from conformers_drugs import DRUGS

    from golf.conformer_search import ConformerSettings, _embed, deduplicate, read_molecules, select_conformers
    from golf.models import ModelEnergyForces, load_model
    from golf.optim import relax

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        smi = Path(tmp) / "drugs.smi"
        smi.write_text("".join(f"{s} {n.replace(' ', '_')}\n" for n, s in DRUGS))
        molecules = read_molecules(smi)
    settings = ConformerSettings()
    confs, owner = [], []
    for k, item in enumerate(molecules):
        new = _embed(item, item.mol, item.name, k, settings)
        confs += new
        owner += [k] * len(new)
    recs = relax(ModelEnergyForces(load_model("GOLF-10k")), confs, method=settings.optimizer, fmax=settings.fmax,
                 max_steps=settings.max_steps, trajectory=True)

    by_mol: dict[int, list[int]] = {}
    for i, k in enumerate(owner):
        by_mol.setdefault(k, []).append(i)
    needed: set[int] = set()
    kth: dict[int, float] = {}  # the 10th-best (or worst kept) final energy of each molecule, kcal/mol
    for k, ids in by_mol.items():
        final = [recs[i].energy for i in ids]
        kept, _ = deduplicate([confs[i].with_positions(recs[i].positions) for i in ids], final,
                              settings.rmsd_threshold, settings.energy_threshold, mirror=True)
        chosen = [ids[kept[c]] for c in select_conformers([final[j] for j in kept], settings.top_k, None)]
        needed.update(chosen)
        kth[k] = max(recs[i].energy for i in chosen) * KCAL
    steps_total = sum(len(r.trajectory_fmax) - 1 for r in recs)

    descent = {}
    for f in FORCES:
        rem = [(r.trajectory_energies[t] - r.trajectory_energies[-1]) * KCAL
               for r in recs for t in [int(np.argmax(r.trajectory_fmax < f))] if (r.trajectory_fmax < f).any()]
        descent[str(f)] = dict(median=float(np.median(rem)), p95=float(np.percentile(rem, 95)), max=float(np.max(rem)))
    rules = []
    for f in FORCES[:4]:
        for gap in GAPS:
            saved, stopped_needed = 0, 0
            for i, r in enumerate(recs):
                hit = np.flatnonzero((r.trajectory_fmax < f) & (r.trajectory_energies * KCAL - gap > kth[owner[i]]))
                if len(hit):
                    saved += len(r.trajectory_fmax) - 1 - int(hit[0])
                    stopped_needed += i in needed
            rules.append(dict(fmax_below=f, gap_kcal=gap, steps_saved_fraction=saved / steps_total,
                              needed_stopped=stopped_needed))
    out = dict(n_relaxed=len(recs), n_needed=len(needed), steps=steps_total,
               remaining_descent_kcal_after_fmax_below=descent, stop_rules=rules,
               settings=dict(optimizer=settings.optimizer, fmax=settings.fmax, top_k=settings.top_k))
    path = HERE / "results" / "conformers_pruning.json"
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"{len(needed)} of {len(recs)} conformers kept; -> {path}")
    for r in rules:
        print(f"  fmax < {r['fmax_below']}, gap {r['gap_kcal']:>4}: {r['steps_saved_fraction']:.1%} of steps saved, "
              f"{r['needed_stopped']} kept conformers stopped")


if __name__ == "__main__":
    main()
