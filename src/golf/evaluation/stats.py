"""Bootstrap confidence intervals of the relaxation metrics, pure NumPy, no I/O.

The unit of resampling is the test conformation: a resample draws C conformations with replacement
and recomputes the metric with exactly the rules of ``golf.evaluation.metrics.aggregate`` (E_res statistics
over the valid pairs; pct_success and pct_div over the scored pairs, a broken structure counting as
unsuccessful and diverged). Intervals are percentile intervals (Efron & Tibshirani 1993, ch. 13).

A *paired* interval of a difference (model A - model B) resamples the conformations both models
relaxed (matched by ``(mol_id, conf_id)``) and takes the difference on the same resample, so the
spread between test molecules, which both models share, cancels out.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping, Sequence

import numpy as np

#: Bootstrap resamples and interval level of every reported interval.
N_BOOTSTRAP: int = 2000
LEVEL: float = 0.95

_Stat = Callable[[Mapping[str, np.ndarray]], np.ndarray]


def _nan_stat(fn: Callable[..., np.ndarray], x: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a resample with no valid pair gives NaN
        return fn(x, axis=1)


def _share(flag: np.ndarray, scored: np.ndarray) -> np.ndarray:
    n = scored.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, 100.0 * (flag & scored).sum(axis=1) / np.maximum(n, 1), np.nan)


#: Metrics with an interval: name -> function of the per-conformation columns at one T, each [R, C]
#: (R resamples of C conformations), giving [R]. ``e_res`` is NaN where the pair is not valid.
STATISTICS: dict[str, _Stat] = {
    "e_res_median": lambda c: _nan_stat(np.nanmedian, c["e_res"]),
    "e_res_mean": lambda c: _nan_stat(np.nanmean, c["e_res"]),
    "pct_median": lambda c: _nan_stat(np.nanmedian, c["pct"]),
    "pct_success": lambda c: _share(c["success"], c["scored"]),
    "pct_div": lambda c: _share(c["diverged"], c["scored"]),
}


def columns_at(records: Sequence[Mapping[str, Any]], k: int) -> dict[str, np.ndarray]:
    """Per-conformation columns at the k-th evaluated step from ``golf.evaluation.scoring`` records.

    Returns ``e_res`` (kcal/mol, NaN = not valid), ``pct`` (percent), ``success``, ``diverged`` and
    ``scored`` (bool), each [C].
    """
    def col(key: str) -> np.ndarray:
        return np.array([np.nan if r[key][k] is None else float(r[key][k]) for r in records], dtype=np.float64)

    e0 = np.array([np.nan if r["E_0"] is None else float(r["E_0"]) for r in records], dtype=np.float64)
    eopt = np.array([np.nan if r["E_opt"] is None else float(r["E_opt"]) for r in records], dtype=np.float64)
    return {
        "e_res": col("E_res_T"),
        "pct": col("pct_T"),
        "success": np.nan_to_num(col("success_T")).astype(bool),
        "diverged": np.nan_to_num(col("diverged_T")).astype(bool),
        "scored": np.isfinite(e0) & np.isfinite(eopt),
    }


def _resample(cols: Mapping[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in cols.items()}


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.percentile(finite, [50 * (1 - level), 50 * (1 + level)])
    return float(lo), float(hi)


def bootstrap_intervals(
    cols: Mapping[str, np.ndarray],
    metrics: Sequence[str] = tuple(STATISTICS),
    n_boot: int = N_BOOTSTRAP,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Point estimate and percentile bootstrap interval of each metric.

    Args:
        cols: per-conformation columns at one T (``columns_at``), each [C].
        metrics: keys of ``STATISTICS``.
        n_boot: resamples; level: interval level; seed: seeds the resampling.

    Returns:
        metric -> ``{"value", "lo", "hi"}`` (kcal/mol for E_res, percent otherwise); NaN for C = 0.
    """
    c = len(next(iter(cols.values())))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, c, size=(n_boot, c)) if c else np.zeros((n_boot, 0), dtype=int)
    full = {k: v[None, :] for k, v in cols.items()}
    out = {}
    for m in metrics:
        fn = STATISTICS[m]
        value = float(fn(full)[0]) if c else float("nan")
        lo, hi = _interval(fn(_resample(cols, idx)), level) if c else (float("nan"), float("nan"))
        out[m] = {"value": value, "lo": lo, "hi": hi}
    return out


def paired_difference(
    a: Sequence[Mapping[str, Any]],
    b: Sequence[Mapping[str, Any]],
    k: int,
    metrics: Sequence[str] = tuple(STATISTICS),
    n_boot: int = N_BOOTSTRAP,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap interval of ``metric(A) - metric(B)`` at the k-th step on shared conformations.

    Args:
        a, b: ``golf.evaluation.scoring`` records of two models on the same reference set; conformations are
            matched by ``(mol_id, conf_id)`` and only those in both are used.
        k: index of the step T in the records' step lists.

    Returns:
        ``{"n": shared conformations, metric: {"value", "lo", "hi", "excludes_zero"}}``.
    """
    key = lambda r: (int(r["mol_id"]), int(r["conf_id"]))  # noqa: E731
    b_by_key = {key(r): r for r in b}
    pairs = [(r, b_by_key[key(r)]) for r in a if key(r) in b_by_key]
    ca = columns_at([p[0] for p in pairs], k)
    cb = columns_at([p[1] for p in pairs], k)
    return paired_columns(ca, cb, metrics, n_boot, level, seed)


def paired_columns(
    ca: Mapping[str, np.ndarray],
    cb: Mapping[str, np.ndarray],
    metrics: Sequence[str] = tuple(STATISTICS),
    n_boot: int = N_BOOTSTRAP,
    level: float = LEVEL,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired bootstrap interval of ``metric(A) - metric(B)`` from matched per-conformation columns
    (``columns_at`` layout, each [C], row i of ``ca`` and ``cb`` the same conformation).

    Returns:
        ``{"n": C, metric: {"value", "lo", "hi", "excludes_zero"}}``.
    """
    n = len(next(iter(ca.values()))) if ca else 0
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n)) if n else np.zeros((n_boot, 0), dtype=int)
    out: dict[str, Any] = {"n": n}
    for m in metrics:
        fn = STATISTICS[m]
        if not n:
            out[m] = {"value": float("nan"), "lo": float("nan"), "hi": float("nan"), "excludes_zero": False}
            continue
        value = float(fn({k_: v[None, :] for k_, v in ca.items()})[0] - fn({k_: v[None, :] for k_, v in cb.items()})[0])
        lo, hi = _interval(fn(_resample(ca, idx)) - fn(_resample(cb, idx)), level)
        out[m] = {"value": value, "lo": lo, "hi": hi, "excludes_zero": bool(lo > 0 or hi < 0)}
    return out


__all__ = ["LEVEL", "N_BOOTSTRAP", "STATISTICS", "bootstrap_intervals", "columns_at", "paired_columns", "paired_difference"]


def roc_auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """ROC AUC = P(score of a random bad > score of a random good), ties counting 1/2
    (the Mann-Whitney U statistic over n_bad * n_good). NaN when a class is empty."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if pos.size == 0 or neg.size == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (pos.size * neg.size))
