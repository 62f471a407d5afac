"""SchNet (Schütt et al., 2017/2018) in plain PyTorch, with schnetpack 2.2.0's parameter layout
(``embedding``, ``radial_basis``, ``cutoff_fn``, ``interactions.{t}.in2f``, ``.filter_network.{0,1}``,
``.f2out.{0,1}``).

Shapes: N atoms, P pairs, F = n_atom_basis, K = n_filters, R = n_rbf.
"""
from __future__ import annotations

import torch
from torch import nn

from golf.models.ops import BesselRBF, CosineCutoff, Dense, GaussianRBF

__all__ = ["SchNet", "SchNetInteraction"]


class SchNetInteraction(nn.Module):
    """Continuous-filter convolution block; returns the residual update v [N, F]."""

    def __init__(self, n_atom_basis: int, n_rbf: int, n_filters: int, activation: str) -> None:
        super().__init__()
        self.in2f = Dense(n_atom_basis, n_filters, bias=False, activation=None)
        self.f2out = nn.Sequential(
            Dense(n_filters, n_atom_basis, activation=activation),
            Dense(n_atom_basis, n_atom_basis, activation=None),
        )
        self.filter_network = nn.Sequential(
            Dense(n_rbf, n_filters, activation=activation), Dense(n_filters, n_filters)
        )

    def forward(
        self,
        x: torch.Tensor,  # [N, F]
        phi: torch.Tensor,  # [P, R]
        fcut: torch.Tensor,  # [P, 1]
        idx_i: torch.Tensor,
        idx_j: torch.Tensor,
    ) -> torch.Tensor:
        h = self.in2f(x)  # [N, K]
        w = self.filter_network(phi) * fcut  # [P, K]
        m = h.index_select(0, idx_j) * w  # [P, K]
        h = h.new_zeros(h.shape).index_add_(0, idx_i, m)  # [N, K]
        return self.f2out(h)  # [N, F]


class SchNet(nn.Module):
    """SchNet representation: (numbers, pairs) -> scalar features [N, F].

    Args:
        n_atom_basis: F.
        n_interactions: number of interaction blocks.
        n_rbf: radial basis size R.
        cutoff: Angstrom (cosine cutoff).
        n_filters: K (default F).
        rbf: "gaussian" (schnetpack's usual choice for SchNet) or "bessel".
        activation: "shifted_softplus" (default) or "silu".
        shared_interactions: one block reused for every interaction.
        max_z: size of the element embedding.
    """

    def __init__(
        self,
        n_atom_basis: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 20,
        cutoff: float = 5.0,
        n_filters: int | None = None,
        rbf: str = "gaussian",
        activation: str = "shifted_softplus",
        shared_interactions: bool = False,
        max_z: int = 100,
    ) -> None:
        super().__init__()
        self.n_atom_basis = n_atom_basis
        self.n_filters = n_filters or n_atom_basis
        self.cutoff = float(cutoff)
        self.cutoff_fn = CosineCutoff(cutoff)
        if rbf == "gaussian":
            self.radial_basis = GaussianRBF(n_rbf, cutoff)
        elif rbf == "bessel":
            self.radial_basis = BesselRBF(n_rbf, cutoff)
        else:
            raise ValueError(f"unknown radial basis {rbf!r} (gaussian, bessel)")
        self.embedding = nn.Embedding(max_z, n_atom_basis)

        def factory():
            return SchNetInteraction(n_atom_basis, n_rbf, self.n_filters, activation)

        if shared_interactions:
            one = factory()
            self.interactions = nn.ModuleList([one] * n_interactions)
        else:
            self.interactions = nn.ModuleList([factory() for _ in range(n_interactions)])

    def forward(
        self,
        numbers: torch.Tensor,  # [N]
        idx_i: torch.Tensor,  # [P]
        idx_j: torch.Tensor,  # [P]
        vec_ij: torch.Tensor,  # [P, 3]
    ) -> torch.Tensor:
        """Scalar atom features [N, F]."""
        d = torch.linalg.vector_norm(vec_ij, dim=-1)  # [P]
        phi = self.radial_basis(d)  # [P, R]
        fcut = self.cutoff_fn(d)[:, None]  # [P, 1]
        x = self.embedding(numbers)  # [N, F]
        for interaction in self.interactions:
            x = x + interaction(x, phi, fcut, idx_i, idx_j)
        return x
