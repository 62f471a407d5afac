"""``golf run --preset smoke``: the whole experiment on a few molecules, every report file written,
and a second run skips every finished stage."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "golf-run"
    res = subprocess.run([sys.executable, "-m", "golf", "run", "--preset", "smoke", "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    return out, res


def test_smoke_run_writes_every_report_file(smoke_run):
    out, _ = smoke_run
    for name in ("report.md", "report.json", "metrics.png", "learning_curves.png", "models/baseline.pt",
                 "golf/model.pt", "golf/oracle.db", "data/test_ref.db"):
        assert (out / name).exists(), name
    report = json.loads((out / "report.json").read_text())
    names = [m["name"] for m in report["models"]]
    # smoke: budget 8, 4 parallel episodes, a snapshot at half the budget (the end of the 1st round)
    assert names == ["baseline", "traj-80", "GOLF-4", "GOLF-8", "MMFF"]
    calls = {m["name"]: m["oracle_calls_beyond_d0"] for m in report["models"]}
    assert calls["baseline"] == 0 and calls["traj-80"] == 80 and calls["GOLF-4"] == 4 and calls["GOLF-8"] == 8
    assert (out / "cost_quality.png").stat().st_size > 10_000
    for m in report["models"]:
        assert [row["T"] for row in m["metrics"]] == [1, 2, 5, 10]
        assert {"pct_mean", "pct_div", "e_res_mean", "pct_success"} <= set(m["metrics"][0])
    assert re.search(r"\| GOLF-8 \| 8 \(\d+ added\) \|", (out / "report.md").read_text())  # calls and labels added


def test_rerun_skips_finished_stages(smoke_run):
    out, _ = smoke_run
    res = subprocess.run([sys.executable, "-m", "golf", "run", "--preset", "smoke", "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "$ golf" not in res.stderr  # no subcommand ran again
    assert res.stderr.count("done before, skipped") >= 10


def test_interrupted_training_stage_resumes(smoke_run):
    """A training stage killed after it saved state (marker missing, run dir present) resumes."""
    out, _ = smoke_run
    (out / "stages" / "traj-80.json").unlink()
    assert (out / "models" / "traj-80.pt.d" / "trainer_state.pt").exists()
    res = subprocess.run([sys.executable, "-m", "golf", "run", "--preset", "smoke", "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "$ golf train" in res.stderr and "--resume" in res.stderr
    assert (out / "stages" / "traj-80.json").exists()


def test_report_gives_intervals_and_paired_differences(smoke_run):
    out, _ = smoke_run
    report = json.loads((out / "report.json").read_text())
    for m in report["models"]:
        ci = m["intervals_T10"]["e_res_median"]
        assert set(ci) == {"value", "lo", "hi"}
    paired = report["paired_differences_T10"]
    assert set(paired) == {"GOLF-8 − baseline", "GOLF-8 − traj-80", "GOLF-8 − MMFF", "GOLF-4 − baseline"}
    assert all(d["n"] == 3 for d in paired.values())
    assert "Paired differences at T = 10" in (out / "report.md").read_text()


@pytest.mark.slow  # ~3 min: seed 1's baseline (160 epochs of 2 updates, ~2 min here), GOLF run, 3 evaluations
def test_a_second_training_seed_extends_a_finished_run(smoke_run, tmp_path):
    """``--seeds 2`` on a copy of the finished one-seed run: seed 0's stages are skipped, seed 1 trains its
    own baseline and GOLF run and evaluates them, and the report gains the spread over seeds."""
    import shutil

    src, _ = smoke_run
    out = tmp_path / "golf-run-seeds"
    shutil.copytree(src, out)
    res = subprocess.run([sys.executable, "-m", "golf", "run", "--preset", "smoke", "--out", str(out), "--seeds", "2",
                          "--no-progress"], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    ran = re.findall(r"\[golf run\] (\S+) \.\.\.", res.stderr)
    assert ran == ["baseline-s1", "golf-s1", "eval-baseline-s1", "eval-GOLF-4-s1", "eval-GOLF-8-s1"]
    assert (out / "models" / "baseline-s1.pt").exists() and (out / "golf-s1" / "model.pt").exists()
    report = json.loads((out / "report.json").read_text())
    assert [m["name"] for m in report["models"]] == ["baseline", "traj-80", "GOLF-4", "GOLF-8", "baseline-s1",
                                                     "GOLF-4-s1", "GOLF-8-s1", "MMFF"]
    spread = report["spread_over_seeds_T10"]
    assert spread["seeds"] == [0, 1] and list(spread["models"]) == ["baseline", "GOLF-4", "GOLF-8"]
    assert set(spread["paired_vs_baseline"]["GOLF-8"]["per_seed"]) == {"0", "1"}
    assert "GOLF-8-s1 − baseline-s1" in report["paired_differences_T10"]
    md = (out / "report.md").read_text()
    assert "Spread over training seeds" in md and re.search(r"\| GOLF-8-s1 \| 8 \(\d+ added\) \|", md)


@pytest.mark.slow  # ~1-2 min: a 128x3 PaiNN trained and evaluated; the wiring is in test_pretrained_start.py
def test_run_from_a_pretrained_start(smoke_run, tmp_path, checkpoints_dir):
    """``golf run --init``: the official baseline-NNP, offsets refit to D0, fine-tuned as the baseline;
    the data stages are the smoke run's (copied), so only the model stages run."""
    import shutil

    src, _ = smoke_run
    out = tmp_path / "golf-run-init"
    shutil.copytree(src / "data", out / "data")
    (out / "stages").mkdir()
    for stage in ("d0", "test", "reference", "trajectories", "traj-80-data"):
        shutil.copy(src / "stages" / f"{stage}.json", out / "stages")
    res = subprocess.run([sys.executable, "-m", "golf", "run", "--preset", "smoke", "--out", str(out), "--init",
                          str(checkpoints_dir / "baseline-NNP.pt"), "--no-progress"],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "refit" in res.stderr
    names = [m["name"] for m in json.loads((out / "report.json").read_text())["models"]]
    assert names == ["pretrained", "baseline", "traj-80", "GOLF-4", "GOLF-8", "MMFF"]
    res = subprocess.run([sys.executable, "-m", "golf", "run", "--preset", "smoke", "--out", str(out),
                          "--no-progress"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2 and "another start" in res.stderr  # no silent mix of two starts
