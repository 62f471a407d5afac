"""Progress time estimates of batched work (golf.progress.stream_rate and the bars), with a fake clock."""
from __future__ import annotations

import io

import numpy as np
import pytest

from golf.conformation import Conformation
from golf.optim import Quadratic, relax
from golf.progress import ProgressHook, progress_bar, stream_rate


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def fake_bar(total: int, concurrency: int | None, clock: FakeClock):
    bar = progress_bar(total=total, file=io.StringIO(), concurrency=concurrency)
    bar._time = clock
    bar.start_t = bar.last_print_t = clock()
    return bar


def remaining(bar) -> float:
    d = bar.format_dict
    rate = d["rate"] if d["rate"] is not None else (d["n"] - d["initial"]) / d["elapsed"]
    return (d["total"] - d["n"]) / rate


def simulate_stream(n: int, concurrency: int, seed: int = 0) -> np.ndarray:
    """Finish times of n items run ``concurrency`` at a time (a slot refills when its item finishes),
    item durations 10-100 s (a spread like relaxation step counts)."""
    rng = np.random.default_rng(seed)
    durations = rng.uniform(10.0, 100.0, n)
    slots = np.zeros(concurrency)
    finish = np.empty(n)
    for i, d in enumerate(durations):
        k = int(np.argmin(slots))
        slots[k] += d
        finish[i] = slots[k]
    return np.sort(finish)


@pytest.mark.parametrize("concurrency", [16, 256])
def test_first_estimate_of_a_batched_stream_is_within_a_factor_three(concurrency):
    n = 320
    finish = simulate_stream(n, concurrency)
    clock = FakeClock()
    bar = fake_bar(n, concurrency, clock)
    clock.t = finish[0]
    bar.update(1)
    true_left = finish[-1] - finish[0]
    assert true_left / 3 <= remaining(bar) <= 3 * true_left  # the plain average: 30-300x too long
    # and later estimates stay sensible
    for k in (n // 4, n // 2):
        clock.t = finish[k - 1]
        bar.update(k - bar.n)
        left = finish[-1] - finish[k - 1]
        assert left / 3 <= remaining(bar) <= 3 * left
    bar.close()


def test_items_one_after_another_keep_the_plain_average():
    clock = FakeClock()
    bar = fake_bar(10, None, clock)
    clock.t = 5.0
    bar.update(1)
    assert remaining(bar) == pytest.approx(45.0)
    assert stream_rate(1, 5.0, 10, None) == pytest.approx(0.2)
    assert stream_rate(1, 5.0, 10, 1) == pytest.approx(0.2)
    bar.close()


def test_stream_rate_counts_items_in_flight_as_a_quarter_done():
    assert stream_rate(0, 10.0, 100, 8) is None  # nothing finished: no estimate
    assert stream_rate(2, 0.0, 100, 8) is None
    assert stream_rate(2, 10.0, 100, 8) == pytest.approx((2 + 2) / 10)
    assert stream_rate(99, 10.0, 100, 8) == pytest.approx((99 + 0.25) / 10)  # only one left in flight


def test_log_mode_line_shows_the_stream_estimate():
    out = io.StringIO()
    clock = FakeClock()
    bar = progress_bar(total=320, file=out, desc="relax", concurrency=256)
    bar._time = clock
    bar.start_t = bar.last_print_t = 0.0
    clock.t = 331.0
    bar.update(1)
    bar.refresh()
    line = out.getvalue().strip().splitlines()[-1]
    # plain average: 319 * 331 s = 29 h; counting the 255 in flight as a quarter done: 27 min
    assert "<27:04" in line, line
    bar.close()


def test_relax_tells_its_bar_how_many_molecules_run_at_once():
    confs = [Conformation(np.ones(2), np.random.default_rng(i).normal(size=(2, 3))) for i in range(5)]
    bar = progress_bar(total=5, file=io.StringIO())
    relax(Quadratic(), confs, batch_size=3, progress=bar.update)
    assert bar.concurrency == 3 and bar.n == 5
    bars = [progress_bar(total=5, file=io.StringIO())]
    relax(Quadratic(), confs, progress=ProgressHook(lambda: bars[-1]))  # not a model: all at once
    assert bars[-1].concurrency == 5 and bars[-1].n == 5
    for b in [bar, *bars]:
        b.close()


def test_golf_conformers_tells_its_relax_bar_how_many_conformers_run_at_once(tmp_path, monkeypatch):
    """The relax bar of ``golf conformers`` is made once the conformers are embedded; the relaxation
    must still reach it with its concurrency, or the first time estimate counts conformers one by one."""
    import golf.progress
    from golf.conformer_search import ConformerSettings
    from golf.runs.conformers import ConformersSettings, conformers

    made = []

    def recording_bar(*args, **kwargs):
        bar = progress_bar(*args, **{**kwargs, "file": io.StringIO()})
        made.append(bar)
        return bar

    monkeypatch.setattr(golf.progress, "progress_bar", recording_bar)
    smi = tmp_path / "m.smi"
    smi.write_text("CCO ethanol\nCCCO propanol\n")
    conformers(str(smi), str(tmp_path / "out.sdf"),
               ConformersSettings(ensemble=ConformerSettings(n_conformers=3, mmff_start=0), progress=True))
    relax_bar = next(b for b in made if b.desc == "relax")
    assert relax_bar.concurrency == relax_bar.total == 6
