"""Low-energy conformer ensembles of drug-like molecules (``golf conformers``).

Pipeline, per input file:

1. read molecules (SMILES .smi/.txt/.csv or SDF), one record at a time: a bad record is reported and
   the others go on; salts and mixtures are stripped to their largest organic fragment
   (``golf.chem.largest_fragment``); optionally enumerate unassigned stereocentres / double bonds
   (each stereoisomer is a group under its input molecule);
2. embed an ETKDGv3 ensemble per molecule (:func:`default_n_conformers` from the number of
   rotatable bonds, or a fixed count), relax it with MMFF94 and drop duplicate MMFF minima
   (``mmff_start``), or, for a 3D SDF (an existing CREST/OMEGA/RDKit ensemble),
   take its records' coordinates as they are (grouped into molecules by title, else by canonical
   isomeric SMILES);
3. relax every conformer of every molecule in one stream with golf's batched optimizer
   (``golf.optim.relax``, one model call per step for all active conformers);
4. drop conformers whose bond graph changed (bonds perceived from the relaxed geometry vs the
   input graph) or whose stereochemistry changed (canonical isomeric SMILES perceived from 3D vs the
   input's, or vs the starting conformer's where the input leaves a centre unassigned);
5. deduplicate (symmetry-aware heavy-atom RMSD, RDKit ``GetBestRMS``, and energy; in a group whose
   stereochemistry is not assigned, mirror images too), keep the ``top_k`` lowest and/or those within
   ``window`` kcal/mol of the lowest, rank, Boltzmann-weight (``golf.outputs.boltzmann_weights``);
6. optionally refine the kept conformers with an oracle (single points or re-relaxation) through
   golf's executors and re-rank (:func:`refine`).

Units: energies are eV inside (``energy``), relative energies kcal/mol at the output edge
(``golf_rel_energy_kcal_mol``); coordinates Angstrom. Output names: ``golf.outputs``.
"""
from __future__ import annotations

import csv
import io
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from golf.conformation import Conformation
from golf.errors import InputError
from golf.io import atomic_write_text
from golf.outputs import ROOM_TEMPERATURE_K, SUMMARY_COLUMNS, boltzmann_weights, model_energy_reference
from golf.presets import COUNT, FORCE, INTEGER, NONNEGATIVE, PH, POSITIVE, STEPS, OracleRun, check_settings, one_of, setting
from golf.thresholds import NNP_FMAX, NNP_MAX_STEPS, ORACLE_MAX_STEPS
from golf.units import EV_TO_KCAL_MOL

__all__ = [
    "ConformerSettings", "MoleculeInput", "ConformerRecord", "MoleculeResult", "read_molecules",
    "expand_stereoisomers", "default_n_conformers", "stereo_key", "bond_graph", "perceived_bonds",
    "check_conformer", "heavy_atom_rmsd_matrix", "deduplicate", "select_conformers",
    "generate_conformer_ensembles", "refine", "write_sdf", "write_summary", "SUMMARY_FIELDS",
]

#: Two atoms are bonded in a geometry when closer than this factor times the sum of covalent radii.
BOND_FACTOR = 1.25


#: The ``golf.optim.relax`` methods an ensemble is relaxed with.
OPTIMIZERS = ("lbfgs-precon", "lbfgs", "lbfgs-golf", "lbfgs-ase", "fire", "gd")


@dataclass
class ConformerSettings:
    """Settings of :func:`generate_conformer_ensembles`.

    Each field is checked by the check declared with it (``golf.presets.setting``): an impossible
    value raises ``golf.errors.SettingError`` naming the field.

    Attributes:
        n_conformers: ETKDG conformers per molecule; None = :func:`default_n_conformers`.
        max_conformers: cap of the automatic count.
        enumerate_stereo: enumerate unassigned stereocentres / stereo double bonds.
        max_stereoisomers: at most this many stereoisomers per input molecule.
        optimizer: ``golf.optim.relax`` method.
        fmax: convergence threshold, max |F| per atom (eV/A).
        max_steps: optimizer steps per conformer.
        batch_size: conformers optimized at once (others stream in; None: automatic).
        rmsd_threshold: duplicates are closer than this heavy-atom RMSD (A) ...
        energy_threshold: ... and closer than this in energy (kcal/mol).
        top_k: keep at most this many per molecule (None: no limit).
        window: keep those within this many kcal/mol of the lowest (None: no limit).
        seed: ETKDG seed.
        charge, multiplicity: accept charged / open-shell input (as elsewhere in golf).
        embed: embed new ETKDG conformers even for a 3D SDF (default: relax its coordinates).
        mmff_start: MMFF94 minimizer iterations on each embedded conformer before the model relaxes it,
            then duplicates among the MMFF minima dropped (``rmsd_threshold``/``energy_threshold`` on MMFF
            energies); 0 = the model relaxes the ETKDG conformers themselves. Not applied to a 3D SDF's
            own coordinates, to open-shell molecules, or where MMFF cannot type the molecule (noted).
            Why: ETKDG starts are rough (model energies still fall by up to 23 kcal/mol after max |F|
            < 0.3 eV/A), MMFF removes most of that for a fraction of a model step's cost, and many starts
            share one MMFF minimum; 500 iterations chosen on validation drugs (docs/results.md §12).
        ph: protonate embedded molecules at this pH (optional dimorphite-dl); None: as given.
        temperature: of the Boltzmann weights (K).
    """

    n_conformers: int | None = setting(None, COUNT)
    max_conformers: int = setting(50, COUNT)
    enumerate_stereo: bool = False
    max_stereoisomers: int = setting(8, COUNT)
    optimizer: str = setting("lbfgs-precon", one_of(OPTIMIZERS))
    fmax: float = setting(NNP_FMAX, FORCE)
    max_steps: int = setting(NNP_MAX_STEPS, STEPS)
    batch_size: int | None = setting(None, COUNT)
    rmsd_threshold: float = setting(0.3, NONNEGATIVE)
    energy_threshold: float = setting(1.0, NONNEGATIVE)
    top_k: int | None = setting(10, COUNT)
    window: float | None = setting(None, NONNEGATIVE)
    seed: int = setting(0, INTEGER)
    charge: int | None = setting(None, INTEGER)
    multiplicity: int | None = setting(None, COUNT)
    embed: bool = False
    mmff_start: int = setting(500, STEPS)
    ph: float | None = setting(None, PH)
    temperature: float = setting(ROOM_TEMPERATURE_K, POSITIVE)

    def __post_init__(self) -> None:
        self.check()

    def check(self) -> None:
        """SettingError naming the field for an impossible value (again after a field was changed)."""
        check_settings(self)


@dataclass
class MoleculeInput:
    """One input record: an RDKit molecule (hydrogens implicit) or why it cannot be used."""

    index: int
    name: str
    where: str
    mol: Any = None
    smiles: str = ""
    charge: int = 0
    multiplicity: int = 1
    error: str | None = None
    charge_spin: Any = None  # the ChargeSpinError behind ``error``: its advice depends on the model
    stripped: str = ""  # counter-ions/solvents stripped from the record(s), '.'-joined SMILES
    conformers: list[Conformation] | None = None  # a 3D SDF's own coordinates (then nothing is embedded)
    input_properties: dict[str, str] = field(default_factory=dict)  # an SDF record's fields, passed through


@dataclass
class ConformerRecord:
    """One relaxed conformer that passed the checks.

    Attributes:
        conf: the conformer (positions in A, the input's bond graph in ``molblock``).
        energy: model energy (eV).
        fmax: final max |F| (eV/A).
        n_steps: optimizer steps.
        converged: fmax reached.
        stereo: canonical isomeric SMILES perceived from the 3D structure.
        rank: 1 = lowest (after refinement when refined).
        rel_energy_kcal_mol: model energy relative to the molecule's lowest kept conformer.
        model_rank: rank by model energy.
        refined_energy: oracle energy (eV; NaN when the oracle failed), None when not refined.
        refine_reason: why refinement failed (empty when ok).
        trust_mmff_drop: how far to trust the model's structure (``golf.trust.mmff_energy_drop``, eV;
            high = distrust; NaN where MMFF cannot type the molecule).
    """

    conf: Conformation
    energy: float
    fmax: float
    n_steps: int
    converged: bool
    stereo: str = ""
    rank: int = 0
    rel_energy_kcal_mol: float = 0.0
    model_rank: int = 0
    refined_energy: float | None = None
    refined_rel_kcal_mol: float | None = None
    refine_reason: str = ""
    trust_mmff_drop: float = math.nan
    boltzmann_weight: float = math.nan

    @property
    def refined(self) -> bool:
        """Whether the oracle gave this conformer an energy (it then ranks by it, else by the model's)."""
        return self.refined_energy is not None and bool(np.isfinite(self.refined_energy))


@dataclass
class MoleculeResult:
    """The outcome for one (stereoisomer of an) input molecule, with counts for the summary."""

    name: str
    input_smiles: str
    where: str = ""
    error: str | None = None
    input_name: str = ""  # the input molecule this (stereoisomer) group belongs to
    n_stereoisomers: int = 1  # groups of that input molecule
    stripped: str = ""
    coordinates: str = "embedded"  # or "input": a 3D SDF's coordinates relaxed
    n_embedded: int = 0
    n_failed: int = 0
    n_graph_changed: int = 0
    n_stereo_changed: int = 0
    n_mmff_duplicates: int = 0
    n_duplicates: int = 0
    n_beyond: int = 0
    n_refine_dropped: int = 0
    n_refine_failed: int = 0
    conformers: list[ConformerRecord] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None and bool(self.conformers)


# ----------------------------------------------------------------------------------------------
# input


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def _errors_onto(item: MoleculeInput) -> Iterator[None]:
    """Record an input problem raised in the block as ``item.error`` (one line), so the batch goes on."""
    from golf.errors import ChargeSpinError

    try:
        yield
    except ChargeSpinError as exc:
        item.error, item.charge_spin = str(exc), exc
    except InputError as exc:
        item.error = str(exc)
    except Exception as exc:  # RDKit oddities: report, go on
        item.error = f"{item.where}: {_first_line(exc)}"


def _names(explicit: Sequence[str | None]) -> list[str]:
    """Record names: an explicit one is kept; record k (1-based) without one is ``mol{k}``, or
    ``mol{k}_2``, ``mol{k}_3``... when an explicit name already reads ``mol{k}``."""
    taken = {n for n in explicit if n}
    out = []
    for k, name in enumerate(explicit, start=1):
        if not name:
            name, n = f"mol{k}", 1
            while name in taken:
                n += 1
                name = f"mol{k}_{n}"
            taken.add(name)
        out.append(name)
    return out


def read_molecules(
    path: str | Path, charge: int | None = None, multiplicity: int | None = None, *, embed: bool = False,
    ph: float | None = None,
) -> list[MoleculeInput]:
    """Molecules of a SMILES (.smi/.txt/.csv) or SDF (.sdf/.mol/.sd) file, one entry per molecule.

    A record that cannot be used (invalid SMILES, unsupported element, charged without ``charge``,
    more than ``golf.chem.MAX_ATOMS`` atoms...) comes back with ``error`` set instead of raising; a
    missing, empty or unknown file raises InputError. Salts and mixtures are stripped to their largest
    organic fragment (``stripped``). SDF records with 3D coordinates have their stereochemistry
    assigned from 3D; their fields are read as by ``golf.formats.sdf_fields`` (``charge``/
    ``multiplicity`` apply when the arguments are None).

    A 3D SDF (every readable record 3D, some z non-zero) is an existing ensemble: unless ``embed``, its
    records are grouped into molecules (by title, else by canonical isomeric SMILES) whose
    ``conformers`` are the records' own coordinates (hydrogens as in the file, added where missing).
    ``ph`` protonates molecules that will be embedded (``golf.chem.protonate``).
    Names: the record's id/title, else ``mol{record number}`` (see ``_names``).
    """
    from rdkit import Chem

    from golf.chem import check_molecule, check_single_molecule, parse_smiles, quiet_rdkit
    from golf.formats import (CSV_EXTS, SDF_EXTS, SMILES_EXTS, _read_smiles_records, check_input_file,
                              input_properties, is_3d, record_charge_multiplicity, sdf_fields, sdf_records,
                              standardize)

    p = check_input_file(path)
    ext = p.suffix.lower()
    out: list[MoleculeInput] = []

    def finish(item: MoleculeInput, mol: Any, q: int | None = charge, m: int | None = multiplicity,
               sources: dict[str, str] | None = None) -> None:
        with _errors_onto(item):
            mol, stripped = standardize(mol, item.where, ph=ph)
            item.stripped = ".".join(stripped)
            if ph is not None and q is None:  # the charge of the state at that pH
                q = sum(a.GetFormalCharge() for a in mol.GetAtoms())
            q, m = check_molecule(mol, item.where, q, m, sources=sources)
            check_single_molecule(mol, item.where)
            item.mol = Chem.RemoveHs(mol) if any(a.GetAtomicNum() == 1 for a in mol.GetAtoms()) else mol
            item.smiles = Chem.MolToSmiles(item.mol)
            item.charge, item.multiplicity = q, m

    if ext in SMILES_EXTS or ext in CSV_EXTS:
        records = _read_smiles_records(p)
        if not records:
            raise InputError(f"{p}: no molecules in file")
        for k, ((smi, _, lineno), name) in enumerate(zip(records, _names([r[1] for r in records]))):
            item = MoleculeInput(k, name, f"{p}: line {lineno}", smiles=smi)
            try:
                mol = parse_smiles(smi, item.where)
            except InputError as exc:
                item.error = str(exc)
                out.append(item)
                continue
            finish(item, mol)
            out.append(item)
        return out
    if ext not in SDF_EXTS:
        raise InputError(f"{p}: unknown file type {ext!r} (use .smi .txt .csv .sdf .mol)")
    with quiet_rdkit():
        records = []
        for k, where, mol in sdf_records(p):
            fields: dict[str, Any] | str = {}
            if mol is not None:
                try:
                    fields = sdf_fields(mol, where)
                except InputError as exc:
                    fields = str(exc)
            records.append((k, where, mol, fields))
        readable = [mol for _, _, mol, f in records if mol is not None and isinstance(f, dict)]
        ensemble = not embed and bool(readable) and all(is_3d(mol) for mol in readable)
        titles = [f.get("name") if isinstance(f, dict) else None for _, _, _, f in records]
        names = _names(titles)
        groups: dict[tuple[str, str], MoleculeInput] = {}
        for (k, where, mol, fields), title, name in zip(records, titles, names):
            item = MoleculeInput(k, name, where)
            if mol is None or isinstance(fields, str):
                item.error = fields if isinstance(fields, str) else f"{where}: unreadable molecule"
                out.append(item)
                continue
            item.input_properties = input_properties(mol)
            if mol.GetNumConformers() and mol.GetConformer().Is3D():
                Chem.AssignStereochemistryFrom3D(mol)
            q, m, sources = record_charge_multiplicity(charge, multiplicity, fields)
            if not ensemble:
                finish(item, mol, q, m, sources)
                out.append(item)
                continue
            _read_3d_record(item, mol, q, m, sources)
            if item.error is not None:
                out.append(item)
                continue
            # one molecule: the same title and constitution, else the same isomeric SMILES
            key = (title, Chem.MolToSmiles(item.mol, isomericSmiles=False)) if title else ("", item.smiles)
            group = groups.get(key)
            if group is None:
                groups[key] = item
                item.name = title or item.name
                out.append(item)
            else:
                group.conformers.extend(item.conformers or [])
                if item.smiles != group.smiles:
                    group.smiles = Chem.MolToSmiles(item.mol, isomericSmiles=False)  # mixed stereo
    return out


def _read_3d_record(item: MoleculeInput, mol: Any, q: int | None, m: int | None,
                    sources: dict[str, str]) -> None:
    """``item`` from one record of a 3D ensemble: its coordinates as a Conformation (``conformers``)."""
    from rdkit import Chem

    from golf.chem import check_molecule, check_single_molecule, mol_to_conformations
    from golf.formats import standardize

    with _errors_onto(item):
        mol, stripped = standardize(mol, item.where)
        item.stripped = ".".join(stripped)
        q, m = check_molecule(mol, item.where, q, m, sources=sources)
        check_single_molecule(mol, item.where)
        if any(a.GetAtomicNum() != 1 and a.GetNumImplicitHs() > 0 for a in mol.GetAtoms()):
            mol = Chem.AddHs(mol, addCoords=True)
        Chem.AssignStereochemistryFrom3D(mol)
        item.mol = Chem.RemoveHs(mol)
        item.smiles = Chem.MolToSmiles(item.mol)
        item.charge, item.multiplicity = q, m
        conf = mol_to_conformations(mol, mol_id=item.index, charge=q, multiplicity=m,
                                    info={"input_properties": item.input_properties})[0]
        problem = conf.geometry_problem()
        if problem is not None:
            raise InputError(f"{item.where}: {problem}")
        conf.info["where"] = item.where
        item.conformers = [conf]


def expand_stereoisomers(mol: Any, max_isomers: int = 8) -> list[Any]:
    """Stereoisomers of ``mol`` over its *unassigned* stereocentres and double bonds (assigned ones are
    kept); ``[mol]`` when nothing is unassigned. At most ``max_isomers``."""
    from rdkit.Chem.EnumerateStereoisomers import EnumerateStereoisomers, StereoEnumerationOptions

    opts = StereoEnumerationOptions(onlyUnassigned=True, maxIsomers=int(max_isomers), unique=True,
                                    tryEmbedding=False)
    isomers = list(EnumerateStereoisomers(mol, options=opts))
    return isomers or [mol]


def _has_unassigned_stereo(mol: Any) -> bool:
    from rdkit import Chem

    m = Chem.Mol(mol)  # molecules sanitized after parsing have no stereo perception yet
    Chem.AssignStereochemistry(m, cleanIt=True, force=True)
    return any(si.specified != Chem.StereoSpecified.Specified for si in Chem.FindPotentialStereo(m))


def default_n_conformers(mol: Any, cap: int = ConformerSettings.max_conformers) -> int:
    """ETKDG conformers for a molecule: ``5 * (rotatable bonds + 1)``, at least 10, at most ``cap``
    (0 rotors: 10, 3: 20, 5: 30, >= 9: 50 with the default cap)."""
    from rdkit.Chem import rdMolDescriptors

    n_rot = int(rdMolDescriptors.CalcNumRotatableBonds(mol))
    return int(min(cap, max(10, 5 * (n_rot + 1))))


# ----------------------------------------------------------------------------------------------
# checks


def bond_graph(mol: Any) -> set[tuple[int, int]]:
    """Bonds of an RDKit molecule as sorted atom-index pairs."""
    return {tuple(sorted((b.GetBeginAtomIdx(), b.GetEndAtomIdx()))) for b in mol.GetBonds()}


_RCOV: dict[int, float] = {}


def perceived_bonds(numbers: np.ndarray, positions: np.ndarray, factor: float = BOND_FACTOR) -> set[tuple[int, int]]:
    """Bonds of a geometry: pairs closer than ``factor`` x the sum of RDKit's covalent radii (A)."""
    from rdkit import Chem

    if not _RCOV:
        pt = Chem.GetPeriodicTable()
        _RCOV.update({z: float(pt.GetRcovalent(z)) for z in range(1, 87)})
    r = np.array([_RCOV[int(z)] for z in numbers])
    pos = np.asarray(positions, dtype=np.float64)
    d = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
    i, j = np.nonzero(np.triu(d < factor * (r[:, None] + r[None, :]), k=1))
    return set(zip(i.tolist(), j.tolist()))


def stereo_key(conf: Conformation) -> str:
    """Canonical isomeric SMILES (hydrogens implicit) with stereochemistry perceived from the 3D
    coordinates of ``conf`` on its bond graph."""
    from rdkit import Chem

    from golf.chem import conformation_to_mol, quiet_rdkit

    with quiet_rdkit():
        mol = conformation_to_mol(conf)
        Chem.AssignStereochemistryFrom3D(mol, confId=mol.GetConformer().GetId())
        return Chem.MolToSmiles(Chem.RemoveHs(mol))


def check_conformer(conf: Conformation, graph: set[tuple[int, int]], reference_stereo: str) -> tuple[str | None, str]:
    """Why a relaxed conformer must be dropped ("graph" / "stereo") or None, and its stereo key.

    ``graph``: the input's bonds; ``reference_stereo``: the stereo key it must keep.
    """
    if perceived_bonds(conf.numbers, conf.positions) != graph:
        return "graph", ""
    key = stereo_key(conf)
    if key != reference_stereo:
        return "stereo", key
    return None, key


# ----------------------------------------------------------------------------------------------
# deduplication and selection


def heavy_atom_rmsd_matrix(confs: Sequence[Conformation], pairs: Sequence[tuple[int, int]] | None = None,
                           max_matches: int = 2000, cache: dict[int, Any] | None = None) -> dict[tuple[int, int], float]:
    """Symmetry-aware heavy-atom RMSD (A) after optimal alignment (RDKit ``GetBestRMS``) between
    conformers of one molecule, for the given index pairs (default: all i < j). ``cache``: the heavy-atom
    RDKit molecules by index, kept across calls on the same ``confs`` (building them is most of the cost of
    one pair)."""
    from rdkit import Chem
    from rdkit.Chem import rdMolAlign

    from golf.chem import conformation_to_mol, quiet_rdkit

    confs = list(confs)
    if pairs is None:
        pairs = [(i, j) for i in range(len(confs)) for j in range(i + 1, len(confs))]
    heavy: dict[int, Any] = {} if cache is None else cache

    def get(k: int) -> Any:
        if k not in heavy:
            heavy[k] = Chem.RemoveHs(conformation_to_mol(confs[k]))
        return heavy[k]

    out = {}
    with quiet_rdkit():
        for i, j in pairs:
            prb = Chem.Mol(get(j))  # GetBestRMS moves the probe: work on a copy
            out[(i, j)] = float(rdMolAlign.GetBestRMS(prb, get(i), maxMatches=max_matches))
    return out


def deduplicate(
    confs: Sequence[Conformation], energies_ev: Sequence[float],
    rmsd_threshold: float = ConformerSettings.rmsd_threshold,
    energy_threshold_kcal: float = ConformerSettings.energy_threshold, mirror: bool = False,
) -> tuple[list[int], dict[int, int]]:
    """Greedy deduplication in order of increasing energy.

    A conformer is a duplicate of an already kept one when their energies differ by less than
    ``energy_threshold_kcal`` (kcal/mol) and their symmetry-aware heavy-atom RMSD is below
    ``rmsd_threshold`` (A); with ``mirror`` (a group whose stereochemistry is not assigned, so it may
    hold both enantiomers) also when its mirror image is that close (the NNP energy of a mirror image
    is the same). Returns (kept indices, lowest first; {duplicate: kept index it repeats}).
    """
    e = np.asarray(energies_ev, dtype=np.float64) * EV_TO_KCAL_MOL
    order = [int(i) for i in np.argsort(e, kind="stable")]
    confs = list(confs)
    mirrored = [c.with_positions(c.positions * np.array([-1.0, 1.0, 1.0])) for c in confs] if mirror else []
    both = confs + mirrored  # index n + i: the mirror image of conformer i
    cache: dict[int, Any] = {}
    kept: list[int] = []
    dup_of: dict[int, int] = {}
    for i in order:
        close = [k for k in kept if abs(e[i] - e[k]) < energy_threshold_kcal]
        hit = None
        for k in close:
            if heavy_atom_rmsd_matrix(both, [(k, i)], cache=cache)[(k, i)] < rmsd_threshold or (
                    mirror and heavy_atom_rmsd_matrix(both, [(k, len(confs) + i)], cache=cache)[(k, len(confs) + i)]
                    < rmsd_threshold):
                hit = k
                break
        if hit is None:
            kept.append(i)
        else:
            dup_of[i] = hit
    return kept, dup_of


def select_conformers(energies_ev: Sequence[float], top_k: int | None, window_kcal: float | None) -> list[int]:
    """Indices (lowest first) of the ``top_k`` lowest energies that are also within ``window_kcal``
    of the lowest (either limit None = not applied)."""
    e = np.asarray(energies_ev, dtype=np.float64) * EV_TO_KCAL_MOL
    order = [int(i) for i in np.argsort(e, kind="stable")]
    if window_kcal is not None and order:
        order = [i for i in order if e[i] - e[order[0]] <= window_kcal + 1e-9]
    return order if top_k is None else order[:top_k]


# ----------------------------------------------------------------------------------------------
# the pipeline


def _embed(item: MoleculeInput, mol: Any, name: str, mol_id: int, settings: ConformerSettings) -> list[Conformation]:
    from golf.chem import generate_conformers

    n = settings.n_conformers or default_n_conformers(mol, settings.max_conformers)
    return generate_conformers(mol, n, settings.seed, mol_id=mol_id, charge=item.charge,
                               multiplicity=item.multiplicity, info={"name": name}, where=item.where)


def _mmff_start(confs: list[Conformation], settings: ConformerSettings, mirror: bool,
                log: Callable[[str], None], where: str) -> tuple[list[Conformation], int]:
    """The embedded conformers relaxed with MMFF94 (``settings.mmff_start`` iterations) less duplicates among
    them, and the number dropped; the conformers as they were (with a note) where MMFF cannot type the molecule."""
    from golf.oracles.mmff import mmff_minimize

    try:
        relaxed, energies = mmff_minimize(confs, settings.mmff_start)
    except InputError as exc:
        log(f"{where}: {exc}; the model relaxes its ETKDG conformers without the MMFF start")
        return confs, 0
    kept, dup_of = deduplicate(relaxed, energies, settings.rmsd_threshold, settings.energy_threshold, mirror=mirror)
    return [relaxed[i] for i in sorted(kept)], len(dup_of)


def _counted(items: Sequence[Any], done: Callable[[int], None] | None) -> Any:
    """The items, calling ``done(1)`` as each one has been dealt with."""
    for item in items:
        yield item
        if done is not None:
            done(1)


def generate_conformer_ensembles(
    molecules: Sequence[MoleculeInput],
    model: Any,
    settings: ConformerSettings | None = None,
    device: Any = "cpu",
    dtype: Any = None,
    progress: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
    log: Callable[[str], None] | None = None,
    embedded: Callable[[int], None] | None = None,
    relax_fn: Callable[..., list[Any]] | None = None,
) -> list[MoleculeResult]:
    """Conformer ensembles of molecules with an NNP (``golf.models.Potential``); one result per
    (stereoisomer group of an) input molecule, in input order (``input_name`` names the input).

    All conformers of all molecules are relaxed together by ``golf.optim.relax`` (batched).
    ``embedded(1)`` is called as each input molecule has been embedded (ETKDG, the slow part before
    relaxation), ``progress(k)`` as k conformers finish relaxing, ``on_total(n)`` once with the number
    to relax, ``log(msg)`` with per-molecule notes and problems (one line each). A molecule that fails
    (bad input, unseen element, a charge the model does not take, embedding failure, every conformer
    dropped) gets ``error`` set; the others go on. Molecules with ``conformers`` (a 3D SDF) are relaxed
    from those coordinates, nothing embedded.

    ``relax_fn(confs, progress=..., method=..., fmax=..., max_steps=..., batch_size=...)`` relaxes instead of
    ``golf.optim.relax`` in this process (e.g. ``golf.runs.relax_pool.relax_in_processes`` bound to the model);
    it returns one ``golf.optim.RelaxRecord`` per conformation, in order.
    """
    import torch
    from rdkit import Chem

    from golf.models import ModelEnergyForces
    from golf.chem import quiet_rdkit
    from golf.optim import relax

    settings = settings or ConformerSettings()
    settings.check()
    dtype = dtype or torch.float32
    log = log or (lambda msg: None)
    results: list[MoleculeResult] = []
    confs: list[Conformation] = []
    owner: list[int] = []
    racemic: set[int] = set()  # result indices whose conformers may mix enantiomers
    for item in _counted(molecules, embedded):
        if item.error is not None:
            error = item.error
            if item.charge_spin is not None and getattr(model, "neutral_only", True):
                from golf.runs.batch_run import neutral_only_refusal

                error = neutral_only_refusal(item.charge_spin)  # no advice to pass a charge the model cannot take
            results.append(MoleculeResult(item.name, item.smiles, item.where, error=error, input_name=item.name))
            log(error)
            continue
        if item.stripped:
            log(f"{item.where}: {item.name}: stripped {item.stripped} (counter-ion/solvent; kept the largest "
                "organic fragment)")
        try:
            model.check_elements(np.array([a.GetAtomicNum() for a in item.mol.GetAtoms()] + [1]))
            try:
                model.check_charge(item.charge, item.multiplicity)
            except InputError as exc:
                from golf.runs.batch_run import neutral_only_refusal

                raise InputError(neutral_only_refusal(exc)) from None
        except InputError as exc:
            res = MoleculeResult(item.name, item.smiles, item.where, error=f"{item.where}: {exc}",
                                 input_name=item.name, stripped=item.stripped)
            results.append(res)
            log(res.error)
            continue
        if item.conformers:  # an existing 3D ensemble: its own coordinates
            res = MoleculeResult(item.name, item.smiles, item.where, input_name=item.name, stripped=item.stripped,
                                 coordinates="input")
            k = len(results)
            results.append(res)
            stereo = set()
            for c in item.conformers:
                c.mol_id, c.info["name"] = k, item.name
                c.info["start_stereo"] = stereo_key(c)
                stereo.add(c.info["start_stereo"])
            if len(stereo) > 1:
                racemic.add(k)
            res.n_embedded = len(item.conformers)
            confs.extend(item.conformers)
            owner.extend([k] * len(item.conformers))
            continue
        isomers = expand_stereoisomers(item.mol, settings.max_stereoisomers) if settings.enumerate_stereo \
            else [item.mol]
        first = len(results)
        for s, iso in enumerate(isomers):
            name = item.name if len(isomers) == 1 else f"{item.name}_s{s + 1}"
            smi = Chem.MolToSmiles(iso)
            res = MoleculeResult(name, smi, item.where, input_name=item.name, n_stereoisomers=len(isomers),
                                 stripped=item.stripped)
            k = len(results)
            results.append(res)
            with quiet_rdkit():
                unassigned = _has_unassigned_stereo(iso)
            if unassigned:
                racemic.add(k)
                log(f"{item.where}: {name} has unassigned stereo elements; its conformers may mix "
                    "stereoisomers (mirror images are removed as duplicates; --enumerate-stereo gives each "
                    "stereoisomer its own group)")
            try:
                with quiet_rdkit():
                    new = _embed(item, iso, name, k, settings)
            except InputError as exc:
                res.error = str(exc)
                log(res.error)
                continue
            res.n_embedded = len(new)
            if settings.mmff_start and item.multiplicity == 1:
                new, res.n_mmff_duplicates = _mmff_start(new, settings, mirror=unassigned, log=log, where=name)
            for c in new:  # the stereo it must keep: the input's, or its own where unassigned
                c.info["start_stereo"] = stereo_key(c) if unassigned else smi
                c.info["input_properties"] = item.input_properties
            confs.extend(new)
            owner.extend([k] * len(new))
        if len(results) - first > 1:
            log(f"{item.where}: {item.name}: {len(results) - first} stereoisomers, each its own group")
    if on_total is not None:
        on_total(len(confs))
    if not confs:
        return results
    how = dict(method=settings.optimizer, fmax=settings.fmax, max_steps=settings.max_steps,
               batch_size=settings.batch_size, progress=progress)
    if relax_fn is not None:
        recs = relax_fn(confs, **how)
    else:
        recs = relax(ModelEnergyForces(model), confs, device=device, dtype=dtype, **how)
    by_mol: dict[int, list[ConformerRecord]] = {}
    for c, r, k in zip(confs, recs, owner):
        res = results[k]
        if not np.isfinite(r.energy) or r.reason not in ("converged", "max_steps"):
            res.n_failed += 1
            continue
        relaxed = c.with_positions(r.positions)
        problem, key = check_conformer(relaxed, bond_graph(_mol_of(c)), c.info["start_stereo"])
        if problem == "graph":
            res.n_graph_changed += 1
            continue
        if problem == "stereo":
            res.n_stereo_changed += 1
            continue
        relaxed.info.pop("start_stereo", None)
        by_mol.setdefault(k, []).append(ConformerRecord(relaxed, float(r.energy), float(r.fmax), int(r.n_steps),
                                                        bool(r.converged), stereo=key))
    for k, res in enumerate(results):
        if res.error is not None:
            continue
        cands = by_mol.get(k, [])
        if not cands:
            res.error = (f"{res.where}: no conformer survived ({res.n_failed} failed, {res.n_graph_changed} "
                         f"changed bonds, {res.n_stereo_changed} changed stereo)")
            log(res.error)
            continue
        kept, dup_of = deduplicate([c.conf for c in cands], [c.energy for c in cands], settings.rmsd_threshold,
                                   settings.energy_threshold, mirror=k in racemic)
        res.n_duplicates = len(dup_of)
        uniq = [cands[i] for i in kept]
        chosen = select_conformers([c.energy for c in uniq], settings.top_k, settings.window)
        res.n_beyond = len(uniq) - len(chosen)
        res.conformers = [uniq[i] for i in chosen]
        _rank(res.conformers, refined=False)
        _weigh(res.conformers, settings.temperature)
    from golf.trust import mmff_energy_drop

    kept = [rec for res in results for rec in res.conformers]
    for rec, drop in zip(kept, mmff_energy_drop([rec.conf for rec in kept])):
        rec.trust_mmff_drop = float(drop)
    return results


def _weigh(recs: list[ConformerRecord], temperature: float) -> None:
    """Boltzmann weights of a molecule's kept conformers from their model energies."""
    for r, w in zip(recs, boltzmann_weights([r.energy for r in recs], temperature)):
        r.boltzmann_weight = float(w)


def _rank(recs: list[ConformerRecord], refined: bool) -> None:
    """Sort by (refined) energy and set rank and relative energies (kcal/mol)."""
    if not recs:
        return
    e0 = min(r.energy for r in recs)
    for r in recs:
        r.rel_energy_kcal_mol = (r.energy - e0) * EV_TO_KCAL_MOL
    if not refined:
        recs.sort(key=lambda r: r.energy)
        for i, r in enumerate(recs):
            r.rank = r.model_rank = i + 1
        return
    ok = [r.refined_energy for r in recs if r.refined_energy is not None and np.isfinite(r.refined_energy)]
    ref0 = min(ok) if ok else math.nan
    for r in recs:
        good = r.refined_energy is not None and np.isfinite(r.refined_energy)
        r.refined_rel_kcal_mol = (r.refined_energy - ref0) * EV_TO_KCAL_MOL if good else math.nan
    recs.sort(key=lambda r: (0, r.refined_energy) if r.refined_energy is not None and np.isfinite(r.refined_energy)
              else (1, r.energy))
    for i, r in enumerate(recs):
        r.rank = i + 1


# ----------------------------------------------------------------------------------------------
# oracle refinement


def refine(
    results: Sequence[MoleculeResult],
    oracle: str,
    optimize: bool = False,
    fmax: float = NNP_FMAX,
    max_steps: int = ORACLE_MAX_STEPS,
    executor: str = "local",
    n_workers: int = OracleRun.workers,
    scheduler: str | None = None,
    timeout: float | None = None,
    oracle_settings: dict[str, Any] | None = None,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Oracle single points (or, with ``optimize``, oracle re-relaxations to ``fmax`` eV/A) of every
    kept conformer, through golf's executors; re-ranks each molecule by oracle energy (in place).

    Sets ``refined_energy`` (eV; NaN and ``refine_reason`` when the oracle failed: such conformers
    rank last). A re-relaxed conformer whose bond graph or stereochemistry changed is dropped and
    counted in ``n_refine_dropped``.
    """
    from golf.oracles import OracleSpec
    from golf.oracles.executors import make_executor

    spec = OracleSpec(oracle, dict(oracle_settings or {}))
    todo = {(m, i): rec for m, res in enumerate(results) if res.ok for i, rec in enumerate(res.conformers)}
    if not todo:
        return
    graphs = {key: bond_graph(_mol_of(rec.conf)) for key, rec in todo.items()}  # records may differ in atom order
    drop: set[tuple[int, int]] = set()
    with make_executor(spec, kind=executor, n_workers=n_workers, scheduler=scheduler, timeout=timeout) as ex:
        for key, rec in todo.items():
            if optimize:
                ex.submit(rec.conf, key=key, task="relax", fmax=fmax, max_steps=max_steps)
            else:
                ex.submit(rec.conf, key=key)
        for key, out in ex.as_completed():
            rec = todo[key]
            if progress is not None:
                progress(1)
            if not out.ok or out.energy is None:
                rec.refined_energy, rec.refine_reason = math.nan, out.reason or "oracle failed"
                results[key[0]].n_refine_failed += 1
                continue
            if optimize:
                moved = rec.conf.with_positions(out.positions)
                problem, key_s = check_conformer(moved, graphs[key], rec.stereo)
                if problem is not None:
                    drop.add(key)
                    continue
                rec.conf = moved
            rec.refined_energy = float(out.energy)
    for m, res in enumerate(results):
        if not res.ok:
            continue
        before = len(res.conformers)
        res.conformers = [r for i, r in enumerate(res.conformers) if (m, i) not in drop]
        res.n_refine_dropped += before - len(res.conformers)
        _rank(res.conformers, refined=True)


def _mol_of(conf: Conformation) -> Any:
    from rdkit import Chem

    return Chem.MolFromMolBlock(conf.molblock, removeHs=False, sanitize=False)


# ----------------------------------------------------------------------------------------------
# output


SUMMARY_FIELDS = tuple(SUMMARY_COLUMNS)


def _props(rec: ConformerRecord, res: MoleculeResult, model_name: str, refine_method: str | None,
           temperature: float) -> dict[str, Any]:
    p: dict[str, Any] = {
        "golf_input_molecule": res.input_name or res.name,
        "golf_molecule": res.name,
        "golf_rank": rec.rank,
        "golf_model": model_name,
        "golf_energy_eV": rec.energy,
        "golf_energy_reference": model_energy_reference(model_name),
        "golf_rel_energy_kcal_mol": rec.rel_energy_kcal_mol,
        "boltzmann_weight": rec.boltzmann_weight,
        "golf_temperature_K": float(temperature),
        "golf_model_rank": rec.model_rank,
        "golf_converged": rec.converged,
        "golf_steps": rec.n_steps,
        "golf_fmax_eV_A": rec.fmax,
        "golf_stereo_smiles": rec.stereo,
        "golf_coordinates": res.coordinates,
        "stripped_fragments": res.stripped,
        "trust_mmff_drop_kcal_mol": rec.trust_mmff_drop * EV_TO_KCAL_MOL,
    }
    if refine_method:
        p["golf_refine_method"] = refine_method
        p["golf_refined"] = rec.refined
        p["golf_ranked_by"] = "refined_energy" if rec.refined else "model_energy"
        p["golf_refined_energy_eV"] = math.nan if rec.refined_energy is None else rec.refined_energy
        p["golf_refined_rel_energy_kcal_mol"] = (math.nan if rec.refined_rel_kcal_mol is None
                                                 else rec.refined_rel_kcal_mol)
        if rec.refine_reason:
            p["golf_refine_error"] = rec.refine_reason
    return p


def write_sdf(path: str | Path, results: Sequence[MoleculeResult], model_name: str,
              refine_method: str | None = None, temperature: float = ROOM_TEMPERATURE_K) -> int:
    """Write every kept conformer (molecules in input order, conformers by rank) atomically; returns
    how many were written. SDF fields: ``golf.outputs.PROPERTIES`` (golf_molecule, golf_rank,
    golf_model, golf_energy_eV, golf_rel_energy_kcal_mol, boltzmann_weight...; with ``refine_method``
    the golf_refine* fields) and the input record's own fields, passed through."""
    from golf.formats import write_conformations

    confs, props = [], []
    for res in results:
        if not res.ok:
            continue
        for rec in res.conformers:
            rec.conf.info["name"] = res.name
            rec.conf.conf_id = rec.rank - 1
            confs.append(rec.conf)
            props.append(_props(rec, res, model_name, refine_method, temperature))
    write_conformations(path, confs, props)
    return len(confs)


def summary_rows(results: Sequence[MoleculeResult], model_name: str = "",
                 temperature: float = ROOM_TEMPERATURE_K) -> list[dict[str, Any]]:
    """One summary row per (stereoisomer group of an) input molecule (see ``SUMMARY_FIELDS``)."""
    rows = []
    for res in results:
        recs = res.conformers if res.ok else []
        refined = [r.refined_energy for r in recs if r.refined]
        attempted = any(r.refined_energy is not None for r in recs) or res.n_refine_failed or res.n_refine_dropped
        e = [r.energy for r in recs]
        ranked_by = ""
        if attempted and recs:
            ranked_by = ("refined_energy" if len(refined) == len(recs)
                         else "model_energy" if not refined else "refined_energy, then model_energy")
        rows.append({
            "golf_input_molecule": res.input_name or res.name, "golf_molecule": res.name,
            "n_stereoisomers": res.n_stereoisomers, "input": res.where, "smiles": res.input_smiles,
            "stripped_fragments": res.stripped, "golf_coordinates": res.coordinates,
            "status": "ok" if res.ok else "failed", "n_input_conformers": res.n_embedded, "n_failed": res.n_failed,
            "n_graph_changed": res.n_graph_changed, "n_stereo_changed": res.n_stereo_changed,
            "n_mmff_duplicates": res.n_mmff_duplicates,
            "n_duplicates": res.n_duplicates, "n_beyond_selection": res.n_beyond,
            "n_refine_dropped": res.n_refine_dropped, "n_refine_failed": res.n_refine_failed,
            "n_refined": len(refined), "ranked_by": ranked_by,
            "n_kept": len(recs), "n_converged": sum(r.converged for r in recs), "golf_model": model_name,
            "lowest_energy_eV": f"{min(e):.6f}" if e else "",
            "span_kcal_mol": f"{(max(e) - min(e)) * EV_TO_KCAL_MOL:.3f}" if e else "",
            "boltzmann_weights": " ".join(f"{r.boltzmann_weight:.6f}" for r in sorted(recs, key=lambda r: r.rank)),
            "golf_temperature_K": f"{temperature:g}",
            "lowest_refined_energy_eV": f"{min(refined):.6f}" if refined else "",
            "error": res.error or "",
        })
    return rows


def write_summary(path: str | Path, results: Sequence[MoleculeResult], model_name: str = "",
                  temperature: float = ROOM_TEMPERATURE_K) -> None:
    """CSV summary, one row per (stereoisomer group of an) input molecule, written atomically."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(SUMMARY_FIELDS))
    w.writeheader()
    w.writerows(summary_rows(results, model_name, temperature))
    atomic_write_text(path, buf.getvalue())
