"""Regression check: GOLF must make a good pretrained start better, not worse.

The official baseline-NNP (DFT-trained on nablaDFT) relaxes molecules well, but its energies are on
another scale than GFN2-xTB's. This bench adapts it to xTB three ways and scores every model with xTB
on the same held-out molecules (the paper's evaluation: 100 steps of the paper's L-BFGS):

    offsets   baseline-NNP with only its per-element energy offsets refit to xTB (least squares on
              D0; forces, hence relaxations, unchanged)
    finetune  ``offsets`` fine-tuned on D0 (``golf train --init``)
    golf      GOLF from ``offsets`` (``golf train --golf --from``)

Inputs are the D0 and reference databases of a ``golf run`` (``--run DIR``: DIR/data/D0.db and
DIR/data/test_ref.db). Every stage is cached in ``--out``; the result table goes to stdout and
``--json``. Run: ``python bench/pretrained_start.py --run golf-run --out bench-pretrained``.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def golf(*argv: object) -> None:
    cmd = [sys.executable, "-m", "golf", *[str(a) for a in argv]]
    print("$ golf " + " ".join(str(a) for a in argv), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--run", required=True, help="a golf run directory with data/D0.db and data/test_ref.db")
    ap.add_argument("--official", default="baseline-NNP", help="the pretrained start: a model name or checkpoint")
    ap.add_argument("--out", default="bench-pretrained")
    ap.add_argument("--json", default="bench/results/pretrained_start.json")
    ap.add_argument("--finetune-updates", type=int, default=1469)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-4, help="fine-tune and GOLF learning rate (official 1e-4; 5e-4 wrecks the start)")
    ap.add_argument("--budget", type=int, default=100)
    ap.add_argument("--cadence", default="block", choices=["block", "stream"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--snapshots", default="16,32,48,64,80",
                    help="GOLF oracle-call counts at which its model is also saved and evaluated ('' for none)")
    args = ap.parse_args()

    run, out = Path(args.run), Path(args.out)
    d0, ref = run / "data" / "D0.db", run / "data" / "test_ref.db"
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}

    def stage(name: str, done: Path, fn) -> None:
        if done.exists():
            return
        t0 = time.perf_counter()
        fn()
        timings[name] = round(time.perf_counter() - t0, 1)

    from golf.evaluation.scoring import read_metrics
    from golf.runs.train import refit_pretrained
    from golf.evaluation.stats import bootstrap_intervals, columns_at, paired_difference

    fit: dict = {}
    offsets = out / "offsets.pt"
    stage("offsets", offsets, lambda: fit.update(refit_pretrained(args.official, [d0], offsets)))

    from golf.db import count_rows

    n_train = max(1, int(0.9 * count_rows(d0)))
    epochs = max(1, round(args.finetune_updates * args.batch_size / n_train))
    finetune = out / "finetune.pt"
    # golf train writes its best model after every improving epoch: the run's summary marks the end
    ft_dir = out / "finetune.pt.d"
    stage("finetune", ft_dir / "summary.json", lambda: golf(
        "train", "--data", d0, "--init", offsets, "--out", finetune, "--epochs", epochs, "--lr", args.lr,
        "--batch-size", args.batch_size, "--seed", args.seed, "--no-progress",
        *(["--resume"] if (ft_dir / "trainer_state.pt").exists() else [])))
    golf_dir = out / f"golf-{args.cadence}"
    stage("golf", golf_dir / "model.pt", lambda: golf(
        "train", "--golf", "--from", offsets, "--data", d0, "--budget", args.budget, "--n-parallel", 16,
        "--utd-ratio", 10, "--max-episode-steps", 50, "--batch-size", args.batch_size, "--lr", args.lr,
        "--cadence", args.cadence, "--seed", args.seed, "--out", golf_dir, "--no-progress",
        *(["--snapshots", args.snapshots] if args.snapshots else []),
        *(["--resume"] if golf_dir.exists() else [])))

    from golf.runs.golf import snapshots

    models = [("offsets", offsets), ("finetune", finetune)]
    models += [(f"golf-{args.cadence}-{calls}", path) for calls, path in snapshots(golf_dir).items()]
    models += [(f"golf-{args.cadence}", golf_dir / "model.pt")]
    rows = {}
    for name, model in models:
        ev = out / "eval" / name
        stage(f"eval-{name}", ev / "metrics.json", lambda model=model, ev=ev, name=name: golf(
            "evaluate", "--model", model, "--name", name, "--reference", ref, "--steps", "1,5,21,100",
            "--optimizer", "lbfgs-golf", "--out", ev, "--no-progress"))
        res = read_metrics(ev / "metrics.json")[name]
        k = res.steps.index(100)
        last = res.aggregate[k]
        rows[name] = {key: last.get(key) for key in ("T", "n", "n_failed", "pct_div", "e_res_median", "pct_success",
                                                     "e_res_median_official", "pct_success_official")}
        # 95% bootstrap intervals, and the paired difference to the offsets-only start (golf.evaluation.stats)
        rows[name]["intervals"] = bootstrap_intervals(columns_at(res.records, k))
        if name != "offsets":
            base = read_metrics(out / "eval" / "offsets" / "metrics.json")["offsets"]
            rows[name]["minus_offsets"] = paired_difference(res.records, base.records, k)
    import csv

    with open(golf_dir / "log.csv") as fh:  # GOLF's held-out D0 errors along the run
        curve = [{k: r[k] for k in ("calls", "conformations_added", "updates", "heldout_energy_mae_mev",
                                    "heldout_forces_mae_mev_a") if k in r} for r in csv.DictReader(fh)]
    summary = json.loads((out / "finetune.pt.d" / "summary.json").read_text())
    from golf.evaluation.scoring import json_clean

    result = {"run": str(run), "settings": vars(args), "offset_fit": fit, "timings_s": timings, "rows": rows,
              "finetune_val": {k: v for k, v in summary.items() if k.startswith("val_")}, "golf_curve": curve}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(json_clean(result), indent=2) + "\n")
    print(f"{'model':16} {'broken':>7} {'pct_div':>8} {'E_res med':>10} {'success':>8}")
    for name, r in rows.items():
        num = {k: float("nan") if r[k] is None else r[k] for k in ("pct_div", "e_res_median", "pct_success")}
        print(f"{name:16} {r['n_failed']:>3}/{r['n']:<3} {num['pct_div']:8.1f} {num['e_res_median']:10.2f} "
              f"{num['pct_success']:8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
