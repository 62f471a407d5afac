"""The run-directory rules (``golf.runs.rundir``): what a resume must find equal, and what it may change."""
from __future__ import annotations

import pytest

from golf.errors import GolfError
from golf.runs.rundir import RunDir


@pytest.fixture
def rundir(tmp_path) -> RunDir:
    rd = RunDir(tmp_path / "run")
    rd.path.mkdir()
    rd.write_config({"oracle": "xtb", "seed": 0, "device": "cuda",
                     "golf": {"budget": 100, "lr": 1e-4, "trigger": None, "device": "cuda"}})
    return rd


def test_a_changed_setting_is_named(rundir):
    diffs = rundir.identity_diffs({"oracle": "dft", "seed": 0, "golf": {"budget": 100, "lr": 1e-4, "trigger": "surrogate"}},
                                  defaults={"golf": {"trigger": "surrogate"}})
    assert diffs == ["oracle 'xtb' -> 'dft'"]
    with pytest.raises(GolfError, match="other settings .*oracle 'xtb' -> 'dft'"):
        rundir.check_identity({"oracle": "dft", "seed": 0, "golf": {"budget": 100, "lr": 1e-4, "trigger": None}},
                              defaults={"golf": {"trigger": "surrogate"}})


def test_a_nested_setting_stored_as_null_or_missing_reads_at_its_default(rundir):
    defaults = {"golf": {"trigger": "surrogate", "max_pending": None}}
    same = {"oracle": "xtb", "seed": 0, "golf": {"budget": 100, "lr": 1e-4, "trigger": "surrogate", "max_pending": None}}
    assert rundir.identity_diffs(same, defaults=defaults) == []
    other = {**same, "golf": {**same["golf"], "trigger": "signal"}}
    assert rundir.identity_diffs(other, defaults=defaults) == ["golf.trigger None -> 'signal'"]


def test_an_entry_added_to_golf_after_the_run_began_is_not_compared(rundir):
    now = {"oracle": "xtb", "seed": 0, "generic_share": 0.2, "golf": {"budget": 100, "lr": 1e-4, "trigger": None}}
    assert rundir.identity_diffs(now) == []


def test_the_device_is_where_a_run_computes_not_what_it_computes(rundir):
    """A run started on a GPU goes on on the CPU (and the default device "auto" resumes runs stored as "cpu")."""
    now = {"oracle": "xtb", "seed": 0, "device": "auto", "golf": {"budget": 100, "lr": 1e-4, "device": "cpu"}}
    assert rundir.identity_diffs(now, defaults={"golf": {"trigger": None}}) == []


def test_a_skipped_setting_may_change_on_resume(rundir):
    now = {"oracle": "xtb", "seed": 0, "golf": {"budget": 300, "lr": 1e-4}}
    assert rundir.identity_diffs(now, defaults={"golf": {}}, skip={"golf": ["budget"]}) == []
    assert rundir.identity_diffs(now, defaults={"golf": {}}) == ["golf.budget 100 -> 300"]
