"""Choosing ``golf conformers --mmff-start`` (MMFF94 iterations on each ETKDG conformer before the model) on
validation drugs that are in neither the ten-drug cost bench (``bench/conformers_drugs.py``) nor the DFT-judged set
(``bench/conformers_dft.py``).

Each setting runs ``golf conformers`` with every other default in a fresh subprocess (the measurement of
``bench/conformers_drugs.measure``: CPU of the process tree, peak RSS, model force calls). Per molecule it compares
the kept model energies with those of ``--mmff-start 0`` (the model relaxing the ETKDG conformers themselves): the
lowest energy found (negative = the MMFF start found a lower minimum) and the number kept. Force calls do not
depend on the machine's load; CPU seconds do (run it on an idle machine for those).

    OMP_NUM_THREADS=1 python bench/conformers_mmff_start.py

Writes bench/results/conformers_mmff_start.json. ``--window`` instead asks whether an MMFF94 energy window could
also drop MMFF minima far above the molecule's lowest before the model relaxes them: with the default settings
(one process, in this process), for every relaxed start its MMFF gap above the lowest MMFF minimum of its
molecule, its force calls, and whether it ended among the kept conformers; then, per window W, the force calls W
would save and the kept conformers it would lose (``--drugs``: the ten drugs of the cost bench instead of the
validation drugs). Writes bench/results/conformers_mmff_window[_drugs].json.

``--screen`` asks whether a screening stage could cut the model's force calls further without changing the
output (the multilevel pruning of CREST/CENSO-style workflows): relax every start only until max |F| <= S, drop
the starts whose model energy there is more than a margin M above the top_k-th lowest of their molecule, and relax
only the rest to the final fmax. From the default run's per-step trajectories (one process, in this process), per
(S, M): the force calls the dropped starts would not spend after reaching S (an upper bound on the saving: a
second stage would also restart L-BFGS's memory), the kept conformers it would lose, and the largest fall of a
start's model energy relative to its molecule's other starts after S (the margin a safe screen needs). Writes
bench/results/conformers_screen.json.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conformers_drugs import measure  # noqa: E402

#: (name, SMILES): marketed drugs, neutral, 14-30 heavy atoms, in neither benchmark set.
VALIDATION = [
    ("ibuprofen", "CC(C)Cc1ccc(C(C)C(=O)O)cc1"),
    ("nitrazepam", "O=C1CN=C(c2ccccc2)c2cc([N+](=O)[O-])ccc2N1"),
    ("losartan", "CCCCc1nc(Cl)c(CO)n1Cc1ccc(-c2ccccc2-c2nn[nH]n2)cc1"),
    ("metoprolol", "COCCc1ccc(OCC(O)CNC(C)C)cc1"),
    ("naproxen", "COc1ccc2cc([C@H](C)C(=O)O)ccc2c1"),
    ("verapamil", "COc1ccc(CCN(C)CCCC(C#N)(C(C)C)c2ccc(OC)c(OC)c2)cc1OC"),
    ("lidocaine", "CCN(CC)CC(=O)Nc1c(C)cccc1C"),
    ("imipramine", "CN(C)CCCN1c2ccccc2CCc2ccccc21"),
]
SETTINGS = (0, 200, 500, 2000)


WINDOWS_KCAL = (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)


def _default_run(molecules: list[tuple[str, str]], trajectory: bool = False) -> tuple[list, list, list]:
    """``golf conformers``'s pipeline with every default (GOLF-10k, one process, in this process): the results,
    every relaxed start and its ``golf.optim.RelaxRecord`` (with per-step trajectories if asked)."""
    import tempfile

    from golf import conformer_search as gc
    from golf.models import ModelEnergyForces, load_model
    from golf.optim import relax

    model = load_model("GOLF-10k")
    starts: list = []
    records: list = []

    def relax_fn(confs, **how):
        recs = relax(ModelEnergyForces(model), confs, trajectory=trajectory, **how)
        starts.extend(confs)
        records.extend(recs)
        return recs

    with tempfile.TemporaryDirectory() as tmp:
        smi = Path(tmp) / "m.smi"
        smi.write_text("".join(f"{s} {n}\n" for n, s in molecules))
        results = gc.generate_conformer_ensembles(gc.read_molecules(smi), model, gc.ConformerSettings(),
                                                  relax_fn=relax_fn)
    return results, starts, records


def _kept_rank(result, positions) -> int | None:
    """The model rank of the kept conformer that is this relaxed start (same coordinates); None: not kept."""
    import numpy as np

    return next((rec.model_rank for rec in result.conformers if np.allclose(rec.conf.positions, positions)), None)


def window_analysis(molecules: list[tuple[str, str]]) -> dict:
    """Per relaxed start: MMFF gap (kcal/mol) above its molecule's lowest MMFF minimum, force calls, kept or not."""
    import numpy as np

    from golf.oracles.mmff import mmff_energies
    from golf.units import EV_TO_KCAL_MOL

    results, starts, records = _default_run(molecules)
    e_mmff = mmff_energies(starts) * EV_TO_KCAL_MOL
    per_start = []
    for k, res in enumerate(results):
        idx = [i for i, c in enumerate(starts) if c.mol_id == k]
        low = min(e_mmff[i] for i in idx)
        for i in idx:
            rank = _kept_rank(res, records[i].positions)
            per_start.append(dict(molecule=res.name, mmff_gap_kcal_mol=float(e_mmff[i] - low),
                                  force_calls=int(records[i].n_force_calls), kept=rank is not None, model_rank=rank))
    total = sum(r["force_calls"] for r in per_start)
    windows = {}
    for w in WINDOWS_KCAL:
        out = [r for r in per_start if r["mmff_gap_kcal_mol"] > w]
        lost = [r for r in out if r["kept"]]
        windows[f"{w:g}"] = dict(starts_dropped=len(out), force_calls_saved_fraction=sum(r["force_calls"] for r in out) / total,
                                 kept_lost=len(lost), lowest_lost=sum(r["model_rank"] == 1 for r in lost),
                                 lost=[(r["molecule"], r["model_rank"], round(r["mmff_gap_kcal_mol"], 2)) for r in lost])
    kept_gaps = [r["mmff_gap_kcal_mol"] for r in per_start if r["kept"]]
    return dict(molecules=molecules, n_starts=len(per_start), n_kept=len(kept_gaps), force_calls=total,
                max_mmff_gap_of_a_kept_conformer=max(kept_gaps),
                max_mmff_gap_of_a_lowest_conformer=max(r["mmff_gap_kcal_mol"] for r in per_start if r["model_rank"] == 1),
                windows=windows, starts=per_start)


SCREEN_FMAX = (0.3, 0.2, 0.1)  # eV/A
SCREEN_MARGIN_KCAL = (1.0, 2.0, 3.0, 5.0)


def screen_analysis(molecules: list[tuple[str, str]]) -> dict:
    """Per relaxed start: its model energy (kcal/mol) and max |F| (eV/A) after every step, kept or not; per
    (screen fmax, margin): force calls a screening stage could save and kept conformers it would lose."""
    import numpy as np

    from golf.conformer_search import ConformerSettings
    from golf.units import EV_TO_KCAL_MOL

    settings = ConformerSettings()
    results, starts, records = _default_run(molecules, trajectory=True)
    per_start = []
    for k, res in enumerate(results):
        for i in (i for i, c in enumerate(starts) if c.mol_id == k):
            r = records[i]
            per_start.append(dict(molecule=res.name, energy_kcal=(r.trajectory_energies * EV_TO_KCAL_MOL).tolist(),
                                  fmax=r.trajectory_fmax.tolist(), force_calls=int(r.n_force_calls),
                                  model_rank=_kept_rank(res, r.positions)))
    total = sum(r["force_calls"] for r in per_start)
    by_mol: dict[str, list[int]] = {}
    for j, r in enumerate(per_start):
        by_mol.setdefault(r["molecule"], []).append(j)
    grid = {}
    for f in SCREEN_FMAX:
        at = []  # per start: first step with max |F| <= f (the last one if never)
        for r in per_start:
            hit = np.flatnonzero(np.asarray(r["fmax"]) <= f)
            at.append(int(hit[0]) if len(hit) else len(r["fmax"]) - 1)
        fall = 0.0
        drop = set()
        for idx in by_mol.values():
            e_at = np.array([per_start[j]["energy_kcal"][at[j]] for j in idx])
            e_end = np.array([per_start[j]["energy_kcal"][-1] for j in idx])
            still = e_at - e_end  # how far each start still falls after the screen point
            fall = max(fall, float(still.max() - still.min()))
            kth = np.sort(e_at)[min(settings.top_k or len(idx), len(idx)) - 1]
            for m in SCREEN_MARGIN_KCAL:
                drop |= {(m, j) for j, e in zip(idx, e_at) if e > kth + m}
        for m in SCREEN_MARGIN_KCAL:
            out = [j for mm, j in drop if mm == m]
            saved = sum(per_start[j]["force_calls"] - (at[j] + 1) for j in out)
            lost = [(per_start[j]["molecule"], per_start[j]["model_rank"]) for j in out
                    if per_start[j]["model_rank"] is not None]
            grid[f"fmax {f:g} margin {m:g}"] = dict(screen_fmax=f, margin_kcal=m, starts_dropped=len(out),
                                                    force_calls_saved_fraction_upper_bound=saved / total,
                                                    kept_lost=len(lost), lost=lost, largest_relative_fall_kcal=fall)
    return dict(molecules=molecules, top_k=settings.top_k, n_starts=len(per_start), force_calls=total, grid=grid,
                starts=per_start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", default="/tmp/golf_bench_mmff_start")
    ap.add_argument("--out", default=None, help="JSON (default bench/results/conformers_mmff_start.json, or "
                                                "conformers_mmff_window[_drugs].json with --window)")
    ap.add_argument("--window", action="store_true", help="the MMFF energy-window analysis")
    ap.add_argument("--drugs", action="store_true", help="--window on the ten drugs of the cost bench")
    ap.add_argument("--screen", action="store_true", help="the screening-stage analysis (validation drugs)")
    args = ap.parse_args()
    if args.screen:
        out = screen_analysis(VALIDATION)
        path = args.out or str(HERE / "results" / "conformers_screen.json")
        Path(path).write_text(json.dumps(out) + "\n")
        print(f"{out['n_starts']} starts, {out['force_calls']} force calls, top_k {out['top_k']}")
        for name, r in out["grid"].items():
            print(f"{name}: {r['starts_dropped']} starts dropped, at most {100 * r['force_calls_saved_fraction_upper_bound']:.0f}% "
                  f"of force calls saved, {r['kept_lost']} kept lost {r['lost']}; largest relative fall after the "
                  f"screen {r['largest_relative_fall_kcal']:.2f} kcal/mol")
        return
    if args.window:
        from conformers_drugs import DRUGS

        mols = [(n.replace(" ", "_"), s) for n, s in DRUGS] if args.drugs else VALIDATION
        out = window_analysis(mols)
        path = args.out or str(HERE / "results" / f"conformers_mmff_window{'_drugs' if args.drugs else ''}.json")
        Path(path).write_text(json.dumps(out, indent=1) + "\n")
        print(f"{out['n_starts']} starts, {out['n_kept']} kept; largest MMFF gap of a kept conformer "
              f"{out['max_mmff_gap_of_a_kept_conformer']:.1f} kcal/mol, of a lowest one "
              f"{out['max_mmff_gap_of_a_lowest_conformer']:.1f}")
        for w, r in out["windows"].items():
            print(f"window {w} kcal/mol: {r['starts_dropped']} starts dropped, {100 * r['force_calls_saved_fraction']:.0f}% "
                  f"of force calls saved, {r['kept_lost']} kept lost ({r['lowest_lost']} lowest) {r['lost']}")
        return
    args.out = args.out or str(HERE / "results" / "conformers_mmff_start.json")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "drugs.smi").write_text("".join(f"{s} {n}\n" for n, s in VALIDATION))
    rows = {}
    for it in SETTINGS:
        method = f"golf --mmff-start {it}"
        print(f"{method} ... (load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        rows[it] = measure(method, work)
        print(f"  {rows[it]['cpu_s']:.1f} CPU s, {rows[it]['force_calls']} force calls", file=sys.stderr)
    ref = rows[0]["kept"]
    summary = {}
    for it, r in rows.items():
        d_low = {m: min(v) - min(ref[m]) for m, v in r["kept"].items() if v and ref.get(m)}
        summary[it] = dict(
            cpu_s=r["cpu_s"], force_calls=r["force_calls"], n_kept=r["n_kept"], wall_s=r["wall_s"],
            cpu_ratio_vs_etkdg_start=rows[0]["cpu_s"] / r["cpu_s"],
            force_call_ratio_vs_etkdg_start=rows[0]["force_calls"] / r["force_calls"],
            lowest_minus_etkdg_start_kcal_mol=d_low,
            molecules_lowest_within_0_1_or_lower=sum(v <= 0.1 for v in d_low.values()),
            worst_lowest_kcal_mol=max(d_low.values()),
            n_kept_per_molecule={m: len(v) for m, v in r["kept"].items()},
        )
    out = dict(validation=VALIDATION, settings=list(SETTINGS), summary=summary, runs=rows,
               machine=dict(platform=platform.platform(), cpus=os.cpu_count(), python=sys.version.split()[0]),
               load_average_end=os.getloadavg(), date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()))
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for it, s in summary.items():
        print(f"--mmff-start {it}: CPU {s['cpu_s']:.1f} s ({s['cpu_ratio_vs_etkdg_start']:.2f}x), force calls "
              f"{s['force_calls']} ({s['force_call_ratio_vs_etkdg_start']:.2f}x), kept {s['n_kept']}, lowest within "
              f"0.1 kcal/mol or lower: {s['molecules_lowest_within_0_1_or_lower']}/{len(VALIDATION)}, worst "
              f"{s['worst_lowest_kcal_mol']:+.2f} kcal/mol")


if __name__ == "__main__":
    main()
