"""The golf neural network potential: representation (PaiNN or SchNet) + atomwise MLP + atomrefs.

    E_b = energy_scale * sum_{i in b} MLP(q_i) + sum_{i in b} atomrefs[Z_i]      (eV)
    F   = -dE/dX                                                                 (eV/Angstrom)

``energy_scale`` converts the network's native unit to eV (1 for golf-trained models, HARTREE_TO_EV for
the official GOLF checkpoints, whose outputs are Hartree). Atomrefs are kept in float64 whatever the
model dtype, so large total energies keep their precision until the final cast.

Shapes: N atoms, B molecules, F features.
"""
from __future__ import annotations

from typing import Any, Iterable, Sequence

import numpy as np
import torch
from torch import nn

from golf.batch import Batch
from golf.errors import InputError
from golf.models.ops import Dense, neighbor_pairs
from golf.models.painn import PaiNN
from golf.models.schnet import SchNet

__all__ = ["Potential", "Atomwise", "build_model", "ModelEnergyForces", "REPRESENTATIONS"]

N_ELEMENTS = 119
DEFAULT_ELEMENTS = (1, 6, 7, 8, 9, 16, 17, 35)

#: architecture name -> (class, default hyperparameters)
REPRESENTATIONS: dict[str, tuple[type[nn.Module], dict[str, Any]]] = {
    "painn": (
        PaiNN,
        dict(n_atom_basis=128, n_interactions=3, n_rbf=50, cutoff=5.0, shared_interactions=False,
             shared_filters=False, activation="silu", epsilon=1e-8, max_z=100),
    ),
    "schnet": (
        SchNet,
        dict(n_atom_basis=128, n_interactions=3, n_rbf=20, cutoff=5.0, n_filters=None, rbf="gaussian",
             activation="shifted_softplus", shared_interactions=False, max_z=100),
    ),
}


class Atomwise(nn.Module):
    """Per-atom MLP F -> ... -> 1 (schnetpack ``Atomwise`` layout: ``outnet.{k}``).

    Hidden sizes halve at each layer by default (128 -> 64 -> 1 for n_layers=2).
    """

    def __init__(
        self, n_in: int, n_layers: int = 2, n_hidden: Sequence[int] | None = None, activation: str = "silu"
    ) -> None:
        super().__init__()
        if n_hidden is None:
            sizes = [n_in]
            for _ in range(n_layers - 1):
                sizes.append(max(1, sizes[-1] // 2))
        else:
            sizes = [n_in, *n_hidden]
        self.sizes = [*sizes, 1]
        layers = [Dense(a, b, activation=activation) for a, b in zip(self.sizes[:-2], self.sizes[1:-1])]
        layers.append(Dense(self.sizes[-2], 1, activation=None))
        self.outnet = nn.Sequential(*layers)

    def forward(self, q: torch.Tensor) -> torch.Tensor:
        """q [N, F] -> per-atom energies [N]."""
        return self.outnet(q)[:, 0]


#: provenance/extra key of a model trained on charged (and open-shell) molecules (``Potential.neutral_only``).
CHARGED_KEY = "charged_molecules"

#: why a neutral-only model refuses a charged or open-shell molecule.
NEUTRAL_ONLY = "the model was trained on neutral closed-shell molecules only"


class Potential(nn.Module):
    """An NNP with per-element reference energies.

    Args:
        architecture: "painn" or "schnet".
        hparams: representation hyperparameters (missing ones take the defaults in REPRESENTATIONS).
        output: atomwise MLP settings: {"n_layers": 2, "n_hidden": None, "activation": "silu"}.
        energy_scale: multiplies the network output to give eV.
        elements: atomic numbers the model may be applied to (seen in training).
        atomrefs: [119] eV per element (default zeros).

    Attributes:
        config: architecture, hyperparameters, output settings, energy_scale (JSON-like dict).
        elements: sorted list of Z.
        atomrefs: float64 buffer [119], eV.
    """

    def __init__(
        self,
        architecture: str = "painn",
        hparams: dict[str, Any] | None = None,
        output: dict[str, Any] | None = None,
        energy_scale: float = 1.0,
        elements: Iterable[int] | None = None,
        atomrefs: np.ndarray | torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        if architecture not in REPRESENTATIONS:
            raise ValueError(f"unknown architecture {architecture!r}; choose from {sorted(REPRESENTATIONS)}")
        cls, defaults = REPRESENTATIONS[architecture]
        unknown = set(hparams or {}) - set(defaults)
        if unknown:
            raise ValueError(f"unknown {architecture} hyperparameter(s): {sorted(unknown)}")
        hp = {**defaults, **(hparams or {})}
        out = {"n_layers": 2, "n_hidden": None, "activation": "silu", **(output or {})}
        self.config: dict[str, Any] = {
            "architecture": architecture,
            "hparams": hp,
            "output": out,
            "energy_scale": float(energy_scale),
        }
        self.representation = cls(**hp)
        self.output = Atomwise(hp["n_atom_basis"], out["n_layers"], out["n_hidden"], out["activation"])
        self.cutoff = float(hp["cutoff"])
        self.energy_scale = float(energy_scale)
        self.elements: list[int] = sorted(int(z) for z in (elements if elements is not None else DEFAULT_ELEMENTS))
        refs = torch.zeros(N_ELEMENTS, dtype=torch.float64)
        if atomrefs is not None:
            refs[:] = torch.as_tensor(np.asarray(atomrefs, dtype=np.float64))
        self.register_buffer("atomrefs", refs)

    # ------------------------------------------------------------------ dtype / device
    def _apply(self, fn, *args, **kwargs):  # keep atomrefs float64 through .to(dtype)/.float()
        refs = self._buffers["atomrefs"]
        super()._apply(fn, *args, **kwargs)
        device = self.output.outnet[0].weight.device
        self._buffers["atomrefs"] = refs.to(device=device, dtype=torch.float64)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.output.outnet[0].weight.dtype

    @property
    def device(self) -> torch.device:
        return self.output.outnet[0].weight.device

    # ------------------------------------------------------------------ physics
    def set_atomrefs(self, atomrefs: np.ndarray | torch.Tensor) -> None:
        """Replace the per-element reference energies ([119], eV)."""
        self.atomrefs.copy_(torch.as_tensor(np.asarray(atomrefs, dtype=np.float64)))

    def atomic_energies(self, numbers: torch.Tensor, positions: torch.Tensor, mol_idx: torch.Tensor,
                        n_mols: int | None = None) -> torch.Tensor:
        """Network part of the per-atom energies [N] in eV (without atomrefs)."""
        idx_i, idx_j, vec_ij = neighbor_pairs(positions, mol_idx, self.cutoff, n_mols)
        q = self.representation(numbers, idx_i, idx_j, vec_ij)  # [N, F]
        return self.output(q) * self.energy_scale  # [N]

    def energy(self, numbers: torch.Tensor, positions: torch.Tensor, mol_idx: torch.Tensor,
               n_mols: int) -> torch.Tensor:
        """Energies [B] in eV (model dtype) from flat tensors."""
        e_atom = self.atomic_energies(numbers, positions, mol_idx, n_mols)  # [N]
        e_nn = e_atom.new_zeros(n_mols).index_add_(0, mol_idx, e_atom)  # [B]
        if not bool(torch.any(self.atomrefs != 0)):
            return e_nn
        ref = self.atomrefs.new_zeros(n_mols).index_add_(0, mol_idx, self.atomrefs[numbers])  # [B] f64
        return (e_nn.double() + ref).to(e_nn.dtype)

    def forward(self, batch: Batch) -> torch.Tensor:
        """Energies [B] in eV."""
        return self.energy(batch.numbers, batch.positions, batch.mol_idx, batch.n_mols)

    def energy_and_forces(self, batch: Batch, create_graph: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """Energies [B] eV and forces -dE/dX [N, 3] eV/Angstrom.

        With ``create_graph=True`` (training with a force loss) the forces stay differentiable with respect
        to the parameters. Works under ``torch.no_grad()`` too (gradients are enabled locally).
        """
        pos = batch.positions
        if not pos.requires_grad:
            pos = pos.detach().requires_grad_(True)
        with torch.enable_grad():
            energy = self.energy(batch.numbers, pos, batch.mol_idx, batch.n_mols)  # [B]
            (grad,) = torch.autograd.grad(energy.sum(), pos, create_graph=create_graph)
        if not create_graph:  # the graph is freed by grad(); nothing further can flow through energy
            energy = energy.detach()
        return energy, -grad

    def check_elements(self, numbers: Any) -> None:
        """Raise InputError if ``numbers`` (array, tensor or list of arrays) has an element the model never saw."""
        from ase.data import chemical_symbols

        if isinstance(numbers, torch.Tensor):
            zs = set(numbers.unique().tolist())
        elif isinstance(numbers, np.ndarray):
            zs = set(np.unique(numbers).tolist())
        else:
            zs = set()
            for item in numbers:
                zs.update(np.unique(np.asarray(item)).tolist())
        unseen = sorted(int(z) for z in zs - set(self.elements))
        if unseen:
            names = ", ".join(chemical_symbols[z] if 0 <= z < len(chemical_symbols) else f"Z={z}" for z in unseen)
            known = " ".join(chemical_symbols[z] for z in self.elements)
            raise InputError(f"the model was never trained on element(s) {names}; it knows {known}")

    @property
    def neutral_only(self) -> bool:
        """Whether the model was trained on neutral closed-shell molecules only (every official GOLF
        checkpoint, and the default). A model trained on charged or open-shell molecules says so with
        ``charged_molecules: true`` in its provenance (checkpoint or registry entry) or ``extra``."""
        for meta in (getattr(self, "provenance", None), getattr(self, "extra", None)):
            if isinstance(meta, dict) and meta.get(CHARGED_KEY) is True:
                return False
        return True

    def check_charge(self, charge: int, multiplicity: int = 1) -> None:
        """Raise InputError if the model cannot handle a molecule of this total ``charge`` (e) and spin
        ``multiplicity`` (2S+1): a neutral-only model (``neutral_only``) takes charge 0, singlets only."""
        if self.neutral_only and (int(charge) != 0 or int(multiplicity) != 1):
            what = f"charge {int(charge):+d}" if int(charge) != 0 else ""
            if int(multiplicity) != 1:
                what = f"{what}{', ' if what else ''}multiplicity {int(multiplicity)}"
            raise InputError(f"{what}: {NEUTRAL_ONLY}")

    def extra_repr(self) -> str:
        return f"energy_scale={self.energy_scale}, elements={self.elements}"


def build_model(name: str = "painn", *, energy_scale: float = 1.0, elements: Iterable[int] | None = None,
                atomrefs: np.ndarray | None = None, output: dict[str, Any] | None = None,
                **hparams: Any) -> Potential:
    """A freshly initialised Potential ("painn" or "schnet"); ``hparams`` override the defaults."""
    return Potential(name, hparams, output=output, energy_scale=energy_scale, elements=elements,
                     atomrefs=atomrefs)


class ModelEnergyForces:
    """``golf.batch.EnergyForces`` provider backed by a Potential (or any torch module potential).

    ``provider(batch) -> (energy [B] eV, forces [N, 3] eV/A)``, detached, in the batch's dtype and device.
    Only position gradients are computed; parameter ``.grad`` is never touched.

    A module without ``energy_and_forces`` is called as ``module(batch)`` (on the device and dtype of
    its first parameter, else the batch's) and must return energies [B] (eV; forces then come from
    autograd) or a pair (energies [B], forces [N, 3]).
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        model = self.model
        if not hasattr(model, "energy_and_forces"):
            return self._generic(batch)
        dev, dt = model.device, model.dtype
        pos = batch.positions.detach().to(device=dev, dtype=dt).requires_grad_(True)
        b = Batch(batch.numbers.to(dev), pos, batch.mol_idx.to(dev), batch.n_mols)
        with torch.enable_grad():
            energy, forces = model.energy_and_forces(b, create_graph=False)
        out_dt = batch.positions.dtype
        out_dev = batch.positions.device
        return energy.detach().to(out_dev, out_dt), forces.detach().to(out_dev, out_dt)

    def _generic(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        first = next(self.model.parameters(), None)
        dev = first.device if first is not None else batch.positions.device
        dt = first.dtype if first is not None and first.is_floating_point() else batch.positions.dtype
        pos = batch.positions.detach().to(device=dev, dtype=dt).requires_grad_(True)
        b = Batch(batch.numbers.to(dev), pos, batch.mol_idx.to(dev), batch.n_mols)
        with torch.enable_grad():
            out = self.model(b)
            if isinstance(out, (tuple, list)) and len(out) == 2:
                energy, forces = out
            elif isinstance(out, torch.Tensor):
                energy = out.reshape(-1)
                if energy.shape[0] != batch.n_mols:
                    raise ValueError(f"the module returned {energy.shape[0]} energies for {batch.n_mols} molecules")
                (grad,) = torch.autograd.grad(energy.sum(), pos, allow_unused=True)
                forces = torch.zeros_like(pos) if grad is None else -grad
            else:
                raise TypeError(
                    f"the module returned a {type(out).__name__}; expected energies [B] (eV) or (energies, forces)"
                )
        out_dt, out_dev = batch.positions.dtype, batch.positions.device
        return (energy.detach().reshape(-1).to(out_dev, out_dt),
                forces.detach().reshape(-1, 3).to(out_dev, out_dt))
