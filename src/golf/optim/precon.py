"""Molecule-aware preconditioners for the batched L-BFGS (``lbfgs-precon`` preset).

A preconditioner P is a cheap symmetric positive definite model of the Hessian (eV/A^2). L-BFGS uses
P^-1 as its initial inverse Hessian instead of a scalar, so the directions that the model gets right
(stiff bond stretches vs. soft torsions) need no curvature pairs to be learnt first.

Two models, both built for all molecules at once as padded dense blocks and factored with ONE
batched Cholesky (``torch.linalg.cholesky_ex`` on [B, D, D]); P^-1 v is ONE ``torch.cholesky_solve``:

* ``"lindh"``: Lindh's model Hessian (R. Lindh et al., Chem. Phys. Lett. 241, 423 (1995)): every
  pair, bend and torsion is a spring on the internal coordinate q with force constant
  ``k_r rho_ij``, ``k_phi rho_ij rho_jk`` or ``k_tau rho_ij rho_jk rho_kl``,
  ``rho_ij = exp(alpha_ij (r_ref,ij^2 - r_ij^2))``, and P = sum_terms k b b^T with b = dq/dx (Wilson
  B-matrix rows), plus ``stab`` * identity and ``rigid`` * (projector on rigid translations and
  rotations). It is a full [3n, 3n] matrix per molecule: moving an atom along a bond is stiff,
  bending is softer and torsions are softest (~0.05 eV/A^2 vs ~40 eV/A^2). D = 3M. Used by
  ``lbfgs-precon``: about half the force evaluations of ``lbfgs`` on drug-like molecules.
* ``"exp"``: ASE's ``Exp`` preconditioner (Packwood et al., J. Chem. Phys. 144, 164109 (2016)):
  ``P_ij = -mu exp(-A (r_ij / r_NN - 1))`` for i != j within ``r_cut = cut * r_NN``,
  ``P_ii = -sum_j P_ij + mu c_stab``, the same on x, y and z. D = M. Made for condensed phases: being
  isotropic it also penalises rotations and torsions, so on molecules it saves only ~10%.

Padded layout: molecule b's atoms occupy slots 0..n_b-1 of M = max n_b; padding slots get identity
rows, so every molecule's block is independent of the others (batched == one at a time).
All builders work in float64 whatever the optimizer's dtype (the matrices are small).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from golf.units import BOHR_TO_ANG as BOHR
from golf.units import HARTREE_TO_EV as HARTREE

#: Lindh (1995) parameters by pair of periodic-table rows (1: H-He, 2: Li-Ne, 3: Na and heavier;
#: rows 4+ (Br, I) use row 3, as Lindh gives no values for them). alpha in bohr^-2, r_ref in bohr.
_LINDH_ALPHA = ((1.0000, 0.3949, 0.3949), (0.3949, 0.2800, 0.2800), (0.3949, 0.2800, 0.2800))
_LINDH_RREF = ((1.35, 2.10, 2.53), (2.10, 2.87, 3.40), (2.53, 3.40, 3.40))
LINDH_K_R = 0.45 * HARTREE / BOHR**2  # eV/A^2 per unit rho
LINDH_K_PHI = 0.15 * HARTREE  # eV/rad^2
LINDH_K_TAU = 0.005 * HARTREE  # eV/rad^2
#: Shortest bond length (A) used in bend and torsion derivatives. Their Wilson rows grow as 1/r, so
#: atoms pushed on top of each other (possible on analytic test potentials, never on a sane PES)
#: would otherwise make P arbitrarily stiff and freeze the optimizer.
LINDH_R_MIN = 0.5
#: Upper bound of rho (Lindh's rho is ~1 for single bonds, ~2.5 for double/triple bonds and grows
#: without bound as atoms are squeezed together, which only happens on test potentials).
LINDH_RHO_MAX = 3.0
#: Stretches with rho below this (force constant < 0.005 eV/A^2, a tenth of the default ``stab``;
#: pairs more than ~3-4 A apart) are left out, so the pair terms are sparse.
LINDH_STRETCH_RHO_MIN = 1e-4

PRECONS = ("lindh", "exp")


@dataclass
class Layout:
    """Where every atom of a batch sits in the padded [B, M] layout.

    Attributes:
        slot: index of each atom inside its molecule [N], int64.
        n_mols: B.
        m: M, atoms of the largest molecule.
        mask: [B, M] bool, real (not padding) slots.
    """

    slot: torch.Tensor
    n_mols: int
    m: int
    mask: torch.Tensor

    @classmethod
    def of(cls, mol_idx: torch.Tensor, n_mols: int) -> "Layout":
        """Layout of atoms with molecule indices ``mol_idx`` [N] (non-decreasing, 0..n_mols-1)."""
        counts = torch.bincount(mol_idx, minlength=n_mols)  # [B]
        first = torch.cumsum(counts, 0) - counts  # [B]
        slot = torch.arange(len(mol_idx), device=mol_idx.device) - first[mol_idx]
        m = int(counts.max()) if n_mols else 0
        mask = torch.arange(m, device=mol_idx.device)[None, :] < counts[:, None]
        return cls(slot, n_mols, m, mask)

    def pad(self, x: torch.Tensor, mol_idx: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
        """Per-atom [N, ...] -> padded [B, M, ...] (padding slots hold ``fill``)."""
        out = x.new_full((self.n_mols, self.m) + tuple(x.shape[1:]), fill)
        out[mol_idx, self.slot] = x
        return out

    def unpad(self, x: torch.Tensor, mol_idx: torch.Tensor) -> torch.Tensor:
        """Padded [B, M, ...] -> per-atom [N, ...]."""
        return x[mol_idx, self.slot]


def _row(numbers: torch.Tensor) -> torch.Tensor:
    """Periodic-table row index 0, 1, 2 (row 3 and heavier -> 2) of atomic numbers (any shape)."""
    return (numbers > 2).long() + (numbers > 10).long()


def _cholesky(p: torch.Tensor, stab: float) -> torch.Tensor:
    """Lower Cholesky factor of SPD matrices [B, D, D]; a molecule whose matrix is not numerically
    positive definite gets ``stab`` * 10^k added on its diagonal until it is (rare: model Hessians
    are PSD by construction and already carry ``stab``), and the identity if that never works
    (non-finite positions)."""
    eye = torch.eye(p.shape[-1], dtype=p.dtype, device=p.device)
    chol, info = torch.linalg.cholesky_ex(p)
    shift = max(stab, 1e-8)
    for _ in range(12):
        bad = (info > 0)[:, None, None]
        if not bool(bad.any()):
            return chol
        p = torch.where(bad, p + shift * eye, p)
        chol, info = torch.linalg.cholesky_ex(p)
        shift *= 10.0
    bad = (info > 0) | ~torch.isfinite(chol).flatten(1).all(1)  # [B]
    return torch.where(bad[:, None, None], eye, chol)


# ----------------------------------------------------------------------------------------- exp
def exp_matrix(
    numbers: torch.Tensor,
    positions: torch.Tensor,
    mask: torch.Tensor,
    mu: float = 10.0,
    A: float = 3.0,
    cut: float = 2.0,
    c_stab: float = 0.1,
) -> torch.Tensor:
    """ASE's Exp preconditioner for padded molecules.

    Args:
        numbers: atomic numbers [B, M] (unused, kept for a uniform signature).
        positions: padded coordinates [B, M, 3] (A).
        mask: [B, M] bool, real atoms.
        mu: energy scale (eV/A^2).
        A: decay exponent; cut: cutoff in units of r_NN, the molecule's largest nearest-neighbour
            distance (A); c_stab: diagonal stabilisation in units of mu.

    Returns:
        P [B, M, M] (eV/A^2), acting identically on x, y and z; identity on padding slots.
    """
    del numbers
    pair = mask[:, :, None] & mask[:, None, :]
    eye = torch.eye(mask.shape[1], dtype=torch.bool, device=mask.device)
    r = torch.cdist(positions, positions)  # [B, M, M]
    r_off = torch.where(pair & ~eye, r, torch.full_like(r, float("inf")))
    r_nn = r_off.min(-1).values.masked_fill(~mask, float("-inf")).max(-1).values  # [B]
    r_nn = torch.where(torch.isfinite(r_nn), r_nn, torch.ones_like(r_nn))[:, None, None]
    coeff = -mu * torch.exp(-A * (r_off / r_nn - 1.0))
    coeff = torch.where(r_off < cut * r_nn, coeff, torch.zeros_like(coeff))  # [B, M, M], 0 on diagonal
    diag = -coeff.sum(-1) + mu * c_stab  # [B, M]
    diag = torch.where(mask, diag, torch.ones_like(diag))
    return coeff + torch.diag_embed(diag)


# --------------------------------------------------------------------------------------- lindh
def _lindh_rho(numbers: torch.Tensor, r: torch.Tensor, pair: torch.Tensor) -> torch.Tensor:
    """rho_ij [B, M, M] (0 on the diagonal and padding) from numbers [B, M] and distances r [B, M, M] (A)."""
    row = _row(numbers)
    alpha = torch.tensor(_LINDH_ALPHA, dtype=r.dtype, device=r.device) / BOHR**2  # A^-2
    rref = torch.tensor(_LINDH_RREF, dtype=r.dtype, device=r.device) * BOHR  # A
    ri, rj = row[:, :, None], row[:, None, :]
    rho = torch.exp(alpha[ri, rj] * (rref[ri, rj] ** 2 - r**2)).clamp(max=LINDH_RHO_MAX)
    eye = torch.eye(r.shape[1], dtype=torch.bool, device=r.device)
    return torch.where(pair & ~eye, rho, torch.zeros_like(rho))


def _min_length(v: torch.Tensor) -> torch.Tensor:
    """Vectors [T, 3] stretched (direction kept) to at least ``LINDH_R_MIN`` (A)."""
    n = v.norm(dim=-1, keepdim=True)
    return v * (n.clamp(min=LINDH_R_MIN) / n.clamp(min=1e-12))


def _neighbour_table(nbr: torch.Tensor) -> torch.Tensor:
    """Padded neighbour lists [B, M, K] (slot indices, -1 = none) of a [B, M, M] bool adjacency."""
    B, M, _ = nbr.shape
    deg = nbr.sum(-1)  # [B, M]
    K = max(int(deg.max()) if nbr.numel() else 0, 1)
    b, i, j = torch.nonzero(nbr, as_tuple=True)  # sorted by (b, i)
    rank = torch.cumsum(nbr.long(), -1)[b, i, j] - 1  # position of j among i's neighbours
    table = torch.full((B, M, K), -1, dtype=torch.long, device=nbr.device)
    table[b, i, rank] = j
    return table


def _scatter_terms(
    h: torch.Tensor, b: torch.Tensor, atoms: torch.Tensor, grads: torch.Tensor, k: torch.Tensor
) -> None:
    """h[b] += k g g^T for terms with molecule ``b`` [T], atom slots ``atoms`` [T, m], Wilson rows
    ``grads`` [T, m, 3] (dq/dx) and force constants ``k`` [T]; h is [B, 3M, 3M], updated in place."""
    T, m = atoms.shape
    if T == 0:
        return
    D = h.shape[-1]
    idx = (3 * atoms[:, :, None] + torch.arange(3, device=atoms.device)).reshape(T, 3 * m)  # [T, 3m]
    g = grads.reshape(T, 3 * m)
    block = k[:, None, None] * g[:, :, None] * g[:, None, :]  # [T, 3m, 3m]
    flat = b[:, None, None] * D * D + idx[:, :, None] * D + idx[:, None, :]
    h.view(-1).index_add_(0, flat.reshape(-1), block.reshape(-1))


def lindh_matrix(
    numbers: torch.Tensor,
    positions: torch.Tensor,
    mask: torch.Tensor,
    stab: float = 0.05,
    bond_rho: float = 0.05,
    torsions: bool = True,
    rigid: float = 70.0,
) -> torch.Tensor:
    """Lindh's model Hessian of padded molecules.

    Args:
        numbers: atomic numbers [B, M] (padding: anything).
        positions: padded coordinates [B, M, 3] (A).
        mask: [B, M] bool, real atoms.
        stab: added to the diagonal (eV/A^2) so that P is positive definite (the model has zero
            modes for translations and rotations).
        bond_rho: bends and torsions are built over pairs with rho > bond_rho (the covalent graph;
            Lindh's rho is ~1 for bonds and ~0.01 for 1-3 pairs), stretches over all pairs with
            rho > ``LINDH_STRETCH_RHO_MIN``.
        torsions: include torsion terms.
        rigid: curvature given to rigid translations and rotations (eV/A^2; 70 is ASE's scalar
            Hessian guess). The model has none there, which is right for an invariant potential
            (its gradient has no rigid-body part, so this changes nothing) but would make steps along
            them huge under an external field such as a test potential.

    Returns:
        P [B, 3M, 3M] (eV/A^2), flat index 3 * slot + xyz; identity on padding slots.
    """
    B, M, _ = positions.shape
    dev, dt = positions.device, positions.dtype
    pair = mask[:, :, None] & mask[:, None, :]
    r = torch.cdist(positions, positions)  # [B, M, M]
    rho = _lindh_rho(numbers, r, pair)  # [B, M, M]
    tiny = torch.finfo(dt).tiny
    h = torch.zeros((B, 3 * M, 3 * M), dtype=dt, device=dev)

    # stretches i < j
    b, i, j = torch.nonzero(torch.triu(rho > LINDH_STRETCH_RHO_MIN, 1), as_tuple=True)
    if len(b):
        d = positions[b, i] - positions[b, j]
        u = d / d.norm(dim=-1, keepdim=True).clamp(min=1e-12)
        _scatter_terms(h, b, torch.stack([i, j], 1), torch.stack([u, -u], 1), LINDH_K_R * rho[b, i, j])

    nbr = rho > bond_rho  # [B, M, M]
    table = _neighbour_table(nbr)  # [B, M, K]
    K = table.shape[-1]

    # bends i-j-k centred on j, i < k, both neighbours of j
    pi, pk = torch.triu_indices(K, K, 1, device=dev)
    ti, tk = table[:, :, pi], table[:, :, pk]  # [B, M, P]
    ok = (ti >= 0) & (tk >= 0)
    b, j, p = torch.nonzero(ok, as_tuple=True)
    i, k = ti[b, j, p], tk[b, j, p]
    if len(b):
        xi, xj, xk = positions[b, i], positions[b, j], positions[b, k]
        e1, e2 = xi - xj, xk - xj
        l1, l2 = e1.norm(dim=-1, keepdim=True), e2.norm(dim=-1, keepdim=True)
        e1, e2 = e1 / l1.clamp(min=1e-12), e2 / l2.clamp(min=1e-12)
        l1, l2 = l1.clamp(min=LINDH_R_MIN), l2.clamp(min=LINDH_R_MIN)
        cos = (e1 * e2).sum(-1, keepdim=True).clamp(-1.0, 1.0)
        # sin >= 1e-8: at exactly 180 deg the bend direction is undefined and the term drops out
        sin = (1.0 - cos**2).clamp(min=0.0).sqrt().clamp(min=1e-8)
        gi = (cos * e1 - e2) / (l1 * sin)
        gk = (cos * e2 - e1) / (l2 * sin)
        grads = torch.stack([gi, -gi - gk, gk], 1)  # [T, 3, 3]
        kb = LINDH_K_PHI * rho[b, i, j] * rho[b, j, k]
        _scatter_terms(h, b, torch.stack([i, j, k], 1), grads, kb)

    # torsions i-j-k-l around every bond j < k, i a neighbour of j, l of k (i, l not in the bond, i != l)
    if torsions:
        b, j, k = torch.nonzero(torch.triu(nbr, 1), as_tuple=True)  # [E]
        ti, tl = table[b, j][:, :, None].expand(-1, K, K), table[b, k][:, None, :].expand(-1, K, K)
        jj, kk = j[:, None, None], k[:, None, None]
        ok = (ti >= 0) & (tl >= 0) & (ti != kk) & (tl != jj) & (ti != tl)
        e, pa, pb = torch.nonzero(ok, as_tuple=True)
        if len(e):
            b, j, k = b[e], j[e], k[e]
            i, l = ti[e, pa, pb], tl[e, pa, pb]
            xi, xj, xk, xl = positions[b, i], positions[b, j], positions[b, k], positions[b, l]
            F, G, Hv = _min_length(xi - xj), _min_length(xj - xk), _min_length(xl - xk)
            a, c = torch.linalg.cross(F, G), torch.linalg.cross(Hv, G)
            a2, c2 = (a * a).sum(-1, keepdim=True), (c * c).sum(-1, keepdim=True)
            gn = G.norm(dim=-1, keepdim=True)
            fg, hg = (F * G).sum(-1, keepdim=True), (Hv * G).sum(-1, keepdim=True)
            # Blondel-Karplus derivatives of the dihedral angle; they blow up as 1/sin of the
            # i-j-k or j-k-l bend, so the force constant is damped by sin^2 of both bends
            # (a2 = |F|^2 |G|^2 sin^2), which keeps each term finite near linear arrangements.
            ia, ic = 1.0 / a2.clamp(min=tiny), 1.0 / c2.clamp(min=tiny)
            gi = -gn * ia * a
            gl = gn * ic * c
            gj = gn * ia * a + fg / gn * ia * a - hg / gn * ic * c
            gk = -gn * ic * c - fg / gn * ia * a + hg / gn * ic * c
            grads = torch.stack([gi, gj, gk, gl], 1)  # [T, 4, 3]
            f2, h2, g2 = (F * F).sum(-1, keepdim=True), (Hv * Hv).sum(-1, keepdim=True), gn**2
            sin2 = (a2 / (f2 * g2).clamp(min=tiny)) * (c2 / (h2 * g2).clamp(min=tiny))
            kt = LINDH_K_TAU * rho[b, i, j] * rho[b, j, k] * rho[b, k, l] * sin2[:, 0].clamp(max=1.0)
            _scatter_terms(h, b, torch.stack([i, j, k, l], 1), grads, kt)

    diag = torch.where(mask, torch.full_like(r[:, :, 0], stab), torch.ones_like(r[:, :, 0]))  # [B, M]
    h.diagonal(dim1=1, dim2=2).add_(diag.repeat_interleave(3, dim=1))
    if rigid > 0:
        q = rigid_body_basis(positions, mask)  # [B, 3M, 6]
        h.baddbmm_(q, q.transpose(1, 2), alpha=rigid)
    return h


def rigid_body_basis(positions: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Orthonormal translations and rotations (about the centroid) of padded molecules.

    Args:
        positions: [B, M, 3] (A); mask: [B, M] bool, real atoms.
        eps: rotations whose squared norm is below eps * the largest (linear molecules, single atoms)
            are left out (zero columns).

    Returns:
        Q [B, 3M, 6] (dimensionless), columns 0-2 translations x, y, z, 3-5 rotations; zero on padding.
    """
    B, M, _ = positions.shape
    w = mask.to(positions.dtype)[..., None]  # [B, M, 1]
    n = w.sum(1, keepdim=True).clamp(min=1.0)  # [B, 1, 1]
    xc = (positions - (positions * w).sum(1, keepdim=True) / n) * w  # [B, M, 3]
    eye = torch.eye(3, dtype=positions.dtype, device=positions.device)
    trans = (w[..., None] * eye / n.sqrt()[..., None]).reshape(B, 3 * M, 3)  # [B, 3M, 3]
    rot = torch.linalg.cross(eye[None, None], xc[:, :, None, :].expand(B, M, 3, 3), dim=-1)  # [B, M, a, 3]
    rot = rot.transpose(2, 3).reshape(B, 3 * M, 3)  # [B, 3M, 3], column a: e_a x (x_i - centroid)
    gram, vec = torch.linalg.eigh(rot.transpose(1, 2) @ rot)  # [B, 3], [B, 3, 3]
    keep = gram > eps * gram.max(-1, keepdim=True).values.clamp(min=1e-300)
    scale = torch.where(keep, gram.clamp(min=1e-300).rsqrt(), torch.zeros_like(gram))
    return torch.cat([trans, rot @ vec * scale[:, None, :]], -1)


# ---------------------------------------------------------------------------------- the object
@dataclass
class Preconditioner:
    """A factored preconditioner for a batch: apply P^-1 to per-atom vectors.

    Attributes:
        kind: "lindh" or "exp".
        layout: the padded layout of the batch it was built for.
        chol: lower Cholesky factor of P, [B, 3M, 3M] ("lindh") or [B, M, M] ("exp"), float64.
    """

    kind: str
    layout: Layout
    chol: torch.Tensor

    def solve(self, v: torch.Tensor, mol_idx: torch.Tensor) -> torch.Tensor:
        """P^-1 v for per-atom vectors v [N, 3] (eV/A -> A), one batched triangular solve."""
        lay = self.layout
        x = lay.pad(v.to(self.chol.dtype), mol_idx)  # [B, M, 3]
        if self.kind == "exp":
            z = torch.cholesky_solve(x, self.chol)  # the same P on x, y, z: 3 right-hand sides
        else:
            z = torch.cholesky_solve(x.reshape(lay.n_mols, 3 * lay.m, 1), self.chol).reshape(lay.n_mols, lay.m, 3)
        return lay.unpad(z, mol_idx).to(v.dtype)


def build_preconditioner(
    kind: str,
    numbers: torch.Tensor,
    positions: torch.Tensor,
    mol_idx: torch.Tensor,
    n_mols: int,
    stab: float | None = None,
    mu: float = 10.0,
) -> Preconditioner:
    """Build and factor P for every molecule of a batch.

    Args:
        kind: "lindh" (model Hessian, [3n, 3n] per molecule) or "exp" (ASE's Exp, [n, n] per molecule).
        numbers: atomic numbers [N]; positions: [N, 3] (A); mol_idx: [N]; n_mols: B.
        stab: "lindh": diagonal shift (eV/A^2, default 0.05); "exp": c_stab (units of mu, default
            0.1 as in ASE).
        mu: "exp" only, energy scale (eV/A^2).
    """
    if kind not in PRECONS:
        raise ValueError(f"unknown preconditioner {kind!r}; choose one of {', '.join(PRECONS)}")
    lay = Layout.of(mol_idx, n_mols)
    x = lay.pad(positions.detach().to(torch.float64), mol_idx)  # [B, M, 3]
    z = lay.pad(numbers, mol_idx)  # [B, M]
    # a molecule with non-finite coordinates (failed, but still in a caller's state) gets P = identity;
    # its model Hessian is undefined and would make the batched eigh/Cholesky raise for everyone
    finite = torch.isfinite(x).flatten(1).all(1)  # [B]
    x = torch.where(finite[:, None, None], x, torch.zeros_like(x))
    if kind == "lindh":
        stab = 0.05 if stab is None else stab
        chol = _cholesky(lindh_matrix(z, x, lay.mask, stab=stab), stab)
    else:
        stab = 0.1 if stab is None else stab
        chol = _cholesky(exp_matrix(z, x, lay.mask, mu=mu, c_stab=stab), mu * stab)
    eye = torch.eye(chol.shape[-1], dtype=chol.dtype, device=chol.device)
    return Preconditioner(kind, lay, torch.where(finite[:, None, None], chol, eye))


class PreconCache:
    """The factored preconditioner of the last batch, reused molecule by molecule.

    A molecule keeps its factor while its id is in the batch and the positions its P was built at
    are unchanged; only the other molecules are built and factored (one batched call for all of
    them). So molecules leaving or joining the batch (``select``/``concat``, which share this
    object) or a few molecules crossing the rebuild threshold cost only their own factorization.
    """

    def __init__(self) -> None:
        self.ids: torch.Tensor | None = None  # [B0]
        self.positions: torch.Tensor | None = None  # [B0, M0, 3], float64, where each P was built
        self.value: Preconditioner | None = None

    def get(
        self,
        ids: torch.Tensor,
        build_positions: torch.Tensor,
        numbers: torch.Tensor,
        mol_idx: torch.Tensor,
        n_mols: int,
        kind: str,
        stab: float | None,
        mu: float,
    ) -> Preconditioner:
        """The preconditioner of molecules ``ids`` [B] (numbers [N], mol_idx [N]) built at
        ``build_positions`` [N, 3] (A)."""
        lay = Layout.of(mol_idx, n_mols)
        x = lay.pad(build_positions.detach().to(torch.float64), mol_idx)  # [B, M, 3]
        old = self.value
        reuse = torch.zeros(n_mols, dtype=torch.bool, device=x.device)
        src = torch.zeros(n_mols, dtype=torch.long, device=x.device)
        if old is not None and old.kind == kind and self.ids is not None and self.positions is not None:
            match = ids[:, None] == self.ids[None, :]  # [B, B0]
            src = match.long().argmax(1)
            m = min(lay.m, old.layout.m)
            same_n = lay.mask.sum(1) == old.layout.mask.sum(1)[src]
            same_x = (x[:, :m] == self.positions[src, :m]).flatten(1).all(1)
            reuse = match.any(1) & same_n & same_x
            if bool(reuse.all()) and lay.m == old.layout.m:
                same = n_mols == old.layout.n_mols and torch.equal(src, torch.arange(n_mols, device=x.device))
                if not same:
                    old = Preconditioner(kind, lay, old.chol[src])
                self.ids, self.positions, self.value = ids.clone(), x, old
                return old
        per_atom = 3 if kind == "lindh" else 1
        D = per_atom * lay.m
        chol = torch.eye(D, dtype=torch.float64, device=x.device).repeat(n_mols, 1, 1)  # identity on padding
        if bool(reuse.any()):
            # factors are identity beyond each molecule's atoms, so cropping or padding them is exact
            d = per_atom * min(lay.m, old.layout.m)  # type: ignore[union-attr]
            chol[reuse, :d, :d] = old.chol[src[reuse], :d, :d]  # type: ignore[union-attr]
        build = ~reuse
        if bool(build.any()):
            atoms = build[mol_idx]
            sub_idx = (torch.cumsum(build.long(), 0) - 1)[mol_idx[atoms]]
            sub = build_preconditioner(
                kind, numbers[atoms], build_positions[atoms], sub_idx, int(build.sum()), stab=stab, mu=mu
            )
            d = per_atom * sub.layout.m
            chol[build, :d, :d] = sub.chol
        self.ids, self.positions, self.value = ids.clone(), x, Preconditioner(kind, lay, chol)
        return self.value
