"""The GOLF loop: gradual optimization learning (Tsypin et al., ICLR 2024, Algorithm 1).

    start from a baseline NNP and the initial dataset D0 (the fixed part of the replay buffer)
    keep n_parallel episodes, each relaxing one training conformation with the NNP (batched L-BFGS)
    repeat until the genuine-oracle budget is spent:
        take ONE optimizer step for every episode (one model call per inner iteration for all)
        ask the surrogate oracle (MMFF94) for the energy of every new conformation
        an episode whose surrogate energy did not decrease ends, and the conformation BEFORE that
            step goes to the genuine oracle; an episode that reached its step limit (or that the NNP
            considers converged) ends and sends its last conformation
        ended episodes restart from fresh training conformations
        for every genuine-oracle result that comes back: store it, add it to the replay buffer,
            and make utd_ratio NNP updates on batches with initial_conf_pct of D0

Genuine-oracle calls run asynchronously through an ``OracleExecutor`` (local process pool or Dask);
at most ``max_pending`` calls are in flight, so data keeps coming from the current model rather than
from an early one. Everything that touches files lives in ``golf.runs.golf`` (persistence) and the
CLI; this module is the algorithm.

Units: eV, Angstrom, eV/Angstrom.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Sequence

import numpy as np
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.optim.lbfgs import lbfgs_config, lbfgs_init, lbfgs_step
from golf.optim.state import concat, select
from golf.oracles.mmff import mmff_energies


@dataclass
class GolfConfig:
    """Knobs of the GOLF loop (paper values in ``golf.presets.GOLF_PRESETS["paper"]``).

    Attributes:
        budget: genuine-oracle calls to spend (successful or failed).
        n_parallel: episodes relaxed at once (paper 120).
        max_episode_steps: optimizer steps before an episode ends (paper 100).
        utd_ratio: NNP updates per new labelled conformation (paper 50).
        initial_conf_pct: share of every training batch drawn from D0 (paper 0.1).
        batch_size: training batch size (paper 64).
        conf_optimizer: L-BFGS preset driving the episodes ("lbfgs-golf": lr 1, 5 inner iterations).
        max_pending: genuine-oracle calls in flight at once (0: twice the executor's workers).
        max_force: genuine results whose largest atomic force exceeds this (eV/A) are stored but
            kept out of the replay buffer (the paper discards such outliers).
        max_surrogate_rise: conformations whose MMFF energy is this much (eV) above the episode's
            start are not sent to the genuine oracle (broken structures: the paper skips them).
        seed: seeds the episode sampler and the replay sampler.
    """

    budget: int = 200
    n_parallel: int = 16
    max_episode_steps: int = 100
    utd_ratio: int = 10
    initial_conf_pct: float = 0.1
    batch_size: int = 32
    conf_optimizer: str = "lbfgs-golf"
    max_pending: int = 0
    max_force: float = 25.0
    max_surrogate_rise: float = 10.0
    seed: int = 0


@dataclass
class Episode:
    """Bookkeeping of one running relaxation (the tensors live in the optimizer state)."""

    conf: Conformation  # the starting conformation (metadata, bonds for MMFF)
    surrogate_start: float  # MMFF energy at the start, eV
    surrogate_prev: float  # MMFF energy at the current positions, eV


@dataclass
class LabelRequest:
    """A conformation on its way to the genuine oracle."""

    conf: Conformation
    reason: str  # "surrogate" (energy rose), "limit" (step limit), "converged", "failed"
    episode_step: int


@dataclass
class GolfStats:
    """Counters of a GOLF run (persisted with its checkpoints)."""

    calls_done: int = 0  # genuine-oracle results back (ok or failed)
    calls_ok: int = 0
    calls_failed: int = 0
    skipped_force: int = 0  # results kept out of the buffer (force outliers)
    skipped_surrogate: int = 0  # conformations never sent (absurd MMFF energy)
    episodes_ended: dict[str, int] = field(default_factory=dict)
    updates: int = 0
    nnp_steps: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__, episodes_ended=dict(self.episodes_ended))


class GolfLoop:
    """The GOLF algorithm over a model, a trainer, a replay buffer and an oracle executor.

    Args:
        provider: NNP energy-and-forces callable for the episodes (``golf.models.ModelEnergyForces``).
        trainer: ``golf.train.Trainer`` of the same model (one ``update`` per call).
        buffer: ``golf.replay.ReplayBuffer`` holding D0 and the new data.
        pool: training conformations episodes start from.
        executor: genuine-oracle ``OracleExecutor``.
        config: ``GolfConfig``.
        on_result: called for every genuine result as it arrives, BEFORE it is used
            (``on_result(request, result, used)``): the persistence hook.
        on_progress: called after every processed result with the stats and latest train metrics.
        device, dtype: where the episodes' tensors live.
    """

    def __init__(
        self,
        provider: Callable[[Batch], tuple[torch.Tensor, torch.Tensor]],
        trainer: Any,
        buffer: Any,
        pool: Sequence[Conformation],
        executor: Any,
        config: GolfConfig,
        on_result: Callable[[LabelRequest, Any, bool], None] | None = None,
        on_progress: Callable[[GolfStats, dict[str, float]], None] | None = None,
        stats: GolfStats | None = None,
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
        self.device, self.dtype = torch.device(device), dtype
        self.rng = np.random.default_rng(config.seed + self.stats.calls_done)
        self.opt_cfg = lbfgs_config(config.conf_optimizer, fmax=0.0, max_steps=config.max_episode_steps)
        self.state = None  # LBFGSState of the running episodes
        self.episodes: dict[int, Episode] = {}
        self.next_episode = 0
        self.queue: list[LabelRequest] = []  # waiting for a free oracle slot
        self.pending: dict[Hashable, LabelRequest] = {}
        self.next_call = self.stats.calls_done  # call keys continue across resumes
        self.last_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ episodes
    def _start_episodes(self, n: int) -> None:
        """Start ``n`` episodes from random training conformations (one model call for all)."""
        if n <= 0:
            return
        idx = self.rng.integers(0, len(self.pool), size=n)
        confs = [self.pool[i] for i in idx]
        surrogate = mmff_energies(confs)  # [n] eV
        ids = list(range(self.next_episode, self.next_episode + n))
        self.next_episode += n
        for i, c, e in zip(ids, confs, surrogate):
            self.episodes[i] = Episode(c, float(e), float(e))
        batch = Batch.from_conformations(confs, self.device, self.dtype)
        new = lbfgs_init(batch, self.provider, ids=ids, cfg=self.opt_cfg)
        self.state = new if self.state is None else concat([self.state, new])

    def step(self) -> None:
        """One optimizer step for all episodes, the surrogate check, and restarts."""
        if self.state is None:
            self._start_episodes(self.config.n_parallel)
        state = self.state
        before = state.batch.split(state.batch.positions.detach().cpu().double().clone())  # B x [n, 3]; steps work in place
        state = lbfgs_step(state, self.provider)
        self.stats.nnp_steps += 1
        after = state.batch.split(state.batch.positions.detach().cpu().double())
        ids = state.ids.tolist()
        episodes = [self.episodes[i] for i in ids]
        surrogate = mmff_energies([ep.conf.with_positions(x) for ep, x in zip(episodes, after)])  # [B]
        rose = ~(surrogate < np.array([ep.surrogate_prev for ep in episodes]))  # NaN counts as rise
        failed = state.failed.cpu().numpy()
        converged = state.converged.cpu().numpy()
        limit = (state.n_steps >= self.config.max_episode_steps).cpu().numpy()
        ended = rose | failed | converged | limit  # [B]
        n_steps = state.n_steps.tolist()
        for b in np.flatnonzero(ended):
            ep = self.episodes.pop(ids[b])
            if rose[b] or failed[b]:
                reason, x, e_sur = ("failed" if failed[b] else "surrogate"), before[b], ep.surrogate_prev
            else:
                reason, x, e_sur = ("converged" if converged[b] else "limit"), after[b], surrogate[b]
            self.stats.episodes_ended[reason] = self.stats.episodes_ended.get(reason, 0) + 1
            if not np.isfinite(e_sur) or e_sur - ep.surrogate_start > self.config.max_surrogate_rise:
                self.stats.skipped_surrogate += 1
                continue
            self.queue.append(LabelRequest(ep.conf.with_positions(x), reason, int(n_steps[b])))
        for b in np.flatnonzero(~ended):
            self.episodes[ids[b]].surrogate_prev = float(surrogate[b])
        keep = torch.as_tensor(~ended, device=state.batch.device)
        self.state = select(state, keep)
        self._start_episodes(int(ended.sum()))

    # ------------------------------------------------------------------ oracle and training
    @property
    def max_pending(self) -> int:
        return self.config.max_pending or 2 * max(1, int(self.executor.n_workers))

    @property
    def calls_committed(self) -> int:
        """Results back plus calls in flight: what the budget has to cover."""
        return self.stats.calls_done + len(self.pending)

    def _submit(self) -> None:
        while self.queue and len(self.pending) < self.max_pending and self.calls_committed < self.config.budget:
            request = self.queue.pop(0)
            key = f"golf-{self.next_call}"
            self.next_call += 1
            self.pending[key] = request
            self.executor.submit(request.conf, key)

    def _process(self, results: list[tuple[Hashable, Any]]) -> None:
        for key, result in results:
            request = self.pending.pop(key)
            used = bool(result.ok) and float(np.abs(result.forces).max()) <= self.config.max_force
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
                self.train(self.config.utd_ratio)
            if self.on_progress is not None:
                self.on_progress(self.stats, self.last_metrics)

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

    def run(self, should_stop: Callable[[], bool] | None = None) -> GolfStats:
        """Run until ``config.budget`` genuine results are back (or ``should_stop()``)."""
        budget = self.config.budget
        while self.stats.calls_done < budget:
            if should_stop is not None and should_stop():
                break
            self._submit()
            # Results that are already back are used before the next optimizer step; when the
            # queue is full (or nothing more may be submitted) wait for the oracle instead of
            # stepping further ahead with a stale model.
            saturated = len(self.queue) >= self.config.n_parallel or self.calls_committed >= budget
            if saturated and self.pending:
                self._process(self.executor.poll(timeout=1.0))
                continue
            self._process(self.executor.poll(timeout=0.0))
            if self.calls_committed < budget:
                self.step()
        return self.stats
