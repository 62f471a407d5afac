"""Molecules and conformers: reading, writing, the NCI default pool, conformer generation, splits.

Everything here is NumPy + RDKit + ASE (never torch), so oracle worker processes may import it.

Formats (chosen by file extension):

=============  ======  =======  ==========================================================
extension      read    write    notes
=============  ======  =======  ==========================================================
.smi / .txt    yes     no       one SMILES per line, optional id/name column (whitespace)
.csv           yes     no       column ``smiles`` (case-insensitive) or the first column
.sdf / .mol    yes     .sdf     bonds kept; 2D/0D records get ETKDG conformers
.xyz / .extxyz yes     yes      bonds perceived with RDKit ``rdDetermineBonds``
.db            yes     yes      ASE SQLite database (golf rows or plain ASE rows)
=============  ======  =======  ==========================================================

Every returned :class:`~golf.conformation.Conformation` has ``smiles``, ``mol_id``, ``conf_id`` and
``molblock`` (the mol block of the hydrogen-explicit RDKit molecule, atoms in the same order as
``numbers``/``positions``). Problems with the input raise :class:`~golf.errors.InputError` with one
line naming the file, the record and the reason.
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from golf.conformation import SUPPORTED_ELEMENTS, Conformation
from golf.errors import InputError
from golf.io import atomic_path

#: Default heavy-atom range of the NCI pool.
DEFAULT_MIN_HEAVY = 8
DEFAULT_MAX_HEAVY = 30

SMILES_EXTS = (".smi", ".txt", ".smiles")
CSV_EXTS = (".csv",)
SDF_EXTS = (".sdf", ".mol", ".sd")
XYZ_EXTS = (".xyz", ".extxyz")
DB_EXTS = (".db",)

_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 16: "S", 17: "Cl", 35: "Br"}


# ----------------------------------------------------------------------------------------------
# small utilities


@contextlib.contextmanager
def _quiet_rdkit() -> Iterator[None]:
    """Silence RDKit's C++ logging (parse errors would otherwise spill onto stderr)."""
    from rdkit import rdBase

    blocker = rdBase.BlockLogs()
    try:
        yield
    finally:
        del blocker


def _rng(seed: int, mol_id: int) -> np.random.Generator:
    """A generator that depends only on (seed, mol_id), so results do not depend on order."""
    return np.random.default_rng(np.random.SeedSequence([int(seed) % 2**32, int(mol_id) % 2**32]))


def _rdkit_seed(seed: int, mol_id: int) -> int:
    h = hashlib.blake2b(f"{int(seed)}:{int(mol_id)}".encode(), digest_size=4).digest()
    return int.from_bytes(h, "little") % (2**31 - 1)


def geometry_hash(numbers: np.ndarray, positions: np.ndarray, n: int = 12) -> str:
    """A short stable hash of a geometry (positions rounded to 1e-5 A). Used in record keys."""
    pos = np.round(np.asarray(positions, dtype=np.float64), 5) + 0.0  # +0.0 folds -0.0 into 0.0
    h = hashlib.blake2b(digest_size=16)
    h.update(np.asarray(numbers, dtype=np.int64).tobytes())
    h.update(pos.tobytes())
    return h.hexdigest()[:n]


def record_key(conf: Conformation) -> str:
    """The unique record key of a conformation: ``"{mol_id}:{conf_id}:{geometry hash}"``."""
    return f"{conf.mol_id}:{conf.conf_id}:{geometry_hash(conf.numbers, conf.positions)}"


# ----------------------------------------------------------------------------------------------
# RDKit <-> Conformation


def check_molecule(
    mol: Any, where: str, charge: int | None = None, multiplicity: int | None = None
) -> tuple[int, int]:
    """Check elements, charge and spin of an RDKit molecule (hydrogens explicit or implicit).

    Returns ``(charge, multiplicity)``. Charged molecules are rejected unless ``charge`` is given and
    equals the net formal charge; radicals unless ``multiplicity`` is given (and consistent with the
    electron count). Raises InputError with ``where`` as prefix.
    """
    symbols = set()
    for atom in mol.GetAtoms():
        if atom.GetAtomicNum() not in SUPPORTED_ELEMENTS:
            symbols.add(atom.GetSymbol())
    if symbols:
        raise InputError(
            f"{where}: unsupported element {', '.join(sorted(symbols))} "
            f"(supported: {' '.join(_SYMBOLS[z] for z in SUPPORTED_ELEMENTS)})"
        )
    net = sum(a.GetFormalCharge() for a in mol.GetAtoms())
    if charge is None:
        if net != 0:
            raise InputError(
                f"{where}: charged molecule (net charge {net:+d}); pass --charge {net} to accept it"
            )
        charge = 0
    elif int(charge) != net:
        raise InputError(
            f"{where}: --charge {charge} does not match the net formal charge {net:+d} of the molecule"
        )
    n_rad = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    # explicit H atoms count through their Z, implicit ones through GetTotalNumHs of heavy atoms
    n_elec = sum(a.GetAtomicNum() + a.GetTotalNumHs() for a in mol.GetAtoms()) - int(charge)
    if multiplicity is None:
        if n_rad:
            raise InputError(
                f"{where}: radical ({n_rad} unpaired electron(s)); pass --multiplicity {n_rad + 1} to accept it"
            )
        multiplicity = 1
    else:
        multiplicity = int(multiplicity)
        if multiplicity < 1 or (multiplicity - 1) % 2 != n_elec % 2:
            raise InputError(
                f"{where}: multiplicity {multiplicity} impossible with {n_elec} electrons"
            )
    return int(charge), int(multiplicity)


def _canonical_smiles(mol: Any) -> str:
    from rdkit import Chem

    try:
        return Chem.MolToSmiles(Chem.RemoveHs(mol))
    except Exception:  # RemoveHs can fail on odd valences; fall back to the explicit form
        return Chem.MolToSmiles(mol)


def mol_to_conformations(
    mol_h: Any,
    *,
    mol_id: int,
    smiles: str | None = None,
    charge: int = 0,
    multiplicity: int = 1,
    conf_ids: Sequence[int] | None = None,
    first_conf_id: int = 0,
    info: dict[str, Any] | None = None,
) -> list[Conformation]:
    """Conformations from the RDKit conformers of a hydrogen-explicit molecule (atom order kept)."""
    from rdkit import Chem

    numbers = np.array([a.GetAtomicNum() for a in mol_h.GetAtoms()], dtype=np.int64)
    smiles = smiles if smiles is not None else _canonical_smiles(mol_h)
    rd_ids = list(conf_ids) if conf_ids is not None else [c.GetId() for c in mol_h.GetConformers()]
    out = []
    for k, cid in enumerate(rd_ids):
        pos = np.array(mol_h.GetConformer(int(cid)).GetPositions(), dtype=np.float64)
        out.append(
            Conformation(
                numbers=numbers.copy(),
                positions=pos,
                smiles=smiles,
                mol_id=int(mol_id),
                conf_id=first_conf_id + k,
                charge=int(charge),
                multiplicity=int(multiplicity),
                molblock=Chem.MolToMolBlock(mol_h, confId=int(cid)),
                info=dict(info or {}),
            )
        )
    return out


def conformation_to_mol(conf: Conformation) -> Any:
    """An RDKit molecule (hydrogens explicit, bonds from ``molblock`` or perceived) at ``conf.positions``."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    mol = None
    if conf.molblock:
        with _quiet_rdkit():
            mol = Chem.MolFromMolBlock(conf.molblock, removeHs=False, sanitize=True)
        if mol is not None and mol.GetNumAtoms() != conf.n_atoms:
            mol = None
    if mol is None:
        mol = _perceive_bonds(conf.numbers, conf.positions, conf.charge, conf.multiplicity, "conformation")
    mol = Chem.Mol(mol)
    mol.RemoveAllConformers()
    c = Chem.Conformer(conf.n_atoms)
    for i, (x, y, z) in enumerate(conf.positions):
        c.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
    c.Set3D(True)
    mol.AddConformer(c, assignId=True)
    return mol


def _perceive_bonds(
    numbers: np.ndarray, positions: np.ndarray, charge: int, multiplicity: int | None, where: str
) -> Any:
    """Hydrogen-explicit RDKit molecule with bonds (and bond orders) perceived from 3D coordinates."""
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds
    from rdkit.Geometry import Point3D

    rw = Chem.RWMol()
    for z in numbers:
        rw.AddAtom(Chem.Atom(int(z)))
    c = Chem.Conformer(len(numbers))
    for i, (x, y, zz) in enumerate(positions):
        c.SetAtomPosition(i, Point3D(float(x), float(y), float(zz)))
    c.Set3D(True)
    rw.AddConformer(c, assignId=True)
    mol = rw.GetMol()
    with _quiet_rdkit():
        try:
            rdDetermineBonds.DetermineBonds(mol, charge=int(charge))
        except Exception as exc:
            if multiplicity is not None and multiplicity > 1:
                # open-shell: bond orders are undefined for the Hueckel/xyz2mol assignment;
                # connectivity is enough for oracles that take only coordinates.
                mol = rw.GetMol()
                rdDetermineBonds.DetermineConnectivity(mol)
            else:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(
                    f"{where}: could not assign bonds with total charge {charge} ({reason}); "
                    "a charged or radical structure needs --charge/--multiplicity"
                ) from None
    return mol


# ----------------------------------------------------------------------------------------------
# conformer generation


def parse_smiles(smiles: str, where: str = "SMILES") -> Any:
    """Parse and sanitize a SMILES string; InputError with RDKit's reason if it is invalid."""
    from rdkit import Chem

    smiles = smiles.strip()
    if not smiles:
        raise InputError(f"{where}: empty SMILES")
    with _quiet_rdkit():
        mol = Chem.MolFromSmiles(smiles, sanitize=False)
        if mol is None:
            raise InputError(f"{where}: invalid SMILES {smiles!r} (cannot parse)")
        try:
            Chem.SanitizeMol(mol)
        except Exception as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{where}: invalid SMILES {smiles!r} ({reason})") from None
    if mol.GetNumAtoms() == 0:
        raise InputError(f"{where}: empty molecule {smiles!r}")
    return mol


def generate_conformers(
    smiles_or_mol: Any,
    n: int,
    seed: int,
    displacement: float = 0.0,
    *,
    mol_id: int = -1,
    charge: int | None = None,
    multiplicity: int | None = None,
    rng: np.random.Generator | None = None,
    info: dict[str, Any] | None = None,
) -> list[Conformation]:
    """``n`` ETKDGv3 conformers of a molecule (SMILES string or RDKit Mol).

    Args:
        smiles_or_mol: SMILES or RDKit molecule (hydrogens are added).
        n: number of conformers requested (fewer may be returned if RDKit cannot embed them all).
        seed: ETKDG random seed (combined with ``mol_id`` so each molecule gets its own stream).
        displacement: standard deviation (Angstrom) of a Gaussian displacement added to every
            coordinate after embedding; 0 = none.
        mol_id: molecule id stored on every conformation.
        charge, multiplicity: accept charged / open-shell molecules (see ``check_molecule``).
        rng: generator for the displacement; default depends only on (seed, mol_id).

    Raises InputError if the molecule is invalid or cannot be embedded at all.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    if isinstance(smiles_or_mol, str):
        mol = parse_smiles(smiles_or_mol, where=f"molecule {mol_id}")
    else:
        mol = Chem.Mol(smiles_or_mol)
    where = f"molecule {mol_id}"
    charge, multiplicity = check_molecule(mol, where, charge, multiplicity)
    smiles = _canonical_smiles(mol)
    mol_h = Chem.AddHs(mol)
    mol_h.RemoveAllConformers()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = _rdkit_seed(seed, mol_id)
    params.numThreads = 1
    with _quiet_rdkit():
        ids = list(rdDistGeom.EmbedMultipleConfs(mol_h, numConfs=int(n), params=params))
        if not ids:
            params.useRandomCoords = True
            ids = list(rdDistGeom.EmbedMultipleConfs(mol_h, numConfs=int(n), params=params))
    if not ids:
        raise InputError(f"{where}: ETKDG could not embed {smiles}")
    confs = mol_to_conformations(
        mol_h, mol_id=mol_id, smiles=smiles, charge=charge, multiplicity=multiplicity,
        conf_ids=ids, info=info,
    )
    if displacement and displacement > 0:
        rng = rng if rng is not None else _rng(seed, mol_id)
        for c in confs:
            c.positions = c.positions + rng.normal(0.0, float(displacement), size=c.positions.shape)
    return confs


# ----------------------------------------------------------------------------------------------
# the NCI default pool and splits


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
    with _quiet_rdkit(), open(nci_path()) as fh:
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

    out = []
    with _quiet_rdkit():
        for mol_id, smi, heavy in _nci_records():
            if heavy < min_heavy or heavy > max_heavy:
                continue
            if mol_id not in _NCI_VERDICT:
                mol = Chem.MolFromSmiles(smi)
                ok = _pool_reject_reason(mol, 0, 10**9) is None
                _NCI_VERDICT[mol_id] = Chem.MolToSmiles(mol) if ok else None
            if _NCI_VERDICT[mol_id] is not None:
                out.append((mol_id, _NCI_VERDICT[mol_id]))
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
        ``[(mol_id, canonical SMILES)]`` in file order; mol_id is the NCI id.
    """
    if min_heavy > max_heavy:
        raise InputError(f"--min-heavy {min_heavy} is larger than --max-heavy {max_heavy}")
    return list(_nci_pool_cached(int(min_heavy), int(max_heavy)))


def _unit_hash(seed: int, mol_id: int) -> float:
    h = hashlib.blake2b(f"golf-split:{int(seed)}:{int(mol_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "little") / 2.0**64


def split_by_molecule(
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
        train, test = split_by_molecule([m for m, _ in pool], test_fraction, seed)
        keep = set(train if split == "train" else test)
        pool = [p for p in pool if p[0] in keep]
    order = sorted(
        pool,
        key=lambda p: hashlib.blake2b(f"golf-order:{seed}:{p[0]}".encode(), digest_size=8).digest(),
    )
    return order if n is None else order[: int(n)]


# ----------------------------------------------------------------------------------------------
# readers


def _assign_ids(confs: list[Conformation]) -> None:
    """Fill missing mol_id (by canonical SMILES, in order of first appearance) and conf_id."""
    by_smiles: dict[str, int] = {}
    used = {c.mol_id for c in confs if c.mol_id >= 0}
    next_id = 0
    counters: dict[int, int] = {}
    for c in confs:
        if c.mol_id < 0:
            s = c.smiles or f"#{len(by_smiles)}"
            if s not in by_smiles:
                while next_id in used:
                    next_id += 1
                by_smiles[s] = next_id
                used.add(next_id)
            c.mol_id = by_smiles[s]
        if c.conf_id < 0:
            c.conf_id = counters.get(c.mol_id, 0)
        counters[c.mol_id] = max(counters.get(c.mol_id, 0), c.conf_id + 1)


def _check_geometry(conf: Conformation, where: str) -> None:
    problem = conf.geometry_problem()
    if problem is not None:
        raise InputError(f"{where}: {problem}")


def _read_smiles_records(path: Path) -> list[tuple[str, str | None, int]]:
    """(smiles, id/name or None, line number) from a .smi/.txt or .csv file."""
    text = path.read_text(errors="replace")
    records: list[tuple[str, str | None, int]] = []
    if path.suffix.lower() in CSV_EXTS:
        rows = list(csv.reader(text.splitlines()))
        rows = [(i + 1, r) for i, r in enumerate(rows) if r and any(x.strip() for x in r)]
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0][1]]
        s_col, id_col = 0, None
        if "smiles" in header:
            s_col = header.index("smiles")
            for name in ("mol_id", "id", "name"):
                if name in header:
                    id_col = header.index(name)
                    break
            rows = rows[1:]
        elif len(header) > 1:
            id_col = 1
        for lineno, r in rows:
            if s_col >= len(r):
                raise InputError(f"{path}: line {lineno}: no SMILES column")
            ident = r[id_col].strip() if id_col is not None and id_col < len(r) else None
            records.append((r[s_col].strip(), ident or None, lineno))
        return records
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if lineno == 1 and parts[0].lower() == "smiles":
            continue
        records.append((parts[0], parts[1] if len(parts) > 1 else None, lineno))
    return records


def _read_smiles_file(
    path: Path, conformers: int, seed: int, charge: int | None, multiplicity: int | None,
    displacement: float,
) -> list[Conformation]:
    records = _read_smiles_records(path)
    if not records:
        raise InputError(f"{path}: no molecules in file")
    # validate everything first: one bad record fails the whole read before any embedding
    mols = []
    for k, (smi, ident, lineno) in enumerate(records):
        where = f"{path}: line {lineno}"
        mol = parse_smiles(smi, where)
        check_molecule(mol, where, charge, multiplicity)
        mol_id, name = k, None
        if ident is not None:
            try:
                mol_id = int(ident)
            except ValueError:
                name = ident
        mols.append((mol, mol_id, name, where))
    ids = [m[1] for m in mols]
    if len(set(ids)) != len(ids):
        raise InputError(f"{path}: duplicate molecule ids")
    out: list[Conformation] = []
    for mol, mol_id, name, where in mols:
        try:
            confs = generate_conformers(
                mol, conformers, seed, displacement, mol_id=mol_id, charge=charge,
                multiplicity=multiplicity, info={"name": name} if name else None,
            )
        except InputError as exc:
            raise InputError(f"{where}: {str(exc).split(': ', 1)[-1]}") from None
        out.extend(confs)
    return out


def _read_sdf(
    path: Path, conformers: int, seed: int, charge: int | None, multiplicity: int | None,
    displacement: float,
) -> list[Conformation]:
    from rdkit import Chem

    text = path.read_text(errors="replace")
    if not text.strip():
        raise InputError(f"{path}: empty file")
    out: list[Conformation] = []
    with _quiet_rdkit():
        supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
        n_records = len(supplier)
        if n_records == 0:
            raise InputError(f"{path}: no molecules in file")
        for i in range(n_records):
            where = f"{path}: record {i + 1}"
            try:
                mol = supplier[i]
            except Exception:
                mol = None
            if mol is None:
                raise InputError(f"{where}: unreadable or truncated molecule")
            rec_charge = charge
            if mol.HasProp("charge") and charge is None:
                rec_charge = int(mol.GetProp("charge"))
            rec_mult = multiplicity
            if mol.HasProp("multiplicity") and multiplicity is None:
                rec_mult = int(mol.GetProp("multiplicity"))
            q, m = check_molecule(mol, where, rec_charge, rec_mult)
            props = mol.GetPropsAsDict()
            mol_id = int(props["mol_id"]) if "mol_id" in props else -1
            conf_id = int(props["conf_id"]) if "conf_id" in props else -1
            name = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
            info = {"name": name} if name else {}
            has_3d = mol.GetNumConformers() > 0 and mol.GetConformer().Is3D()
            if not has_3d:
                confs = generate_conformers(
                    Chem.RemoveHs(mol), conformers, seed, displacement,
                    mol_id=mol_id if mol_id >= 0 else i, charge=q, multiplicity=m, info=info,
                )
                out.extend(confs)
                continue
            if any(a.GetAtomicNum() != 1 and a.GetTotalNumHs() > 0 for a in mol.GetAtoms()):
                mol = Chem.AddHs(mol, addCoords=True)
            c = mol_to_conformations(mol, mol_id=mol_id, charge=q, multiplicity=m, info=info)[0]
            c.conf_id = conf_id
            _check_geometry(c, where)
            out.append(c)
    _assign_ids(out)
    return out


def _frames_xyz(path: Path) -> list[Any]:
    import ase.io

    text = path.read_text(errors="replace")
    if not text.strip():
        raise InputError(f"{path}: empty file")
    try:
        frames = ase.io.read(str(path), index=":", format="extxyz")
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: unreadable or truncated XYZ ({reason})") from None
    if not frames:
        raise InputError(f"{path}: no structures in file")
    # ase silently ignores trailing garbage / a truncated last frame in some versions: count lines
    lines = [ln for ln in text.splitlines()]
    n_expected = sum(len(a) + 2 for a in frames)
    n_nonblank_tail = len(lines)
    while n_nonblank_tail and not lines[n_nonblank_tail - 1].strip():
        n_nonblank_tail -= 1
    if n_nonblank_tail > n_expected:
        raise InputError(f"{path}: truncated or malformed XYZ after structure {len(frames)}")
    return frames


def atoms_to_conformation(
    atoms: Any,
    *,
    where: str = "structure",
    charge: int | None = None,
    multiplicity: int | None = None,
    molblock: str | None = None,
    smiles: str | None = None,
    mol_id: int = -1,
    conf_id: int = -1,
    check: bool = True,
) -> Conformation:
    """Conformation from ASE Atoms. Bonds come from ``molblock`` if given, else ``rdDetermineBonds``
    with the total charge (``charge`` or ``atoms.info['charge']`` or 0).

    With ``check`` the geometry (NaN, overlapping atoms), elements, charge and spin are validated
    (InputError). Energy/forces attached to ``atoms`` are ignored here (see golf.db.read_labelled).
    """
    from rdkit import Chem

    numbers = np.asarray(atoms.get_atomic_numbers(), dtype=np.int64)
    positions = np.asarray(atoms.get_positions(), dtype=np.float64)
    info = getattr(atoms, "info", {}) or {}
    def _int_info(name: str) -> int | None:
        v = info.get(name)  # the XYZ comment line can produce booleans or strings: only take ints
        return int(v) if isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)) else None

    if charge is None:
        charge = _int_info("charge")
    if multiplicity is None:
        multiplicity = _int_info("multiplicity")
    if mol_id < 0 and _int_info("mol_id") is not None:
        mol_id = int(_int_info("mol_id"))
    if conf_id < 0 and _int_info("conf_id") is not None:
        conf_id = int(_int_info("conf_id"))
    if smiles is None and isinstance(info.get("smiles"), str):
        smiles = info["smiles"]
    conf = Conformation(numbers, positions, smiles=smiles, mol_id=mol_id, conf_id=conf_id)
    if check:
        if len(numbers) == 0:
            raise InputError(f"{where}: no atoms")
        bad = sorted({int(z) for z in numbers if int(z) not in SUPPORTED_ELEMENTS})
        if bad:
            from ase.data import chemical_symbols

            raise InputError(
                f"{where}: unsupported element {', '.join(chemical_symbols[z] for z in bad)} "
                f"(supported: {' '.join(_SYMBOLS[z] for z in SUPPORTED_ELEMENTS)})"
            )
        _check_geometry(conf, where)
    if molblock:
        with _quiet_rdkit():
            mol = Chem.MolFromMolBlock(molblock, removeHs=False)
        if mol is None or mol.GetNumAtoms() != len(numbers):
            mol = None
    else:
        mol = None
    if mol is None:
        charge = 0 if charge is None else int(charge)
        mol = _perceive_bonds(numbers, positions, charge, multiplicity, where)
        if check:
            charge, multiplicity = check_molecule(mol, where, charge, multiplicity)
        molblock = Chem.MolToMolBlock(mol)
    elif check:
        charge, multiplicity = check_molecule(mol, where, charge, multiplicity)
    conf.charge = int(charge or 0)
    conf.multiplicity = int(multiplicity or 1)
    conf.molblock = molblock
    if conf.smiles is None:
        conf.smiles = _canonical_smiles(mol)
    return conf


def _read_xyz(path: Path, charge: int | None, multiplicity: int | None) -> list[Conformation]:
    frames = _frames_xyz(path)
    out = []
    for i, atoms in enumerate(frames):
        where = f"{path}: structure {i + 1}"
        if not np.all(np.isfinite(atoms.get_positions())):
            raise InputError(f"{where}: non-finite coordinates")
        c = atoms_to_conformation(atoms, where=where, charge=charge, multiplicity=multiplicity)
        if isinstance(atoms.info.get("energy"), (int, float)):
            c.info["energy"] = float(atoms.info["energy"])
        out.append(c)
    _assign_ids(out)
    return out


def _read_db(path: Path, charge: int | None, multiplicity: int | None) -> list[Conformation]:
    import ase.db

    try:
        db = ase.db.connect(str(path), type="db", create_indices=False)
        rows = list(db.select())
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable ASE database ({reason})") from None
    if not rows:
        raise InputError(f"{path}: no structures in database")
    out = []
    for row in rows:
        where = f"{path}: row {row.id}"
        kvp = row.key_value_pairs
        data = row.data or {}
        atoms = row.toatoms()
        atoms.calc = None
        c = atoms_to_conformation(
            atoms,
            where=where,
            charge=kvp.get("charge", charge),
            multiplicity=kvp.get("multiplicity", multiplicity),
            molblock=data.get("molblock"),
            smiles=kvp.get("smiles"),
            mol_id=int(kvp.get("mol_id", -1)),
            conf_id=int(kvp.get("conf_id", -1)),
        )
        if "key" in kvp:
            c.info["key"] = kvp["key"]
        out.append(c)
    _assign_ids(out)
    return out


def read_conformations(
    path: str | os.PathLike,
    *,
    conformers: int = 1,
    seed: int = 0,
    charge: int | None = None,
    multiplicity: int | None = None,
    displacement: float = 0.0,
) -> list[Conformation]:
    """Read conformations from a file (format by extension, see the module docstring).

    Args:
        path: input file.
        conformers: ETKDG conformers per molecule for inputs without 3D coordinates (SMILES, 2D SDF).
        seed: seed of conformer generation and displacement.
        charge: total charge; required (and checked) for charged molecules. XYZ bonds are perceived
            with this charge (default 0).
        multiplicity: spin multiplicity; required for radicals.
        displacement: Gaussian displacement std (Angstrom) of generated conformers.

    Raises:
        InputError: missing/empty/truncated file, invalid SMILES, unsupported element, charged or
            radical molecule without charge/multiplicity, NaN coordinates, atoms < 0.5 A apart.
    """
    p = Path(path)
    if not p.exists():
        raise InputError(f"{p}: no such file")
    if p.is_dir():
        raise InputError(f"{p}: is a directory")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file")
    if conformers < 1:
        raise InputError(f"conformers per molecule must be >= 1, got {conformers}")
    ext = p.suffix.lower()
    if ext in SMILES_EXTS or ext in CSV_EXTS:
        return _read_smiles_file(p, conformers, seed, charge, multiplicity, displacement)
    if ext in SDF_EXTS:
        return _read_sdf(p, conformers, seed, charge, multiplicity, displacement)
    if ext in XYZ_EXTS:
        return _read_xyz(p, charge, multiplicity)
    if ext in DB_EXTS:
        return _read_db(p, charge, multiplicity)
    raise InputError(
        f"{p}: unknown file type {ext!r} (use .smi .txt .csv .sdf .mol .xyz .extxyz .db)"
    )


# ----------------------------------------------------------------------------------------------
# writers


def conformation_to_atoms(
    conf: Conformation, energy: float | None = None, forces: np.ndarray | None = None
) -> Any:
    """ASE Atoms of a conformation; energy (eV) / forces ([n,3] eV/A) attached as a
    SinglePointCalculator when given. info carries mol_id, conf_id, smiles, charge, multiplicity."""
    from ase import Atoms
    from ase.calculators.singlepoint import SinglePointCalculator

    atoms = Atoms(numbers=conf.numbers, positions=conf.positions)
    atoms.info.update(
        mol_id=int(conf.mol_id), conf_id=int(conf.conf_id), charge=int(conf.charge),
        multiplicity=int(conf.multiplicity),
    )
    if conf.smiles:
        atoms.info["smiles"] = conf.smiles
    if energy is not None or forces is not None:
        kw: dict[str, Any] = {}
        if energy is not None:
            kw["energy"] = float(energy)
        if forces is not None:
            kw["forces"] = np.asarray(forces, dtype=np.float64).reshape(-1, 3)
        atoms.calc = SinglePointCalculator(atoms, **kw)
    return atoms


def _scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str, np.integer, np.floating))


def write_conformations(
    path: str | os.PathLike,
    confs: Sequence[Conformation],
    properties: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Write conformations atomically (temp file in the same directory, then ``os.replace``).

    ``.sdf``: bonds kept (from ``molblock``), mol_id/conf_id/smiles/charge/multiplicity and scalar
    properties as SDF fields (forces as a flat string, eV/A).
    ``.extxyz``/``.xyz``: extended XYZ; ``energy`` (eV) -> ``info['energy']``, ``forces`` ([n,3] eV/A)
    -> ``arrays['forces']``.
    ``.db``: ASE database; energy/forces in a SinglePointCalculator, metadata as key-value pairs,
    ``data['molblock']``.
    """
    p = Path(path)
    confs = list(confs)
    if properties is not None and len(properties) != len(confs):
        raise ValueError(f"{len(properties)} property dicts for {len(confs)} conformations")
    props = list(properties) if properties is not None else [{} for _ in confs]
    ext = p.suffix.lower()
    if ext not in SDF_EXTS + XYZ_EXTS + DB_EXTS:
        raise InputError(f"{p}: cannot write {ext!r} files (use .sdf .extxyz .xyz .db)")
    with atomic_path(p, suffix=p.suffix + ".tmp") as tmp_path:
        tmp = str(tmp_path)
        if ext in SDF_EXTS:
            _write_sdf(tmp, confs, props)
        elif ext in XYZ_EXTS:
            _write_extxyz(tmp, confs, props)
        else:
            os.unlink(tmp)  # ASE's SQLite backend creates the database itself
            _write_db(tmp, confs, props)


def _write_sdf(tmp: str, confs: list[Conformation], props: list[dict[str, Any]]) -> None:
    from rdkit import Chem

    with open(tmp, "w") as fh:
        writer = Chem.SDWriter(fh)
        writer.SetKekulize(False)
        for c, pr in zip(confs, props):
            mol = conformation_to_mol(c)
            mol.SetProp("_Name", str(c.info.get("name") or c.smiles or f"mol{c.mol_id}"))
            mol.SetIntProp("mol_id", int(c.mol_id))
            mol.SetIntProp("conf_id", int(c.conf_id))
            mol.SetIntProp("charge", int(c.charge))
            mol.SetIntProp("multiplicity", int(c.multiplicity))
            if c.smiles:
                mol.SetProp("smiles", c.smiles)
            for k, v in pr.items():
                if k == "forces" and v is not None:
                    f = np.asarray(v, dtype=np.float64).reshape(-1)
                    mol.SetProp("forces", " ".join(f"{x:.8g}" for x in f))
                elif isinstance(v, (bool, np.bool_)):
                    mol.SetProp(k, str(bool(v)))
                elif isinstance(v, (int, np.integer)):
                    mol.SetIntProp(k, int(v))
                elif isinstance(v, (float, np.floating)):
                    mol.SetDoubleProp(k, float(v))
                elif isinstance(v, str):
                    mol.SetProp(k, v)
            writer.write(mol, confId=mol.GetConformer().GetId())
        writer.close()


def _write_extxyz(tmp: str, confs: list[Conformation], props: list[dict[str, Any]]) -> None:
    import ase.io

    frames = []
    for c, pr in zip(confs, props):
        atoms = conformation_to_atoms(c)
        for k, v in pr.items():
            if k == "forces" and v is not None:
                atoms.arrays["forces"] = np.asarray(v, dtype=np.float64).reshape(-1, 3)
            elif k == "energy" and v is not None:
                atoms.info["energy"] = float(v)
            elif _scalar(v):
                atoms.info[k] = v
        frames.append(atoms)
    ase.io.write(tmp, frames, format="extxyz")


def _write_db(tmp: str, confs: list[Conformation], props: list[dict[str, Any]]) -> None:
    import ase.db

    db = ase.db.connect(tmp, type="db", append=True)
    with db:
        for c, pr in zip(confs, props):
            atoms = conformation_to_atoms(c, pr.get("energy"), pr.get("forces"))
            atoms.info.clear()
            kvp: dict[str, Any] = dict(
                mol_id=int(c.mol_id), conf_id=int(c.conf_id), charge=int(c.charge),
                multiplicity=int(c.multiplicity),
            )
            if c.smiles:
                kvp["smiles"] = c.smiles
            for k, v in pr.items():
                if k in ("energy", "forces") or not _scalar(v):
                    continue
                kvp[k] = v.item() if isinstance(v, np.generic) else v
            data = {"molblock": c.molblock} if c.molblock else {}
            db.write(atoms, key_value_pairs=kvp, data=data)
