"""Building blocks shared by the golf NNPs: batched neighbour pairs, radial bases, cutoffs, activations.

Shapes: N atoms, B molecules, P pairs, R radial basis functions. ``mol_idx`` [N] is non-decreasing
(atoms of one molecule are contiguous, as in ``golf.batch.Batch``). Lengths in Angstrom.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import math
import sys
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "tune_cpu_allocator",
    "all_pairs",
    "neighbor_pairs",
    "BesselRBF",
    "GaussianRBF",
    "CosineCutoff",
    "shifted_softplus",
    "Dense",
    "ACTIVATIONS",
]


_ALLOCATOR_TUNED = False


def tune_cpu_allocator() -> bool:
    """Keep freed CPU memory in the process instead of returning it to the OS (glibc only; process-wide).

    Why: a PaiNN training step with a force loss allocates and frees pair tensors of tens of MB many times
    (e.g. [P, 3, F] float32 = 67 MB for 64 drug-like molecules at F = 128). glibc serves blocks above its mmap
    threshold (at most 32 MB) with fresh mmaps and trims the heap top after frees, so every step page-faults
    and the kernel zeroes the pages again: measured ~40% of a 1-thread training step in system time.
    Disabling mmap-served blocks (M_MMAP_MAX = 0) and heap trimming (M_TRIM_THRESHOLD = -1) makes the
    blocks reusable; the training step went from ~4.2 s to ~2.6 s (bench/bench_model.py workload), at the
    cost of a higher peak resident size (~1.5x, memory is kept at its high-water mark).

    Idempotent; returns True when the settings are active, False on non-glibc platforms (a no-op there).
    Call it once at the start of a long-running CPU job (training, GOLF, relaxation); it is not done on import
    because it changes the memory behaviour of the whole process.
    """
    global _ALLOCATOR_TUNED
    if _ALLOCATOR_TUNED:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    m_trim_threshold, m_mmap_max = -1, -4  # glibc <malloc.h>
    ok = bool(mallopt(m_mmap_max, 0)) and bool(mallopt(m_trim_threshold, -1))
    _ALLOCATOR_TUNED = ok
    return ok


def all_pairs(mol_idx: torch.Tensor, n_mols: Optional[int] = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Every ordered pair (i, j), i != j, of atoms in the same molecule, without a loop over molecules.

    Args:
        mol_idx: molecule index of every atom [N], int64, non-decreasing.
        n_mols: B (optional; inferred from ``mol_idx``).

    Returns:
        idx_i [P0], idx_j [P0] (int64), sorted by ``idx_i`` then ``idx_j``; P0 = sum_b n_b (n_b - 1).
    """
    device = mol_idx.device
    n_atoms = mol_idx.shape[0]
    counts = torch.bincount(mol_idx, minlength=n_mols or 0)  # [B]
    offsets = torch.cumsum(counts, 0) - counts  # [B] first atom of each molecule
    per_atom = counts[mol_idx]  # [N] size of the atom's molecule
    total = int(per_atom.sum())
    idx_i = torch.repeat_interleave(
        torch.arange(n_atoms, device=device), per_atom, output_size=total
    )  # [P0 + N]
    starts = torch.cumsum(per_atom, 0) - per_atom  # [N] start of each i block
    local = torch.arange(total, device=device) - starts[idx_i]  # [P0 + N] j - offset
    idx_j = offsets[mol_idx[idx_i]] + local
    keep = idx_i != idx_j
    return idx_i[keep], idx_j[keep]


def neighbor_pairs(
    positions: torch.Tensor,
    mol_idx: torch.Tensor,
    cutoff: float,
    n_mols: Optional[int] = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """All pairs i != j of the same molecule closer than ``cutoff`` (non-periodic).

    Args:
        positions: [N, 3] Angstrom (may require grad; ``vec_ij`` stays differentiable).
        mol_idx: [N] int64, non-decreasing.
        cutoff: Angstrom.
        n_mols: B (optional).

    Returns:
        idx_i [P], idx_j [P] (int64, sorted by idx_i) and vec_ij = positions[j] - positions[i] [P, 3].
    """
    idx_i, idx_j = all_pairs(mol_idx, n_mols)
    with torch.no_grad():
        pos = positions.detach()
        d2 = (pos[idx_j] - pos[idx_i]).square().sum(-1)  # [P0]
        keep = d2 < cutoff * cutoff
    idx_i, idx_j = idx_i[keep], idx_j[keep]
    vec_ij = positions[idx_j] - positions[idx_i]  # [P, 3]
    return idx_i, idx_j, vec_ij


def shifted_softplus(x: torch.Tensor) -> torch.Tensor:
    """ln(1 + e^x) - ln 2 (SchNet's activation; zero at x = 0)."""
    return F.softplus(x) - math.log(2.0)


#: activation name -> function (names are what golf checkpoints store).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "silu": F.silu,
    "shifted_softplus": shifted_softplus,
}


class Dense(nn.Linear):
    """A linear layer followed by an optional activation, y = act(x W^T + b).

    The activation is a plain function (no parameters), so a ``nn.Sequential`` of ``Dense`` layers
    has the same state-dict keys as schnetpack's ``build_mlp``. Weights are Xavier-uniform, biases 0.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        activation: Optional[str] = None,
    ) -> None:
        super().__init__(in_features, out_features, bias)
        self.activation_name = activation
        self.act = ACTIVATIONS[activation] if activation else None

    def reset_parameters(self) -> None:
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        return self.act(y) if self.act is not None else y


class BesselRBF(nn.Module):
    """sin(n pi d / r_c) / d, n = 1..R (DimeNet's 0th-order Bessel basis, as in schnetpack).

    forward(d [P]) -> [P, R]. At d = 0 the denominator is replaced by 1.
    """

    def __init__(self, n_rbf: int = 50, cutoff: float = 5.0) -> None:
        super().__init__()
        self.n_rbf = n_rbf
        self.register_buffer("freqs", torch.arange(1, n_rbf + 1) * math.pi / cutoff)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        denom = torch.where(d == 0, torch.ones_like(d), d)
        return torch.sin(d[:, None] * self.freqs) / denom[:, None]


class GaussianRBF(nn.Module):
    """exp(-(d - mu_k)^2 / (2 w^2)), R centres evenly spaced on [start, cutoff], w = spacing.

    forward(d [P]) -> [P, R].
    """

    def __init__(self, n_rbf: int = 20, cutoff: float = 5.0, start: float = 0.0) -> None:
        super().__init__()
        self.n_rbf = n_rbf
        offsets = torch.linspace(start, cutoff, n_rbf)
        widths = (offsets[1] - offsets[0]).abs() * torch.ones_like(offsets)
        self.register_buffer("widths", widths)
        self.register_buffer("offsets", offsets)

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        coeff = -0.5 / self.widths.square()
        return torch.exp(coeff * (d[:, None] - self.offsets).square())


class CosineCutoff(nn.Module):
    """0.5 (cos(pi d / r_c) + 1) for d < r_c, else 0. forward(d [P]) -> [P]."""

    def __init__(self, cutoff: float = 5.0) -> None:
        super().__init__()
        self.register_buffer("cutoff", torch.tensor([float(cutoff)]))

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        f = 0.5 * (torch.cos(d * (math.pi / self.cutoff)) + 1.0)
        return f * (d < self.cutoff).to(d.dtype)
