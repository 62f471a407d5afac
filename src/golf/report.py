"""The report of ``golf run``: the paper's comparison table (report.md, report.json), the metric-vs-T
plot of all models (metrics.png) and learning curves (learning_curves.png)."""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

from golf.io import atomic_write_text
from golf.stats import LEVEL, N_BOOTSTRAP, bootstrap_intervals, columns_at, paired_difference

#: Early steps shown beside the final one in the markdown table.
EARLY_STEPS = (1, 5, 21)


def _fmt(x: Any, nd: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _row_at(aggregate: list[dict[str, Any]], T: int) -> dict[str, Any] | None:
    rows = [r for r in aggregate if int(r["T"]) <= T]
    return rows[-1] if rows else None


def write_report(out: Path, models: dict[str, tuple[Any, int]], preset: dict[str, Any], timings: dict[str, float],
                 preset_name: str = "", oracle: str = "xtb", **_: Any) -> None:
    """Collect ``out/eval/<name>/metrics.json`` of every model and write the report files atomically."""
    from golf.evaluate import json_clean, read_metrics
    from golf.io import atomic_write_json
    from golf.plots import plot_cost_quality, plot_metrics

    results: dict[str, Any] = {}
    for name, (_, calls) in models.items():
        res = read_metrics(out / "eval" / name / "metrics.json")
        results[name] = (res[name] if name in res else next(iter(res.values())), calls)

    T_final = max(int(s) for s in preset["steps"])
    added = _golf_conformations_added(out)
    intervals = {name: _intervals(res, T_final) for name, (res, _) in results.items()}
    final = _final_golf(results)
    paired = _paired(results, T_final)
    doc = {
        "format": "golf-report/1",
        "preset": preset_name,
        "genuine_oracle": oracle,
        "settings": preset,
        "timings_s": timings,
        "models": [
            {"name": name, "oracle_calls_beyond_d0": calls if name != "MMFF" else None,
             "conformations_added": added if name == final else None,
             "metrics": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                         for row in res.aggregate],
             f"intervals_T{T_final}": intervals[name]}
            for name, (res, calls) in results.items()
        ],
        "intervals": {"method": "percentile bootstrap over test conformations", "level": LEVEL,
                      "resamples": N_BOOTSTRAP, "seed": 0, "T": T_final},
        f"paired_differences_T{T_final}": paired,
    }
    atomic_write_json(out / "report.json", json_clean(doc), indent=1, allow_nan=False)

    lines = [
        f"# golf run report ({preset_name} preset, genuine oracle: {oracle})",
        "",
        "Test conformations relaxed by each model with L-BFGS (the paper's setting: lr 1, 5 inner iterations); "
        "the genuine oracle scores the structures after T steps. pct = % of the possible energy decrease, "
        "E_res = E(T) - E(oracle optimum), success = E_res < 1 kcal/mol, div = ended above the start. "
        "A relaxation that blew the molecule apart (or whose structure the oracle could not evaluate) is "
        "'broken': it counts as diverged and unsuccessful, and has no E_res (means and medians are over the rest).",
        "",
        f"At T = {T_final}; [brackets]: 95% bootstrap interval over the test conformations "
        f"({N_BOOTSTRAP} resamples, seed 0); pct_{T_final} as median [inter-quartile range].",
        "",
        f"| model | oracle calls beyond D0 | pct_{T_final} (%) | pct_div (%) | E_res mean (kcal/mol) "
        f"| E_res median (kcal/mol) | pct_success (%) | broken |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, (res, calls) in results.items():
        r = _row_at(res.aggregate, T_final) or {}
        ci = intervals[name]
        cost = "-" if name == "MMFF" else (f"{calls} ({added} added)" if name == final and added is not None
                                           else str(calls))
        lines.append(
            f"| {name} | {cost} | {_fmt(r.get('pct_median'))} [{_fmt(r.get('pct_q25'))}, {_fmt(r.get('pct_q75'))}] "
            f"| {_ci(ci, 'pct_div')} | {_ci(ci, 'e_res_mean', 2)} | {_ci(ci, 'e_res_median', 2)} "
            f"| {_ci(ci, 'pct_success')} | {r.get('n_failed', 0)}/{r.get('n', 0)} |")
    if paired:
        lines += ["", f"Paired differences at T = {T_final} (first model minus second, on the test conformations "
                  "both relaxed; 95% paired bootstrap interval; * the interval excludes zero). Lower E_res and "
                  "higher success are better.", "",
                  "| comparison | n | Δ E_res median (kcal/mol) | Δ E_res mean (kcal/mol) | Δ pct_success (points) |",
                  "|---|---|---|---|---|"]
        for label, d in paired.items():
            lines.append(f"| {label} | {d['n']} | {_ci(d, 'e_res_median', 2, True)} | {_ci(d, 'e_res_mean', 2, True)} "
                         f"| {_ci(d, 'pct_success', 1, True)} |")
    lines += ["", "GOLF's cost counts every genuine-oracle call (failed ones too); 'added' is the official "
              "budget's count, the labels that entered the replay buffer.", "",
              f"The official scoring (``evaluate_batch_dft.py``) drops broken structures and the steps after a "
              f"non-finite step instead of scoring them; the same runs scored that way, at T = {T_final}:", "",
              "| model | kept | pct_div (%) | E_res mean (kcal/mol) | E_res median (kcal/mol) | pct_success (%) |",
              "|---|---|---|---|---|---|"]
    for name, (res, _) in results.items():
        r = _row_at(res.aggregate, T_final) or {}
        lines.append(f"| {name} | {r.get('n_official', 'n/a')}/{r.get('n', 0)} | {_fmt(r.get('pct_div_official'))} "
                     f"| {_fmt(r.get('e_res_mean_official'), 2)} | {_fmt(r.get('e_res_median_official'), 2)} "
                     f"| {_fmt(r.get('pct_success_official'))} |")
    table_steps = [t for t in EARLY_STEPS if t in preset["steps"] and t < T_final] + [T_final]
    lines += ["", "By step T (mean E_res kcal/mol / pct_success %):", "",
              "| model | " + " | ".join(f"T={t}" for t in table_steps) + " |",
              "|---|" + "---|" * len(table_steps)]
    for name, (res, _) in results.items():
        cells = []
        for t in table_steps:
            r = _row_at(res.aggregate, t)
            cells.append("n/a" if r is None else f"{_fmt(r.get('e_res_mean'), 2)} / {_fmt(r.get('pct_success'))}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "Stage timings (s): " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()), "",
              "Files: report.json (every metric at every T), metrics.png, learning_curves.png, cost_quality.png, eval/<model>/metrics.json "
              "(per-conformation records), models/, golf/ (GOLF run: oracle.db, log.csv)."]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")

    plot_metrics({name: res.aggregate for name, (res, _) in results.items()}, out / "metrics.png",
                 title=f"golf run ({preset_name})")
    plot_learning_curves(out, out / "learning_curves.png")
    plot_cost_quality({name: (intervals[name], calls) for name, (_, calls) in results.items()},
                      out / "cost_quality.png", T=T_final, title=f"golf run ({preset_name})")


def _ci(d: dict[str, Any], key: str, nd: int = 1, star: bool = False) -> str:
    m = d.get(key) or {}
    mark = "*" if star and m.get("excludes_zero") else ""
    return f"{_fmt(m.get('value'), nd)} [{_fmt(m.get('lo'), nd)}, {_fmt(m.get('hi'), nd)}]{mark}"


def _step_index(res: Any, T: int) -> int | None:
    steps = [int(t) for t in res.steps]
    return steps.index(T) if T in steps else None


def _intervals(res: Any, T: int) -> dict[str, Any]:
    """Bootstrap intervals of one model's metrics at T (empty when T was not evaluated)."""
    k = _step_index(res, T)
    if k is None or not res.records:
        return {}
    return bootstrap_intervals(columns_at(res.records, k))


def _final_golf(results: dict[str, tuple[Any, int]]) -> str | None:
    """The GOLF model with the whole budget (the others are snapshots of its run)."""
    golf = [(calls, n) for n, (_, calls) in results.items() if n.startswith("GOLF")]
    return max(golf)[1] if golf else None


def _paired(results: dict[str, tuple[Any, int]], T: int) -> dict[str, Any]:
    """The final GOLF model minus every other model (baseline, traj-N, MMFF), and every GOLF snapshot
    minus the baseline, paired on the shared test conformations."""
    final = _final_golf(results)
    out: dict[str, Any] = {}
    for g in [n for n in results if n.startswith("GOLF")]:
        for other in results:
            if other.startswith("GOLF") or (g != final and other != "baseline"):
                continue
            ka, kb = _step_index(results[g][0], T), _step_index(results[other][0], T)
            if ka is None or kb is None or ka != kb:
                continue
            out[f"{g} − {other}"] = paired_difference(results[g][0].records, results[other][0].records, ka)
    return out


def _golf_conformations_added(out: Path) -> int | None:
    """Labels the GOLF run added to its replay buffer (``golf/summary.json``), if it finished."""
    path = out / "golf" / "summary.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("stats", {}).get("conformations_added")


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh))


def plot_learning_curves(out: Path, path: Path) -> Path:
    """The run's learning curves (``golf.plots.plot_learning_curves``) from its models' metrics.csv files
    and GOLF's log.csv."""
    from golf.plots import plot_learning_curves as plot

    curves = {}
    for csv_path in sorted((out / "models").glob("*.pt.d/metrics.csv")):
        rows = _read_csv(csv_path)
        key = next((k for k in ("val_forces_mae_mev_a", "val_force_mae_mev_a") if rows and k in rows[0]), None)
        if key:
            curves[csv_path.parent.name.removesuffix(".pt.d")] = ([int(r["epoch"]) for r in rows],
                                                                   [float(r[key]) for r in rows])
    rows = _read_csv(out / "golf" / "log.csv")
    golf = None
    if rows and "heldout_forces_mae_mev_a" in rows[0]:
        golf = ([int(r["calls"]) for r in rows], [float(r["heldout_forces_mae_mev_a"] or "nan") for r in rows])
    return plot(curves, golf, path)


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
