"""Molecule file formats: read and write conformations as SMILES, SDF, XYZ/extXYZ or ASE databases.

NumPy + RDKit + ASE (never torch), so oracle worker processes may import it.

Formats (chosen by file extension):

=============  ======  =======  ==========================================================
extension      read    write    notes
=============  ======  =======  ==========================================================
.smi / .txt    yes     no       one SMILES per line, optional id/name column (whitespace)
.csv           yes     no       column ``smiles`` (case-insensitive) or the first column
.sdf / .mol    yes     .sdf     bonds kept; 2D/0D records get ETKDG conformers
.xyz / .extxyz yes     yes      bonds perceived with RDKit ``rdDetermineBonds``
.db            yes     yes      ASE SQLite database (golf rows or plain ASE rows; via ``golf.db``)
=============  ======  =======  ==========================================================

Every returned :class:`~golf.conformation.Conformation` has ``smiles``, ``mol_id``, ``conf_id`` and
``molblock`` (the mol block of the hydrogen-explicit RDKit molecule, atoms in the same order as
``numbers``/``positions``). Problems with the input raise :class:`~golf.errors.InputError` with one
line naming the file, the record and the reason.

Text inputs are read as UTF-8; a byte-order mark at the start is dropped.

Molecule ids: a record's explicit integer id (>= 0; the id column of a SMILES file, the field
``mol_id`` of an SDF record, ``mol_id`` of an XYZ comment line or a database row) is kept. A record
without one gets an implicit id: the smallest non-negative integer that is neither an explicit id
anywhere in the file nor already given to an earlier record, so implicit ids never collide with
explicit ones (in structure files, conformations of one molecule, i.e. the same SMILES, share
theirs). A non-integer id (``ZINC000123``) names the record instead (``info['name']``) and the record
gets an implicit id. Two SMILES records with the same explicit id: the later one is reported.

SDF fields are read tolerantly: ``mol_id``/``conf_id`` that are not integers are not ids (see above);
``charge``/``multiplicity`` may be written as integral numbers (``0.0``), anything else (``1.5``,
``abc``) makes that record an error.
"""
from __future__ import annotations

import csv
import io
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from golf.chem import (
    atoms_to_conformation,
    check_geometry,
    check_molecule,
    conformation_to_atoms,
    conformation_to_mol,
    generate_conformers,
    mol_to_conformations,
    parse_smiles,
    quiet_rdkit,
)
from golf.conformation import Conformation
from golf.errors import InputError
from golf.io import atomic_path

#: ``on_error`` of the readers: called with the InputError of one bad record, which is then skipped.
OnError = Callable[[InputError], None]

#: ``embedded`` of the readers: called with (molecules embedded so far, molecules to embed).
Embedded = Callable[[int, int], None]

SMILES_EXTS = (".smi", ".txt", ".smiles")
CSV_EXTS = (".csv",)
SDF_EXTS = (".sdf", ".mol", ".sd")
XYZ_EXTS = (".xyz", ".extxyz")
DB_EXTS = (".db",)


def check_input_file(path: str | os.PathLike) -> Path:
    """``path`` as a Path if it is a readable, non-empty regular file; else InputError (one line:
    no such file, is a directory, is not a regular file, cannot read, empty file)."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise InputError(f"{p}: no such file") from None
    except OSError as exc:
        raise InputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p}: is a directory")
    if not stat.S_ISREG(st.st_mode):  # a FIFO, socket or device: reading it could block or never end
        raise InputError(f"{p}: is not a regular file")
    if not os.access(p, os.R_OK):
        raise InputError(f"{p}: cannot read (permission denied)")
    if st.st_size == 0:
        raise InputError(f"{p}: empty file")
    return p


def read_text(path: Path) -> str:
    """The text of an input file: UTF-8 without a leading byte-order mark (undecodable bytes replaced)."""
    return path.read_bytes().decode("utf-8-sig", errors="replace")


def implicit_ids(explicit: set[int]) -> Iterator[int]:
    """0, 1, 2, ... without the ``explicit`` ids: the implicit molecule ids of a file (module docstring)."""
    k = 0
    while True:
        if k not in explicit:
            yield k
        k += 1


#: integers a field may hold: SDF integer fields (RDKit ``SetIntProp``) are 32-bit.
_INT_RANGE = range(-2**31, 2**31)


def integral(value: Any) -> int | None:
    """The integer that a field's value spells (``3``, ``" -1 "``, ``"0.0"``, ``2.0``), else None
    (also for integers beyond 32 bits, which SDF fields cannot hold)."""
    if isinstance(value, (bool, np.bool_)):
        return None
    if isinstance(value, (int, np.integer)):
        return int(value) if int(value) in _INT_RANGE else None
    text = str(value).strip()
    try:
        k = int(text)
    except ValueError:
        try:
            x = float(text)
        except ValueError:
            return None
        if not (math.isfinite(x) and x == int(x)):
            return None
        k = int(x)
    return k if k in _INT_RANGE else None


def record_id(value: Any) -> tuple[int, str | None]:
    """``(mol_id, name)`` from an id field: a non-negative integer is the id (name None); anything else
    names the record and leaves the id implicit (-1)."""
    if value is None:
        return -1, None
    k = integral(value)
    if k is not None and k >= 0:
        return k, None
    text = str(value).strip()
    return -1, text or None


# ----------------------------------------------------------------------------------------------
# readers


def _assign_ids(confs: list[Conformation], groups: Sequence[str | None] | None = None) -> None:
    """Fill missing mol_id (implicit ids, see the module docstring; one per canonical SMILES, or per
    ``groups[k]`` where given, in order of first appearance) and conf_id."""
    by_smiles: dict[str, int] = {}
    free = implicit_ids({c.mol_id for c in confs if c.mol_id >= 0})
    counters: dict[int, int] = {}
    for k, c in enumerate(confs):
        if c.mol_id < 0:
            s = (groups[k] if groups is not None else None) or c.smiles or f"#{len(by_smiles)}"
            if s not in by_smiles:
                by_smiles[s] = next(free)
            c.mol_id = by_smiles[s]
        if c.conf_id < 0:
            c.conf_id = counters.get(c.mol_id, 0)
        counters[c.mol_id] = max(counters.get(c.mol_id, 0), c.conf_id + 1)



def _read_smiles_records(path: Path) -> list[tuple[str, str | None, int]]:
    """(smiles, id/name or None, line number) from a .smi/.txt or .csv file."""
    text = read_text(path)
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


def standardize(mol: Any, where: str, keep_fragments: bool = False, ph: float | None = None
                ) -> tuple[Any, list[str]]:
    """An input molecule as golf uses it: counter-ions and solvents stripped (``golf.chem.largest_fragment``)
    unless ``keep_fragments``, then, with ``ph``, protonated at that pH (``golf.chem.protonate``, for
    molecules that are embedded; 3D coordinates are used as given). Returns ``(mol, stripped SMILES)``."""
    from golf.chem import largest_fragment, protonate

    stripped: list[str] = []
    if not keep_fragments:
        mol, stripped, _ = largest_fragment(mol)
    if ph is not None:
        mol = protonate(mol, ph, where)
    return mol, stripped


def _read_smiles_file(
    path: Path, conformers: int, seed: int, charge: int | None, multiplicity: int | None,
    displacement: float, on_error: OnError | None = None, embedded: Embedded | None = None,
    fragments: str = "refuse", ph: float | None = None,
) -> list[Conformation]:
    records = _read_smiles_records(path)
    if not records:
        raise InputError(f"{path}: no molecules in file")
    # validate everything first: one bad record fails the whole read before any embedding
    explicit = {k for k, _ in (record_id(r[1]) for r in records) if k >= 0}
    free = implicit_ids(explicit)
    first_line: dict[int, int] = {}
    mols = []
    for smi, ident, lineno in records:
        where = f"{path}: line {lineno}"
        mol_id, name = record_id(ident)
        try:
            if mol_id in first_line:
                raise InputError(f"{where}: molecule id {mol_id} is already the id of line {first_line[mol_id]}")
            mol = parse_smiles(smi, where)
            mol, stripped = standardize(mol, where, fragments != "strip", ph)
            q = charge if charge is not None or ph is None else sum(a.GetFormalCharge() for a in mol.GetAtoms())
            check_molecule(mol, where, q, multiplicity)
        except InputError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        if mol_id < 0:
            mol_id = next(free)
        else:
            first_line[mol_id] = lineno
        info = {"name": name} if name else {}
        if stripped:
            info["stripped_fragments"] = ".".join(stripped)
        mols.append((mol, mol_id, info, where, q))
    out: list[Conformation] = []
    for k, (mol, mol_id, info, where, q) in enumerate(mols):
        try:
            confs = generate_conformers(
                mol, conformers, seed, displacement, mol_id=mol_id, charge=q,
                multiplicity=multiplicity, info=info or None, where=where, fragments_ok=fragments == "keep",
            )
        except InputError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        finally:
            if embedded is not None:
                embedded(k + 1, len(mols))
        out.extend(confs)
    return out


def _read_sdf(
    path: Path, conformers: int, seed: int, charge: int | None, multiplicity: int | None,
    displacement: float, on_error: OnError | None = None, bond_orders: bool = True,
    fragments: str = "refuse", ph: float | None = None,
) -> list[Conformation]:
    if not read_text(path).strip():
        raise InputError(f"{path}: empty file")
    out: list[Conformation] = []
    groups: list[str | None] = []
    with quiet_rdkit():
        for i, where, mol in sdf_records(path):
            try:
                confs = _sdf_record(mol, i, where, conformers, seed, charge, multiplicity, displacement,
                                    bond_orders, fragments, ph)
            except InputError as exc:
                if on_error is None:
                    raise
                on_error(exc)
                continue
            out.extend(confs)
            # embedded conformers of one record form one molecule; 3D records group by SMILES
            groups.extend([f"record {i}" if c.info.pop("embedded", False) else None for c in confs])
    _assign_ids(out, groups)
    return out


#: SDF field golf writes on structures whose bond orders could not be assigned (bonds = connectivity).
CONNECTIVITY_FIELD = ("bonds", "connectivity only (bond orders could not be assigned)")


def sdf_records(path: str | os.PathLike) -> Iterator[tuple[int, str, Any]]:
    """``(index, where, mol)`` for every record of an SDF file, in order (RDKit, hydrogens kept, sanitized;
    ``mol`` is None for a record RDKit cannot read). InputError when the file holds no record."""
    from rdkit import Chem

    from golf.chem import quiet_rdkit

    with open(path, "rb") as fh:
        bom = fh.read(3) == b"\xef\xbb\xbf"
    with quiet_rdkit():
        if bom:  # RDKit would take the mark for part of the first record's title
            supplier = Chem.SDMolSupplier()
            supplier.SetData(read_text(Path(path)), removeHs=False, sanitize=True)
        else:
            supplier = Chem.SDMolSupplier(str(path), removeHs=False, sanitize=True)
        n_records = len(supplier)
        if n_records == 0:
            raise InputError(f"{path}: no molecules in file")
        for i in range(n_records):
            try:
                mol = supplier[i]
            except Exception:
                mol = None
            yield i, f"{path}: record {i + 1}", mol


def sdf_fields(mol: Any, where: str) -> dict[str, Any]:
    """The fields golf reads from an SDF record, parsed tolerantly (module docstring).

    Returns ``mol_id`` and ``conf_id`` (-1 when absent or not an id), ``charge`` and ``multiplicity``
    (None when absent) and ``name`` (the title, else a non-integer ``mol_id``; "" when neither).
    InputError (``where`` first) for a ``charge`` or ``multiplicity`` that is not an integer.
    """
    def text(key: str) -> str | None:
        return mol.GetProp(key).strip() if mol.HasProp(key) and mol.GetProp(key).strip() else None

    out: dict[str, Any] = {}
    mol_id, ident = record_id(text("mol_id"))
    out["mol_id"] = mol_id
    conf_id = integral(text("conf_id")) if text("conf_id") is not None else None
    out["conf_id"] = conf_id if conf_id is not None and conf_id >= 0 else -1
    for key in ("charge", "multiplicity"):
        value = text(key)
        out[key] = None if value is None else integral(value)
        if value is not None and out[key] is None:
            raise InputError(f"{where}: SDF field <{key}> is {value!r}, not an integer")
    title = mol.GetProp("_Name").strip() if mol.HasProp("_Name") else ""
    out["name"] = title or ident or ""
    return out


def input_properties(mol: Any) -> dict[str, str]:
    """The SDF fields of a record as written (strings), to pass through to the output."""
    return {k: mol.GetProp(k) for k in mol.GetPropNames()}


def is_3d(mol: Any) -> bool:
    """Whether an RDKit record has 3D coordinates (a conformer flagged 3D with some non-zero z)."""
    if not mol.GetNumConformers():
        return False
    conf = mol.GetConformer()
    return bool(conf.Is3D()) and bool(np.any(np.abs(np.asarray(conf.GetPositions())[:, 2]) > 1e-4))


def _sdf_record(
    mol: Any, i: int, where: str, conformers: int, seed: int, charge: int | None,
    multiplicity: int | None, displacement: float, bond_orders: bool = True,
    fragments: str = "refuse", ph: float | None = None,
) -> list[Conformation]:
    """The conformations of SDF record ``i`` (0-based; ``sdf_records``). ``charge``/``multiplicity``
    (None: the record's own fields, else neutral closed shell) apply to every record."""
    from rdkit import Chem

    if mol is None:
        raise InputError(f"{where}: unreadable or truncated molecule")
    fields = sdf_fields(mol, where)
    info: dict[str, Any] = {"name": fields["name"]} if fields["name"] else {}
    info["input_properties"] = input_properties(mol)
    if mol.HasProp(CONNECTIVITY_FIELD[0]) and mol.GetProp(CONNECTIVITY_FIELD[0]) == CONNECTIVITY_FIELD[1]:
        # written by golf without bond orders: its single bonds are no chemistry
        if bond_orders:
            raise InputError(f"{where}: {CONNECTIVITY_FIELD[1]}")
        numbers = np.array([a.GetAtomicNum() for a in mol.GetAtoms()], dtype=np.int64)
        q = charge if charge is not None else fields["charge"]
        m = multiplicity if multiplicity is not None else fields["multiplicity"]
        c = Conformation(numbers, np.array(mol.GetConformer().GetPositions(), dtype=np.float64),
                         mol_id=fields["mol_id"], conf_id=fields["conf_id"],
                         charge=int(q or 0), multiplicity=int(m or 1),
                         info={"bonds": "connectivity", **info})
        check_geometry(c, where)
        return [c]
    rec_charge, rec_mult, sources = record_charge_multiplicity(charge, multiplicity, fields)
    has_3d = mol.GetNumConformers() > 0 and mol.GetConformer().Is3D()
    mol, stripped = standardize(mol, where, fragments != "strip", None if has_3d else ph)
    if ph is not None and not has_3d and rec_charge is None:  # the charge of the state at that pH
        rec_charge = sum(a.GetFormalCharge() for a in mol.GetAtoms())
    if stripped:
        info["stripped_fragments"] = ".".join(stripped)
    q, m = check_molecule(mol, where, rec_charge, rec_mult, sources=sources)
    mol_id, conf_id = fields["mol_id"], fields["conf_id"]
    if not has_3d:
        # the record index seeds ETKDG; an implicit id is given afterwards (_assign_ids)
        confs = generate_conformers(
            Chem.RemoveHs(mol), conformers, seed, displacement,
            mol_id=mol_id if mol_id >= 0 else i, charge=q, multiplicity=m, info=info, where=where,
            fragments_ok=fragments == "keep",
        )
        for c in confs:
            c.mol_id = mol_id
            c.info["embedded"] = True
        return confs
    if any(a.GetAtomicNum() != 1 and a.GetTotalNumHs() > 0 for a in mol.GetAtoms()):
        mol = Chem.AddHs(mol, addCoords=True)
    c = mol_to_conformations(mol, mol_id=mol_id, charge=q, multiplicity=m, info=info)[0]
    c.conf_id = conf_id
    check_geometry(c, where)
    return [c]


def _frames_xyz(path: Path) -> list[Any]:
    import ase.io

    text = read_text(path)
    if not text.strip():
        raise InputError(f"{path}: empty file")
    try:
        frames = ase.io.read(io.StringIO(text), index=":", format="extxyz")
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


def strip_conformation(c: Conformation, where: str, charge: int | None = None,
                       multiplicity: int | None = None) -> Conformation:
    """A structure read from coordinates (XYZ, db) with counter-ions and solvents stripped
    (``golf.chem.largest_fragment`` on its bonds, coordinates kept); unchanged when it is one fragment.
    The kept fragment's charge is its net formal charge (checked as on reading) where bond orders are
    known, else the structure's."""
    from golf.chem import MAX_ATOMS, canonical_smiles, largest_fragment

    if c.n_atoms > MAX_ATOMS:  # refused as too large for an NNP, not cut down to a fragment
        return c
    with quiet_rdkit():
        mol = conformation_to_mol(c, connectivity_ok=True)
        kept, stripped, atoms = largest_fragment(mol)
    if not stripped:
        return c
    idx = list(atoms)
    out = Conformation(c.numbers[idx].copy(), c.positions[idx].copy(), smiles=c.smiles, mol_id=c.mol_id,
                       conf_id=c.conf_id, charge=c.charge, multiplicity=c.multiplicity, info=dict(c.info))
    if c.molblock:
        from rdkit import Chem

        kept = Chem.Mol(kept)
        with quiet_rdkit():
            Chem.SanitizeMol(kept)
        out.charge, out.multiplicity = check_molecule(kept, where, charge, multiplicity)
        out.molblock = Chem.MolToMolBlock(kept)
        out.smiles = canonical_smiles(kept)
    out.info["stripped_fragments"] = ".".join(stripped)
    return out


def _read_xyz(
    path: Path, charge: int | None, multiplicity: int | None, on_error: OnError | None = None,
    bond_orders: bool = True, fragments: str = "refuse",
) -> list[Conformation]:
    frames = _frames_xyz(path)
    out = []
    for i, atoms in enumerate(frames):
        where = f"{path}: structure {i + 1}"
        try:
            if not np.all(np.isfinite(atoms.get_positions())):
                raise InputError(f"{where}: non-finite coordinates")
            c = atoms_to_conformation(atoms, where=where, charge=charge, multiplicity=multiplicity,
                                      bond_orders=bond_orders)
            if fragments == "strip":
                c = strip_conformation(c, where, charge, multiplicity)
        except InputError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        if isinstance(atoms.info.get("energy"), (int, float)):
            c.info["energy"] = float(atoms.info["energy"])
        out.append(c)
    _assign_ids(out)
    return out


def _read_db(
    path: Path, charge: int | None, multiplicity: int | None, on_error: OnError | None = None,
    bond_orders: bool = True, fragments: str = "refuse",
) -> list[Conformation]:
    from golf.db import read_structure_rows

    out = []
    for row_id, atoms, kvp, data in read_structure_rows(path):
        where = f"{path}: row {row_id}"
        mol_id, name = record_id(kvp.get("mol_id"))
        conf_id = integral(kvp["conf_id"]) if "conf_id" in kvp else None
        try:
            given = {}
            for key, default in (("charge", charge), ("multiplicity", multiplicity)):
                given[key] = default
                if key in kvp:
                    given[key] = integral(kvp[key])
                    if given[key] is None:
                        raise InputError(f"{where}: {key} {kvp[key]!r} is not an integer")
            c = atoms_to_conformation(
                atoms,
                where=where,
                charge=given["charge"],
                multiplicity=given["multiplicity"],
                molblock=data.get("molblock"),
                smiles=kvp.get("smiles") if isinstance(kvp.get("smiles"), str) else None,
                mol_id=mol_id,
                conf_id=conf_id if conf_id is not None and conf_id >= 0 else -1,
                bond_orders=bond_orders,
            )
            if fragments == "strip":
                c = strip_conformation(c, where, given["charge"], given["multiplicity"])
        except InputError as exc:
            if on_error is None:
                raise
            on_error(exc)
            continue
        if "key" in kvp:
            c.info["key"] = kvp["key"]
        if name:
            c.info["name"] = name
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
    on_error: OnError | None = None,
    bond_orders: bool = True,
    embedded: Embedded | None = None,
    fragments: str = "refuse",
    ph: float | None = None,
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
        on_error: called with the InputError of each bad record (line, record, structure, row),
            which is then skipped; without it the first bad record fails the whole read. Errors of
            the file itself (missing, empty, truncated) are always raised.
        bond_orders: XYZ/db structures whose bond orders cannot be assigned (and SDF records golf
            wrote without them, field ``bonds``) are an error; with False they keep their
            connectivity only (``golf.chem.atoms_to_conformation``): for NNP prediction and
            relaxation, which need no bond orders.
        embedded: progress of a SMILES file's ETKDG embedding (the slow part of reading one),
            called as ``embedded(done, total)`` after each molecule.
        fragments: what becomes of a record of several fragments (a salt, a mixture): "strip" the
            counter-ions and solvents (``standardize``; the stripped SMILES in
            ``info['stripped_fragments']``), "keep" them all (SMILES embedded with the fragments
            apart; for oracle relaxations), or "refuse" to embed it (SMILES, 2D SDF; the default;
            3D structures are read as they are).
        ph: protonate molecules that are embedded (SMILES, 2D SDF) at this pH (optional package
            dimorphite-dl); None: the protonation state as given.

    Raises:
        InputError: missing/empty/truncated file, invalid SMILES, unsupported element, charged or
            radical molecule without charge/multiplicity, NaN coordinates, atoms < 0.5 A apart.
    """
    p = check_input_file(path)
    if fragments not in ("strip", "keep", "refuse"):
        raise ValueError(f"fragments must be 'strip', 'keep' or 'refuse' (got {fragments!r})")
    if conformers < 1:
        raise InputError(f"conformers per molecule must be >= 1, got {conformers}")
    ext = p.suffix.lower()
    if ext in SMILES_EXTS or ext in CSV_EXTS:
        return _read_smiles_file(p, conformers, seed, charge, multiplicity, displacement, on_error, embedded,
                                 fragments, ph)
    if ext in SDF_EXTS:
        return _read_sdf(p, conformers, seed, charge, multiplicity, displacement, on_error, bond_orders,
                         fragments, ph)
    if ext in XYZ_EXTS:
        return _read_xyz(p, charge, multiplicity, on_error, bond_orders, fragments)
    if ext in DB_EXTS:
        return _read_db(p, charge, multiplicity, on_error, bond_orders, fragments)
    raise InputError(
        f"{p}: unknown file type {ext!r} (use .smi .txt .csv .sdf .mol .xyz .extxyz .db)"
    )


# ----------------------------------------------------------------------------------------------
# writers


def _scalar(v: Any) -> bool:
    return isinstance(v, (bool, int, float, str, np.integer, np.floating))


def write_conformations(
    path: str | os.PathLike,
    confs: Sequence[Conformation],
    properties: Sequence[dict[str, Any]] | None = None,
    kind: str | None = None,
) -> None:
    """Write conformations atomically (temp file in the same directory, then ``os.replace``; a
    symlinked ``path`` is written through to its target, see ``golf.io.atomic_path``).

    ``.sdf``: bonds kept (from ``molblock``), mol_id/conf_id/smiles/charge/multiplicity and scalar
    properties as SDF fields (forces as a flat string, eV/A).
    ``.extxyz``/``.xyz``: extended XYZ; ``energy`` (eV) -> ``info['energy']``, ``forces`` ([n,3] eV/A)
    -> ``arrays['forces']``.
    ``.db``: ASE database; energy/forces in a SinglePointCalculator, metadata as key-value pairs,
    ``data['molblock']``; a property whose name ASE reserves is stored under ``DB_RENAMED`` (``fmax``
    -> ``max_force``) or else with a ``golf_`` prefix; ``kind`` (``golf.db.DB_KINDS``: what wrote it)
    is recorded in its metadata.
    """
    p = Path(path)
    confs = list(confs)
    if properties is not None and len(properties) != len(confs):
        raise ValueError(f"{len(properties)} property dicts for {len(confs)} conformations")
    props = list(properties) if properties is not None else [{} for _ in confs]
    ext = p.suffix.lower()
    if ext not in SDF_EXTS:  # golf's energy/forces also as ASE's calculator results; input fields that fit
        from golf.outputs import passthrough

        props = [{**{k: _typed(v) for k, v in passthrough(c.info.get("input_properties")).items() if k.isidentifier()},
                  **({"energy": pr["golf_energy_eV"]} if "golf_energy_eV" in pr else {}),
                  **({"forces": pr["golf_forces_eV_A"]} if "golf_forces_eV_A" in pr else {}),
                  **{k: v for k, v in pr.items() if k != "golf_forces_eV_A"}}
                 for c, pr in zip(confs, props)]
    if ext not in WRITE_EXTS:
        raise InputError(f"{p}: cannot write {ext!r} files (use .sdf .extxyz .xyz .db)")
    with atomic_path(p, suffix=p.suffix + ".tmp") as tmp_path:
        tmp = str(tmp_path)
        if ext in SDF_EXTS:
            _write_sdf(tmp, confs, props)
        elif ext in XYZ_EXTS:
            _write_extxyz(tmp, confs, props)
        else:
            from golf.db import write_rows

            os.unlink(tmp)  # ASE's SQLite backend creates the database itself
            write_rows(tmp, confs, [_db_props(pr) for pr in props], kind=kind)


def _typed(value: Any) -> Any:
    """An SDF field's text as the number or boolean it spells (ASE databases refuse such strings), else as is."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text in ("True", "False"):
        return text == "True"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return value


#: property -> key-value name in ASE databases, for names ASE reserves (it derives ``fmax`` itself
#: from stored forces).
DB_RENAMED = {"fmax": "max_force"}

#: output extensions ``write_conformations`` handles.
WRITE_EXTS = SDF_EXTS + XYZ_EXTS + DB_EXTS


def _db_props(props: dict[str, Any]) -> dict[str, Any]:
    """``props`` with the names ASE reserves for key-value pairs renamed (energy/forces are kept:
    they go to the calculator)."""
    from ase.db.core import reserved_keys

    out = {}
    for k, v in props.items():
        if k in reserved_keys and k not in ("energy", "forces"):
            k = DB_RENAMED.get(k, f"golf_{k}")
        out[k] = v
    return out


def check_writable(path: str | os.PathLike, exts: Sequence[str] | None = WRITE_EXTS, option: str = "-o") -> None:
    """Before any work: InputError (one line) unless ``path`` has one of ``exts`` (None: any) and can
    be created or replaced (not a directory; the nearest existing directory above it is writable)."""
    p = Path(path)
    ext = p.suffix.lower()
    if exts is not None and ext not in exts:
        raise InputError(f"{option} {p}: cannot write {ext or 'files without extension'!r} "
                         f"(use {' '.join(exts)})")
    if p.is_dir():
        raise InputError(f"{option} {p}: is a directory")
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    try:  # the real test (os.access says yes to root on read-only mounts and /proc)
        if not parent.is_dir():
            raise NotADirectoryError(str(parent))
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        raise InputError(f"{option} {p}: cannot write in {parent} ({exc.strerror or exc})") from None


def _write_sdf(tmp: str, confs: list[Conformation], props: list[dict[str, Any]]) -> None:
    from rdkit import Chem

    with open(tmp, "w") as fh:
        writer = Chem.SDWriter(fh)
        writer.SetKekulize(False)
        from golf.outputs import passthrough

        for c, pr in zip(confs, props):
            mol = conformation_to_mol(c, connectivity_ok=True)
            for k, v in passthrough(c.info.get("input_properties")).items():  # the input's own fields
                mol.SetProp(k, str(v))
            if c.info.get("bonds") == "connectivity":
                mol.SetProp(*CONNECTIVITY_FIELD)
            mol.SetProp("_Name", str(c.info.get("name") or c.smiles or f"mol{c.mol_id}"))
            mol.SetIntProp("mol_id", int(c.mol_id))
            mol.SetIntProp("conf_id", int(c.conf_id))
            mol.SetIntProp("charge", int(c.charge))
            mol.SetIntProp("multiplicity", int(c.multiplicity))
            if c.smiles:
                mol.SetProp("smiles", c.smiles)
            for k, v in pr.items():
                if k in ("forces", "golf_forces_eV_A") and v is not None:
                    f = np.asarray(v, dtype=np.float64).reshape(-1)
                    mol.SetProp(k, " ".join(f"{x:.8g}" for x in f))
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


def record_charge_multiplicity(charge: int | None, multiplicity: int | None,
                               fields: dict[str, Any]) -> tuple[int | None, int | None, dict[str, str]]:
    """A record's charge and multiplicity: the given ones (options), else its SDF fields; and, for
    each value taken from a field, how an error message names its source."""
    sources: dict[str, str] = {}
    if charge is None and fields.get("charge") is not None:
        charge = fields["charge"]
        sources["charge"] = f"charge {charge} (its SDF field <charge>)"
    if multiplicity is None and fields.get("multiplicity") is not None:
        multiplicity = fields["multiplicity"]
        sources["multiplicity"] = f"multiplicity {multiplicity} (its SDF field <multiplicity>)"
    return charge, multiplicity, sources
