"""The GOLF loop: gradual optimization learning (Tsypin et al., ICLR 2024, Algorithm 1).

    start from a baseline NNP and the initial dataset D0 (the fixed part of the replay buffer)
    keep n_parallel episodes, each relaxing one training conformation with the NNP (the paper's L-BFGS)
    repeat until the genuine-oracle budget is spent:
        take ONE optimizer step for every episode (one model call per inner iteration for all)
        ask the surrogate oracle (MMFF94) for the energy of every new conformation
        an episode ends when its surrogate energy rose, or at its step limit; the conformation
            BEFORE that step goes to the genuine oracle (unless the surrogate energy after the step
            is absurd: a broken structure)
        a non-finite NNP step resets every episode, with no label
        every n_parallel labels (a "round"): wait for them, add them to the replay buffer, and
            once it holds batch_size new conformations make n_parallel * utd_ratio NNP updates on
            batches with a share initial_conf_pct of D0
        ended episodes restart from training conformations drawn without replacement

Every rule follows the official code (github AIRI-Institute/GOLF, deaaab8), cited where it is
implemented. ``cadence="stream"`` is golf's alternative to the official rounds: results are used
the moment they arrive (utd_ratio updates each, at most ``max_pending`` calls in flight), so a slow
oracle call never stalls the others. ``trigger`` is golf's alternative to the surrogate rule alone
(``golf adapt``): "signal" lets every episode run to its step limit and labels its last conformation
only when the trust signal (``golf.trust``: how much MMFF94 lowers the energy of the NNP's structure)
reaches ``signal_threshold``; "both" keeps the surrogate rule and sends step-limit labels only when the
signal reaches it. "surrogate" (the default) is the official rule.

Genuine-oracle calls run asynchronously through an ``OracleExecutor`` (local process pool or
Dask). Everything that touches files lives in ``golf.runs.golf``; this module is the algorithm.

Units: eV, Angstrom, eV/Angstrom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.errors import GolfError
from golf.optim.lbfgs import lbfgs_config, lbfgs_init, lbfgs_step
from golf.optim.state import concat, select
from golf.oracles.mmff import mmff_energies
from golf.presets import GolfTraining
from golf.units import KCAL_MOL_TO_EV

class GolfStalled(GolfError):
    """Too many episodes in a row ended without a label: GOLF cannot make progress."""


@dataclass
class Episode:
    """Bookkeeping of one running relaxation (the tensors live in the optimizer state)."""

    conf: Conformation  # the starting conformation (metadata, bonds for MMFF)
    surrogate_prev: float  # MMFF energy at the current positions, eV
    steps: int = 0  # environment steps taken (official env_steps: counted even when L-BFGS stalls)


@dataclass
class LabelRequest:
    """A conformation on its way to the genuine oracle."""

    conf: Conformation
    reason: str  # "surrogate" (energy rose), "limit" (step limit) or "signal" (step limit, distrusted)
    episode_step: int


@dataclass
class GolfStats:
    """Counters of a GOLF run (persisted with its checkpoints)."""

    calls_done: int = 0  # genuine-oracle results back (ok or failed): the budget
    calls_ok: int = 0
    calls_failed: int = 0
    conformations_added: int = 0  # labels that entered the replay buffer (the official budget)
    skipped_force: int = 0  # labels kept out of the buffer (force-norm outliers)
    skipped_surrogate: int = 0  # ended episodes that sent no label (absurd MMFF energy)
    skipped_trusted: int = 0  # step-limit episodes the trust signal vouched for ("signal"/"both" triggers)
    dropped_round_full: int = 0  # labels not sent because their round was already full
    resets_nonfinite: int = 0  # all-episode resets after a non-finite NNP step
    rounds: int = 0
    episodes_ended: dict[str, int] = field(default_factory=dict)
    updates: int = 0
    nnp_steps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, episodes_ended=dict(self.episodes_ended))


class GolfLoop:
    """The GOLF algorithm over a model, a trainer, a replay buffer and an oracle executor.

    Args:
        provider: NNP energy-and-forces callable for the episodes (``golf.models.ModelEnergyForces``).
        trainer: ``golf.trainer.Trainer`` of the same model (one ``update`` per call).
        buffer: ``golf.replay.ReplayBuffer`` holding D0 and the new data.
        pool: training conformations episodes start from.
        executor: genuine-oracle ``OracleExecutor``.
        config: the run's ``golf.presets.GolfTraining`` (the loop reads its ``loop=True`` fields).
        on_result: called for every genuine result as it arrives, BEFORE it is used
            (``on_result(request, result, used)``): the persistence hook.
        on_progress: called once per processed result, after the training it triggered, with the
            stats and the latest training metrics.
        surrogate: energies [B] (eV) of conformations, NaN where it fails (default MMFF94).
        signal: trust signal [B] (eV, high = distrust) of conformations for the "signal"/"both" triggers
            (default ``golf.trust.mmff_energy_drop``).
        device, dtype: where the episodes' tensors live.
    """

    def __init__(
        self,
        provider: Callable[[Batch], tuple[torch.Tensor, torch.Tensor]],
        trainer: Any,
        buffer: Any,
        pool: Sequence[Conformation],
        executor: Any,
        config: GolfTraining,
        on_result: Callable[[LabelRequest, Any, bool], None] | None = None,
        on_progress: Callable[[GolfStats, dict[str, float]], None] | None = None,
        stats: GolfStats | None = None,
        surrogate: Callable[[Sequence[Conformation]], np.ndarray] = mmff_energies,
        signal: Callable[[Sequence[Conformation]], np.ndarray] | None = None,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if not pool:
            raise ValueError("GOLF needs at least one training conformation to start episodes from")
        self.provider = provider
        self.trainer = trainer
        self.buffer = buffer
        self.pool = list(pool)
        self.executor = executor
        self.config = config
        self.on_result = on_result
        self.on_progress = on_progress
        self.stats = stats or GolfStats()
        self.surrogate = surrogate
        if signal is None:
            from golf.trust import mmff_energy_drop as signal
        self.signal = signal
        self.device, self.dtype = torch.device(device), dtype
        self.rng = np.random.default_rng(config.seed + self.stats.calls_done)
        # the episodes ignore the optimizer's own convergence and force checks: an episode ends on a
        # surrogate rise or the step limit only (official GOLF/GOLF_actor.py: "done" is unused in training)
        self.opt_cfg = lbfgs_config(config.conf_optimizer, fmax=0.0, max_steps=config.max_episode_steps + 1,
                                    max_force=float("inf"))
        self.state = None  # LBFGSState of the running episodes
        self.episodes: dict[int, Episode] = {}
        self.next_episode = 0
        self.n_restarts = 0  # episodes to start before the next step
        self.queue: list[LabelRequest] = []  # waiting for submission
        self.pending: dict[Hashable, LabelRequest] = {}
        self.round_submitted = 0
        self.next_call = self.stats.calls_done  # call keys continue across resumes
        self.last_metrics: dict[str, float] = {}
        self.unlabelled_in_a_row = 0

    # ------------------------------------------------------------------ episodes
    def _start_episodes(self, n: int) -> None:
        """Start ``n`` episodes (one model call for all) from training conformations drawn without
        replacement (official ``env/moldynamics_env.py``, ``reset``)."""
        if n <= 0:
            return
        idx = self.rng.choice(len(self.pool), size=n, replace=n > len(self.pool))
        confs = [self.pool[i] for i in idx]
        surrogate = self.surrogate(confs)  # [n] eV
        ids = list(range(self.next_episode, self.next_episode + n))
        self.next_episode += n
        for i, c, e in zip(ids, confs, surrogate):
            self.episodes[i] = Episode(c, float(e))
        batch = Batch.from_conformations(confs, self.device, self.dtype)
        new = lbfgs_init(batch, self.provider, ids=ids, cfg=self.opt_cfg)
        self.state = new if self.state is None else concat([self.state, new])

    def _unlabelled(self, n: int) -> None:
        """Count ``n`` episodes that ended without a label; give up when too many did in a row."""
        self.unlabelled_in_a_row += n
        if self.unlabelled_in_a_row >= self.config.max_unlabelled_episodes:
            trusted = self.stats.skipped_trusted
            why = ("the trust signal vouches for the structures the NNP relaxes; lower the signal threshold "
                   "or use the surrogate trigger" if 2 * trusted >= self.unlabelled_in_a_row else
                   "the NNP breaks the structures it relaxes; start from a better-trained model or a smaller "
                   "training learning rate")
            raise GolfStalled(
                f"GOLF stalled: {self.unlabelled_in_a_row} episodes in a row ended without a label "
                f"({self.stats.skipped_surrogate} with an MMFF energy >= "
                f"{self.config.max_surrogate_energy / KCAL_MOL_TO_EV:.0f} kcal/mol, "
                f"{self.stats.resets_nonfinite} non-finite resets, {trusted} trusted by the signal): {why}"
            )

    def _reset_all(self) -> None:
        """Drop every episode without a label (official ``main.py``: a non-finite action resets all)."""
        self.stats.resets_nonfinite += 1
        self._unlabelled(len(self.episodes))
        self.n_restarts += len(self.episodes)
        self.episodes.clear()
        self.state = None

    def step(self) -> None:
        """One optimizer step for all episodes, the surrogate check, and the labels of ended episodes.

        The rules are the official ``env/wrappers.py`` (``EnergyWrapper.step``) and
        ``env/moldynamics_env.py``: an episode ends when the MMFF energy rose (strictly) or at
        ``max_episode_steps``; either way the conformation BEFORE the step is labelled, unless the
        MMFF energy after the step is ``>= max_surrogate_energy``. Restarts happen before the next
        step (after any training this step's labels trigger), as in the official loop.
        """
        self._start_episodes(self.n_restarts if self.state is not None else self.config.n_parallel)
        self.n_restarts = 0
        state = self.state
        positions = state.batch.positions.detach().cpu().double()
        before = [x.numpy() for x in state.batch.split(positions.clone())]  # B x [n, 3]
        state = lbfgs_step(state, self.provider)
        self.stats.nnp_steps += 1
        if bool(state.failed.any()) or not bool(torch.isfinite(state.batch.positions).all()):
            self._reset_all()
            return
        after = [x.numpy() for x in state.batch.split(state.batch.positions.detach().cpu().double())]
        ids = state.ids.tolist()
        episodes = [self.episodes[i] for i in ids]
        surrogate = self.surrogate([ep.conf.with_positions(x) for ep, x in zip(episodes, after)])  # [B] eV
        prev = np.array([ep.surrogate_prev for ep in episodes])
        # a rise is new > previous (official: negative reward); an MMFF energy that cannot be
        # computed (NaN) also ends the episode: the surrogate cannot vouch for the step
        rose = ~(surrogate <= prev)
        if self.config.trigger == "signal":
            rose[:] = False  # golf's option: only the step limit ends an episode
        for ep in episodes:
            ep.steps += 1
        limit = np.array([ep.steps >= self.config.max_episode_steps for ep in episodes])
        ended = rose | limit  # [B]
        trusted = np.zeros_like(ended)
        if self.config.trigger != "surrogate":  # the signal judges what a step-limit label would send
            judged = np.flatnonzero(ended & ~rose)
            if judged.size:
                sig = self.signal([episodes[b].conf.with_positions(before[b]) for b in judged])  # [J] eV
                trusted[judged] = sig < self.config.signal_threshold  # NaN (cannot judge): not trusted
        for b in np.flatnonzero(ended):
            ep = self.episodes.pop(ids[b])
            reason = "surrogate" if rose[b] else "limit"
            self.stats.episodes_ended[reason] = self.stats.episodes_ended.get(reason, 0) + 1
            if not surrogate[b] < self.config.max_surrogate_energy:
                self.stats.skipped_surrogate += 1
                self._unlabelled(1)
                continue
            if trusted[b]:
                self.stats.skipped_trusted += 1
                self._unlabelled(1)
                continue
            if self.config.trigger != "surrogate" and not rose[b]:
                reason = "signal"
            self.unlabelled_in_a_row = 0
            self.queue.append(LabelRequest(ep.conf.with_positions(before[b]), reason, ep.steps))
        for b in np.flatnonzero(~ended):
            self.episodes[ids[b]].surrogate_prev = float(surrogate[b])
        self.state = select(state, torch.as_tensor(~ended, device=state.batch.device))
        self.n_restarts = int(ended.sum())

    # ------------------------------------------------------------------ oracle and training
    @property
    def max_pending(self) -> int:
        return self.config.max_pending or 2 * max(1, int(self.executor.n_workers))

    @property
    def calls_committed(self) -> int:
        """Results back plus calls in flight: what the budget has to cover."""
        return self.stats.calls_done + len(self.pending)

    @property
    def round_full(self) -> bool:
        return self.round_submitted >= self.config.n_parallel or self.calls_committed >= self.config.budget

    def _submit_one(self, request: LabelRequest) -> None:
        key = f"golf-{self.next_call}"
        self.next_call += 1
        self.pending[key] = request
        self.executor.submit(request.conf, key)

    def _submit(self) -> None:
        if self.config.cadence == "stream":
            while self.queue and len(self.pending) < self.max_pending and self.calls_committed < self.config.budget:
                self._submit_one(self.queue.pop(0))
            return
        # official env/wrappers.py DFTOracle.submit_tasks: submit at once; labels beyond a full round are dropped
        while self.queue and not self.round_full:
            self._submit_one(self.queue.pop(0))
            self.round_submitted += 1
        self.stats.dropped_round_full += len(self.queue)
        self.queue.clear()

    def _record(self, key: Hashable, result: Any) -> None:
        """Persist one result, then add it to the buffer if it passes the official filters."""
        request = self.pending.pop(key)
        used = bool(result.ok) and float(np.linalg.norm(np.asarray(result.forces))) < self.config.max_force_norm
        if self.on_result is not None:
            self.on_result(request, result, used)  # persisted before it is used
        self.stats.calls_done += 1
        if not result.ok:
            self.stats.calls_failed += 1
        else:
            self.stats.calls_ok += 1
            if not used:
                self.stats.skipped_force += 1
        if used:
            self.buffer.add(request.conf, float(result.energy), np.asarray(result.forces))
            self.stats.conformations_added += 1

    def _progress(self, n: int) -> None:
        if self.on_progress is not None:
            for _ in range(n):
                self.on_progress(self.stats, self.last_metrics)

    def _finish_round(self) -> None:
        """Official ``main.py``: wait for the whole round, store it, then n_parallel * utd_ratio updates
        once the buffer holds ``batch_size`` new conformations (``update_condition``)."""
        n = 0
        while self.pending:
            for key, result in self.executor.poll(timeout=1.0):
                self._record(key, result)
                n += 1
        self.round_submitted = 0
        self.stats.rounds += 1
        if self.buffer.ready(self.config.batch_size):
            self.train(self.config.n_parallel * self.config.utd_ratio)
        self._progress(n)

    def _stream_results(self, timeout: float) -> None:
        for key, result in self.executor.poll(timeout=timeout):
            self._record(key, result)
            if self.buffer.ready(self.config.batch_size):
                self.train(self.config.utd_ratio)
            self._progress(1)

    def train(self, n_updates: int) -> dict[str, float]:
        """``n_updates`` trainer steps on replay batches; returns the mean metrics."""
        sums: dict[str, float] = {}
        for _ in range(n_updates):
            batch = self.buffer.sample_batch(
                self.config.batch_size, self.rng, device=self.trainer.device, dtype=self.trainer.dtype
            )
            for k, v in self.trainer.update(batch).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            self.stats.updates += 1
        if n_updates:
            self.last_metrics = {k: v / n_updates for k, v in sums.items()}
        return self.last_metrics

    def catch_up(self, first_call: int, labels: dict[int, tuple[Conformation, float, np.ndarray]]) -> None:
        """Resume: the updates an uninterrupted run would have made for the results of calls
        ``first_call .. stats.calls_done - 1`` (stored after the last checkpoint, whose trainer had
        made the updates of every earlier call), and the round those calls leave open.

        ``labels`` maps the call number of each such result that entered the buffer to its label
        (conformation, energy eV, forces [n,3] eV/A); they must not be in the buffer yet. Calls
        missing from it failed or were kept out; they still fill their round. The cadence is
        replayed call by call: under "block" rounds are the runs of ``n_parallel`` consecutive
        calls from call 0 (the last one cut by the budget), each followed by
        ``n_parallel * utd_ratio`` updates when the buffer then holds ``batch_size`` new
        conformations; a round the interruption cut short stays open, and the resumed loop
        completes it before it trains. Under "stream" each call is followed by ``utd_ratio``
        updates once the buffer is ready.
        """
        cfg = self.config
        end = self.stats.calls_done
        for call in range(first_call, end):
            if call in labels:
                self.buffer.add(*labels[call])
            if cfg.cadence == "stream":
                if self.buffer.ready(cfg.batch_size):
                    self.train(cfg.utd_ratio)
            elif (call + 1) % cfg.n_parallel == 0 or call + 1 >= cfg.budget:
                self.stats.rounds += 1
                if self.buffer.ready(cfg.batch_size):
                    self.train(cfg.n_parallel * cfg.utd_ratio)
        if cfg.cadence == "block" and end < cfg.budget:
            self.round_submitted = end % cfg.n_parallel  # the open round's calls already back

    def run(self, should_stop: Callable[[], bool] | None = None) -> GolfStats:
        """Run until ``config.budget`` genuine results are back (or ``should_stop()``)."""
        budget = self.config.budget
        while self.stats.calls_done < budget:
            if should_stop is not None and should_stop():
                break
            if self.config.cadence == "block":
                if self.calls_committed < budget:
                    self.step()
                    self._submit()
                if self.round_full:
                    self._finish_round()
                continue
            # stream: use what is back; when nothing more may be submitted, wait instead of stepping
            # further ahead with a stale model
            self._submit()
            saturated = len(self.queue) >= self.config.n_parallel or self.calls_committed >= budget
            if saturated and self.pending:
                self._stream_results(timeout=1.0)
                continue
            self._stream_results(timeout=0.0)
            if self.calls_committed < budget:
                self.step()
        return self.stats
