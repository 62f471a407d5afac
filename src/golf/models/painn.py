"""PaiNN (Schütt, Unke, Gastegger, ICML 2021) in plain PyTorch, parameterised exactly like
schnetpack 2.2.0's ``schnetpack.representation.PaiNN`` so that its state dicts load unchanged
(keys ``embedding``, ``radial_basis.freqs``, ``cutoff_fn.cutoff``, ``filter_net``,
``interactions.{t}.interatomic_context_net.{0,1}``, ``mixing.{t}.intraatomic_context_net.{0,1}``,
``mixing.{t}.mu_channel_mix``).

The math is the same; the evaluation order is tuned for CPU, where pair tensors [P, F] are memory-bound and a
training step with a force loss costs about eight forward passes (forward, the force backward with
create_graph, and the backward of that):
the cutoff-weighted filters come from small GEMMs ([phi*fcut, fcut] @ [W; b]^T, no separate multiply),
the mu_j term is formed per atom before the gather (x_m[j] * mu_j), the first interaction skips that term
(mu = 0 there), and every pair tensor is contiguous (no slices of wide pair tensors, whose backward
would allocate and fill full-size zeros).

The direction term of the vector messages, sum_j dir_ij (x) s_ij with s_ij = W_r(r_ij) x_r[j] [P, F], is a
matrix product per centre atom: the pairs of every atom i are laid out in rows of at most ``row_width`` slots
(``neighbour_rows``; unused slots hold zeros), and one ``torch.bmm`` of dir [L, 3, W] with s [L, W, F] gives
[L, 3, F], summed onto the atoms. So no [P, 3, F] tensor is formed for that term, in the forward or in either
backward (before, the outer product dir_ij (x) s_ij and the products and reductions of its two backwards were).
Rows of a fixed width bound the padding to W - 1 slots per atom whatever the spread of neighbour counts;
padding every atom to the largest count instead was ~10% slower for drug-like batches. The mu_j term stays a
gather, a broadcast multiply and an index_add: its filter depends on the feature, so it is no matrix product.
bench/bench_train.py (old and new code alternating in one process, 1 thread): training with the force loss
is 1.09-1.12x faster in conformations/s, quick and paper-size PaiNN, small and drug-like molecules (docs/results.md,
"Training speed"); energies and forces agree with the outer-product form to float rounding.

Shapes: N atoms, P pairs, F = n_atom_basis, R = n_rbf, W = row width, L rows. q [N, F] scalar features,
mu [N, 3, F] vectors.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from golf.models.ops import BesselRBF, CosineCutoff, Dense

__all__ = ["PaiNN", "PaiNNInteraction", "PaiNNMixing", "NeighbourRows", "neighbour_rows"]


class NeighbourRows(NamedTuple):
    """The pairs of a batch laid out in rows per centre atom (see ``neighbour_rows``)."""

    slot: torch.Tensor  # [P] int64 flat slot (row * width + column) of every pair
    row_atom: torch.Tensor  # [L] int64 centre atom of every row, non-decreasing
    n_rows: int  # L
    width: int  # W

    def to_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Pair values x [P, D] -> [L, W, D], zeros in unused slots (differentiable)."""
        out = x.new_zeros((self.n_rows * self.width, x.shape[1]))
        return out.index_copy(0, self.slot, x).view(self.n_rows, self.width, x.shape[1])


def neighbour_rows(idx_i: torch.Tensor, n_atoms: int, max_width: int = 16) -> NeighbourRows:
    """Lay out the pairs of every centre atom in consecutive rows of W slots.

    W = min(max_width, largest neighbour count) (at least 1). Atom i with n_i pairs owns ceil(n_i / W) rows;
    its pairs fill them in their order in ``idx_i`` (any order of pairs is accepted); an atom without pairs owns
    no row. Padding is at most W - 1 slots per atom.

    Args:
        idx_i: centre atom of every pair [P], int64.
        n_atoms: N.
        max_width: the row width cap.
    """
    device = idx_i.device
    n_pairs = idx_i.shape[0]
    counts = torch.bincount(idx_i, minlength=n_atoms)  # [N]
    width = max(1, min(int(max_width), int(counts.max()) if n_pairs else 1))
    order = torch.argsort(idx_i, stable=True)  # identity for the sorted pairs of golf.models.ops
    first = torch.cumsum(counts, 0) - counts  # [N] first sorted pair of each atom
    rank = torch.empty_like(idx_i)  # [P] position of the pair among its atom's pairs
    rank[order] = torch.arange(n_pairs, device=device) - first[idx_i[order]]
    rows_per_atom = torch.div(counts + width - 1, width, rounding_mode="floor")  # [N]
    n_rows = int(rows_per_atom.sum())
    row_start = torch.cumsum(rows_per_atom, 0) - rows_per_atom  # [N]
    slot = (row_start[idx_i] + torch.div(rank, width, rounding_mode="floor")) * width + rank % width
    row_atom = torch.repeat_interleave(torch.arange(n_atoms, device=device), rows_per_atom, output_size=n_rows)
    return NeighbourRows(slot, row_atom, n_rows, width)


class PaiNNInteraction(nn.Module):
    """Message block: context MLP on q, gathered at neighbours, filtered, summed onto centres."""

    def __init__(self, n_atom_basis: int, activation: str = "silu") -> None:
        super().__init__()
        self.n_atom_basis = n_atom_basis
        self.interatomic_context_net = nn.Sequential(
            Dense(n_atom_basis, n_atom_basis, activation=activation),
            Dense(n_atom_basis, 3 * n_atom_basis, activation=None),
        )

    def forward(
        self,
        q: torch.Tensor,  # [N, F]
        mu: torch.Tensor | None,  # [N, 3, F], or None while it is still all zero
        w_filter: torch.Tensor,  # [3F, R + 1] this block's filter weights with the bias as last column
        basis: torch.Tensor,  # [P, R + 1] [phi * fcut, fcut]
        dir_rows: torch.Tensor,  # [L, 3, W] unit vectors dir_ij in the slots of ``rows`` (zeros in unused slots)
        rows: NeighbourRows,
        idx_i: torch.Tensor,  # [P]
        idx_j: torch.Tensor,  # [P]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.n_atom_basis
        n = q.shape[0]
        x = self.interatomic_context_net(q)  # [N, 3F]
        x_q, x_r, x_m = x[:, :f], x[:, f : 2 * f], x[:, 2 * f :]
        w_q, w_r, w_m = w_filter[:f], w_filter[f : 2 * f], w_filter[2 * f :]
        # scalar messages: W_q(r_ij) * x_q[j]
        dq = (basis @ w_q.t()) * x_q.index_select(0, idx_j)  # [P, F]
        q = q.index_add(0, idx_i, dq)
        # vector messages: W_r(r_ij) dir_ij x_r[j]  (+ W_m(r_ij) x_m[j] mu_j). The dir term, sum_j dir_ij (x) s_ij,
        # is one batched matrix product over the rows of neighbours: [L, 3, W] @ [L, W, F]
        s = (basis @ w_r.t()) * x_r.index_select(0, idx_j)  # [P, F]
        v = torch.bmm(dir_rows, rows.to_rows(s))  # [L, 3, F]
        if mu is None:
            mu = q.new_zeros((n, 3, f)).index_add_(0, rows.row_atom, v)
        else:
            y = x_m[:, None, :] * mu  # [N, 3, F]
            dmu = (basis @ w_m.t())[:, None, :] * y.index_select(0, idx_j)  # [P, 3, F]
            mu = mu.index_add(0, rows.row_atom, v).index_add(0, idx_i, dmu)
        return q, mu


class PaiNNMixing(nn.Module):
    """Update block: mixes channels of mu and couples |V mu| and <V mu, W mu> into q."""

    def __init__(self, n_atom_basis: int, activation: str = "silu", epsilon: float = 1e-8) -> None:
        super().__init__()
        self.n_atom_basis = n_atom_basis
        self.intraatomic_context_net = nn.Sequential(
            Dense(2 * n_atom_basis, n_atom_basis, activation=activation),
            Dense(n_atom_basis, 3 * n_atom_basis, activation=None),
        )
        self.mu_channel_mix = Dense(n_atom_basis, 2 * n_atom_basis, activation=None, bias=False)
        self.epsilon = epsilon

    def forward(self, q: torch.Tensor, mu: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.n_atom_basis
        mu_mix = self.mu_channel_mix(mu)  # [N, 3, 2F]
        mu_v, mu_w = mu_mix[..., :f], mu_mix[..., f:]  # [N, 3, F] each
        mu_vn = torch.sqrt(mu_v.square().sum(1) + self.epsilon)  # [N, F]
        x = self.intraatomic_context_net(torch.cat([q, mu_vn], -1))  # [N, 3F]
        dq, dmu, dqmu = x[:, :f], x[:, f : 2 * f], x[:, 2 * f :]
        q = q + dq + dqmu * (mu_v * mu_w).sum(1)
        mu = torch.addcmul(mu, dmu[:, None, :], mu_w)
        return q, mu


class PaiNN(nn.Module):
    """PaiNN representation: (numbers, pairs) -> scalar features q [N, F].

    Args:
        n_atom_basis: F (128 in GOLF).
        n_interactions: number of interaction + mixing blocks (3).
        n_rbf: Bessel radial functions (50).
        cutoff: Angstrom (5.0), cosine cutoff.
        shared_interactions: share block weights across interactions (schnetpack option).
        shared_filters: one filter network for all interactions (schnetpack option).
        activation: "silu" (schnetpack's default).
        epsilon: stabiliser inside the vector norm.
        max_z: size of the element embedding (100, as in schnetpack).
    """

    def __init__(
        self,
        n_atom_basis: int = 128,
        n_interactions: int = 3,
        n_rbf: int = 50,
        cutoff: float = 5.0,
        shared_interactions: bool = False,
        shared_filters: bool = False,
        activation: str = "silu",
        epsilon: float = 1e-8,
        max_z: int = 100,
    ) -> None:
        super().__init__()
        self.n_atom_basis = n_atom_basis
        self.n_interactions = n_interactions
        self.cutoff = float(cutoff)
        #: cap on the slots per row of neighbours (``neighbour_rows``); speed only, not part of the model
        self.row_width = 16
        self.shared_filters = shared_filters
        self.cutoff_fn = CosineCutoff(cutoff)
        self.radial_basis = BesselRBF(n_rbf, cutoff)
        self.embedding = nn.Embedding(max_z, n_atom_basis)
        n_filt = 3 * n_atom_basis * (1 if shared_filters else n_interactions)
        self.filter_net = Dense(n_rbf, n_filt, activation=None)

        def blocks(factory):
            if shared_interactions:
                one = factory()
                return nn.ModuleList([one] * n_interactions)
            return nn.ModuleList([factory() for _ in range(n_interactions)])

        self.interactions = blocks(lambda: PaiNNInteraction(n_atom_basis, activation))
        self.mixing = blocks(lambda: PaiNNMixing(n_atom_basis, activation, epsilon))

    def forward(
        self,
        numbers: torch.Tensor,  # [N] int64
        idx_i: torch.Tensor,  # [P]
        idx_j: torch.Tensor,  # [P]
        vec_ij: torch.Tensor,  # [P, 3] positions[j] - positions[i], Angstrom
    ) -> torch.Tensor:
        """Scalar atom features q [N, F]."""
        f = self.n_atom_basis
        d = torch.linalg.vector_norm(vec_ij, dim=-1)  # [P]
        dir_ij = vec_ij / d[:, None]  # [P, 3]
        fcut = self.cutoff_fn(d)[:, None]  # [P, 1]
        # filters = (phi W^T + b) * fcut  ==  [phi * fcut, fcut] @ [W, b]^T  (one GEMM per block)
        basis = torch.cat([self.radial_basis(d) * fcut, fcut], 1)  # [P, R + 1]
        w_aug = torch.cat([self.filter_net.weight, self.filter_net.bias[:, None]], 1)  # [T*3F, R+1]

        q = self.embedding(numbers)  # [N, F]
        rows = neighbour_rows(idx_i, q.shape[0], self.row_width)
        dir_rows = rows.to_rows(dir_ij).transpose(1, 2)  # [L, 3, W]
        mu = None
        for t, (interaction, mixing) in enumerate(zip(self.interactions, self.mixing)):
            start = 0 if self.shared_filters else 3 * f * t
            q, mu = interaction(q, mu, w_aug[start : start + 3 * f], basis, dir_rows, rows, idx_i, idx_j)
            q, mu = mixing(q, mu)
        return q
