"""The GOLF rules of ``golf.loop.GolfLoop``, tested directly with a stub executor, a scripted surrogate
and a quartic stand-in NNP (the official code, github AIRI-Institute/GOLF, is the specification):

* which conformation is labelled on a surrogate rise, at the step limit, on a non-finite NNP step;
* the 300 kcal/mol surrogate filter and the 10.5 Hartree/A force-norm filter;
* no training before batch_size new conformations; updates in blocks of n_parallel * utd_ratio;
* no conformation twice in a training batch; restarts drawn without replacement.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.dataset import LabelledData
from golf.loop import GolfLoop, GolfStalled, LabelRequest
from golf.presets import MAX_FORCE_NORM, MAX_SURROGATE_ENERGY, GolfTraining
from golf.oracles.base import OracleResult
from golf.replay import ReplayBuffer
from golf.units import HARTREE_TO_EV, KCAL_MOL_TO_EV

CENTER = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


class Quartic:
    """E = k |x - x0|^4 per atom, summed per molecule (eV): anharmonic, so L-BFGS keeps moving for many
    steps. ``nan_on_call`` poisons one provider call."""

    def __init__(self, k: float = 1.0, nan_on_call: int | None = None) -> None:
        self.k, self.nan_on_call, self.calls = k, nan_on_call, 0

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        x0 = torch.as_tensor(np.tile(CENTER, (batch.n_mols, 1)), dtype=batch.positions.dtype)
        d = batch.positions - x0
        r2 = (d**2).sum(-1)  # [N]
        e = torch.zeros(batch.n_mols, dtype=d.dtype).index_add_(0, batch.mol_idx, self.k * r2**2)
        f = -4.0 * self.k * r2[:, None] * d
        if self.calls == self.nan_on_call:
            e, f = e * float("nan"), f * float("nan")
        return e, f


class Scripted:
    """Surrogate energies by episode step: ``energies[k]`` after step k (k = 0: the start). Records the
    positions it saw, per start conformation, so tests know what 'before the step' was."""

    def __init__(self, pool: list[Conformation], energies: list[float]) -> None:
        self.starts = {c.conf_id: c.positions for c in pool}
        self.energies = energies
        self.step: dict[int, int] = {}
        self.seen: dict[int, list[np.ndarray]] = {}

    def __call__(self, confs) -> np.ndarray:
        out = []
        for c in confs:
            if np.array_equal(c.positions, self.starts[c.conf_id]):
                self.step[c.conf_id] = 0
                self.seen[c.conf_id] = []
            else:
                self.step[c.conf_id] += 1
            self.seen[c.conf_id].append(np.array(c.positions))
            k = self.step[c.conf_id]
            out.append(self.energies[min(k, len(self.energies) - 1)])
        return np.array(out, dtype=np.float64)


class StubExecutor:
    """Answers every call at once; ``forces(conf)`` decides the label's forces."""

    n_workers = 1

    def __init__(self, forces=None) -> None:
        self.forces = forces or (lambda conf: np.full((conf.n_atoms, 3), 0.1))
        self.submitted: list = []
        self.ready: list = []

    def submit(self, conf, key) -> None:
        self.submitted.append((key, conf))
        self.ready.append((key, OracleResult(ok=True, energy=-1.0, forces=self.forces(conf))))

    def poll(self, timeout=0.0):
        out, self.ready = self.ready, []
        return out


class StubTrainer:
    """Records the buffer size at every update and checks that the batch drew no buffer entry twice."""

    device, dtype = torch.device("cpu"), torch.float64

    def __init__(self, buffer: ReplayBuffer) -> None:
        self.buffer = buffer
        self.updates: list[int] = []  # buffer.n_new at each update
        self.draws: list[tuple[np.ndarray, np.ndarray]] = []
        sample = buffer.sample

        def recording_sample(batch_size, rng):
            init_idx, new_idx, generic_idx = sample(batch_size, rng)
            self.draws.append((init_idx, new_idx))
            return init_idx, new_idx, generic_idx

        buffer.sample = recording_sample

    def update(self, batch_tuple):
        init_idx, new_idx = self.draws[-1]
        assert len(set(init_idx.tolist())) == len(init_idx), "a D0 conformation was drawn twice into one batch"
        assert len(set(new_idx.tolist())) == len(new_idx), "a new conformation was drawn twice into one batch"
        self.updates.append(self.buffer.n_new)
        return {"loss": 0.0}


def _pool(n: int, seed: int = 0) -> list[Conformation]:
    rng = np.random.default_rng(seed)
    return [Conformation(np.array([6, 1, 1]), CENTER + rng.normal(scale=0.8, size=(3, 3)), mol_id=i, conf_id=i)
            for i in range(n)]


def _d0(n: int = 20) -> LabelledData:
    confs = _pool(n, seed=99)
    return LabelledData.from_conformations(confs, [0.0] * n, [np.zeros((3, 3))] * n)


def _loop(pool, energies, *, executor=None, provider=None, signal=None, **cfg) -> tuple[GolfLoop, Scripted, StubTrainer]:
    config = GolfTraining(**{**dict(budget=1, n_parallel=1, max_episode_steps=10, utd_ratio=1, batch_size=1,
                                  seed=0), **cfg})
    buffer = ReplayBuffer(_d0(), initial_conf_pct=config.initial_conf_pct)
    trainer = StubTrainer(buffer)
    surrogate = Scripted(pool, energies)
    loop = GolfLoop(provider or Quartic(), trainer, buffer, pool, executor or StubExecutor(), config,
                    surrogate=surrogate, signal=signal, dtype=torch.float64)
    return loop, surrogate, trainer


def test_rise_labels_the_conformation_before_the_step():
    pool = _pool(1)
    loop, sur, _ = _loop(pool, [0.0, -1.0, -2.0, -1.5])  # MMFF rises at step 3
    loop.run()
    (key, conf), = loop.executor.submitted
    np.testing.assert_array_equal(conf.positions, sur.seen[0][2])  # the structure after step 2
    assert not np.array_equal(conf.positions, sur.seen[0][3])
    assert loop.stats.episodes_ended == {"surrogate": 1}


def test_equal_energy_is_not_a_rise():
    pool = _pool(1)
    loop, sur, _ = _loop(pool, [0.0, -1.0, -1.0, -1.0], max_episode_steps=4)
    loop.run()
    assert loop.stats.episodes_ended == {"limit": 1}


def test_step_limit_labels_the_conformation_before_the_last_step():
    pool = _pool(1)
    loop, sur, _ = _loop(pool, [0.0, -1.0, -2.0, -3.0, -4.0, -5.0], max_episode_steps=4)
    loop.run()
    (key, conf), = loop.executor.submitted
    np.testing.assert_array_equal(conf.positions, sur.seen[0][3])  # before the 4th (last) step
    assert loop.stats.episodes_ended == {"limit": 1} and loop.stats.nnp_steps == 4


def test_nonfinite_step_resets_every_episode_without_label():
    pool = _pool(4)
    # provider call 1 starts the episodes; the first step's 2nd inner evaluation is poisoned
    loop, sur, _ = _loop(pool, [0.0, -1.0, -2.0, 5.0], provider=Quartic(nan_on_call=3), n_parallel=3)
    loop.step()
    assert loop.stats.resets_nonfinite == 1 and not loop.episodes and loop.state is None
    assert loop.queue == [] and loop.executor.submitted == []
    loop.step()  # all three episodes start afresh
    assert len(loop.episodes) == 3 and loop.stats.nnp_steps == 2


def test_absurd_surrogate_energy_sends_no_label():
    pool = _pool(2)
    high = MAX_SURROGATE_ENERGY  # 300 kcal/mol: at the threshold, no label (official: >= 300)
    loop, sur, _ = _loop(pool, [0.0, high], n_parallel=1, budget=1, max_episode_steps=10)
    loop.step()
    assert loop.stats.skipped_surrogate == 1 and loop.queue == []
    assert MAX_SURROGATE_ENERGY == pytest.approx(300 * KCAL_MOL_TO_EV)
    loop2, _, _ = _loop(pool, [0.0, -1.0, high - 1e-9], n_parallel=1, max_episode_steps=2)
    loop2.step()
    loop2.step()  # the limit: MMFF just below 300 kcal/mol after the step, so a label
    assert loop2.stats.skipped_surrogate == 0 and len(loop2.queue) == 1


def test_a_run_whose_every_episode_breaks_stops_with_a_clear_error():
    pool = _pool(3)
    high = MAX_SURROGATE_ENERGY  # every first step breaks the structure: no label would ever come
    loop, _, _ = _loop(pool, [0.0, high], n_parallel=3, budget=2, max_unlabelled_episodes=7)
    with pytest.raises(GolfStalled, match="7 episodes in a row ended without a label"):
        loop.run()
    assert loop.stats.skipped_surrogate == 7 and loop.stats.calls_done == 0


def test_a_label_resets_the_stall_count():
    pool = _pool(1)
    loop, _, _ = _loop(pool, [0.0, -1.0, -2.0], n_parallel=1, max_episode_steps=2, max_unlabelled_episodes=2)
    loop.unlabelled_in_a_row = 1  # one broken episode before this one
    loop.step(), loop.step()  # a step-limit label
    assert loop.unlabelled_in_a_row == 0 and len(loop.queue) == 1


@pytest.mark.parametrize("factor,used", [(0.999, True), (1.001, False)])
def test_force_norm_filter(factor, used):
    """Official NORM_THRESHOLD: Frobenius norm of the whole force matrix >= 10.5 Hartree/A. Every
    component here stays far below the old per-component limit (25 eV/A)."""
    assert MAX_FORCE_NORM == pytest.approx(10.5 * HARTREE_TO_EV)
    pool = _pool(1)

    def forces(conf):
        f = np.ones((conf.n_atoms, 3))
        return f / np.linalg.norm(f) * MAX_FORCE_NORM * factor

    loop, _, _ = _loop(pool, [0.0, 1.0], executor=StubExecutor(forces))
    loop.run()
    assert loop.stats.calls_done == 1
    assert (loop.buffer.n_new == 1) is used and (loop.stats.skipped_force == 0) is used
    assert loop.stats.conformations_added == int(used)


def test_no_training_before_batch_size_and_block_updates():
    pool = _pool(12)
    n_parallel, utd, bs = 3, 2, 5
    loop, _, trainer = _loop(pool, [0.0, 1.0], n_parallel=n_parallel, utd_ratio=utd, batch_size=bs, budget=12,
                             initial_conf_pct=0.2)
    loop.run()
    assert loop.stats.calls_done == 12 and loop.stats.rounds == 4
    # rounds of 3 labels: after round 1 the buffer has 3 < 5 (no training), then 6, 9, 12
    assert trainer.updates == [6] * 6 + [9] * 6 + [12] * 6
    assert loop.stats.updates == 18


@pytest.mark.parametrize("stored", [0, 2, 5, 6, 7, 9, 12])
def test_resume_makes_the_updates_of_an_uninterrupted_run(stored):
    """A run resumed after ``stored`` results (none of them trained: no checkpoint) makes exactly the
    updates the uninterrupted run makes for the same labels: the catch-up replays the rounds, and the
    round the interruption cut short is completed before it trains."""
    pool = _pool(12)
    cfg = dict(n_parallel=3, utd_ratio=2, batch_size=5, budget=12, initial_conf_pct=0.2)
    whole, _, whole_trainer = _loop(pool, [0.0, 1.0], **cfg)
    whole.run()
    assert whole_trainer.updates == [6] * 6 + [9] * 6 + [12] * 6

    from golf.loop import GolfStats

    resumed, _, trainer = _loop(pool, [0.0, 1.0], **cfg)
    resumed.stats = GolfStats(calls_done=stored, calls_ok=stored)
    resumed.next_call = stored
    stub = StubExecutor()
    labels = {c: (pool[c % len(pool)], -1.0, np.full((3, 3), 0.1)) for c in range(stored)}
    resumed.executor = stub
    resumed.catch_up(0, labels)
    resumed.run()
    assert resumed.stats.calls_done == 12 and len(stub.submitted) == 12 - stored
    assert trainer.updates == whole_trainer.updates  # same updates, each on a buffer of the same size
    assert resumed.stats.updates == whole.stats.updates == 18 and resumed.stats.rounds == 4


def test_stream_cadence_trains_per_label_once_ready():
    pool = _pool(12)
    loop, _, trainer = _loop(pool, [0.0, 1.0], n_parallel=3, utd_ratio=2, batch_size=5, budget=8, cadence="stream")
    loop.run()
    assert loop.stats.calls_done == 8
    assert trainer.updates and min(trainer.updates) >= 5
    assert len(trainer.updates) == 2 * (8 - 4)  # labels 5..8 each trigger utd_ratio updates


def test_restarts_drawn_without_replacement():
    pool = _pool(6)
    loop, _, _ = _loop(pool, [0.0, -1.0], n_parallel=6)
    loop._start_episodes(6)
    starts = sorted(ep.conf.conf_id for ep in loop.episodes.values())
    assert starts == list(range(6))


def test_round_full_drops_extra_labels():
    """Official DFTOracle.submit_tasks: once a round holds n_parallel tasks, the rest are not sent."""
    pool = _pool(8)
    loop, _, _ = _loop(pool, [0.0, 1.0], n_parallel=4, budget=100)
    loop.step()  # all four episodes rise: four labels fill the round exactly
    loop._submit()
    assert loop.round_submitted == 4 and loop.stats.dropped_round_full == 0
    loop.round_submitted = 3  # a round with one free slot, two labels waiting
    loop.queue = [LabelRequest(pool[0], "surrogate", 1), LabelRequest(pool[1], "surrogate", 1)]
    loop._submit()
    assert loop.round_submitted == 4 and loop.stats.dropped_round_full == 1 and loop.queue == []


def test_stalled_optimizer_still_reaches_the_step_limit():
    """An episode whose L-BFGS no longer moves (gradient below torch's tolerance) still ends at the limit:
    the official environment counts its own steps."""
    pool = [Conformation(np.array([6, 1, 1]), CENTER.copy(), mol_id=0, conf_id=0)]  # zero gradient
    loop, _, _ = _loop(pool, [0.0], max_episode_steps=3)
    for _ in range(3):
        loop.step()
    assert loop.stats.episodes_ended == {"limit": 1} and len(loop.queue) == 1
    assert loop.queue[0].episode_step == 3


# golf's trigger option (golf adapt): the trust signal decides step-limit labels
class FixedSignal:
    """A trust signal (eV) that returns ``value`` for every conformation and records what it judged."""

    def __init__(self, value: float) -> None:
        self.value, self.judged = value, []

    def __call__(self, confs) -> np.ndarray:
        self.judged += [np.array(c.positions) for c in confs]
        return np.full(len(confs), self.value)


def test_signal_trigger_runs_to_the_limit_and_labels_distrusted_structures():
    pool = _pool(1)
    sig = FixedSignal(10 * KCAL_MOL_TO_EV)
    loop, sur, _ = _loop(pool, [0.0, -1.0, -2.0, -1.5, -1.0, 0.0], max_episode_steps=5, trigger="signal",
                         signal=sig)
    loop.run()  # MMFF rises at step 3: the official rule would label there; "signal" goes on to step 5
    (key, conf), = loop.executor.submitted
    np.testing.assert_array_equal(conf.positions, sur.seen[0][4])  # before the last step, as at the limit
    assert len(sig.judged) == 1 and np.array_equal(sig.judged[0], sur.seen[0][4])
    assert loop.stats.episodes_ended == {"limit": 1} and loop.stats.skipped_trusted == 0


def test_signal_below_threshold_sends_no_label_and_a_stall_names_the_signal():
    pool = _pool(2)
    loop, _, _ = _loop(pool, [0.0, -1.0, -2.0], max_episode_steps=2, trigger="signal",
                       signal=FixedSignal(0.5 * KCAL_MOL_TO_EV), max_unlabelled_episodes=3)
    with pytest.raises(GolfStalled, match="trust signal vouches"):
        loop.run()
    assert loop.stats.skipped_trusted == 3 and loop.executor.submitted == []


def test_both_trigger_keeps_the_surrogate_rule_and_filters_limit_labels():
    pool = _pool(1)
    sig = FixedSignal(0.0)  # trusts everything
    loop, sur, _ = _loop(pool, [0.0, -1.0, -2.0, -1.5], trigger="both", signal=sig)
    loop.run()  # a surrogate rise: labelled as the official rule says, the signal is not asked
    (key, conf), = loop.executor.submitted
    np.testing.assert_array_equal(conf.positions, sur.seen[0][2])
    assert sig.judged == []
    loop2, _, _ = _loop(pool, [0.0, -1.0, -2.0], max_episode_steps=2, trigger="both", signal=FixedSignal(0.0))
    loop2.step(), loop2.step()  # the limit, trusted: no label
    assert loop2.queue == [] and loop2.stats.skipped_trusted == 1


def test_unknown_trigger_is_refused():
    """Impossible loop settings are refused where they are declared, naming the field (SettingError)."""
    from golf.errors import SettingError

    with pytest.raises(SettingError, match="trigger") as info:
        GolfTraining(trigger="sometimes")
    assert info.value.field == "trigger" and "--" not in str(info.value)
    with pytest.raises(SettingError, match="signal_threshold"):
        GolfTraining(trigger="signal", signal_threshold=float("nan"))
    for bad in (dict(budget=0), dict(n_parallel=0), dict(max_episode_steps=0), dict(batch_size=0),
                dict(utd_ratio=-1), dict(initial_conf_pct=1.5), dict(cadence="often"), dict(lr=float("inf")),
                dict(generic_share=0.95)):
        with pytest.raises(SettingError) as info:
            GolfTraining(**bad)
        assert info.value.field == next(iter(bad)) and "--" not in str(info.value)
