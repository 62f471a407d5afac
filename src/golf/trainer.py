"""Training neural network potentials on energies and forces (the GOLF paper's loss and optimiser).

Loss (GOLF, ``GOLF/GOLF_trainer.py`` of the official code)::

    loss = w_energy * mean_b (E_pred_b - E_b)^2 / ENERGY_SCALE^2
         + w_forces * mean_b mean_{i in b} mean_xyz (F_pred_i - F_i)^2 / FORCE_SCALE^2

with w_energy = 0.01 and w_forces = 0.99. The force term is a per-molecule average of the per-atom
force MSE (every molecule counts equally, whatever its size). Energies are total energies in eV;
the model predicts ``sum of atomrefs + learned residual``, so the energy MSE on totals *is* the MSE
of residuals relative to the per-element atomrefs (fitted on the training set before training).

Units and scaling: the official code trains on energies in Hartree and forces in Hartree/Angstrom
(``env/dft_worker.py`` divides psi4's Hartree/Bohr gradients by ``PSI4_BOHR2ANGSTROM``;
``GOLF/GOLF_trainer.py``, ``GOLF.update``, applies the weights to those MSEs). To keep the meaning
of the paper's weights (and of gradient clipping at 1.0) the loss divides energy errors by
``ENERGY_SCALE = 1 Hartree`` (in eV) and force errors by ``FORCE_SCALE = 1 Hartree/Angstrom`` (in
eV/A): ``loss`` is dimensionless and numerically equal to the official loss. The metrics dicts report the unscaled MSEs in eV^2 and (eV/A)^2 and MAEs in
meV, kcal/mol and meV/A.

``Trainer`` wraps Adam + cosine annealing + gradient clipping; ``update`` is one optimisation step
on a collated batch (GOLF calls it on replay-buffer batches), ``fit`` runs epochs with validation
and reports through callbacks. No files here: ``golf.runs.train`` adds progress bars, CSV and
TensorBoard logs, best/last golf checkpoints and exact resume.
"""
from __future__ import annotations

import copy
import math
import random
import time
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from golf.batch import Batch
from golf.dataset import LabelledData
from golf.errors import CheckpointError, GolfError
from golf.units import EV_TO_KCAL_MOL, HARTREE_TO_EV

#: Energy error scale of the loss (eV): 1 Hartree, so the paper's weights keep their meaning.
ENERGY_SCALE: float = HARTREE_TO_EV
#: Force error scale of the loss (eV/A): 1 Hartree/Angstrom, the official code's force unit.
FORCE_SCALE: float = HARTREE_TO_EV

BatchTuple = tuple[Batch, torch.Tensor, torch.Tensor]


# ---------------------------------------------------------------------------------------- loss
def loss(
    model: nn.Module,
    batch: Batch,
    energy: torch.Tensor,
    forces: torch.Tensor,
    w_energy: float = 0.01,
    w_forces: float = 0.99,
    energy_scale: float = ENERGY_SCALE,
    force_scale: float = FORCE_SCALE,
) -> tuple[torch.Tensor, dict[str, float]]:
    """The GOLF training loss of ``model`` on a batch (see the module docstring).

    Args:
        model: a Potential with ``energy_and_forces(batch, create_graph=True)``.
        batch: B molecules, N atoms.
        energy: reference energies [B] eV.
        forces: reference forces [N, 3] eV/A.
        w_energy, w_forces: loss weights (paper: 0.01, 0.99).
        energy_scale, force_scale: errors are divided by these (eV, eV/A) before squaring.

    Returns:
        (loss, metrics): scalar loss tensor with a graph to the parameters; metrics holds floats
        ``loss``, ``energy_mse`` (eV^2), ``forces_mse`` ((eV/A)^2, per-molecule mean of per-atom
        MSE), ``energy_mae`` (eV), ``forces_mae`` (eV/A, over all components).
    """
    e_pred, f_pred = model.energy_and_forces(batch, create_graph=True)
    de = e_pred - energy.to(e_pred.dtype)
    df = f_pred - forces.to(f_pred.dtype)
    energy_mse = (de**2).mean()
    n_atoms = torch.bincount(batch.mol_idx, minlength=batch.n_mols).clamp(min=1).to(df.dtype)
    per_atom = (df**2).mean(-1)  # [N]
    per_mol = torch.zeros(batch.n_mols, dtype=df.dtype, device=df.device).index_add_(
        0, batch.mol_idx, per_atom
    )
    forces_mse = (per_mol / n_atoms).mean()
    total = w_energy * energy_mse / energy_scale**2 + w_forces * forces_mse / force_scale**2
    metrics = {
        "loss": float(total.detach()),
        "energy_mse": float(energy_mse.detach()),
        "forces_mse": float(forces_mse.detach()),
        "energy_mae": float(de.detach().abs().mean()),
        "forces_mae": float(df.detach().abs().mean()),
    }
    return total, metrics


# ---------------------------------------------------------------------------------------- helpers
def prepare_model(model: nn.Module, data: LabelledData) -> np.ndarray:
    """Fit atomrefs (eV per element) on ``data``, set them on ``model`` and set ``model.elements``.

    Returns the fitted atomrefs [119] eV.
    """
    from golf.models.atomrefs import fit_atomrefs

    refs = np.asarray(fit_atomrefs(data.numbers_list(), data.energy), dtype=np.float64)
    with torch.no_grad():
        model.atomrefs.copy_(torch.as_tensor(refs, dtype=model.atomrefs.dtype))
    model.elements = data.elements
    if isinstance(getattr(model, "config", None), dict) and "elements" in model.config:
        model.config["elements"] = data.elements
    return refs


def refit_offsets(model: nn.Module, data: LabelledData, batch_size: int = 64) -> dict[str, float]:
    """Refit ``model``'s per-element energy offsets (atomrefs) to ``data`` by least squares, keeping
    its network part: E = sum_i offset[Z_i] + NN(z, X). Forces, hence relaxations, are unchanged.

    This adapts a model trained at another level of theory (the official baseline-NNP: wB97X-D/def2-SVP)
    to the energy scale of ``data`` (GFN2-xTB labels differ from DFT's by ~10^4 eV per molecule), so
    that fine-tuning starts from sensible energies instead of spending its first updates, and its
    gradient clipping, on the offsets.

    Returns the energy MAE (meV per conformation) on ``data`` before and after.
    """
    from golf.models import ModelEnergyForces
    from golf.models.atomrefs import element_counts, fit_atomrefs

    provider = ModelEnergyForces(model)
    pred = []
    for start in range(0, len(data), batch_size):
        batch, _, _ = data.collate(np.arange(start, min(start + batch_size, len(data))))
        pred.append(provider(batch)[0].detach().double().cpu().numpy())
    pred = np.concatenate(pred)  # [N] eV with the current offsets
    counts = element_counts(data.numbers_list()).astype(np.float64)  # [N, 119]
    old = model.atomrefs.detach().double().cpu().numpy()
    nn_part = pred - counts @ old
    refs = fit_atomrefs(data.numbers_list(), data.energy - nn_part)
    with torch.no_grad():
        model.atomrefs.copy_(torch.as_tensor(refs, dtype=model.atomrefs.dtype))
    after = nn_part + counts @ refs
    return {"energy_mae_mev_before": float(1000 * np.abs(pred - data.energy).mean()),
            "energy_mae_mev_after": float(1000 * np.abs(after - data.energy).mean())}


# ---------------------------------------------------------------------------------------- trainer
class Trainer:
    """Adam + cosine learning-rate decay + gradient clipping on the GOLF loss.

    Args:
        model: Potential (``energy_and_forces``, ``atomrefs``, ``elements``); moved to ``device``.
        lr: initial learning rate (paper 1e-4).
        total_steps: optimisation steps of the cosine schedule; ``fit`` sets it from the epochs when
            None. After ``total_steps`` the learning rate stays at ``lr_min``.
        lr_min: final learning rate of the cosine schedule.
        clip: max global gradient norm (None: no clipping).
        weight_decay: Adam (L2) weight decay.
        scheduler: "cosine" or "constant".
        w_energy, w_forces: loss weights.
        device: torch device.
        seed: seeds the trainer's own torch.Generator (epoch shuffling).
    """

    def __init__(
        self,
        model: nn.Module,
        lr: float = 1e-4,
        total_steps: int | None = None,
        lr_min: float = 0.0,
        clip: float | None = 1.0,
        weight_decay: float = 0.0,
        scheduler: str = "cosine",
        w_energy: float = 0.01,
        w_forces: float = 0.99,
        device: torch.device | str = "cpu",
        seed: int = 0,
    ) -> None:
        if scheduler not in ("cosine", "constant"):
            raise GolfError(f"unknown learning-rate scheduler {scheduler!r} (cosine, constant)")
        self.device = torch.device(device)
        self.model = model.to(self.device)
        self.dtype = next(model.parameters()).dtype
        self.lr = lr
        self.lr_min = lr_min
        self.clip = clip
        self.weight_decay = weight_decay
        self.scheduler_name = scheduler
        self.w_energy = w_energy
        self.w_forces = w_forces
        self.seed = seed
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.total_steps: int | None = None
        self.scheduler: torch.optim.lr_scheduler.LRScheduler | None = None
        self.step = 0
        self.epoch = 0
        self.n_skipped = 0
        self.best_metric = math.inf
        self.history: list[dict[str, Any]] = []
        self.generator = torch.Generator().manual_seed(seed)
        if total_steps is not None:
            self.set_total_steps(total_steps)

    # ------------------------------------------------------------------ schedule
    def set_total_steps(self, total_steps: int) -> None:
        """(Re)build the scheduler for ``total_steps`` optimisation steps (before training starts)."""
        self.total_steps = int(max(total_steps, 1))
        for g in self.optimizer.param_groups:
            g["lr"] = self.lr
            g["initial_lr"] = self.lr
        if self.scheduler_name == "cosine":
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=self.total_steps, eta_min=self.lr_min
            )
        else:
            self.scheduler = None

    @property
    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    # ------------------------------------------------------------------ steps
    def _to_device(self, batch_tuple: BatchTuple) -> BatchTuple:
        batch, energy, forces = batch_tuple
        if batch.device != self.device or batch.positions.dtype != self.dtype:
            batch = Batch(
                batch.numbers.to(self.device),
                batch.positions.to(self.device, self.dtype),
                batch.mol_idx.to(self.device),
                batch.n_mols,
            )
        return batch, energy.to(self.device, self.dtype), forces.to(self.device, self.dtype)

    def update(self, batch_tuple: BatchTuple) -> dict[str, float]:
        """One Adam step on (Batch, energy [B] eV, forces [N,3] eV/A); returns float metrics.

        A non-finite loss or gradient norm skips the step (counted in ``n_skipped``; the metrics
        then carry ``skipped = 1``).
        """
        batch, energy, forces = self._to_device(batch_tuple)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        total, metrics = loss(self.model, batch, energy, forces, self.w_energy, self.w_forces)
        if not torch.isfinite(total):
            self.n_skipped += 1
            return {**metrics, "skipped": 1.0, "lr": self.current_lr}
        total.backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.clip is not None:
            grad_norm = torch.nn.utils.clip_grad_norm_(params, self.clip)
        else:
            grad_norm = torch.norm(torch.stack([p.grad.detach().norm() for p in params]))
        if not torch.isfinite(grad_norm):
            self.optimizer.zero_grad(set_to_none=True)
            self.n_skipped += 1
            return {**metrics, "skipped": 1.0, "lr": self.current_lr}
        metrics["lr"] = self.current_lr
        self.optimizer.step()
        self.step += 1
        if self.scheduler is not None and self.total_steps is not None and self.step <= self.total_steps:
            self.scheduler.step()
        metrics["grad_norm"] = float(grad_norm)
        return metrics

    def evaluate(self, data: LabelledData, batch_size: int = 64) -> dict[str, float]:
        """Errors of the model on ``data`` (all of it, in order).

        Returns ``n``, ``loss``, ``energy_mae_mev``, ``energy_mae_kcal_mol``, ``energy_rmse_mev``,
        ``forces_mae_mev_a`` (over all force components), ``forces_rmse_mev_a``.
        Empty data gives NaNs.
        """
        n = len(data)
        if n == 0:
            nan = float("nan")
            return {"n": 0, "loss": nan, "energy_mae_mev": nan, "energy_mae_kcal_mol": nan,
                    "energy_rmse_mev": nan, "forces_mae_mev_a": nan, "forces_rmse_mev_a": nan}
        self.model.eval()
        e_abs = e_sq = f_abs = f_sq = loss_sum = 0.0
        n_comp = 0
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            batch, energy, forces = self._to_device(data.collate(idx, self.device, self.dtype))
            with torch.enable_grad():
                e_pred, f_pred = self.model.energy_and_forces(batch, create_graph=False)
            e_pred, f_pred = e_pred.detach(), f_pred.detach()
            de = (e_pred - energy).double()
            df = (f_pred - forces).double()
            e_abs += float(de.abs().sum())
            e_sq += float((de**2).sum())
            f_abs += float(df.abs().sum())
            f_sq += float((df**2).sum())
            n_comp += df.numel()
            n_atoms = torch.bincount(batch.mol_idx, minlength=batch.n_mols).clamp(min=1).double()
            per_mol = torch.zeros(batch.n_mols, dtype=torch.float64).index_add_(
                0, batch.mol_idx.cpu(), (df**2).mean(-1).cpu()
            ) / n_atoms.cpu()
            loss_sum += float(
                self.w_energy * (de.cpu() ** 2).sum() / ENERGY_SCALE**2
                + self.w_forces * per_mol.sum() / FORCE_SCALE**2
            )
        e_mae = e_abs / n
        return {
            "n": n,
            "loss": loss_sum / n,
            "energy_mae_mev": 1000.0 * e_mae,
            "energy_mae_kcal_mol": e_mae * EV_TO_KCAL_MOL,
            "energy_rmse_mev": 1000.0 * math.sqrt(e_sq / n),
            "forces_mae_mev_a": 1000.0 * f_abs / n_comp,
            "forces_rmse_mev_a": 1000.0 * math.sqrt(f_sq / n_comp),
        }

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue training exactly: model, optimiser, scheduler, counters,
        history and the python / numpy / torch global RNG states plus the shuffling generator."""
        # deep copies: torch's Optimizer.load_state_dict keeps the tensors it is given, so a shared
        # in-memory state would otherwise alias Adam moments between two trainers
        return {
            "format": "golf-trainer-state",
            "version": 1,
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "model_elements": list(getattr(self.model, "elements", []) or []),
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "scheduler": copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None,
            "total_steps": self.total_steps,
            "step": self.step,
            "epoch": self.epoch,
            "n_skipped": self.n_skipped,
            "best_metric": self.best_metric,
            "history": list(self.history),
            "hparams": {
                "lr": self.lr, "lr_min": self.lr_min, "clip": self.clip,
                "weight_decay": self.weight_decay, "scheduler": self.scheduler_name,
                "w_energy": self.w_energy, "w_forces": self.w_forces, "seed": self.seed,
            },
            "rng": {
                "python": random.getstate(),
                "numpy": np.random.get_state(),
                "torch": torch.get_rng_state(),
                "generator": self.generator.get_state(),
            },
        }

    def load_state_dict(self, state: dict[str, Any], restore_global_rng: bool = True) -> None:
        """Restore a ``state_dict`` (model weights included)."""
        if state.get("format") != "golf-trainer-state":
            raise CheckpointError("not a golf trainer state")
        self.model.load_state_dict(state["model"])
        if state.get("model_elements"):
            self.model.elements = list(state["model_elements"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        if state["total_steps"] is not None:
            lrs = [g["lr"] for g in self.optimizer.param_groups]
            self.set_total_steps(state["total_steps"])
            if self.scheduler is not None and state["scheduler"] is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            for g, lr in zip(self.optimizer.param_groups, lrs):
                g["lr"] = lr
        self.step = int(state["step"])
        self.epoch = int(state["epoch"])
        self.n_skipped = int(state.get("n_skipped", 0))
        self.best_metric = float(state["best_metric"])
        self.history = list(state["history"])
        rng = state["rng"]
        self.generator.set_state(rng["generator"])
        if restore_global_rng:
            random.setstate(rng["python"])
            np.random.set_state(rng["numpy"])
            torch.set_rng_state(rng["torch"])

    # ------------------------------------------------------------------ fit
    def fit(
        self,
        train: LabelledData,
        val: LabelledData | None = None,
        epochs: int = 1,
        batch_size: int = 64,
        prepare: bool = True,
        eval_batch_size: int | None = None,
        on_step: Callable[["Trainer", dict[str, float]], None] | None = None,
        on_epoch: Callable[["Trainer", dict[str, Any], bool], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train until ``epochs`` epochs are done (continuing from ``self.epoch``); returns the history.

        Each epoch shuffles ``train`` with the trainer's generator, makes ``ceil(len/batch_size)``
        ``update`` steps (``on_step(trainer, metrics)`` after each), evaluates on ``train`` (running
        averages) and ``val``, and appends a row to ``history`` (epoch, step, lr, time_s, train_* and
        val_* errors, best); then ``on_epoch(trainer, row, improved)``, where ``improved`` says the
        validation loss (train loss without val) is the best so far.

        Args:
            prepare: before the first step of a fresh trainer, fit atomrefs on ``train`` and set
                ``model.elements`` (``prepare_model``).
        """
        if len(train) == 0:
            raise GolfError("no training data")
        steps_per_epoch = math.ceil(len(train) / batch_size)
        if self.step == 0 and prepare:
            prepare_model(self.model, train)
        if self.total_steps is None:
            self.set_total_steps(epochs * steps_per_epoch)
        t_start = time.perf_counter() - (self.history[-1]["time_s"] if self.history else 0.0)
        while self.epoch < epochs:
            perm = torch.randperm(len(train), generator=self.generator).numpy()
            sums: dict[str, float] = {}
            n_seen = 0
            for k in range(steps_per_epoch):
                idx = perm[k * batch_size : (k + 1) * batch_size]
                m = self.update(train.collate(idx, self.device, self.dtype))
                for key in ("loss", "energy_mae", "forces_mae"):
                    sums[key] = sums.get(key, 0.0) + m[key] * len(idx)
                n_seen += len(idx)
                if on_step is not None:
                    on_step(self, m)
            self.epoch += 1
            row: dict[str, Any] = {
                "epoch": self.epoch,
                "step": self.step,
                "lr": self.current_lr,
                "time_s": round(time.perf_counter() - t_start, 3),
                "train_loss": sums["loss"] / n_seen,
                "train_energy_mae_mev": 1000.0 * sums["energy_mae"] / n_seen,
                "train_forces_mae_mev_a": 1000.0 * sums["forces_mae"] / n_seen,
            }
            if val is not None and len(val) > 0:
                ev = self.evaluate(val, eval_batch_size or batch_size)
                row.update({f"val_{k}": v for k, v in ev.items() if k != "n"})
                metric = ev["loss"]
            else:
                metric = row["train_loss"]
            improved = metric < self.best_metric
            if improved:
                self.best_metric = metric
            row["best"] = int(improved)
            self.history.append(row)
            if on_epoch is not None:
                on_epoch(self, row, improved)
        return self.history
