"""ASE SQLite databases: the only module that opens one. Owns the row layouts (no torch).

Labelled row schema (one row per labelled conformation):

* atoms: ``numbers``, ``positions`` (Angstrom), a ``SinglePointCalculator`` with ``energy`` (eV) and
  ``forces`` ([n, 3] eV/Angstrom);
* key_value_pairs: ``mol_id`` (int), ``conf_id`` (int), ``smiles`` (str), ``oracle`` (str),
  ``key`` (str, the unique record key), ``identity`` (str, what the record is, by which
  ``golf data build``/``reference`` resume: ``golf.runs.data.identity_key``), ``charge``, ``multiplicity``;
* data: ``molblock`` (RDKit mol block, hydrogens explicit, same atom order), ``oracle_settings``
  (JSON string).

Reference databases (``golf data reference``) store the *start* conformation with its oracle energy
and forces as above plus ``opt_energy`` (eV), ``opt_converged`` (bool), ``opt_steps`` (int) and
``data['opt_positions']`` ([n, 3] Angstrom), ``data['opt_forces']`` ([n, 3] eV/A).

Trajectory databases (``golf data trajectories``) hold one row per trajectory step with the extra
kvps ``step`` (int, 0 = start), ``traj_len`` (int, number of steps of the full relaxation) and
``traj_key`` (the record key of the starting conformation).

Rows are appended and committed one at a time, so a killed job loses nothing already written.
Every record has a unique key (``record_key``: ``mol_id:conf_id:geometry-hash``) and, from
``golf data build``/``reference``, an identity (the molecule and conformation themselves) by which
those resume.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from typing import Any, Iterable, NamedTuple, Sequence

import numpy as np

from golf.conformation import Conformation
from golf.errors import GolfError, InputError
from golf.io import atomic_path


class ReferenceRecord(NamedTuple):
    """One row of a reference database: a start conformation and the genuine oracle's own optimum.

    Attributes:
        conf: the start conformation (``info`` carries ``start_energy`` eV, ``opt_converged``,
            ``opt_steps`` when read from a db).
        opt_energy: oracle energy of its optimum (eV).
        opt_positions: coordinates of that optimum [n, 3] (Angstrom), if known.
    """

    conf: Conformation
    opt_energy: float
    opt_positions: np.ndarray | None = None


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


#: kinds of database golf writes (``db_kind``) -> what they are, for messages.
DB_KINDS = {
    "dataset": "a labelled dataset (golf data build)",
    "reference": "a reference database (golf data reference)",
    "trajectories": "a trajectory database (golf data trajectories)",
    "predict": "a golf predict output",
    "optimize": "a golf optimize output",
    "ase": "an ASE database golf did not write",
    "sqlite": "an SQLite database (not an ASE one)",
}

#: the metadata entry naming a database's kind (``write_rows`` records it)
KIND_KEY = "golf_kind"

#: key-value pairs every structure row of ``write_rows`` has (a predict output has no others)
_BASE_KEYS = frozenset({"mol_id", "conf_id", "charge", "multiplicity", "smiles"})


def db_kind(path: str | os.PathLike) -> tuple[str, int] | None:
    """(kind, number of rows) of an existing SQLite database (a key of ``DB_KINDS``), or None when
    ``path`` is missing, empty or not an SQLite file.

    The kind is the one ``write_rows`` recorded in the metadata, else judged from the key-value pairs
    (databases written before kinds were recorded, and the data commands' own): ``traj_key`` ->
    trajectories, ``opt_energy`` -> reference, ``oracle`` and ``key`` -> dataset, ``n_steps`` and
    ``converged`` -> optimize, only the structure keys -> predict. Reads SQLite only (no ASE import).
    """
    import sqlite3
    from urllib.parse import quote

    p = os.fspath(path)
    try:
        with open(p, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return None
    except OSError:
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{quote(os.path.realpath(p))}?mode=ro", uri=True)) as con:
            tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"systems", "keys", "information"} <= tables:
                return ("sqlite", len(tables))
            rows = int(con.execute("SELECT count(*) FROM systems").fetchone()[0])
            meta = con.execute("SELECT value FROM information WHERE name='metadata'").fetchone()
            keys = {str(r[0]) for r in con.execute("SELECT DISTINCT key FROM keys")}
    except sqlite3.Error:
        return ("sqlite", 1)  # unreadable: treated as precious
    try:
        recorded = json.loads(meta[0]).get(KIND_KEY) if meta else None
    except (ValueError, AttributeError):
        recorded = None
    if recorded in DB_KINDS:
        return (str(recorded), rows)
    if "traj_key" in keys:
        return ("trajectories", rows)
    if "opt_energy" in keys:
        return ("reference", rows)
    if {"oracle", "key"} <= keys:
        return ("dataset", rows)
    if {"n_steps", "converged"} <= keys:
        return ("optimize", rows)
    if "mol_id" in keys and keys <= _BASE_KEYS:
        return ("predict", rows)
    return ("ase", rows)


def _ase_sqlite(path: str | os.PathLike) -> Any:
    """ASE's SQLite database at ``path``, as golf writes it.

    No ASE lock file: SQLite locks the database itself, and golf's output lock keeps a second golf
    writer away. ASE's ``DB.lock`` outlives a writer killed inside a write, and then every later
    writer (the resumed run) waits for it forever.
    """
    import ase.db

    return ase.db.connect(os.fspath(path), type="db", append=True, use_lock_file=False)


def _connect(db_path: str | os.PathLike, create: bool = True) -> Any:
    path = os.fspath(db_path)
    if not create and not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if create and not os.path.exists(path):
        # a new database appears with its tables (a reader polling it never sees a half-made file)
        with atomic_path(path, suffix=".db") as tmp:
            tmp.unlink()  # ASE's SQLite backend creates the database itself
            _ase_sqlite(tmp).count()
    return _ase_sqlite(path)


def _spec_parts(oracle_spec: Any) -> tuple[str, dict[str, Any]]:
    if oracle_spec is None:
        return "", {}
    if isinstance(oracle_spec, str):
        return oracle_spec, {}
    name = getattr(oracle_spec, "name", "")
    settings = getattr(oracle_spec, "settings", {}) or {}
    return str(name), dict(settings)


def append_labelled(
    db_path: str | os.PathLike,
    conf: Conformation,
    result: Any,
    oracle_spec: Any,
    key: str,
    extra_kvp: dict[str, Any] | None = None,
    extra_data: dict[str, Any] | None = None,
) -> int:
    """Append one labelled conformation and commit it. Returns the new row id.

    Args:
        db_path: ASE SQLite database (created if missing).
        conf: the conformation (positions in Angstrom).
        result: an ``OracleResult`` with ``ok=True`` (energy eV, forces [n,3] eV/A).
        oracle_spec: ``OracleSpec`` (name + settings) or an oracle name.
        key: unique record key (see ``record_key``).
        extra_kvp: more key-value pairs (scalars).
        extra_data: more data entries (arrays, strings).
    """
    from golf.chem import conformation_to_atoms

    if not getattr(result, "ok", False):
        raise ValueError(f"refusing to store a failed oracle result for {key}: {result.reason}")
    name, settings = _spec_parts(oracle_spec)
    atoms = conformation_to_atoms(conf, result.energy, result.forces)
    atoms.info.clear()
    kvp: dict[str, Any] = dict(
        mol_id=int(conf.mol_id), conf_id=int(conf.conf_id), charge=int(conf.charge),
        multiplicity=int(conf.multiplicity), oracle=name, key=str(key),
    )
    if conf.smiles:
        kvp["smiles"] = conf.smiles
    if conf.info.get("identity"):
        kvp["identity"] = str(conf.info["identity"])
    for k, v in (extra_kvp or {}).items():
        kvp[k] = v.item() if isinstance(v, np.generic) else v
    data: dict[str, Any] = {"oracle_settings": json.dumps(settings, sort_keys=True, default=str)}
    if conf.molblock:
        data["molblock"] = conf.molblock
    if extra_data:
        data.update(extra_data)
    from golf.io import writing

    with writing(db_path, "the rows already in it are kept; re-run to resume"):
        db = _connect(db_path)
        return int(db.write(atoms, key_value_pairs=kvp, data=data))


def existing_keys(db_path: str | os.PathLike) -> set[str]:
    """Record keys already present in a database (empty set if it does not exist)."""
    path = os.fspath(db_path)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return set()
    db = _connect(path)
    return {str(r.key_value_pairs["key"]) for r in db.select(include_data=False) if "key" in r.key_value_pairs}


def stored_identities(db_path: str | os.PathLike) -> tuple[set[str], set[str], dict[str, int]]:
    """(identities, record keys, canonical SMILES -> mol_id) of the rows already in a database
    (all empty if it is missing)."""
    path = os.fspath(db_path)
    identities: set[str] = set()
    keys: set[str] = set()
    mol_ids: dict[str, int] = {}
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return identities, keys, mol_ids
    for r in _connect(path).select(include_data=False):
        kvp = r.key_value_pairs
        if "identity" in kvp:
            identities.add(str(kvp["identity"]))
        if "key" in kvp:
            keys.add(str(kvp["key"]))
        if kvp.get("smiles") and "mol_id" in kvp:
            mol_ids.setdefault(str(kvp["smiles"]), int(kvp["mol_id"]))
    return identities, keys, mol_ids


def db_oracle(db_path: str | os.PathLike) -> tuple[str, dict[str, Any]] | None:
    """(oracle name, settings) of the first row of a database, None if empty/missing."""
    path = os.fspath(db_path)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return None
    db = _connect(path)
    for row in db.select(limit=1):
        settings = json.loads((row.data or {}).get("oracle_settings", "{}") or "{}")
        return str(row.key_value_pairs.get("oracle", "")), settings
    return None


#: Largest force on one atom (eV/A) a stored label may carry. Genuine labels stay far below it (the
#: GOLF buffer already drops molecules whose whole force matrix reaches 286 eV/A); a larger value is
#: a corrupted row, and would overflow the float32 training loss.
MAX_LABEL_FORCE: float = 1.0e4
#: Largest |energy| per atom (eV) a stored label may carry: all-electron total energies stay below
#: ~6e5 eV per atom even for the heaviest elements.
MAX_LABEL_ENERGY_PER_ATOM: float = 1.0e6


def label_problem(energy: float, forces: np.ndarray) -> str | None:
    """Why an (energy eV, forces [n,3] eV/A) label cannot be trained on, or None when it can: a
    non-finite value, a force beyond ``MAX_LABEL_FORCE`` on an atom, or an energy beyond
    ``MAX_LABEL_ENERGY_PER_ATOM`` per atom."""
    forces = np.asarray(forces, dtype=np.float64).reshape(-1, 3)
    if not np.isfinite(energy):
        return f"non-finite energy ({energy})"
    if not np.all(np.isfinite(forces)):
        return "non-finite forces"
    n = max(len(forces), 1)
    if abs(energy) > MAX_LABEL_ENERGY_PER_ATOM * n:
        return f"energy {energy:.6g} eV beyond {MAX_LABEL_ENERGY_PER_ATOM:g} eV per atom"
    with np.errstate(over="ignore"):  # a corrupted 1e191 overflows the square: inf, still out of range
        fmax = float(np.sqrt((forces**2).sum(axis=1)).max()) if len(forces) else 0.0
    if fmax > MAX_LABEL_FORCE:
        return f"force {fmax:.3g} eV/A on an atom, beyond {MAX_LABEL_FORCE:g} eV/A"
    return None


def row_level(kvp: dict[str, Any], data: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The level of theory (oracle name, settings) a row records (kvp ``oracle``, data
    ``oracle_settings``), None when it records none (a database golf did not write)."""
    name = str(kvp.get("oracle", "") or "")
    if not name:
        return None
    raw = data.get("oracle_settings", "{}") or "{}"
    try:
        settings = json.loads(raw) if isinstance(raw, str) else dict(raw)
    except (ValueError, TypeError):
        settings = {"unreadable": str(raw)}
    return name, settings


def count_rows(db_path: str | os.PathLike) -> int:
    """Number of rows (0 if the file does not exist)."""
    path = os.fspath(db_path)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return 0
    return int(_connect(path).count())


def _row_to_conformation(row: Any) -> Conformation:
    kvp = row.key_value_pairs
    data = row.data or {}
    info: dict[str, Any] = {}
    for k in ("key", "oracle", "step", "traj_key", "traj_len"):
        if k in kvp:
            info[k] = kvp[k]
    return Conformation(
        numbers=np.asarray(row.numbers, dtype=np.int64),
        positions=np.asarray(row.positions, dtype=np.float64),
        smiles=kvp.get("smiles"),
        mol_id=int(kvp.get("mol_id", -1)),
        conf_id=int(kvp.get("conf_id", -1)),
        charge=int(kvp.get("charge", 0)),
        multiplicity=int(kvp.get("multiplicity", 1)),
        molblock=data.get("molblock"),
        info=info,
    )


def iter_rows(db_path: str | os.PathLike) -> Iterable[dict[str, Any]]:
    """Every row as a dict: conformation, energy (eV or None), forces ([n,3] eV/A or None),
    kvp (dict), data (dict)."""
    db = _connect(db_path, create=False)
    for row in db.select():
        energy = row.get("energy")
        forces = row.get("forces")
        yield {
            "id": int(row.id),
            "conformation": _row_to_conformation(row),
            "energy": None if energy is None else float(energy),
            "forces": None if forces is None else np.asarray(forces, dtype=np.float64),
            "kvp": dict(row.key_value_pairs),
            "data": dict(row.data or {}),
        }


def read_labelled(db_path: str | os.PathLike) -> list[tuple[Conformation, float, np.ndarray]]:
    """All labelled rows: ``[(conformation, energy eV, forces [n,3] eV/A)]`` in row order.

    Rows without energy or forces (plain ASE rows) are skipped.
    """
    out = []
    for r in iter_rows(db_path):
        if r["energy"] is None or r["forces"] is None:
            continue
        out.append((r["conformation"], r["energy"], r["forces"]))
    return out


def read_reference(db_path: str | os.PathLike) -> list[ReferenceRecord]:
    """Rows of a reference database (``golf data reference``) as ``ReferenceRecord`` s, in row order.

    The start conformation's ``info`` also carries ``start_energy`` (eV, oracle energy of the start
    geometry), ``opt_converged`` and ``opt_steps``. InputError (one line) for a missing or unreadable
    file, an empty database, or a row that is not a reference record.
    """
    path = os.fspath(db_path)
    if not os.path.exists(path):
        raise InputError(f"{path}: reference db not found")
    out = []
    try:
        for r in iter_rows(path):
            kvp, data = r["kvp"], r["data"]
            if "opt_energy" not in kvp or "opt_positions" not in data:
                raise InputError(f"{path}: row {r['id']} has no opt_energy/opt_positions; this is not a "
                                 "reference db (make one with `golf data reference`)")
            conf = r["conformation"]
            if r["energy"] is not None:
                conf.info["start_energy"] = r["energy"]
            conf.info["opt_converged"] = bool(kvp.get("opt_converged", False))
            conf.info["opt_steps"] = int(kvp.get("opt_steps", 0))
            out.append(ReferenceRecord(conf, float(kvp["opt_energy"]),
                                       np.asarray(data["opt_positions"], dtype=np.float64)))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt db is bad input
        raise InputError(f"{path}: not a readable ASE database ({type(exc).__name__}: {exc})") from None
    if not out:
        raise InputError(f"{path}: reference db has no conformations")
    return out


def append_reference(
    db_path: str | os.PathLike, conf: Conformation, relaxed: Any, oracle_spec: Any, key: str, fmax: float
) -> int:
    """Append a reference row: the start ``conf`` with its oracle energy/forces and the optimum of the
    oracle relaxation ``relaxed`` (a ``RelaxResult`` with a trajectory; eV, eV/A, Angstrom)."""
    from golf.oracles.base import OracleResult

    start = OracleResult(ok=True, energy=float(relaxed.trajectory_energies[0]),
                         forces=np.asarray(relaxed.trajectory_forces[0]))
    kvp = dict(opt_energy=float(relaxed.energy), opt_converged=bool(relaxed.converged),
               opt_steps=int(relaxed.n_steps), opt_fmax_target=float(fmax))
    data = {"opt_positions": np.asarray(relaxed.positions, dtype=np.float64)}
    if relaxed.forces is not None:
        final_forces = np.asarray(relaxed.forces)
        kvp["opt_fmax"] = float(np.linalg.norm(final_forces, axis=1).max())
        data["opt_forces"] = final_forces
    return append_labelled(db_path, conf, start, oracle_spec, key, extra_kvp=kvp, extra_data=data)


def append_trajectory_step(
    db_path: str | os.PathLike, conf: Conformation, relaxed: Any, step: int, oracle_spec: Any, base_key: str
) -> int:
    """Append step ``step`` of the oracle relaxation ``relaxed`` of ``conf`` (key ``base_key:step``)."""
    from golf.oracles.base import OracleResult

    result = OracleResult(ok=True, energy=float(relaxed.trajectory_energies[step]),
                          forces=np.asarray(relaxed.trajectory_forces[step]))
    return append_labelled(
        db_path, conf.with_positions(relaxed.trajectory_positions[step]), result, oracle_spec,
        f"{base_key}:{step}",
        extra_kvp=dict(step=step, traj_len=len(relaxed.trajectory_positions), traj_key=base_key,
                       traj_converged=bool(relaxed.converged)),
    )


def trajectory_progress(db_path: str | os.PathLike) -> tuple[dict[str, set[int]], dict[str, int], int]:
    """What a trajectory database holds: (steps stored per start key, full trajectory length per
    start key, number of rows). Empty for a missing database."""
    present: dict[str, set[int]] = {}
    traj_len: dict[str, int] = {}
    n_rows = 0
    path = os.fspath(db_path)
    if os.path.exists(path) and os.path.getsize(path) > 0:
        for r in iter_rows(path):
            kvp = r["kvp"]
            base = str(kvp.get("traj_key", ""))
            present.setdefault(base, set()).add(int(kvp.get("step", 0)))
            traj_len[base] = int(kvp.get("traj_len", 0))
            n_rows += 1
    return present, traj_len, n_rows


def sample_rows(src: str | os.PathLike, dst: str | os.PathLike, n: int, seed: int = 0) -> None:
    """``n`` rows of ``src`` drawn uniformly without replacement (seeded) into a new database ``dst``,
    atomically, in their original order: the paper's D-traj-N from a pool of trajectory conformations."""
    from ase.db import connect

    import sqlite3

    source = connect(os.fspath(src), type="db")
    with contextlib.closing(sqlite3.connect(f"file:{os.fspath(src)}?mode=ro", uri=True)) as con:
        ids = [i for (i,) in con.execute("SELECT id FROM systems ORDER BY id")]  # ASE's select decodes every row
    if n > len(ids):
        raise GolfError(f"{src} holds {len(ids)} trajectory conformations, fewer than the {n} asked for")
    keep = sorted(np.random.default_rng(seed).choice(ids, size=n, replace=False).tolist())
    with atomic_path(dst) as tmp:
        tmp.unlink()  # ASE's SQLite backend creates the database itself
        target = connect(str(tmp), type="db")
        with target:  # one transaction
            for i in keep:
                row = source.get(id=i)
                target.write(row.toatoms(), key_value_pairs=row.key_value_pairs, data=row.data)


def read_structure_rows(path: str | os.PathLike) -> list[tuple[int, Any, dict[str, Any], dict[str, Any]]]:
    """Every row of any ASE database as ``(id, Atoms without calculator, kvp, data)``.

    InputError for an unreadable or empty database.
    """
    import ase.db

    try:
        db = ase.db.connect(os.fspath(path), type="db", create_indices=False)
        rows = list(db.select())
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable ASE database ({reason})") from None
    if not rows:
        raise InputError(f"{path}: no structures in database")
    out = []
    for row in rows:
        atoms = row.toatoms()
        atoms.calc = None
        out.append((int(row.id), atoms, dict(row.key_value_pairs), dict(row.data or {})))
    return out


def write_rows(path: str | os.PathLike, confs: Sequence[Conformation], props: Sequence[dict[str, Any]],
               kind: str | None = None) -> None:
    """A new database at ``path`` (must not exist) with one row per conformation: energy (eV) and
    forces ([n,3] eV/A) from ``props`` in a SinglePointCalculator, scalar props and the metadata as
    key-value pairs, ``data['molblock']``. One transaction. ``kind`` (a key of ``DB_KINDS``) is
    recorded in the database's metadata (``db_kind``)."""
    from golf.chem import conformation_to_atoms

    db = _ase_sqlite(path)
    if kind is not None:
        db.metadata = {KIND_KEY: kind}
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
                if k in ("energy", "forces") or not isinstance(v, (bool, int, float, str, np.integer, np.floating)):
                    continue
                kvp[k] = v.item() if isinstance(v, np.generic) else v
            data = {"molblock": c.molblock} if c.molblock else {}
            db.write(atoms, key_value_pairs=kvp, data=data)
