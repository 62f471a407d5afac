"""Choosing ``golf adapt``'s settings on validation data: the generic share and the trigger.

``golf adapt`` mixes a share of generic conformations into every training batch so that the adapted model
does not forget what it knew (``--generic-share``), and can send conformations to the oracle on the
surrogate's verdict (the paper's rule), on the trust signal, or both (``--trigger``). Both settings are
chosen here, on VALIDATION molecules only, never on the demonstration's held-out test molecules or the
paper-table molecules.

The setting is a miniature of the DFT demonstration (``bench/adapt_demo.py``) at one level of theory
that a 2-core machine can afford: GFN2-xTB. The start model must itself be an xTB-level model, so that
"forgetting" means the same as at DFT (the start model is right on generic molecules at its own level):
by default the GOLF model of ``golf run --preset quick`` (``golf-run/golf/model.pt``: PaiNN trained on
xTB-labelled NCI conformations plus 100 GOLF calls).

Data (all disjoint from the demonstration's test molecules):

- series: the demonstration's training series (``bench/results/adapt_train.smi``: thiocarbonyls and
  sulfur oxoacids of the NCI pool's training side of the class split), split by a hash of the NCI id
  (seed ``--val-seed``, ``--val-fraction``) into the molecules ``golf adapt`` sees and the series
  validation molecules;
- generic validation: NCI-pool molecules of the training split beyond the first ``--generic-skip`` of
  the seeded order (``golf adapt``'s generic set is the first 200 of that order), 8-20 heavy atoms.

Each validation molecule gets one ETKDGv3 conformer and an xTB reference optimum (``golf data
reference``). Each configuration (generic share x trigger x seed) is one ``golf adapt`` run at the same
budget, evaluated by ``golf evaluate`` (the paper's L-BFGS, T = 100) on both validation sets; the start
model is evaluated too. The report gives, per configuration, E_res median/mean and success on each set
with bootstrap intervals over molecules (seeds pooled as paired replicates), and paired differences
against share 0 (series and generic) and against the start model (generic: forgetting).

Stages (each resumable: a finished run or evaluation is skipped)::

    OMP_NUM_THREADS=1 nice -n 10 python bench/adapt_settings.py prepare
    OMP_NUM_THREADS=1 nice -n 10 python bench/adapt_settings.py run --start-model golf-run/golf/model.pt
    python bench/adapt_settings.py report      # -> bench/results/adapt_settings.json

Units: eV/Angstrom inside; kcal/mol in the report.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
WORK = RESULTS / "adapt_settings"
SERIES = RESULTS / "adapt_train.smi"
OUT_JSON = RESULTS / "adapt_settings.json"
T_INDEX = -1  # T = 100: the last step evaluated
SHARES = (0.0, 0.1, 0.2, 0.4)
TRIGGERS = ("surrogate", "signal", "both")


def golf(*args: str) -> None:
    """Run a golf command (the CLI is the interface a user has; the bench uses it the same way)."""
    cmd = [sys.executable, "-m", "golf", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True)


def prepare(a: argparse.Namespace) -> None:
    from rdkit import Chem

    from golf.pool import hash_split, select_pool_molecules

    WORK.mkdir(parents=True, exist_ok=True)
    lines = [ln.split() for ln in SERIES.read_text().splitlines() if ln.strip()]
    by_id = {int(parts[1]): parts for parts in lines}
    train, val = hash_split(list(by_id), a.val_fraction, a.val_seed)
    (WORK / "series_train.smi").write_text("".join(f"{by_id[i][0]} {i}\n" for i in train))
    (WORK / "series_val.smi").write_text("".join(f"{by_id[i][0]} {i}\n" for i in val))
    generic, series_smiles = [], {p[0] for p in lines}
    allowed = {1, 6, 7, 8, 9, 16, 17}
    for k, (mol_id, smi) in enumerate(select_pool_molecules(None, split="train", seed=0)):
        if k < a.generic_skip or smi in series_smiles:
            continue
        mol = Chem.AddHs(Chem.MolFromSmiles(smi))
        heavy = mol.GetNumHeavyAtoms()
        if 8 <= heavy <= 20 and {at.GetAtomicNum() for at in mol.GetAtoms()} <= allowed:
            generic.append(f"{smi} {mol_id}\n")
        if len(generic) == a.generic_val:
            break
    (WORK / "generic_val.smi").write_text("".join(generic))
    print(f"series: {len(train)} adapt, {len(val)} validation; generic validation: {len(generic)}")
    for name in ("series_val", "generic_val"):
        golf("data", "reference", "--smiles", str(WORK / f"{name}.smi"), "--conformers", "1", "--oracle", "xtb",
             "--workers", "1", "--out", str(WORK / f"{name}_ref.db"), "--quiet")


def configurations(a: argparse.Namespace) -> list[tuple[str, float, str, int]]:
    """(name, share, trigger, seed): every share with the paper's trigger, every trigger at the default share."""
    out = []
    for seed in range(a.seeds):
        for share in SHARES:
            out.append((f"share{share:g}-surrogate-s{seed}", share, "surrogate", seed))
        for trigger in TRIGGERS[1:]:
            out.append((f"share{a.default_share:g}-{trigger}-s{seed}", a.default_share, trigger, seed))
    return out


def evaluate(model: str, name: str) -> None:
    for ref in ("series_val", "generic_val"):
        out = WORK / "eval" / f"{name}__{ref}"
        if (out / "metrics.json").exists():
            continue
        golf("evaluate", "--model", model, "--reference", str(WORK / f"{ref}_ref.db"), "--steps", "100",
             "--name", name, "--out", str(out), "--workers", "1", "--no-progress")


def run(a: argparse.Namespace) -> None:
    start = str(Path(a.start_model).resolve())
    evaluate(start, "start")
    evaluate("mmff", "mmff")
    for name, share, trigger, seed in configurations(a):
        d = WORK / "runs" / name
        if not (d / "model.pt").exists():
            t0 = time.time()
            golf("adapt", str(WORK / "series_train.smi"), "--model", start, "--oracle", "xtb", "--budget",
                 str(a.budget), "--conformers", "1", "--generic-share", str(share), "--trigger", trigger,
                 "--seed", str(seed), "--out", str(d), "--workers", "1", "--no-progress",
                 *(["--resume"] if d.exists() else []))
            (d / "wall_seconds.txt").write_text(f"{time.time() - t0:.1f}\n")
        evaluate(str(d / "model.pt"), name)


def _records(name: str, ref: str) -> list[dict]:
    doc = json.loads((WORK / "eval" / f"{name}__{ref}" / "metrics.json").read_text())
    return doc["models"][0]["records"]


def report(a: argparse.Namespace) -> None:
    from golf.evaluation.stats import bootstrap_intervals, columns_at, paired_columns

    def cols(recs: list[dict]) -> dict[str, np.ndarray]:
        return columns_at(sorted(recs, key=lambda r: (r["mol_id"], r["conf_id"])), len(recs[0]["E_T"]) + T_INDEX)

    def stacked(names: list[str], ref: str) -> dict[str, np.ndarray]:
        # seeds as replicate rows of the same molecules: concatenated in the same molecule order
        parts = [cols(_records(n, ref)) for n in names]
        return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    metrics = ("e_res_median", "e_res_mean", "pct_success")
    groups: dict[str, list[str]] = {}
    for name, share, trigger, seed in configurations(a):
        if (WORK / "eval" / f"{name}__generic_val" / "metrics.json").exists():
            groups.setdefault(name.rsplit("-s", 1)[0], []).append(name)
    rows, n_seeds = [], {}
    for ref in ("series_val", "generic_val"):
        base_start = cols(_records("start", ref))
        for label, names in [("start", ["start"]), ("mmff", ["mmff"]), *groups.items()]:
            c = stacked(names, ref)
            row = dict(config=label, set=ref, n_runs=len(names), n_molecules=len(base_start["e_res"]) if "e_res" in base_start else None,
                       **{m: bootstrap_intervals(c, metrics)[m] for m in metrics})
            if label not in ("start", "mmff"):
                reps = len(names)
                row["vs_start"] = paired_columns(c, {k: np.tile(v, reps) for k, v in base_start.items()}, metrics)
                share0 = groups.get("share0-surrogate")
                if share0 and label != "share0-surrogate":
                    m = min(len(share0), reps)
                    row["vs_share0"] = paired_columns(stacked(names[:m], ref), stacked(share0[:m], ref), metrics)
            rows.append(row)
            n_seeds[label] = len(names)
    doc = dict(benchmark="adapt_settings", oracle="xtb (GFN2-xTB, tblite)", start_model=a.start_model,
               budget=a.budget, T=100, shares=list(SHARES), triggers=list(TRIGGERS), default_share=a.default_share,
               n_series_val=len(_records("start", "series_val")), n_generic_val=len(_records("start", "generic_val")),
               seeds=n_seeds, rows=rows,
               note="validation molecules only; intervals: 95% percentile bootstrap over conformations, seeds "
                    "stacked as replicates; E_res in kcal/mol at T = 100")
    OUT_JSON.write_text(json.dumps(doc, indent=1, default=float))
    print(f"{'config':28s} {'set':12s} {'E_res median':>24s} {'success %':>22s}")
    for r in rows:
        e, s = r["e_res_median"], r["pct_success"]
        print(f"{r['config']:28s} {r['set']:12s} {e['value']:7.2f} [{e['lo']:5.2f},{e['hi']:6.2f}]   "
              f"{s['value']:5.1f} [{s['lo']:4.1f},{s['hi']:5.1f}]")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("stage", choices=("prepare", "run", "report"))
    p.add_argument("--start-model", default="golf-run/golf/model.pt", help="an xTB-level model (golf run quick's GOLF model)")
    p.add_argument("--budget", type=int, default=150, help="oracle calls per golf adapt run")
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--default-share", type=float, default=0.2)
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--val-seed", type=int, default=11)
    p.add_argument("--generic-val", type=int, default=30)
    p.add_argument("--generic-skip", type=int, default=400)
    a = p.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    {"prepare": prepare, "run": run, "report": report}[a.stage](a)


if __name__ == "__main__":
    main()
