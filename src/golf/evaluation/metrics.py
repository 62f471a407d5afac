"""The GOLF paper's relaxation metrics (Tsypin et al., ICLR 2024, section 5), pure NumPy, no I/O.

A model relaxes a test conformation; the *genuine* oracle (xTB, DFT) is evaluated at the start and
at the geometry reached after T optimizer steps. With

* ``E_0``   genuine-oracle energy of the start conformation (eV),
* ``E_T``   genuine-oracle energy after T steps of the model's optimizer (eV),
* ``E_opt`` genuine-oracle energy of the oracle's own optimum from the start (reference db, eV),

the per-conformation metrics at step T are

* ``pct_T     = 100 * (E_0 - E_T) / (E_0 - E_opt)``  percent of the possible energy decrease achieved;
* ``E_res_T   = E_T - E_opt``  residual energy, reported in kcal/mol;
* ``success_T = E_res_T < 1 kcal/mol``  ("chemical accuracy" of the optimum);
* ``diverged_T = E_T > E_0``  the relaxation ended above where it started.

Aggregates at each T (``aggregate``): mean, std, median and quartiles of pct_T, ``pct_div`` (percent diverged),
mean and median of E_res (kcal/mol), ``pct_success``.

Edge cases (all explicit):

* **Zero denominator.** If ``E_0 - E_opt <= zero_tol`` (eV; default 1e-6 eV, ~2e-5 kcal/mol) the start
  already is the optimum (or, anomalously, lies below the reference optimum), so no decrease is
  possible. Then ``pct_T = 100`` if ``E_T <= E_opt + zero_tol`` (the model stayed at the optimum) and
  ``0`` otherwise. Such conformations are kept in every aggregate (E_res, success and divergence are
  well defined for them anyway) and counted in ``n_degenerate``.
* **Failed oracle calls.** A failed call is ``NaN``. A conformation with a NaN ``E_0`` or ``E_opt``
  has no reference and is left out of every aggregate (counted in ``n_failed`` at every T). A NaN
  ``E_T`` with valid references means the oracle could not evaluate the structure the optimizer
  produced (overlapping atoms, SCF failure on a broken molecule): that pair is excluded from the
  means/medians of pct and E_res (there is no number) and counted in ``n_failed``, but it is
  **scored** in the percentages: it counts as diverged and not successful. Excluding it would
  flatter a model whose relaxations blow molecules apart. ``pct_div`` and ``pct_success`` are
  therefore over ``n_scored`` (pairs with valid references), E_res and pct over ``n_valid``.
  A T where nothing is valid has NaN means (``n_valid = 0``).
* **The official scoring beside it.** The official evaluation (``evaluate_batch_dft.py``,
  ``read_evaluation_metrics.py``) drops instead of scoring: a pair whose oracle call failed, and every
  step at or after a non-finite optimizer step. The ``*_official`` aggregates are computed that way
  (over ``n_official`` pairs: valid and not ``excluded``), so golf's numbers compare with the paper's.
* **Early-stopped relaxations.** A model relaxation that stopped before T (converged, or failed and
  kept its last good structure) contributes the structure of its last step at every later T, as in
  the paper's fixed-length evaluation: see ``trajectory_frame_indices``.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from golf.units import EV_TO_KCAL_MOL

#: The paper's evaluation steps.
DEFAULT_STEPS: tuple[int, ...] = (1, 2, 3, 5, 8, 13, 21, 30, 50, 75, 100)

#: Success threshold on the residual energy (kcal/mol).
SUCCESS_THRESHOLD_KCAL_MOL: float = 1.0

#: Denominators E_0 - E_opt at or below this (eV) are treated as "no decrease possible".
ZERO_TOL_EV: float = 1e-6

#: Keys of one aggregate row, in table order.
AGGREGATE_KEYS: tuple[str, ...] = (
    "T",
    "n",
    "n_valid",
    "n_scored",
    "n_failed",
    "n_degenerate",
    "pct_mean",
    "pct_std",
    "pct_median",
    "pct_q25",
    "pct_q75",
    "pct_div",
    "e_res_mean",
    "e_res_median",
    "pct_success",
    "n_official",
    "pct_mean_official",
    "pct_div_official",
    "e_res_mean_official",
    "e_res_median_official",
    "pct_success_official",
)


def _as_2d(e0: Any, et: Any, eopt: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Broadcast to e0 [C, 1], et [C, K], eopt [C, 1] (float64)."""
    e0 = np.asarray(e0, dtype=np.float64).reshape(-1)
    eopt = np.asarray(eopt, dtype=np.float64).reshape(-1)
    et = np.asarray(et, dtype=np.float64)
    if et.ndim == 1:
        et = et.reshape(-1, 1) if et.shape[0] == e0.shape[0] else et.reshape(1, -1)
    if et.ndim != 2 or et.shape[0] != e0.shape[0] or eopt.shape[0] != e0.shape[0]:
        raise ValueError(
            f"shape mismatch: E_0 {e0.shape}, E_T {et.shape}, E_opt {eopt.shape} "
            "(expected [C], [C, K], [C])"
        )
    return e0[:, None], et, eopt[:, None]


def percent_decrease(
    e0: Any, et: Any, eopt: Any, zero_tol: float = ZERO_TOL_EV
) -> np.ndarray:
    """``pct_T = 100 (E_0 - E_T) / (E_0 - E_opt)`` for C conformations at K steps.

    Args:
        e0: start energies [C] (eV).
        et: energies after T steps [C, K] (eV); NaN = failed oracle call.
        eopt: reference optimum energies [C] (eV).
        zero_tol: denominators ``E_0 - E_opt <= zero_tol`` (eV) use the zero-denominator rule:
            100 if ``E_T <= E_opt + zero_tol`` else 0 (see module docstring).

    Returns:
        pct [C, K] (percent), NaN wherever an input is NaN. Not clipped: values above 100 mean the
        model went below the reference optimum, negative values mean it went uphill.
    """
    e0, et, eopt = _as_2d(e0, et, eopt)
    denom = e0 - eopt  # [C, 1]
    degenerate = denom <= zero_tol
    safe = np.where(degenerate, 1.0, denom)
    pct = 100.0 * (e0 - et) / safe
    pct_deg = np.where(et <= eopt + zero_tol, 100.0, 0.0)
    pct = np.where(degenerate, pct_deg, pct)
    invalid = ~np.isfinite(et) | ~np.isfinite(e0) | ~np.isfinite(eopt)
    return np.where(invalid, np.nan, pct)


def residual_energy(et: Any, eopt: Any) -> np.ndarray:
    """``E_res = E_T - E_opt`` in kcal/mol. et [C, K] or [C] (eV), eopt [C] (eV) -> same shape as et."""
    et = np.asarray(et, dtype=np.float64)
    eopt = np.asarray(eopt, dtype=np.float64).reshape(-1)
    if et.ndim == 2:
        eopt = eopt[:, None]
    return (et - eopt) * EV_TO_KCAL_MOL


def conformation_metrics(
    e0: Any, et: Any, eopt: Any, zero_tol: float = ZERO_TOL_EV
) -> dict[str, np.ndarray]:
    """All per-conformation metrics at K steps.

    Args:
        e0: [C] eV; et: [C, K] eV (NaN = failed call); eopt: [C] eV.

    Returns:
        dict with ``pct`` [C, K] (percent), ``e_res`` [C, K] (kcal/mol), ``success`` [C, K] bool,
        ``diverged`` [C, K] bool, ``valid`` [C, K] bool (finite E_0, E_T, E_opt), ``scored`` [C, K]
        bool (finite E_0 and E_opt), ``degenerate`` [C] bool (E_0 - E_opt <= zero_tol).
        ``success`` is False where not ``valid``; ``diverged`` is True where scored but not valid
        (the oracle failed on the optimizer's structure) and False where not scored.
    """
    e0_, et_, eopt_ = _as_2d(e0, et, eopt)
    scored = np.broadcast_to(np.isfinite(e0_) & np.isfinite(eopt_), et_.shape)
    valid = np.isfinite(et_) & scored
    pct = percent_decrease(e0_[:, 0], et_, eopt_[:, 0], zero_tol)
    e_res = np.where(valid, (et_ - eopt_) * EV_TO_KCAL_MOL, np.nan)
    with np.errstate(invalid="ignore"):
        success = valid & (e_res < SUCCESS_THRESHOLD_KCAL_MOL)
        diverged = (valid & (et_ > e0_)) | (scored & ~valid)
    degenerate = (e0_[:, 0] - eopt_[:, 0]) <= zero_tol
    return {
        "pct": pct,
        "e_res": e_res,
        "success": success,
        "diverged": diverged,
        "valid": valid,
        "scored": scored,
        "degenerate": degenerate,
    }


def aggregate(
    e0: Any,
    et: Any,
    eopt: Any,
    steps: Sequence[int],
    zero_tol: float = ZERO_TOL_EV,
    excluded: Any = None,
) -> list[dict[str, float]]:
    """The paper's aggregate metrics, one row per step T.

    Args:
        e0: [C] eV; et: [C, K] eV with K = len(steps) (NaN = failed call); eopt: [C] eV.
        steps: the K step numbers T (only used to label the rows).
        excluded: [C, K] bool, pairs the official evaluation drops besides failed calls (at or after
            a non-finite optimizer step); None: none. Only the ``*_official`` keys use it.

    Returns:
        list of K dicts with keys ``AGGREGATE_KEYS``: ``T``; ``n`` (C); ``n_valid`` (finite E_0,
        E_T, E_opt); ``n_scored`` (finite E_0, E_opt); ``n_failed`` (C - n_valid);
        ``n_degenerate`` (valid pairs with a zero denominator); ``pct_mean``, ``pct_std``
        (population std, percent, over valid pairs); ``pct_median``, ``pct_q25``, ``pct_q75`` (its
        median and quartiles: pct is heavy-tailed where E_0 - E_opt is small); ``pct_div`` (percent of scored pairs that
        diverged, failed E_T included); ``e_res_mean``, ``e_res_median`` (kcal/mol, valid pairs);
        ``pct_success`` (percent of scored pairs with E_res < 1 kcal/mol). Means are NaN when
        ``n_valid == 0``, percentages when ``n_scored == 0``. The ``*_official`` keys are the same
        metrics over the ``n_official`` pairs the official evaluation keeps (see module docstring).
    """
    steps = [int(t) for t in steps]
    m = conformation_metrics(e0, et, eopt, zero_tol)
    c, k = m["pct"].shape
    if k != len(steps):
        raise ValueError(f"E_T has {k} columns but {len(steps)} steps were given")
    excl = np.zeros((c, k), dtype=bool) if excluded is None else np.asarray(excluded, dtype=bool).reshape(c, k)
    official = m["valid"] & ~excl
    rows: list[dict[str, float]] = []
    for j, t in enumerate(steps):
        v, sc = m["valid"][:, j], m["scored"][:, j]
        n_valid, n_scored = int(v.sum()), int(sc.sum())
        row: dict[str, float] = {
            "T": t,
            "n": int(c),
            "n_valid": n_valid,
            "n_scored": n_scored,
            "n_failed": int(c - n_valid),
            "n_degenerate": int((v & m["degenerate"]).sum()),
        }
        nan = float("nan")
        pct, e_res = m["pct"][v, j], m["e_res"][v, j]
        row.update(
            pct_mean=float(np.mean(pct)) if n_valid else nan,
            pct_std=float(np.std(pct)) if n_valid else nan,
            pct_median=float(np.median(pct)) if n_valid else nan,
            pct_q25=float(np.percentile(pct, 25)) if n_valid else nan,
            pct_q75=float(np.percentile(pct, 75)) if n_valid else nan,
            pct_div=float(100.0 * m["diverged"][sc, j].mean()) if n_scored else nan,
            e_res_mean=float(np.mean(e_res)) if n_valid else nan,
            e_res_median=float(np.median(e_res)) if n_valid else nan,
            pct_success=float(100.0 * m["success"][sc, j].mean()) if n_scored else nan,
        )
        o = official[:, j]
        n_o = int(o.sum())
        row.update(
            n_official=n_o,
            pct_mean_official=float(np.mean(m["pct"][o, j])) if n_o else nan,
            pct_div_official=float(100.0 * m["diverged"][o, j].mean()) if n_o else nan,
            e_res_mean_official=float(np.mean(m["e_res"][o, j])) if n_o else nan,
            e_res_median_official=float(np.median(m["e_res"][o, j])) if n_o else nan,
            pct_success_official=float(100.0 * m["success"][o, j].mean()) if n_o else nan,
        )
        rows.append(row)
    return rows


def trajectory_frame_indices(n_frames: int, steps: Sequence[int]) -> np.ndarray:
    """Which trajectory frame to evaluate at each step T (fixed-length evaluation padding).

    A trajectory has frames 0..n_frames-1, frame 0 = the start conformation and frame t = the
    structure after t optimizer steps. A relaxation that stopped early (converged or failed) has
    fewer than max(steps)+1 frames; its last frame then stands for every later T.

    Args:
        n_frames: number of frames (>= 1).
        steps: step numbers T (>= 0).

    Returns:
        int64 [K] with ``min(T, n_frames - 1)``.
    """
    if n_frames < 1:
        raise ValueError("a trajectory needs at least one frame (the start)")
    steps_arr = np.asarray(list(steps), dtype=np.int64)
    if np.any(steps_arr < 0):
        raise ValueError("steps must be >= 0")
    return np.minimum(steps_arr, n_frames - 1)


def pad_trajectory_energies(energies: Any, steps: Sequence[int]) -> np.ndarray:
    """Energies at each T from per-frame energies [n_frames] (frame 0 = start), padding with the last.

    Returns [K] (same units as the input).
    """
    energies = np.asarray(energies, dtype=np.float64).reshape(-1)
    return energies[trajectory_frame_indices(len(energies), steps)]


def format_table(rows: Sequence[dict[str, float]], title: str | None = None) -> str:
    """A plain-text table of aggregate rows (one line per T) for the terminal."""

    def f(x: float, fmt: str) -> str:
        return "nan" if x is None or not np.isfinite(x) else format(x, fmt)

    header = (
        f"{'T':>5}  {'pct (mean±std)':>17}  {'pct_div':>7}  {'E_res mean':>10}  "
        f"{'E_res med':>9}  {'pct_success':>11}  {'failed':>6}"
    )
    lines = []
    if title:
        lines.append(title)
    lines.append(header)
    lines.append("-" * len(header))
    for r in rows:
        pct = f"{f(r['pct_mean'], '.1f')}±{f(r['pct_std'], '.1f')}"
        lines.append(
            f"{int(r['T']):>5}  {pct:>17}  {f(r['pct_div'], '.1f'):>7}  "
            f"{f(r['e_res_mean'], '.2f'):>10}  {f(r['e_res_median'], '.2f'):>9}  "
            f"{f(r['pct_success'], '.1f'):>11}  {int(r['n_failed']):>6}"
        )
    lines.append("(pct, pct_div, pct_success in %; E_res in kcal/mol)")
    return "\n".join(lines)


__all__ = [
    "AGGREGATE_KEYS",
    "DEFAULT_STEPS",
    "SUCCESS_THRESHOLD_KCAL_MOL",
    "ZERO_TOL_EV",
    "aggregate",
    "conformation_metrics",
    "format_table",
    "pad_trajectory_energies",
    "percent_decrease",
    "residual_energy",
    "trajectory_frame_indices",
]
