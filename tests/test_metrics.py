"""The paper's metrics on hand-made cases."""
from __future__ import annotations

import math

import numpy as np
import pytest

from golf.evaluation import metrics
from golf.units import EV_TO_KCAL_MOL, KCAL_MOL_TO_EV


def test_percent_decrease_known_values():
    e0 = np.array([-10.0, -5.0])
    eopt = np.array([-12.0, -6.0])
    et = np.array([[-11.0, -12.0, -13.0], [-5.5, -4.0, -6.0]])
    pct = metrics.percent_decrease(e0, et, eopt)
    np.testing.assert_allclose(pct, [[50.0, 100.0, 150.0], [50.0, -100.0, 100.0]])


def test_residual_energy_in_kcal_mol():
    e_res = metrics.residual_energy(np.array([[-11.0]]), np.array([-12.0]))
    assert e_res[0, 0] == pytest.approx(EV_TO_KCAL_MOL)
    assert e_res[0, 0] == pytest.approx(23.0605, rel=1e-4)


def test_success_and_divergence():
    e0 = np.array([0.0, 0.0, 0.0])
    eopt = np.array([-1.0, -1.0, -1.0])
    # 0.5 kcal/mol above the optimum (success), 2 kcal/mol above (no success), above the start
    et = np.array([[-1.0 + 0.5 * KCAL_MOL_TO_EV], [-1.0 + 2.0 * KCAL_MOL_TO_EV], [0.1]])
    m = metrics.conformation_metrics(e0, et, eopt)
    assert m["success"][:, 0].tolist() == [True, False, False]
    assert m["diverged"][:, 0].tolist() == [False, False, True]
    np.testing.assert_allclose(m["e_res"][:, 0], [0.5, 2.0, 1.1 * EV_TO_KCAL_MOL])
    row = metrics.aggregate(e0, et, eopt, steps=[7])[0]
    assert row["T"] == 7 and row["n"] == 3 and row["n_valid"] == 3 and row["n_failed"] == 0
    assert row["pct_success"] == pytest.approx(100 / 3)
    assert row["pct_div"] == pytest.approx(100 / 3)
    pct = [100 - 0.5 * KCAL_MOL_TO_EV * 100, 100 - 2 * KCAL_MOL_TO_EV * 100, -10.0]
    assert row["pct_mean"] == pytest.approx(np.mean(pct))
    assert row["pct_std"] == pytest.approx(np.std(pct))
    assert row["e_res_mean"] == pytest.approx(np.mean([0.5, 2.0, 1.1 * EV_TO_KCAL_MOL]))
    assert row["e_res_median"] == pytest.approx(2.0)


def test_nan_excluded_and_counted():
    e0 = np.array([0.0, 0.0, 0.0, np.nan])
    eopt = np.array([-1.0, -1.0, -1.0, -1.0])
    et = np.array(
        [
            [-0.5, -1.0],
            [np.nan, -1.0],
            [-0.5, np.nan],
            [-0.5, -1.0],  # E_0 failed: invalid everywhere
        ]
    )
    rows = metrics.aggregate(e0, et, eopt, steps=[1, 2])
    assert [r["n_valid"] for r in rows] == [2, 2]
    assert [r["n_failed"] for r in rows] == [2, 2]
    assert rows[0]["pct_mean"] == pytest.approx(50.0)
    assert rows[0]["pct_std"] == pytest.approx(0.0)
    assert rows[1]["pct_mean"] == pytest.approx(100.0)
    # a failed E_T (the optimizer's structure could not be evaluated) is scored: diverged, no success
    assert [r["n_scored"] for r in rows] == [3, 3]
    assert rows[1]["pct_success"] == pytest.approx(200.0 / 3)
    assert rows[0]["pct_success"] == pytest.approx(0.0)
    assert rows[0]["pct_div"] == pytest.approx(100.0 / 3)
    assert rows[1]["pct_div"] == pytest.approx(100.0 / 3)
    m = metrics.conformation_metrics(e0, et, eopt)
    assert np.isnan(m["pct"][1, 0]) and np.isnan(m["e_res"][3, 1])
    assert not m["success"][3, 1] and not m["diverged"][3, 1]  # no reference: not scored
    assert m["diverged"][1, 0] and not m["success"][1, 0]


def test_all_failed_gives_nan_row():
    rows = metrics.aggregate([0.0], [[np.nan]], [-1.0], steps=[1])
    assert rows[0]["n_valid"] == 0 and rows[0]["n_failed"] == 1
    assert math.isnan(rows[0]["pct_mean"]) and math.isnan(rows[0]["e_res_mean"])
    assert rows[0]["pct_success"] == 0.0 and rows[0]["pct_div"] == 100.0
    rows = metrics.aggregate([np.nan], [[np.nan]], [-1.0], steps=[1])
    assert rows[0]["n_scored"] == 0 and math.isnan(rows[0]["pct_success"])


def test_zero_denominator_rule():
    # start already at the optimum: staying there = 100 %, moving up = 0 %
    e0 = np.array([-3.0, -3.0, -3.0])
    eopt = np.array([-3.0, -3.0, -3.0 + 1e-9])
    et = np.array([[-3.0], [-2.9], [-3.0]])
    pct = metrics.percent_decrease(e0, et, eopt)
    np.testing.assert_allclose(pct[:, 0], [100.0, 0.0, 100.0])
    rows = metrics.aggregate(e0, et, eopt, steps=[1])
    assert rows[0]["n_degenerate"] == 3
    assert rows[0]["pct_div"] == pytest.approx(100 / 3)
    assert np.all(np.isfinite(pct))


def test_start_below_reference_optimum_is_degenerate():
    pct = metrics.percent_decrease([-5.0], [[-5.1]], [-4.0])
    assert pct[0, 0] == 100.0


def test_early_stopped_trajectory_padding():
    # a relaxation that stopped after 3 steps: frames 0..3
    idx = metrics.trajectory_frame_indices(4, [1, 2, 3, 5, 8])
    assert idx.tolist() == [1, 2, 3, 3, 3]
    # only the start frame (failed at the first step): start everywhere
    assert metrics.trajectory_frame_indices(1, [1, 100]).tolist() == [0, 0]
    e = metrics.pad_trajectory_energies([0.0, -0.5, -0.8, -0.9], [1, 2, 5, 100])
    np.testing.assert_allclose(e, [-0.5, -0.8, -0.9, -0.9])
    with pytest.raises(ValueError):
        metrics.trajectory_frame_indices(0, [1])


def test_shape_errors():
    with pytest.raises(ValueError):
        metrics.aggregate([0.0, 0.0], [[1.0, 2.0]], [0.0, 0.0], steps=[1, 2])
    with pytest.raises(ValueError):
        metrics.aggregate([0.0], [[1.0, 2.0]], [0.0], steps=[1])


def test_format_table_lists_every_step():
    rows = metrics.aggregate([0.0, 0.0], [[-0.5, -1.0], [np.nan, -0.9]], [-1.0, -1.0], [1, 2])
    text = metrics.format_table(rows, title="model")
    lines = text.splitlines()
    assert lines[0] == "model"
    assert any(line.split()[0] == "1" for line in lines[3:5])
    assert "50.0±0.0" in text
    assert "kcal/mol" in text


def test_official_scoring_drops_what_golf_scores():
    """Broken structures (NaN E_T) count as diverged in golf's scoring; the official evaluation drops
    them, and also drops every T after a non-finite optimizer step (``excluded``)."""
    from golf.evaluation.metrics import aggregate
    from golf.units import KCAL_MOL_TO_EV

    e0 = np.array([10.0, 10.0, 10.0, 10.0])
    eopt = np.zeros(4)
    k = KCAL_MOL_TO_EV
    et = np.array([[0.5 * k], [np.nan], [20.0], [0.2 * k]])  # success, broken, diverged, success
    excluded = np.array([[False], [False], [False], [True]])  # the 4th ran into a non-finite step
    row = aggregate(e0, et, eopt, [100], excluded=excluded)[0]
    assert row["pct_div"] == pytest.approx(50.0) and row["pct_success"] == pytest.approx(50.0)  # 2/4, 2/4
    assert row["n_official"] == 2  # the broken and the excluded pair are dropped
    assert row["pct_div_official"] == pytest.approx(50.0) and row["pct_success_official"] == pytest.approx(50.0)
    assert row["e_res_median_official"] == pytest.approx(np.median([0.5, 20.0 / k]))
    no_excl = aggregate(e0, et, eopt, [100])[0]
    assert no_excl["n_official"] == 3 and no_excl["pct_success_official"] == pytest.approx(200 / 3)
