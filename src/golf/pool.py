"""The default molecule pool (RDKit's shipped NCI subset, filtered) and the hash split by molecule.

NumPy + RDKit, never torch. Molecule ids are NCI ids; the train/test side of a molecule depends only on
``(seed, mol_id)`` (see ``hash_split``).
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from typing import Any, Sequence

from golf.chem import quiet_rdkit
from golf.conformation import SUPPORTED_ELEMENTS
from golf.errors import InputError, SettingError
from golf.presets import Molecules

#: Default heavy-atom range of the NCI pool (``golf.presets.Molecules``).
DEFAULT_MIN_HEAVY = Molecules.min_heavy
DEFAULT_MAX_HEAVY = Molecules.max_heavy


def nci_path() -> str:
    """Path of RDKit's shipped NCI subset (``first_5K.smi``, lines ``SMILES<TAB>id``)."""
    from rdkit import RDConfig

    return os.path.join(RDConfig.RDDataDir, "NCI", "first_5K.smi")


def _pool_reject_reason(mol: Any, min_heavy: int, max_heavy: int) -> str | None:
    """Why a molecule does not belong in the default pool (None = accepted)."""
    from rdkit import Chem
    from rdkit.Chem import rdForceFieldHelpers

    heavy = mol.GetNumHeavyAtoms()
    if heavy < min_heavy or heavy > max_heavy:
        return "heavy atoms"
    if any(a.GetAtomicNum() not in SUPPORTED_ELEMENTS for a in mol.GetAtoms()):
        return "element"
    if any(a.GetIsotope() for a in mol.GetAtoms()):
        return "isotope"
    if len(Chem.GetMolFrags(mol)) != 1:
        return "fragments"
    if sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms()):
        return "radical"
    charged = [a for a in mol.GetAtoms() if a.GetFormalCharge() != 0]
    if sum(a.GetFormalCharge() for a in charged) != 0:
        return "net charge"
    # Formal charges are accepted only as charge-separated pairs on directly bonded atoms
    # (nitro [N+](=O)[O-], N-oxides, azides, S+-O-): neutral valence notations. Zwitterions with
    # separated charges (e.g. [NH3+]...C(=O)[O-]) are rejected: they are not gas-phase species.
    for a in charged:
        if abs(a.GetFormalCharge()) != 1:
            return "charged atom"
        if not any(nb.GetFormalCharge() == -a.GetFormalCharge() for nb in a.GetNeighbors()):
            return "zwitterion"
    mol_h = Chem.AddHs(mol)
    if not rdForceFieldHelpers.MMFFHasAllMoleculeParams(mol_h):
        return "MMFF"
    return None


@lru_cache(maxsize=1)
def _nci_records() -> tuple[tuple[int, str, int], ...]:
    """(NCI id, SMILES as in the file, heavy-atom count) of every parseable NCI molecule."""
    from rdkit import Chem

    out = []
    with quiet_rdkit(), open(nci_path()) as fh:
        for line in fh:
            parts = line.split()
            if len(parts) < 2:
                continue
            try:
                mol_id = int(parts[1])
            except ValueError:
                continue
            mol = Chem.MolFromSmiles(parts[0])
            if mol is not None:
                out.append((mol_id, parts[0], mol.GetNumHeavyAtoms()))
    return tuple(out)


_NCI_VERDICT: dict[int, str | None] = {}  # NCI id -> canonical SMILES if accepted, else None


@lru_cache(maxsize=8)
def _nci_pool_cached(min_heavy: int, max_heavy: int) -> tuple[tuple[int, str], ...]:
    from rdkit import Chem

    out, seen = [], set()
    with quiet_rdkit():
        for mol_id, smi, heavy in _nci_records():
            if heavy < min_heavy or heavy > max_heavy:
                continue
            if mol_id not in _NCI_VERDICT:
                mol = Chem.MolFromSmiles(smi)
                ok = _pool_reject_reason(mol, 0, 10**9) is None
                _NCI_VERDICT[mol_id] = Chem.MolToSmiles(mol) if ok else None
            canonical = _NCI_VERDICT[mol_id]
            # the file lists some molecules under two NCI ids; the split is by id, so a twin could land
            # in train and test at once (4 of the 13 twins with 4-9 heavy atoms did): keep the first id
            if canonical is not None and canonical not in seen:
                seen.add(canonical)
                out.append((mol_id, canonical))
    return tuple(out)


def nci_pool(
    min_heavy: int = DEFAULT_MIN_HEAVY, max_heavy: int = DEFAULT_MAX_HEAVY
) -> list[tuple[int, str]]:
    """The default molecule pool: RDKit's NCI ``first_5K.smi`` filtered.

    Kept: net-neutral (formal charges only as bonded +/- pairs such as nitro groups), closed-shell,
    single-fragment molecules of H C N O F S Cl Br, no isotopes, ``min_heavy <= heavy atoms <=
    max_heavy``, all MMFF94 parameters available. Molecules that ETKDG cannot embed are skipped later,
    when their conformers are generated.

    Returns:
        ``[(mol_id, canonical SMILES)]`` in file order, one entry per canonical (isomeric) SMILES: a
        molecule the file lists under several NCI ids keeps the first; mol_id is the NCI id.
    """
    if min_heavy > max_heavy:
        raise SettingError("min_heavy", f"{min_heavy} is larger than max_heavy {max_heavy}")
    return list(_nci_pool_cached(int(min_heavy), int(max_heavy)))


def _unit_hash(seed: int, mol_id: int) -> float:
    h = hashlib.blake2b(f"golf-split:{int(seed)}:{int(mol_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def hash_split(
    mol_ids: Sequence[int], test_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """Deterministic train/test split by molecule.

    Each molecule is assigned by a hash of ``(seed, mol_id)``: it is in the test set iff its hash
    (uniform in [0, 1)) is below ``test_fraction``. The assignment of a molecule therefore does not
    depend on which other molecules are in the list (e.g. a different heavy-atom range), so a
    molecule can never be in train for one pool and in test for another with the same seed.

    Returns ``(train_ids, test_ids)``, each in input order without duplicates.
    """
    if not 0.0 <= test_fraction <= 1.0:
        raise InputError(f"test fraction must be in [0, 1], got {test_fraction}")
    train, test, seen = [], [], set()
    for m in mol_ids:
        m = int(m)
        if m in seen:
            continue
        seen.add(m)
        (test if _unit_hash(seed, m) < test_fraction else train).append(m)
    return train, test


def select_pool_molecules(
    n: int | None,
    *,
    split: str = "train",
    test_fraction: float = 0.2,
    seed: int = 0,
    min_heavy: int = DEFAULT_MIN_HEAVY,
    max_heavy: int = DEFAULT_MAX_HEAVY,
) -> list[tuple[int, str]]:
    """Molecules of the NCI pool in one split, in a seeded random order; the first ``n`` (all if None).

    The order is a permutation by the same per-molecule hash, so asking for more molecules extends the
    list (a smaller request is a prefix of a larger one).
    """
    pool = nci_pool(min_heavy, max_heavy)
    if split not in ("train", "test", "all"):
        raise InputError(f"unknown split {split!r} (train, test or all)")
    if split != "all":
        train, test = hash_split([m for m, _ in pool], test_fraction, seed)
        keep = set(train if split == "train" else test)
        pool = [p for p in pool if p[0] in keep]
    order = sorted(
        pool,
        key=lambda p: hashlib.blake2b(f"golf-order:{seed}:{p[0]}".encode(), digest_size=8).digest(),
    )
    return order if n is None else order[: int(n)]
