"""``golf.evaluation.report`` on a fake ``golf run`` directory: the rows of further training seeds, their spread over
seeds and GOLF minus the same seed's baseline, checked against numbers computed by hand."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from golf.evaluation.report import write_report
from golf.runs.naming import seed_name, split_seed

STEPS = [1, 10]


def _fake_eval(out, name: str, e_res_kcal: list[float]) -> None:
    """``out/eval/<name>/metrics.json`` of a model whose conformation i ends (T = 10) ``e_res_kcal[i]``
    kcal/mol above its optimum, starting 20 kcal/mol above it (halfway at T = 1)."""
    from golf.evaluation.scoring import EvaluationResult, write_metrics
    from golf.evaluation.metrics import aggregate, conformation_metrics
    from golf.units import KCAL_MOL_TO_EV

    res = np.asarray(e_res_kcal, dtype=float)
    eopt = -10.0 - np.arange(len(res))  # eV
    e0 = eopt + 20.0 * KCAL_MOL_TO_EV
    et = np.stack([(e0 + eopt + res * KCAL_MOL_TO_EV) / 2, eopt + res * KCAL_MOL_TO_EV], axis=1)
    per = conformation_metrics(e0, et, eopt)
    records = [{"mol_id": i, "conf_id": 0, "E_0": e0[i], "E_opt": eopt[i], "E_T": et[i].tolist(),
                "pct_T": per["pct"][i].tolist(), "E_res_T": per["e_res"][i].tolist(),
                "success_T": per["success"][i].tolist(), "diverged_T": per["diverged"][i].tolist()}
               for i in range(len(res))]
    write_metrics(out / "eval" / name / "metrics.json",
                  [EvaluationResult(name, STEPS, records, aggregate(e0, et, eopt, STEPS))])


#: E_res (kcal/mol) at T = 10 of the three test conformations, per model of a two-seed run
E_RES = {
    "baseline": [0.5, 2.0, 4.0],       # median 2.0, success 1/3
    "GOLF-4": [0.5, 1.5, 3.0],         # median 1.5, success 1/3
    "GOLF-8": [0.2, 0.6, 3.0],         # median 0.6, success 2/3
    "baseline-s1": [0.2, 0.4, 3.0],    # median 0.4, success 2/3
    "GOLF-4-s1": [0.1, 0.3, 5.0],      # median 0.3, success 2/3
    "GOLF-8-s1": [0.1, 0.2, 0.3],      # median 0.2, success 3/3
    "MMFF": [0.1, 0.1, 0.1],
}
CALLS = {"baseline": 0, "GOLF-4": 4, "GOLF-8": 8, "baseline-s1": 0, "GOLF-4-s1": 4, "GOLF-8-s1": 8, "MMFF": 0}


def _write(out, names):
    for name in names:
        _fake_eval(out, name, E_RES[name])
    write_report(out, {name: (None, CALLS[name]) for name in names}, {"steps": STEPS}, {"total": 1.0},
                 preset_name="fake")
    return json.loads((out / "report.json").read_text()), (out / "report.md").read_text()


def test_seed_names_round_trip():
    assert seed_name("baseline", 0) == "baseline" and seed_name("GOLF-100", 2) == "GOLF-100-s2"
    for name in ("baseline", "traj-1000", "GOLF-100", "MMFF", "pretrained", "golf"):
        assert split_seed(name) == (name, 0)
        assert split_seed(seed_name(name, 3)) == (name, 3)


def test_one_seed_report_has_no_spread(tmp_path):
    doc, md = _write(tmp_path, ["baseline", "GOLF-4", "GOLF-8", "MMFF"])
    assert "spread_over_seeds_T10" not in doc and "Spread over training seeds" not in md
    assert set(doc["paired_differences_T10"]) == {"GOLF-8 − baseline", "GOLF-8 − MMFF", "GOLF-4 − baseline"}


def test_spread_over_seeds_by_hand(tmp_path):
    (tmp_path / "golf-s1").mkdir()
    (tmp_path / "golf-s1" / "summary.json").write_text(json.dumps({"stats": {"conformations_added": 7}}))
    doc, md = _write(tmp_path, ["baseline", "GOLF-4", "GOLF-8", "baseline-s1", "GOLF-4-s1", "GOLF-8-s1", "MMFF"])
    spread = doc["spread_over_seeds_T10"]
    assert spread["seeds"] == [0, 1]
    assert list(spread["models"]) == ["baseline", "GOLF-4", "GOLF-8"]  # traj-N and MMFF have one seed
    base, golf8 = spread["models"]["baseline"], spread["models"]["GOLF-8"]
    assert base["e_res_median"]["per_seed"] == pytest.approx({"0": 2.0, "1": 0.4})
    assert base["e_res_median"]["mean"] == pytest.approx(1.2)
    assert base["e_res_median"]["std"] == pytest.approx(math.sqrt(2 * 0.8 ** 2))  # sample std, ddof 1
    assert (base["e_res_median"]["min"], base["e_res_median"]["max"]) == pytest.approx((0.4, 2.0))
    assert golf8["calls"] == 8
    assert golf8["pct_success"]["per_seed"] == pytest.approx({"0": 200 / 3, "1": 100.0})
    assert golf8["pct_success"]["mean"] == pytest.approx(250 / 3)
    # GOLF minus the same seed's baseline: seed 0 0.6 - 2.0, seed 1 0.2 - 0.4 (kcal/mol)
    paired = spread["paired_vs_baseline"]["GOLF-8"]
    assert paired["per_seed"]["0"]["e_res_median"]["value"] == pytest.approx(-1.4)
    assert paired["per_seed"]["1"]["e_res_median"]["value"] == pytest.approx(-0.2)
    assert paired["per_seed"]["1"]["pct_success"]["value"] == pytest.approx(100 / 3)
    assert paired["e_res_median"]["mean"] == pytest.approx(-0.8)
    assert (paired["e_res_median"]["min"], paired["e_res_median"]["max"]) == pytest.approx((-1.4, -0.2))
    assert {"lo", "hi", "excludes_zero"} <= set(paired["per_seed"]["1"]["e_res_median"])
    # every GOLF model of seed 1 is paired with seed 1's baseline only; seed 0's final with every seed-0 row
    assert set(doc["paired_differences_T10"]) == {
        "GOLF-4 − baseline", "GOLF-8 − baseline", "GOLF-8 − MMFF",
        "GOLF-4-s1 − baseline-s1", "GOLF-8-s1 − baseline-s1"}
    added = {m["name"]: m["conformations_added"] for m in doc["models"]}
    assert added["GOLF-8-s1"] == 7 and added["GOLF-8"] is None and added["GOLF-4-s1"] is None
    assert "| baseline | 0 | 2.00 / 0.40 | 1.20 ± 1.13 [0.40, 2.00] | 33.3 / 66.7 | 50.0 ± 23.6 [33.3, 66.7] |" in md
    assert "| GOLF-8 − baseline | over seeds | -0.80 ± 0.85 [-1.40, -0.20] |" in md
    assert "| GOLF-8-s1 | 8 (7 added) |" in md
    assert (tmp_path / "cost_quality.png").stat().st_size > 10_000
