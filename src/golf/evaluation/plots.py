"""Plots of the paper's relaxation metrics against the optimizer step T (matplotlib, Agg backend).

``plot_metrics`` draws one line per model (``golf evaluate`` draws one model, optionally with the
MMFF row; ``golf run`` draws every model of the experiment on one figure).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


#: E_res below this (kcal/mol) is drawn at this value on the log axis (irrelevant differences).
_RES_FLOOR = 1e-2


def _figure(ncols: int, figsize: tuple[float, float]) -> tuple[Any, Any]:
    """A matplotlib figure with ``ncols`` axes on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(1, ncols, figsize=figsize)


def _save(fig: Any, path: str | os.PathLike, dpi: int = 120) -> Path:
    """Write ``fig`` as PNG atomically (temp file in the same directory, then rename) and close it."""
    import matplotlib.pyplot as plt

    from golf.io import atomic_path

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=dpi)
    finally:
        plt.close(fig)
    return path


def _rows(aggregate: Any) -> list[dict[str, float]]:
    """Accept a list of aggregate rows (``golf.evaluation.metrics.aggregate``) or a dict holding one under
    ``"aggregate"`` (the layout of metrics.json)."""
    if isinstance(aggregate, Mapping):
        if "aggregate" in aggregate:
            return list(aggregate["aggregate"])
        raise ValueError("expected aggregate rows or a dict with an 'aggregate' key")
    return list(aggregate)


def _column(rows: Sequence[Mapping[str, float]], key: str) -> np.ndarray:
    return np.array(
        [np.nan if r.get(key) is None else float(r[key]) for r in rows], dtype=np.float64
    )


def plot_metrics(
    results_by_model: Mapping[str, Any],
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Plot pct_T (median, inter-quartile band), mean E_res (kcal/mol) and pct_success against T (log x axis).

    Args:
        results_by_model: model name -> its aggregate rows (list of dicts with keys ``T``,
            ``pct_median``, ``pct_q25``, ``pct_q75``, ``e_res_mean``, ``pct_success``; see ``golf.evaluation.metrics.aggregate``)
            or a dict with those rows under ``"aggregate"``.
        path: output PNG path; written atomically (temp file in the same directory, then rename).
        title: optional figure title.

    Returns:
        the output path.
    """
    fig, axes = _figure(3, (15, 4.5))
    ax_pct, ax_res, ax_succ = axes
    # log y axis for E_res unless some mean is <= 0 (a model below the reference optimum) or no
    # mean is finite at all (every structure broken: nothing to scale)
    all_res = np.concatenate([_column(_rows(agg), "e_res_mean") for agg in results_by_model.values()] or [[]])
    finite = all_res[np.isfinite(all_res)]
    log_res = finite.size > 0 and bool(np.all(finite > 0))
    for name, agg in results_by_model.items():
        rows = _rows(agg)
        if not rows:
            continue
        t = _column(rows, "T")
        t_plot = np.where(t > 0, t, np.nan)
        # median and IQR: pct = 100 (E_0 - E_T) / (E_0 - E_opt) explodes where E_0 - E_opt is small,
        # so a mean +- std band spans thousands of percent and hides every curve
        pct = _column(rows, "pct_median")
        q25, q75 = _column(rows, "pct_q25"), _column(rows, "pct_q75")
        res = _column(rows, "e_res_mean")
        succ = _column(rows, "pct_success")
        (line,) = ax_pct.plot(t_plot, pct, marker="o", ms=3, label=name)
        ax_pct.fill_between(t_plot, q25, q75, color=line.get_color(), alpha=0.12)
        res_plot = np.where(res < _RES_FLOOR, _RES_FLOOR, res) if log_res else res
        ax_res.plot(t_plot, res_plot, marker="o", ms=3, label=name, color=line.get_color())
        ax_succ.plot(t_plot, succ, marker="o", ms=3, label=name, color=line.get_color())
    all_t = np.concatenate([_column(_rows(agg), "T") for agg in results_by_model.values()] or [[]])
    all_t = all_t[np.isfinite(all_t) & (all_t > 0)]
    for ax in axes:
        ax.set_xscale("log")
        if all_t.size:  # explicit limits: an axis with only NaN data cannot autoscale a log axis
            ax.set_xlim(0.8 * all_t.min(), 1.25 * all_t.max())
        ax.set_xlabel("optimizer step T")
        ax.grid(True, which="both", alpha=0.3)
    ax_pct.set_ylabel("pct_T median, IQR band (% of possible decrease)")
    ax_pct.axhline(100.0, color="k", lw=0.8, ls="--")
    ax_res.set_ylabel("mean E_res (kcal/mol)")
    ax_res.axhline(1.0, color="k", lw=0.8, ls="--")
    if log_res:
        ax_res.set_yscale("log")
        ax_res.set_ylabel(f"mean E_res (kcal/mol; shown >= {_RES_FLOOR:g})")
    ax_succ.set_ylabel("pct_success (% with E_res < 1 kcal/mol)")
    ax_succ.set_ylim(-2, 102)
    if results_by_model:
        ax_pct.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def _seed_curve(ax: Any, x: np.ndarray, spreads: Sequence[Mapping[str, Any]], marker: str, label: str) -> None:
    """The seed mean at each x with a min-max band and a dot per seed (``spreads``: one
    ``golf.evaluation.report`` spread summary per x, with ``mean``, ``min``, ``max`` and ``per_seed``)."""
    mean, lo, hi = (np.array([float(s[k]) for s in spreads], dtype=float) for k in ("mean", "min", "max"))
    n = max(int(s["n"]) for s in spreads)
    (line,) = ax.plot(x, mean, marker=marker, label=f"{label} (mean of {n} seed{'s' * (n != 1)}, min-max band)")
    ax.fill_between(x, lo, hi, color=line.get_color(), alpha=0.18)
    for xi, s in zip(x, spreads):
        values = [float(v) for v in s["per_seed"].values()]
        ax.plot([xi] * len(values), values, ls="", marker=".", ms=5, color=line.get_color(), alpha=0.7)


def plot_cost_quality(
    points: Mapping[str, tuple[Mapping[str, Any], int | None]],
    path: str | os.PathLike,
    T: int,
    title: str | None = None,
    spread: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """The paper's central claim as a figure: quality at step T against genuine-oracle calls beyond D0.

    Args:
        points: model name -> (its bootstrap intervals at T, ``golf.evaluation.stats.bootstrap_intervals``; its
            oracle calls beyond D0). Names ``traj-*`` and ``GOLF-*`` form the two curves (log x axis);
            ``baseline`` (0 calls) and ``MMFF`` are drawn as horizontal lines.
        path: output PNG (written atomically); T: the step the intervals are at.
        spread: models trained with several seeds (``golf.evaluation.report``'s ``spread_over_seeds`` models:
            name -> metric -> ``per_seed`` values and their mean, min, max). GOLF's curve is then the seed
            mean with a min-max band and a dot per seed, the baseline's line the seed mean with a min-max
            band; traj-N and MMFF keep their bootstrap intervals. None: one seed, intervals everywhere.

    Returns:
        the output path.
    """
    from matplotlib.ticker import NullFormatter

    spread = spread or {}
    fig, axes = _figure(2, (11, 4.2))
    metrics = (("e_res_median", f"median E_res at T={T} (kcal/mol)"), ("pct_success", f"pct_success at T={T} (%)"))
    for ax, (key, label) in zip(axes, metrics):
        for family, marker in (("traj-", "s"), ("GOLF-", "o")):
            named = sorted((calls, name) for name, (ci, calls) in points.items()
                           if name.startswith(family) and calls and key in ci)
            if named and all(name in spread for _, name in named):
                _seed_curve(ax, np.array([c for c, _ in named], dtype=float),
                            [spread[name][key] for _, name in named], marker, family.rstrip("-") + "-N")
                continue
            pts = [(calls, points[name][0][key]) for calls, name in named]
            if not pts:
                continue
            x = np.array([c for c, _ in pts], dtype=float)
            y = np.array([m["value"] for _, m in pts], dtype=float)
            lo = np.array([m["lo"] for _, m in pts], dtype=float)
            hi = np.array([m["hi"] for _, m in pts], dtype=float)
            ax.errorbar(x, y, yerr=[np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)], marker=marker, capsize=3,
                        label=family.rstrip("-") + "-N")
        for name, style in (("baseline", "--"), ("MMFF", ":")):
            if name in spread:
                s = spread[name][key]
                seeds = f"{s['n']} seed{'s' * (s['n'] != 1)}"
                ax.axhline(s["mean"], ls=style, color="k", lw=1, label=f"{name} (mean of {seeds}, {s['mean']:.1f})")
                ax.axhspan(s["min"], s["max"], color="k", alpha=0.06)
                continue
            ci = points.get(name, ({}, None))[0].get(key)
            if ci:
                ax.axhline(ci["value"], ls=style, color="k", lw=1, label=f"{name} ({ci['value']:.1f})")
                ax.axhspan(ci["lo"], ci["hi"], color="k", alpha=0.06)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set(xlabel="genuine-oracle calls beyond D0", ylabel=label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_ylim(-2, 102)
    how = ("95% bootstrap intervals" if not spread
           else "bands: min-max over seeds; traj-N, MMFF: 95% bootstrap intervals")
    fig.suptitle((title + ": " if title else "") + f"quality against oracle cost ({how})")
    fig.tight_layout()
    return _save(fig, path)


def plot_learning_curves(curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                         golf_curves: Mapping[str, tuple[Sequence[float], Sequence[float]]],
                         path: str | os.PathLike) -> Path:
    """Validation force MAE (meV/A) per epoch of each trained model, and the held-out D0 force MAE of each
    GOLF run per genuine-oracle call.

    Args:
        curves: model name -> (epochs, validation force MAE); golf_curves: GOLF run name (one per
            training seed) -> (oracle calls, held-out MAE); a legend when there are several.
    """
    fig, (ax1, ax2) = _figure(2, (11, 4))
    for name, (x, y) in curves.items():
        ax1.plot(x, y, label=name)
    ax1.set(xlabel="epoch", ylabel="validation force MAE (meV/A)", title="baseline and traj-N training")
    if curves:
        ax1.legend(fontsize=8)
    for name, curve in golf_curves.items():
        ax2.plot(*curve, "o-", label=name)
    if len(golf_curves) > 1:
        ax2.legend(fontsize=8)
    ax2.set(xlabel="genuine-oracle calls", ylabel="held-out D0 force MAE (meV/A)", title="GOLF")
    fig.tight_layout()
    return _save(fig, path, dpi=110)


__all__ = ["plot_cost_quality", "plot_learning_curves", "plot_metrics"]
