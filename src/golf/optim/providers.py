"""Energy-and-forces providers for the optimizers besides the NNP (``golf.models.ModelEnergyForces``).

* ``OracleEnergyForces``: a golf oracle (in this process) or an oracle executor (worker processes)
  behind the ``EnergyForces`` interface, so the same optimizers relax with xTB/DFT for reference minima.
  A failed oracle call gives NaN energy and forces for that molecule; the optimizer then stops it
  with a reason. xTB must never run in a process that imported torch: use an executor for it.
* Analytic potentials with known minima for tests and examples: ``Quadratic``, ``LennardJones``,
  ``Morse`` (pairwise within each molecule).

All return energy [B] (eV) and forces [N, 3] (eV/A), detached, in the batch's dtype and device.
"""
from __future__ import annotations

import itertools
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.optim.state import segment_sum


class OracleEnergyForces:
    """``EnergyForces`` backed by a golf oracle or an oracle executor.

    Args:
        oracle_or_executor: a ``golf.oracles.base.Oracle`` (called in process, serially) or an executor
            from ``golf.oracles.executors.make_executor`` (``submit``/``poll``; it should not be shared
            with other work: results with foreign keys are kept in ``unclaimed``).
        templates: conformations whose metadata (charge, multiplicity, bonds, smiles) the molecule with
            id ``i`` carries (``templates[i]``); ``relax`` passes ids 0..n-1 in input order, so pass the
            same list of conformations. Without templates molecules are built from atomic numbers with
            ``charge`` and ``multiplicity``.
        poll_timeout: seconds per ``poll`` wait when using an executor.

    Attributes:
        n_calls: oracle evaluations requested so far; n_failed: of which failed.
        last_reasons: failure reasons of the last call by molecule position in the batch.
    """

    uses_ids = True

    def __init__(
        self,
        oracle_or_executor: Any,
        templates: Sequence[Conformation] | Mapping[int, Conformation] | None = None,
        charge: int = 0,
        multiplicity: int = 1,
        poll_timeout: float = 1.0,
    ) -> None:
        self.target = oracle_or_executor
        self.templates = templates
        self.charge, self.multiplicity = charge, multiplicity
        self.poll_timeout = poll_timeout
        self.n_calls = 0
        self.n_failed = 0
        self.last_reasons: dict[int, str] = {}
        self.unclaimed: list[tuple[Any, Any]] = []
        self._counter = itertools.count()

    def _conformations(self, batch: Batch, ids: torch.Tensor | None) -> list[Conformation]:
        numbers = batch.split(batch.numbers.cpu())
        positions = batch.split(batch.positions.detach().cpu().to(torch.float64))
        id_list = ids.tolist() if ids is not None else list(range(batch.n_mols))
        confs = []
        for i, z, x in zip(id_list, numbers, positions):
            tpl = self.templates[i] if self.templates is not None else None
            if tpl is not None:
                if tpl.n_atoms != len(z):
                    raise ValueError(f"template {i} has {tpl.n_atoms} atoms, batch molecule has {len(z)}")
                confs.append(tpl.with_positions(x.numpy()))
            else:
                confs.append(Conformation(z.numpy(), x.numpy(), charge=self.charge, multiplicity=self.multiplicity))
        return confs

    def _run_executor(self, confs: list[Conformation]) -> list[Any]:
        call = next(self._counter)
        tag = ("golf.optim", id(self), call)
        for b, conf in enumerate(confs):
            self.target.submit(conf, (tag, b), task="compute")
        results: list[Any] = [None] * len(confs)
        missing = len(confs)
        while missing:
            for key, res in self.target.poll(timeout=self.poll_timeout):
                if isinstance(key, tuple) and len(key) == 2 and key[0] == tag:
                    results[key[1]] = res
                    missing -= 1
                else:
                    self.unclaimed.append((key, res))
        return results

    def __call__(self, batch: Batch, ids: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        confs = self._conformations(batch, ids)
        if hasattr(self.target, "submit"):
            results = self._run_executor(confs)
        else:
            results = self.target.compute_batch(confs)
        energy = np.full(len(confs), np.nan)
        forces = [np.full((c.n_atoms, 3), np.nan) for c in confs]
        self.last_reasons = {}
        for b, res in enumerate(results):
            self.n_calls += 1
            if res is not None and res.ok:
                energy[b] = res.energy
                forces[b] = np.asarray(res.forces, dtype=np.float64).reshape(-1, 3)
            else:
                self.n_failed += 1
                self.last_reasons[b] = getattr(res, "reason", "no result")
        dev, dt = batch.device, batch.positions.dtype
        return (
            torch.as_tensor(energy, dtype=dt, device=dev),
            torch.as_tensor(np.concatenate(forces), dtype=dt, device=dev),
        )


def as_provider(provider: Any) -> Any:
    """An ``EnergyForces`` provider from what a user may pass: a torch module potential (a golf
    ``Potential`` from ``golf.load_model``, or any ``nn.Module`` mapping a ``Batch`` to energies [B]
    in eV) is wrapped in ``golf.models.ModelEnergyForces``; other callables pass through.

    Raises:
        TypeError: ``provider`` is neither callable nor a module.
    """
    if isinstance(provider, torch.nn.Module):
        from golf.models.potential import ModelEnergyForces

        return ModelEnergyForces(provider)
    if not callable(provider):
        raise TypeError(
            "the provider must be a golf model (golf.load_model), a torch module potential or a callable "
            f"(Batch) -> (energy [B] eV, forces [N, 3] eV/A); got one of type {type(provider).__name__}"
        )
    return provider


def _energy_forces(batch: Batch, energy_fn) -> tuple[torch.Tensor, torch.Tensor]:
    """Energies [B] and forces = -dE/dx [N, 3] of a per-batch energy function, by autograd."""
    with torch.enable_grad():
        x = batch.positions.detach().requires_grad_(True)
        energy = energy_fn(x)  # [B]
        (grad,) = torch.autograd.grad(energy.sum(), x)
    return energy.detach(), -grad.detach()


class Quadratic:
    """E = 1/2 sum_i (x_i - c)^T A (x_i - c) per molecule (eV); minimum: every atom at ``center``.

    Args:
        hessian: A [3, 3] symmetric positive definite (eV/A^2). Default: identity * 10.
        center: c [3] (A).
    """

    def __init__(self, hessian: Any = None, center: Any = (0.0, 0.0, 0.0)) -> None:
        self.hessian = torch.as_tensor(np.eye(3) * 10.0 if hessian is None else hessian, dtype=torch.float64)
        self.center = torch.as_tensor(center, dtype=torch.float64)

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.hessian.to(batch.positions)
        c = self.center.to(batch.positions)

        def energy(x: torch.Tensor) -> torch.Tensor:
            d = x - c  # [N, 3]
            return segment_sum(0.5 * ((d @ a) * d).sum(-1), batch.mol_idx, batch.n_mols)

        return _energy_forces(batch, energy)


class _Pairwise:
    """All intra-molecule pairs i < j (dense N x N mask: for small test systems)."""

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        mi = batch.mol_idx
        n = len(mi)
        same = (mi[:, None] == mi[None, :]) & torch.triu(torch.ones(n, n, dtype=torch.bool, device=mi.device), 1)
        i, j = torch.nonzero(same, as_tuple=True)  # [P]

        def energy(x: torch.Tensor) -> torch.Tensor:
            r = (x[i] - x[j]).norm(dim=-1)  # [P]
            return segment_sum(self.pair_energy(r), mi[i], batch.n_mols)

        return _energy_forces(batch, energy)


class LennardJones(_Pairwise):
    """E = sum_{i<j} 4 eps ((sigma/r)^12 - (sigma/r)^6); dimer minimum at r = 2^(1/6) sigma."""

    def __init__(self, epsilon: float = 1.0, sigma: float = 1.0) -> None:
        self.epsilon, self.sigma = epsilon, sigma

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        sr6 = (self.sigma / r) ** 6
        return 4 * self.epsilon * (sr6 * sr6 - sr6)


class Morse(_Pairwise):
    """E = sum_{i<j} D (exp(-2a(r - r0)) - 2 exp(-a(r - r0))); dimer minimum at r0 with E = -D."""

    def __init__(self, depth: float = 1.0, alpha: float = 1.5, r0: float = 1.2) -> None:
        self.depth, self.alpha, self.r0 = depth, alpha, r0

    def pair_energy(self, r: torch.Tensor) -> torch.Tensor:
        e = torch.exp(-self.alpha * (r - self.r0))
        return self.depth * (e * e - 2 * e)
