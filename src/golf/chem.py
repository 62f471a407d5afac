"""RDKit chemistry: every conversion between RDKit molecules, ASE Atoms and ``Conformation``, conformer
generation (ETKDGv3) and the one MMFF94 force-field setup that the MMFF oracle and the MMFF relaxation
row of the evaluation share.

NumPy + RDKit + ASE, never torch (oracle worker processes import it). Problems with a molecule raise
:class:`~golf.errors.InputError` with one line naming the molecule and the reason; coordinates are in
Angstrom throughout.
"""
from __future__ import annotations

import contextlib
import hashlib
from typing import Any, Iterator, Sequence

import numpy as np

from golf.conformation import SUPPORTED_ELEMENTS, Conformation
from golf.errors import ChargeSpinError, InputError

_SYMBOLS = {1: "H", 6: "C", 7: "N", 8: "O", 9: "F", 16: "S", 17: "Cl", 35: "Br"}

#: Largest molecule, in atoms with hydrogens, that golf embeds conformers of (ETKDG) or relaxes with
#: an NNP. Drug-like molecules have fewer than 150; ETKDG needs tens of seconds per conformer at a few
#: hundred atoms and minutes beyond, so larger inputs are refused before any work.
MAX_ATOMS = 500


# ----------------------------------------------------------------------------------------------
# small utilities

@contextlib.contextmanager
def quiet_rdkit() -> Iterator[None]:
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



def check_geometry(conf: Conformation, where: str) -> None:
    problem = conf.geometry_problem()
    if problem is not None:
        raise InputError(f"{where}: {problem}")



def single_molecule_problem(n_atoms: int, n_fragments: int) -> str | None:
    """Why a structure of ``n_atoms`` atoms (hydrogens included) in ``n_fragments`` disconnected
    fragments is no molecule golf embeds or relaxes (``MAX_ATOMS``, one fragment), or None."""
    if n_atoms > MAX_ATOMS:
        return (f"{n_atoms} atoms (hydrogens included); golf embeds and relaxes molecules of at most "
                f"{MAX_ATOMS} atoms")
    if n_fragments > 1:
        # reached only when fragments were kept on purpose (salts are stripped on reading by default)
        return (f"has {n_fragments} disconnected fragments; an NNP relaxes single molecules (fragments are kept "
                "only for oracle relaxations; by default counter-ions and solvents are stripped)")
    return None


def largest_fragment(mol: Any) -> tuple[Any, list[str], tuple[int, ...]]:
    """The parent molecule of a salt or mixture, as chemists standardise it: RDKit's
    ``rdMolStandardize.LargestFragmentChooser`` with ``preferOrganic`` (the largest organic fragment;
    counter-ions such as Cl- or Na+ and solvents such as water are stripped).

    Returns ``(kept, stripped, atoms)``: the kept fragment (conformers, i.e. coordinates, kept), the
    canonical SMILES of every stripped fragment (input order) and the indices in ``mol`` of the kept
    atoms. A single-fragment ``mol`` comes back unchanged with ``[]``. The protonation state of the
    kept fragment is left as given (a stripped HCl leaves the neutral amine, a stripped Cl- the
    ammonium cation).
    """
    from rdkit import Chem
    from rdkit.Chem.MolStandardize import rdMolStandardize

    atoms_of: list[tuple[int, ...]] = []
    frags = Chem.GetMolFrags(mol, asMols=True, sanitizeFrags=False, fragsMolAtomMapping=atoms_of)
    if len(frags) <= 1:
        return mol, [], tuple(range(mol.GetNumAtoms()))
    with quiet_rdkit():
        chosen = Chem.MolToSmiles(rdMolStandardize.LargestFragmentChooser(preferOrganic=True).choose(mol))
        smiles = [Chem.MolToSmiles(f) for f in frags]
    k = smiles.index(chosen) if chosen in smiles else max(range(len(frags)), key=lambda i: frags[i].GetNumAtoms())
    kept = frags[k]
    # unsanitised fragments have no ring information (descriptors such as rotatable bonds need it)
    kept.UpdatePropertyCache(strict=False)
    Chem.FastFindRings(kept)
    return kept, [canonical_smiles(f) for i, f in enumerate(frags) if i != k], tuple(atoms_of[k])


def protonate(mol: Any, ph: float, where: str) -> Any:
    """The dominant protonation state of ``mol`` at ``ph`` (optional package ``dimorphite-dl``, one
    variant). Stereochemistry as given. InputError when the package is not installed or gives nothing."""
    from rdkit import Chem

    try:
        from dimorphite_dl import protonate_smiles
    except ImportError:
        raise InputError("protonation at a given pH needs the optional package dimorphite-dl "
                         "(pip install dimorphite-dl, or the extra golf[protonation])") from None
    smi = Chem.MolToSmiles(Chem.RemoveHs(mol))
    out = protonate_smiles(smi, ph_min=float(ph), ph_max=float(ph), max_variants=1)
    if not out:
        raise InputError(f"{where}: dimorphite-dl found no protonation state at pH {ph:g} for {smi}")
    return parse_smiles(str(out[0]).split()[0], where)


#: why an NNP that takes neutral molecules only refuses a charged or open-shell one, and what can take it.
CHARGED_ADVICE = ("no official golf model takes charged or open-shell molecules; relax it with an oracle "
                  "(xtb or dft, which get its charge and multiplicity) or with a model adapted on charged "
                  "data (golf adapt) whose metadata says charged_molecules=True")


def check_single_molecule(mol: Any, where: str) -> None:
    """InputError (``where`` first) unless the RDKit molecule is one fragment of at most ``MAX_ATOMS``
    atoms, hydrogens (explicit or implicit) included."""
    from rdkit import Chem

    n_atoms = sum(1 + a.GetTotalNumHs() for a in mol.GetAtoms())
    problem = single_molecule_problem(n_atoms, 1 if n_atoms > MAX_ATOMS else len(Chem.GetMolFrags(mol)))
    if problem is not None:
        raise InputError(f"{where}: {problem}")


# ----------------------------------------------------------------------------------------------
# RDKit <-> Conformation


def check_molecule(
    mol: Any, where: str, charge: int | None = None, multiplicity: int | None = None,
    sources: dict[str, str] | None = None,
) -> tuple[int, int]:
    """Check elements, charge and spin of an RDKit molecule (hydrogens explicit or implicit).

    Returns ``(charge, multiplicity)``. Charged molecules are rejected unless ``charge`` is given and
    equals the net formal charge; radicals unless ``multiplicity`` is given (and consistent with the
    electron count). Raises InputError with ``where`` as prefix. ``sources`` says where a given
    ``"charge"``/``"multiplicity"`` came from when not from the command line, as the phrase that
    opens the message (``{"charge": "charge 1 (its SDF field <charge>)"}``).
    """
    sources = sources or {}
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
            raise ChargeSpinError(where, "charge", net, f"charged molecule (net charge {net:+d})")
        charge = 0
    elif int(charge) != net:
        given = sources.get("charge", f"--charge {charge}")
        raise InputError(
            f"{where}: {given} does not match the net formal charge {net:+d} of the molecule "
            "(the sum of its atoms' formal charges)"
        )
    n_rad = sum(a.GetNumRadicalElectrons() for a in mol.GetAtoms())
    # explicit H atoms count through their Z, implicit ones through GetTotalNumHs of heavy atoms
    n_elec = sum(a.GetAtomicNum() + a.GetTotalNumHs() for a in mol.GetAtoms()) - int(charge)
    if multiplicity is None:
        if n_rad:
            raise ChargeSpinError(where, "multiplicity", n_rad + 1, f"radical ({n_rad} unpaired electron(s))")
        multiplicity = 1
    else:
        multiplicity = int(multiplicity)
        if multiplicity < 1 or (multiplicity - 1) % 2 != n_elec % 2:
            given = sources.get("multiplicity", f"multiplicity {multiplicity}")
            raise InputError(f"{where}: {given} impossible with {n_elec} electrons")
    return int(charge), int(multiplicity)


def canonical_smiles(mol: Any) -> str:
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
    smiles = smiles if smiles is not None else canonical_smiles(mol_h)
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


def conformation_to_mol(conf: Conformation, strict: bool = False, connectivity_ok: bool = False) -> Any:
    """An RDKit molecule (hydrogens explicit) at ``conf.positions`` [n, 3] Angstrom, one conformer.

    Bonds come from ``conf.molblock``; without one they are perceived from the coordinates
    (``perceive_bonds``). With ``strict`` a mol block that RDKit cannot read or whose atoms differ
    from ``conf.numbers`` is an InputError; otherwise such a block is ignored and bonds are perceived.
    With ``connectivity_ok`` a structure whose bond orders cannot be assigned gets its connectivity
    only (``connectivity_mol``) instead of an InputError.
    """
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    mol = None
    if conf.molblock:
        with quiet_rdkit():
            mol = Chem.MolFromMolBlock(conf.molblock, removeHs=False, sanitize=True)
        if mol is None and strict:
            raise InputError("RDKit could not parse/sanitize the mol block")
        if mol is not None and [a.GetAtomicNum() for a in mol.GetAtoms()] != conf.numbers.tolist():
            if strict:
                raise InputError("mol block atoms do not match the conformation's atomic numbers "
                                 "(hydrogens must be explicit and in the same order)")
            mol = None
    if mol is None:
        try:
            mol = perceive_bonds(conf.numbers, conf.positions, conf.charge, conf.multiplicity, "conformation")
        except InputError:
            if not connectivity_ok:
                raise
            mol = connectivity_mol(conf.numbers, conf.positions)
    mol = Chem.Mol(mol)
    mol.RemoveAllConformers()
    c = Chem.Conformer(conf.n_atoms)
    for i, (x, y, z) in enumerate(conf.positions):
        c.SetAtomPosition(i, Point3D(float(x), float(y), float(z)))
    c.Set3D(True)
    mol.AddConformer(c, assignId=True)
    return mol


def mmff_force_field(
    mol: Any,
    variant: str = "MMFF94",
    nonbonded_thresh: float = 100.0,
    ignore_interfrag: bool = False,
    props: Any = None,
) -> tuple[Any, Any]:
    """The MMFF94 setup of an RDKit molecule at its conformer: ``(properties, force field)``.

    Args:
        mol: hydrogen-explicit molecule with one conformer (Angstrom).
        variant: "MMFF94" or "MMFF94s".
        nonbonded_thresh: RDKit's non-bonded cutoff (Angstrom).
        ignore_interfrag: leave out interactions between disconnected fragments.
        props: reuse these MMFF properties (typing is the slow part).

    The force field works in kcal/mol and Angstrom. Raises InputError when MMFF cannot type the
    molecule or set up its force field.
    """
    from rdkit.Chem import rdForceFieldHelpers

    if props is None:
        props = rdForceFieldHelpers.MMFFGetMoleculeProperties(mol, mmffVariant=variant)
        if props is None:
            raise InputError("MMFF94 cannot assign atom types to this molecule")
        props.SetMMFFVerbosity(0)
    ff = rdForceFieldHelpers.MMFFGetMoleculeForceField(
        mol, props, nonBondedThresh=nonbonded_thresh, ignoreInterfragInteractions=ignore_interfrag
    )
    if ff is None:
        raise InputError("MMFF94 force field setup failed")
    return props, ff


def _xyz_mol(numbers: np.ndarray, positions: np.ndarray) -> Any:
    """RDKit molecule of bare atoms (hydrogens explicit, no implicit ones) with one 3D conformer."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    rw = Chem.RWMol()
    for z in numbers:
        atom = Chem.Atom(int(z))
        atom.SetNoImplicit(True)  # every hydrogen is in the structure
        rw.AddAtom(atom)
    c = Chem.Conformer(len(numbers))
    for i, (x, y, zz) in enumerate(positions):
        c.SetAtomPosition(i, Point3D(float(x), float(y), float(zz)))
    c.Set3D(True)
    rw.AddConformer(c, assignId=True)
    return rw.GetMol()


def connectivity_mol(numbers: np.ndarray, positions: np.ndarray) -> Any:
    """Hydrogen-explicit RDKit molecule whose bonds (all single) are only the connectivity perceived
    from 3D coordinates [n, 3] Angstrom (``rdDetermineBonds.DetermineConnectivity``): no bond orders,
    no formal charges. Enough for whatever needs only the bond graph (NNPs need none)."""
    from rdkit.Chem import rdDetermineBonds

    mol = _xyz_mol(numbers, positions)
    with quiet_rdkit():
        if len(numbers) > 1:
            rdDetermineBonds.DetermineConnectivity(mol)
        mol.UpdatePropertyCache(strict=False)
    return mol


def perceive_bonds(
    numbers: np.ndarray, positions: np.ndarray, charge: int, multiplicity: int | None, where: str
) -> Any:
    """Hydrogen-explicit RDKit molecule with bonds (and bond orders) perceived from 3D coordinates.

    InputError when no bond orders fit the total ``charge`` (closed shell); open-shell structures
    (``multiplicity`` > 1) then get the connectivity only. A single atom gets its radical electrons.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDetermineBonds

    mol = _xyz_mol(numbers, positions)
    with quiet_rdkit():
        try:
            if len(numbers) == 1:  # nothing to bond: the atom keeps its valence electrons
                atom = mol.GetAtomWithIdx(0)
                atom.SetFormalCharge(int(charge))
                mol.UpdatePropertyCache(strict=False)
                Chem.AssignRadicals(mol)
            else:
                rdDetermineBonds.DetermineBonds(mol, charge=int(charge))
        except Exception as exc:
            if multiplicity is not None and multiplicity > 1:
                # open-shell: bond orders are undefined for the Hueckel/xyz2mol assignment;
                # connectivity is enough for oracles that take only coordinates.
                mol = connectivity_mol(numbers, positions)
            else:
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(
                    f"{where}: could not assign bond orders with total charge {charge} ({reason}); "
                    "a charged or radical structure needs its charge and multiplicity given"
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
    with quiet_rdkit():
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
    where: str | None = None,
    fragments_ok: bool = False,
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
        where: how errors name the molecule (default ``molecule {mol_id}``).
        fragments_ok: embed a molecule of several fragments (a salt kept whole for an oracle);
            fragments that land on top of each other are an InputError (``check_geometry``).

    Raises InputError if the molecule is invalid, has more than one fragment or more than
    ``MAX_ATOMS`` atoms, or cannot be embedded at all.
    """
    from rdkit import Chem
    from rdkit.Chem import rdDistGeom

    where = where or f"molecule {mol_id}"
    if isinstance(smiles_or_mol, str):
        mol = parse_smiles(smiles_or_mol, where=where)
    else:
        mol = Chem.Mol(smiles_or_mol)
    charge, multiplicity = check_molecule(mol, where, charge, multiplicity)
    if fragments_ok:
        n_atoms = sum(1 + a.GetTotalNumHs() for a in mol.GetAtoms())
        problem = single_molecule_problem(n_atoms, 1)
        if problem is not None:
            raise InputError(f"{where}: {problem}")
    else:
        check_single_molecule(mol, where)
    smiles = canonical_smiles(mol)
    mol_h = Chem.AddHs(mol)
    mol_h.RemoveAllConformers()
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = _rdkit_seed(seed, mol_id)
    params.numThreads = 1
    with quiet_rdkit():
        ids = list(rdDistGeom.EmbedMultipleConfs(mol_h, numConfs=int(n), params=params))
        if not ids:
            params.useRandomCoords = True
            ids = list(rdDistGeom.EmbedMultipleConfs(mol_h, numConfs=int(n), params=params))
    if not ids:
        raise InputError(f"{where}: ETKDG could not embed {smiles}")
    if fragments_ok:
        _separate_fragments(mol_h, ids)
    confs = mol_to_conformations(
        mol_h, mol_id=mol_id, smiles=smiles, charge=charge, multiplicity=multiplicity,
        conf_ids=ids, info=info,
    )
    if displacement and displacement > 0:
        rng = rng if rng is not None else _rng(seed, mol_id)
        for c in confs:
            c.positions = c.positions + rng.normal(0.0, float(displacement), size=c.positions.shape)
    if fragments_ok:
        for c in confs:
            check_geometry(c, where)
    return confs



def _separate_fragments(mol_h: Any, conf_ids: Sequence[int], gap: float = 4.0) -> None:
    """Move the fragments of each embedded conformer apart along x, ``gap`` A between their extents
    (ETKDG embeds the fragments of a salt independently, often on top of each other)."""
    from rdkit import Chem
    from rdkit.Geometry import Point3D

    frags = Chem.GetMolFrags(mol_h)
    if len(frags) < 2:
        return
    for cid in conf_ids:
        conf = mol_h.GetConformer(int(cid))
        pos = np.array(conf.GetPositions())
        x_end = None
        for atoms in frags:
            idx = list(atoms)
            p = pos[idx] - pos[idx].mean(axis=0)
            shift = np.zeros(3)
            if x_end is not None:
                shift[0] = x_end + gap - p[:, 0].min()
            p = p + shift
            x_end = float(p[:, 0].max())
            for i, xyz in zip(idx, p):
                conf.SetAtomPosition(int(i), Point3D(*map(float, xyz)))


# ----------------------------------------------------------------------------------------------
# ASE Atoms <-> Conformation


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
    bond_orders: bool = True,
) -> Conformation:
    """Conformation from ASE Atoms. Bonds come from ``molblock`` if given, else ``rdDetermineBonds``
    with the total charge (``charge`` or ``atoms.info['charge']`` or 0).

    Without ``bond_orders`` a structure whose bond orders cannot be assigned (some nitro/disulfide
    compounds written as XYZ, odd geometries) is still accepted for what needs no bond orders (NNP
    prediction and relaxation): it gets no mol block, ``info['bonds'] = 'connectivity'`` and the
    given charge (default 0); odd electron counts still need ``multiplicity``.

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
        check_geometry(conf, where)
    if molblock:
        with quiet_rdkit():
            mol = Chem.MolFromMolBlock(molblock, removeHs=False)
        if mol is None or mol.GetNumAtoms() != len(numbers):
            mol = None
    else:
        mol = None
    connectivity_only = False
    if mol is None:
        charge = 0 if charge is None else int(charge)
        try:
            mol = perceive_bonds(numbers, positions, charge, multiplicity, where)
        except InputError:
            if bond_orders:
                raise
            connectivity_only = True
            mol = connectivity_mol(numbers, positions)
            n_elec = int(numbers.sum()) - charge
            if multiplicity is None:
                if n_elec % 2:
                    raise ChargeSpinError(where, "multiplicity", 2, f"odd electron count ({n_elec})") from None
                multiplicity = 1
            elif multiplicity < 1 or (multiplicity - 1) % 2 != n_elec % 2:
                raise InputError(f"{where}: multiplicity {multiplicity} impossible with {n_elec} electrons") from None
        if check and not connectivity_only:
            charge, multiplicity = check_molecule(mol, where, charge, multiplicity)
        molblock = None if connectivity_only else Chem.MolToMolBlock(mol)
    elif check:
        charge, multiplicity = check_molecule(mol, where, charge, multiplicity)
    conf.charge = int(charge or 0)
    conf.multiplicity = int(multiplicity or 1)
    conf.molblock = molblock
    if connectivity_only:
        conf.info["bonds"] = "connectivity"  # no bond orders: no SMILES either
    elif conf.smiles is None:
        conf.smiles = canonical_smiles(mol)
    return conf



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
