"""Bootstrap intervals of the relaxation metrics (golf.evaluation.stats)."""
from __future__ import annotations

import numpy as np
import pytest

from golf.evaluation.metrics import aggregate, conformation_metrics
from golf.evaluation.stats import bootstrap_intervals, columns_at, paired_difference
from golf.units import KCAL_MOL_TO_EV


def _records(e0, et, eopt, ids=None):
    """golf.evaluation.scoring-style records at one step T from energies (eV)."""
    e0, et, eopt = (np.asarray(x, dtype=float) for x in (e0, et, eopt))
    m = conformation_metrics(e0, et[:, None], eopt)
    ids = range(len(e0)) if ids is None else ids
    return [{"mol_id": i, "conf_id": 0, "E_0": e0[c], "E_opt": eopt[c],
             "E_res_T": [None if np.isnan(m["e_res"][c, 0]) else m["e_res"][c, 0]],
             "pct_T": [None if np.isnan(m["pct"][c, 0]) else m["pct"][c, 0]],
             "success_T": [bool(m["success"][c, 0])], "diverged_T": [bool(m["diverged"][c, 0])]}
            for c, i in enumerate(ids)]


def _sample(n=200, seed=0, broken=10):
    rng = np.random.default_rng(seed)
    eopt = np.zeros(n)
    e0 = rng.uniform(5, 20, n) * KCAL_MOL_TO_EV
    et = rng.exponential(2.0, n) * KCAL_MOL_TO_EV  # E_res ~ Exp(mean 2 kcal/mol)
    et[:broken] = np.nan  # broken structures: no E_res, unsuccessful, diverged
    return e0, et, eopt


def test_point_values_are_the_aggregate_metrics():
    e0, et, eopt = _sample()
    ci = bootstrap_intervals(columns_at(_records(e0, et, eopt), 0), n_boot=200)
    row = aggregate(e0, et[:, None], eopt, [100])[0]
    for key in ("e_res_median", "e_res_mean", "pct_success", "pct_div", "pct_median"):
        assert ci[key]["value"] == pytest.approx(row[key])
        assert ci[key]["lo"] <= ci[key]["value"] <= ci[key]["hi"]


def test_success_interval_has_the_binomial_width():
    n = 400
    e0, eopt = np.ones(n), np.zeros(n)
    et = np.where(np.arange(n) % 2 == 0, 0.0, 1.0)  # half succeed
    ci = bootstrap_intervals(columns_at(_records(e0, et, eopt), 0), metrics=["pct_success"])["pct_success"]
    assert ci["value"] == pytest.approx(50.0)
    half_width = 1.96 * np.sqrt(0.25 / n) * 100  # normal approximation, 4.9 points
    assert (ci["hi"] - ci["lo"]) / 2 == pytest.approx(half_width, rel=0.15)


def test_broken_structures_count_as_failures_in_success():
    e0, eopt = np.ones(4), np.zeros(4)
    et = np.array([0.0, 0.0, np.nan, np.nan])
    ci = bootstrap_intervals(columns_at(_records(e0, et, eopt), 0), metrics=["pct_success", "e_res_median"])
    assert ci["pct_success"]["value"] == pytest.approx(50.0)
    assert ci["e_res_median"]["value"] == pytest.approx(0.0)


def test_paired_difference_cancels_the_shared_spread():
    e0, et, eopt = _sample(broken=0)
    better = et - 0.5 * KCAL_MOL_TO_EV  # the same molecules, every E_res 0.5 kcal/mol lower
    d = paired_difference(_records(e0, better, eopt), _records(e0, et, eopt), 0)
    assert d["n"] == len(e0)
    assert d["e_res_median"]["value"] == pytest.approx(-0.5)
    assert d["e_res_median"]["lo"] == pytest.approx(-0.5) and d["e_res_median"]["hi"] == pytest.approx(-0.5)
    assert d["e_res_median"]["excludes_zero"]
    unpaired = bootstrap_intervals(columns_at(_records(e0, et, eopt), 0), metrics=["e_res_median"])["e_res_median"]
    assert unpaired["hi"] - unpaired["lo"] > 0.2  # the molecules' spread, which pairing removes


def test_identical_models_differ_by_zero_and_matching_is_by_conformation():
    e0, et, eopt = _sample(n=50)
    a = _records(e0, et, eopt)
    b = list(reversed(a)) + _records([1.0], [0.0], [0.0], ids=[999])  # shuffled, one extra conformation
    d = paired_difference(a, b, 0)
    assert d["n"] == 50
    for key in ("e_res_median", "pct_success", "pct_div"):
        assert d[key]["value"] == pytest.approx(0.0) and d[key]["lo"] == pytest.approx(0.0)
        assert not d[key]["excludes_zero"]


def test_intervals_are_reproducible_and_seeded():
    e0, et, eopt = _sample()
    cols = columns_at(_records(e0, et, eopt), 0)
    assert bootstrap_intervals(cols, seed=3) == bootstrap_intervals(cols, seed=3)
    assert bootstrap_intervals(cols, seed=3)["e_res_median"] != bootstrap_intervals(cols, seed=4)["e_res_median"]
