"""ASE SQLite datasets of labelled conformations (no torch).

Row schema (one row per labelled conformation):

* atoms: ``numbers``, ``positions`` (Angstrom), a ``SinglePointCalculator`` with ``energy`` (eV) and
  ``forces`` ([n, 3] eV/Angstrom);
* key_value_pairs: ``mol_id`` (int), ``conf_id`` (int), ``smiles`` (str), ``oracle`` (str),
  ``key`` (str, the unique record key used to resume), ``charge``, ``multiplicity``;
* data: ``molblock`` (RDKit mol block, hydrogens explicit, same atom order), ``oracle_settings``
  (JSON string).

Reference databases (``golf data reference``) store the *start* conformation with its oracle energy
and forces as above plus ``opt_energy`` (eV), ``opt_converged`` (bool), ``opt_steps`` (int) and
``data['opt_positions']`` ([n, 3] Angstrom), ``data['opt_forces']`` ([n, 3] eV/A).

Trajectory databases (``golf data trajectories``) hold one row per trajectory step with the extra
kvps ``step`` (int, 0 = start), ``traj_len`` (int, number of steps of the full relaxation) and
``traj_key`` (the record key of the starting conformation).

Rows are appended and committed one at a time, so a killed job loses nothing already written.
"""
from __future__ import annotations

import json
import os
from typing import Any, Iterable

import numpy as np

from golf.conformation import Conformation
from golf.errors import InputError


def _connect(db_path: str | os.PathLike, create: bool = True) -> Any:
    import ase.db

    path = os.fspath(db_path)
    if not create and not os.path.exists(path):
        raise InputError(f"{path}: no such file")
    if create:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return ase.db.connect(path, type="db", append=True)


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
        key: unique record key (see ``golf.molecules.record_key``).
        extra_kvp: more key-value pairs (scalars).
        extra_data: more data entries (arrays, strings).
    """
    from golf.molecules import conformation_to_atoms

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
    for k, v in (extra_kvp or {}).items():
        kvp[k] = v.item() if isinstance(v, np.generic) else v
    data: dict[str, Any] = {"oracle_settings": json.dumps(settings, sort_keys=True, default=str)}
    if conf.molblock:
        data["molblock"] = conf.molblock
    if extra_data:
        data.update(extra_data)
    db = _connect(db_path)
    return int(db.write(atoms, key_value_pairs=kvp, data=data))


def existing_keys(db_path: str | os.PathLike) -> set[str]:
    """Record keys already present in a database (empty set if it does not exist)."""
    path = os.fspath(db_path)
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        return set()
    db = _connect(path)
    return {str(r.key_value_pairs["key"]) for r in db.select(include_data=False) if "key" in r.key_value_pairs}


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


def read_reference(db_path: str | os.PathLike) -> list[tuple[Conformation, float, np.ndarray]]:
    """Rows of a reference database: ``[(start conformation, opt_energy eV, opt_positions [n,3] A)]``.

    The start conformation's ``info`` also carries ``start_energy`` (eV, oracle energy of the start
    geometry), ``opt_converged`` and ``opt_steps``.
    """
    out = []
    for r in iter_rows(db_path):
        kvp, data = r["kvp"], r["data"]
        if "opt_energy" not in kvp or "opt_positions" not in data:
            raise InputError(f"{os.fspath(db_path)}: row {r['id']} is not a reference record "
                             "(no opt_energy/opt_positions; build it with `golf data reference`)")
        conf = r["conformation"]
        if r["energy"] is not None:
            conf.info["start_energy"] = r["energy"]
        conf.info["opt_converged"] = bool(kvp.get("opt_converged", False))
        conf.info["opt_steps"] = int(kvp.get("opt_steps", 0))
        out.append((conf, float(kvp["opt_energy"]), np.asarray(data["opt_positions"], dtype=np.float64)))
    return out
