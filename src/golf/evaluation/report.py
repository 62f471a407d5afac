"""The report of ``golf run``: the paper's comparison table (report.md, report.json), the metric-vs-T
plot of all models (metrics.png), learning curves (learning_curves.png) and quality against oracle cost
(cost_quality.png).

A run with several training seeds (``golf.presets.Experiment.seeds``) names the models of seed s > 0
``<name>-s<s>`` (``golf.runs.naming``); its report adds the spread over seeds of the baseline and of every GOLF
budget, and GOLF minus the same seed's baseline. A one-seed report has none of it.
"""
from __future__ import annotations

import csv
import json
import math
import os
import statistics
from pathlib import Path
from typing import Any, Sequence

from golf.io import atomic_write_text
from golf.runs.naming import seed_name, split_seed
from golf.evaluation.stats import LEVEL, N_BOOTSTRAP, bootstrap_intervals, columns_at, paired_difference

#: Early steps shown beside the final one in the markdown table.
EARLY_STEPS = (1, 5, 21)
#: ``golf.evaluation.metrics.aggregate`` keys whose spread over training seeds is reported (at the last T).
SPREAD_METRICS = ("e_res_median", "pct_success")

def _fmt(x: Any, nd: int = 1) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{nd}f}"


def _row_at(aggregate: list[dict[str, Any]], T: int) -> dict[str, Any] | None:
    rows = [r for r in aggregate if int(r["T"]) <= T]
    return rows[-1] if rows else None


def write_report(out: Path, models: dict[str, tuple[Any, int]], preset: dict[str, Any], timings: dict[str, float],
                 preset_name: str = "", oracle: str = "xtb", **_: Any) -> None:
    """Collect ``out/eval/<name>/metrics.json`` of every model and write the report files atomically."""
    from golf.evaluation.scoring import json_clean, read_metrics
    from golf.io import atomic_write_json
    from golf.evaluation.plots import plot_cost_quality, plot_metrics

    results: dict[str, Any] = {}
    for name, (_, calls) in models.items():
        res = read_metrics(out / "eval" / name / "metrics.json")
        results[name] = (res[name] if name in res else next(iter(res.values())), calls)

    T_final = max(int(s) for s in preset["steps"])
    finals = _finals(results)
    added = {name: _golf_conformations_added(out / seed_name("golf", seed)) for seed, name in finals.items()}
    intervals = {name: _intervals(res, T_final) for name, (res, _) in results.items()}
    paired = _paired(results, T_final)
    spread = _spread(results, paired, T_final)
    doc = {
        "format": "golf-report/1",
        "preset": preset_name,
        "genuine_oracle": oracle,
        "settings": preset,
        "timings_s": timings,
        "models": [
            {"name": name, "oracle_calls_beyond_d0": calls if name != "MMFF" else None,
             "conformations_added": added.get(name),
             "metrics": [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in row.items()}
                         for row in res.aggregate],
             f"intervals_T{T_final}": intervals[name]}
            for name, (res, calls) in results.items()
        ],
        "intervals": {"method": "percentile bootstrap over test conformations", "level": LEVEL,
                      "resamples": N_BOOTSTRAP, "seed": 0, "T": T_final},
        f"paired_differences_T{T_final}": paired,
    }
    if spread is not None:
        doc[f"spread_over_seeds_T{T_final}"] = spread
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
        cost = "-" if name == "MMFF" else (f"{calls} ({added[name]} added)" if added.get(name) is not None
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
    if spread is not None:
        lines += _spread_lines(spread)
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
              "(per-conformation records), models/, golf/ (GOLF run: oracle.db, log.csv)."
              + ("" if spread is None else " Further seeds: golf-s<s>/; metrics.png shows seed 0's models.")]
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")

    seeds = sorted(finals) or [0]
    shown = {name: v for name, v in results.items() if spread is None or split_seed(name)[1] == 0}
    plot_metrics({name: res.aggregate for name, (res, _) in shown.items()}, out / "metrics.png",
                 title=f"golf run ({preset_name})")
    plot_learning_curves(out, out / "learning_curves.png", seeds)
    plot_cost_quality({name: (intervals[name], calls) for name, (_, calls) in shown.items()},
                      out / "cost_quality.png", T=T_final, title=f"golf run ({preset_name})",
                      spread=None if spread is None else spread["models"])


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


def _finals(results: dict[str, tuple[Any, int]]) -> dict[int, str]:
    """Training seed -> its GOLF model with the whole budget (the others are snapshots of its run)."""
    golf: dict[int, list[tuple[int, str]]] = {}
    for name, (_, calls) in results.items():
        if name.startswith("GOLF"):
            golf.setdefault(split_seed(name)[1], []).append((calls, name))
    return {seed: max(models)[1] for seed, models in sorted(golf.items())}


def _difference(a: str, b: str) -> str:
    """The label of the paired difference model a minus model b."""
    return f"{a} − {b}"


def _paired(results: dict[str, tuple[Any, int]], T: int) -> dict[str, Any]:
    """Paired on the shared test conformations: seed 0's final GOLF model minus every other model of seed
    0 (baseline, traj-N, MMFF), and every other GOLF model (snapshots, further seeds) minus the baseline
    of its own training seed."""
    final = _finals(results).get(0)
    out: dict[str, Any] = {}
    for g in [n for n in results if n.startswith("GOLF")]:
        baseline = seed_name("baseline", split_seed(g)[1])
        for other in results:
            if other.startswith("GOLF") or (g != final and other != baseline) or (g == final and split_seed(other)[1]):
                continue
            ka, kb = _step_index(results[g][0], T), _step_index(results[other][0], T)
            if ka is None or kb is None or ka != kb:
                continue
            out[_difference(g, other)] = paired_difference(results[g][0].records, results[other][0].records, ka)
    return out


def _summary(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof 1; NaN for one value), min and max of the finite ``values``,
    in their unit; ``n`` counts them."""
    x = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    nan = float("nan")
    if not x:
        return {"n": 0, "mean": nan, "std": nan, "min": nan, "max": nan}
    std = statistics.stdev(x) if len(x) > 1 else nan
    return {"n": len(x), "mean": statistics.fmean(x), "std": std, "min": min(x), "max": max(x)}


def _spread(results: dict[str, tuple[Any, int]], paired: dict[str, Any], T: int) -> dict[str, Any] | None:
    """The spread over training seeds at T, or None for a one-seed run.

    Returns:
        ``seeds``; ``models``: seed-0 name (``baseline``, ``GOLF-<calls>``) -> ``calls`` and, per
        ``SPREAD_METRICS`` key (E_res kcal/mol, pct_success percent; ``golf.evaluation.metrics.aggregate`` values),
        ``per_seed`` (seed -> value) with its ``_summary`` over seeds; ``paired_vs_baseline``: GOLF
        seed-0 name -> ``per_seed`` paired differences GOLF - the same seed's baseline (``_paired``'s,
        with bootstrap intervals) and the ``_summary`` of their values per key.
    """
    groups: dict[str, dict[int, tuple[Any, int]]] = {}
    for name, value in results.items():
        base, seed = split_seed(name)
        groups.setdefault(base, {})[seed] = value
    seeds = sorted({seed for by_seed in groups.values() for seed in by_seed})
    if len(seeds) < 2:
        return None
    models: dict[str, Any] = {}
    for base, by_seed in groups.items():
        if base != "baseline" and not base.startswith("GOLF-"):
            continue
        entry: dict[str, Any] = {"calls": by_seed[min(by_seed)][1]}
        for key in SPREAD_METRICS:
            per_seed = {seed: (_row_at(res.aggregate, T) or {}).get(key, float("nan"))
                        for seed, (res, _) in sorted(by_seed.items())}
            entry[key] = {"per_seed": per_seed, **_summary(list(per_seed.values()))}
        models[base] = entry
    differences: dict[str, Any] = {}
    for base in (b for b in models if b != "baseline"):
        labels = {seed: _difference(seed_name(base, seed), seed_name("baseline", seed)) for seed in seeds}
        per_seed = {seed: paired[label] for seed, label in labels.items() if label in paired}
        differences[base] = {"per_seed": per_seed,
                             **{key: _summary([d[key]["value"] for d in per_seed.values()]) for key in SPREAD_METRICS}}
    return {"seeds": seeds, "std": "sample standard deviation over seeds (ddof 1)", "models": models,
            "paired_vs_baseline": differences}


def _over_seeds(summary: dict[str, float], nd: int, n_seeds: int) -> str:
    """``mean ± std [min, max]`` of a ``_summary``, and how many of the ``n_seeds`` seeds it is over when
    some have no value (NaN: no valid pair)."""
    missing = "" if summary["n"] == n_seeds else f" ({summary['n']} of {n_seeds} seeds)"
    return (f"{_fmt(summary['mean'], nd)} ± {_fmt(summary['std'], nd)} "
            f"[{_fmt(summary['min'], nd)}, {_fmt(summary['max'], nd)}]{missing}")


def _spread_lines(spread: dict[str, Any]) -> list[str]:
    """The markdown of ``_spread``: per-seed values and their spread, then GOLF minus the same seed's baseline."""
    seeds = spread["seeds"]
    per_seed = lambda d, nd: " / ".join(_fmt(d["per_seed"].get(s), nd) for s in seeds)  # noqa: E731
    over = lambda d, nd: _over_seeds(d, nd, len(seeds))  # noqa: E731
    lines = ["", f"Spread over training seeds ({' / '.join(str(s) for s in seeds)}, offsets added to --seed) at the "
             "last T: each seed trains its own baseline and GOLF run on the same D0, test set and references "
             "(traj-N: seed 0 only). Per-seed values, then mean ± sample standard deviation [min, max] over seeds.",
             "", "| model | oracle calls | E_res median per seed (kcal/mol) | over seeds | pct_success per seed (%) "
             "| over seeds |", "|---|---|---|---|---|---|"]
    for base, e in spread["models"].items():
        res, succ = e["e_res_median"], e["pct_success"]
        lines.append(f"| {base} | {e['calls']} | {per_seed(res, 2)} | {over(res, 2)} | {per_seed(succ, 1)} "
                     f"| {over(succ, 1)} |")
    lines += ["", "GOLF minus the same seed's baseline, paired on the test conformations (95% paired bootstrap "
              "interval; * the interval excludes zero), then the spread of the differences over seeds:", "",
              "| comparison | seed | Δ E_res median (kcal/mol) | Δ pct_success (points) |", "|---|---|---|---|"]
    for base, d in spread["paired_vs_baseline"].items():
        for seed, diff in d["per_seed"].items():
            lines.append(f"| {base} − baseline | {seed} | {_ci(diff, 'e_res_median', 2, True)} "
                         f"| {_ci(diff, 'pct_success', 1, True)} |")
        lines.append(f"| {base} − baseline | over seeds | {over(d['e_res_median'], 2)} "
                     f"| {over(d['pct_success'], 1)} |")
    return lines


def _golf_conformations_added(run_dir: Path) -> int | None:
    """Labels the GOLF run in ``run_dir`` added to its replay buffer (its summary.json), if it finished."""
    path = run_dir / "summary.json"
    if not path.exists():
        return None
    return json.loads(path.read_text()).get("stats", {}).get("conformations_added")


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    with open(path) as fh:
        return list(csv.DictReader(fh))


def plot_learning_curves(out: Path, path: Path, seeds: Sequence[int] = (0,)) -> Path:
    """The run's learning curves (``golf.evaluation.plots.plot_learning_curves``) from its models' metrics.csv files
    and the log.csv of the GOLF run of each training seed in ``seeds``."""
    from golf.evaluation.plots import plot_learning_curves as plot

    curves = {}
    for csv_path in sorted((out / "models").glob("*.pt.d/metrics.csv")):
        rows = _read_csv(csv_path)
        key = next((k for k in ("val_forces_mae_mev_a", "val_force_mae_mev_a") if rows and k in rows[0]), None)
        if key:
            curves[csv_path.parent.name.removesuffix(".pt.d")] = ([int(r["epoch"]) for r in rows],
                                                                   [float(r[key]) for r in rows])
    golf = {}
    for seed in seeds:
        rows = _read_csv(out / seed_name("golf", seed) / "log.csv")
        if rows and "heldout_forces_mae_mev_a" in rows[0]:
            golf[seed_name("GOLF", seed)] = ([int(r["calls"]) for r in rows],
                                             [float(r["heldout_forces_mae_mev_a"] or "nan") for r in rows])
    return plot(curves, golf, path)


def read_report(path: str | os.PathLike) -> dict[str, Any]:
    return json.loads(Path(path).read_text())
