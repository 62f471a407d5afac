"""In-memory labelled conformations for training (energies in eV, forces in eV/A).

``LabelledData`` stores every conformation as slices of flat NumPy arrays (numbers [Ntot],
positions [Ntot, 3], forces [Ntot, 3]) plus per-conformation arrays (offsets [B+1], energy [B],
mol_id [B], conf_id [B]) so that ``collate`` gathers any set of conformations with a handful of
vectorised NumPy operations. Appending is amortised O(1) (capacity-doubling buffers), which the
GOLF replay buffer relies on.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import torch

from golf.batch import Batch
from golf.conformation import Conformation
from golf.errors import InputError


class _Grow:
    """A capacity-doubling NumPy buffer of rows; ``view`` is the filled part."""

    def __init__(self, shape_tail: tuple[int, ...], dtype, capacity: int = 16) -> None:
        self.buf = np.empty((max(capacity, 1),) + shape_tail, dtype=dtype)
        self.n = 0

    @classmethod
    def from_array(cls, arr: np.ndarray) -> "_Grow":
        g = cls(arr.shape[1:], arr.dtype, capacity=max(len(arr), 16))
        g.buf[: len(arr)] = arr
        g.n = len(arr)
        return g

    def extend(self, rows: np.ndarray) -> None:
        k = len(rows)
        if self.n + k > len(self.buf):
            cap = max(2 * len(self.buf), self.n + k)
            new = np.empty((cap,) + self.buf.shape[1:], dtype=self.buf.dtype)
            new[: self.n] = self.buf[: self.n]
            self.buf = new
        self.buf[self.n : self.n + k] = rows
        self.n += k

    @property
    def view(self) -> np.ndarray:
        return self.buf[: self.n]


class LabelledData:
    """Labelled conformations: energy (eV) and forces (eV/A) for each.

    Array attributes (read-only views; use ``append``/``extend`` to add data):
        numbers [Ntot] int64, positions [Ntot, 3] float64 (A), forces [Ntot, 3] float64 (eV/A),
        offsets [B+1] int64 (conformation i owns atoms offsets[i]:offsets[i+1]),
        energy [B] float64 (eV), mol_id [B] int64, conf_id [B] int64.
    List attributes: smiles [B] (str or None), molblocks [B] (str or None).
    ``level``: the level of theory (oracle name, settings) of a set read by ``from_db``, None when
    its rows record none.
    """

    level: tuple[str, dict] | None = None

    def __init__(self) -> None:
        self._numbers = _Grow((), np.int64)
        self._positions = _Grow((3,), np.float64)
        self._forces = _Grow((3,), np.float64)
        self._offsets = _Grow((), np.int64)
        self._offsets.extend(np.zeros(1, dtype=np.int64))
        self._energy = _Grow((), np.float64)
        self._mol_id = _Grow((), np.int64)
        self._conf_id = _Grow((), np.int64)
        self.smiles: list[str | None] = []
        self.molblocks: list[str | None] = []

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_arrays(
        cls,
        numbers: np.ndarray,
        positions: np.ndarray,
        n_atoms: np.ndarray,
        energy: np.ndarray,
        forces: np.ndarray,
        mol_id: np.ndarray | None = None,
        conf_id: np.ndarray | None = None,
        smiles: Sequence[str | None] | None = None,
        molblocks: Sequence[str | None] | None = None,
    ) -> "LabelledData":
        """From flat arrays: numbers [Ntot], positions [Ntot,3] A, n_atoms [B], energy [B] eV,
        forces [Ntot,3] eV/A; optional mol_id/conf_id [B] (default: -1 / index) and smiles."""
        self = cls()
        numbers = np.asarray(numbers, dtype=np.int64).reshape(-1)
        positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
        forces = np.asarray(forces, dtype=np.float64).reshape(-1, 3)
        n_atoms = np.asarray(n_atoms, dtype=np.int64).reshape(-1)
        energy = np.asarray(energy, dtype=np.float64).reshape(-1)
        b = len(n_atoms)
        if not (len(numbers) == len(positions) == len(forces) == int(n_atoms.sum())):
            raise ValueError("numbers, positions, forces and n_atoms disagree on the atom count")
        if len(energy) != b:
            raise ValueError(f"{len(energy)} energies for {b} conformations")
        self._numbers = _Grow.from_array(numbers)
        self._positions = _Grow.from_array(positions)
        self._forces = _Grow.from_array(forces)
        self._offsets = _Grow.from_array(np.concatenate([[0], np.cumsum(n_atoms)]).astype(np.int64))
        self._energy = _Grow.from_array(energy)
        self._mol_id = _Grow.from_array(
            np.full(b, -1, np.int64) if mol_id is None else np.asarray(mol_id, np.int64).reshape(-1)
        )
        self._conf_id = _Grow.from_array(
            np.arange(b, dtype=np.int64) if conf_id is None else np.asarray(conf_id, np.int64).reshape(-1)
        )
        self.smiles = list(smiles) if smiles is not None else [None] * b
        self.molblocks = list(molblocks) if molblocks is not None else [None] * b
        if len(self.smiles) != b or len(self.molblocks) != b or len(self._mol_id.view) != b:
            raise ValueError("per-conformation metadata length differs from the number of conformations")
        return self

    @classmethod
    def from_conformations(
        cls,
        confs: Sequence[Conformation],
        energies: Sequence[float] | np.ndarray,
        forces: Sequence[np.ndarray],
    ) -> "LabelledData":
        """From conformations with energies (eV) and forces ([n,3] eV/A each)."""
        self = cls()
        self.extend(confs, energies, forces)
        return self

    @classmethod
    def from_db(cls, paths: str | os.PathLike | Sequence[str | os.PathLike]) -> "LabelledData":
        """Read one or several ASE SQLite dbs (golf.db row schema) of labelled conformations.

        The rows of a db that golf wrote (every row has a record ``key``) come in key order, so the
        order in which parallel oracle workers returned them does not change the dataset; other dbs
        keep their row order. Several dbs are concatenated in the order given.

        One training set has one level of theory: the oracle and settings golf records in every row
        (``golf.db.row_level``) must agree across all rows and dbs (InputError naming both
        otherwise); a db that records none is accepted, with a ``GolfWarning`` when it is combined
        with others.

        Labels are checked as they are read (``golf.db.label_problem``: finite, at most
        ``MAX_LABEL_FORCE`` eV/A on an atom and ``MAX_LABEL_ENERGY_PER_ATOM`` eV per atom): a row
        that fails is left out and reported in a ``GolfWarning`` naming its id, as are rows without
        energy and forces. Raises InputError for a missing file, an unreadable or empty db, or one
        with no usable row.
        """
        import warnings

        from golf.errors import GolfWarning

        if isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        data = cls()
        levels: list[tuple[Path, int, tuple[str, dict] | None]] = []
        for path in paths:
            part, level = _read_db(Path(path))
            levels.append((Path(path), level[0], level[1]))
            data.extend_from(part)
        known = [(p, row, lv) for p, row, lv in levels if lv is not None]
        for p, row, lv in known[1:]:
            if not _same_level(known[0][2], lv):
                raise InputError(f"{known[0][0]} is labelled with {_level_text(known[0][2])} but {p} with "
                                 f"{_level_text(lv)}: one training set needs one level of theory")
        if len(levels) > 1 and known:
            for p, _, lv in levels:
                if lv is None:
                    warnings.warn(f"{p} records no level of theory (no oracle in its rows); assuming "
                                  f"{_level_text(known[0][2])} like {known[0][0]}", GolfWarning, stacklevel=2)
        data.level = known[0][2] if known else None
        return data

    def check_level(self, name: str, settings: dict, what: str) -> None:
        """InputError unless this set's recorded level of theory is oracle ``name`` with ``settings``
        (``what`` names the labels they would be mixed with). A set that records none, or a plugin
        oracle (``module:Class``: golf cannot know its level of theory), gives a ``GolfWarning`` at most."""
        import warnings

        from golf.errors import GolfWarning

        if self.level is None or _same_level(self.level, (name, settings)):
            return
        text = (f"the training data is labelled with {_level_text(self.level)} but {what} with "
                f"{_level_text((name, settings))}")
        builtin = ("mmff", "xtb", "dft")
        if name in builtin and self.level[0] in builtin:
            raise InputError(f"{text}: one training set needs one level of theory")
        warnings.warn(f"{text}; a plugin oracle is assumed to be the same level of theory", GolfWarning,
                      stacklevel=2)

    @classmethod
    def concatenate(cls, parts: Iterable["LabelledData"]) -> "LabelledData":
        out = cls()
        for p in parts:
            out.extend_from(p)
        return out

    def __add__(self, other: "LabelledData") -> "LabelledData":
        return LabelledData.concatenate([self, other])

    # ------------------------------------------------------------------ appending
    def append(self, conf: Conformation, energy: float, forces: np.ndarray) -> None:
        """Add one conformation with its energy (eV) and forces ([n,3] eV/A)."""
        forces = np.asarray(forces, dtype=np.float64).reshape(-1, 3)
        if len(forces) != conf.n_atoms:
            raise ValueError(f"forces for {len(forces)} atoms, conformation has {conf.n_atoms}")
        self._numbers.extend(conf.numbers)
        self._positions.extend(conf.positions)
        self._forces.extend(forces)
        self._offsets.extend(np.array([self._offsets.view[-1] + conf.n_atoms], dtype=np.int64))
        self._energy.extend(np.array([float(energy)]))
        self._mol_id.extend(np.array([conf.mol_id], dtype=np.int64))
        self._conf_id.extend(np.array([conf.conf_id], dtype=np.int64))
        self.smiles.append(conf.smiles)
        self.molblocks.append(conf.molblock)

    def extend(
        self,
        confs: Sequence[Conformation],
        energies: Sequence[float] | np.ndarray,
        forces: Sequence[np.ndarray],
    ) -> None:
        if not (len(confs) == len(energies) == len(forces)):
            raise ValueError("confs, energies and forces differ in length")
        for c, e, f in zip(confs, energies, forces):
            self.append(c, e, f)

    def extend_from(self, other: "LabelledData") -> None:
        """Append all conformations of ``other`` (vectorised)."""
        base = self._offsets.view[-1]
        self._numbers.extend(other.numbers)
        self._positions.extend(other.positions)
        self._forces.extend(other.forces)
        self._offsets.extend(other.offsets[1:] + base)
        self._energy.extend(other.energy)
        self._mol_id.extend(other.mol_id)
        self._conf_id.extend(other.conf_id)
        self.smiles.extend(other.smiles)
        self.molblocks.extend(other.molblocks)

    # ------------------------------------------------------------------ views
    numbers = property(lambda self: self._numbers.view)
    positions = property(lambda self: self._positions.view)
    forces = property(lambda self: self._forces.view)
    offsets = property(lambda self: self._offsets.view)
    energy = property(lambda self: self._energy.view)
    mol_id = property(lambda self: self._mol_id.view)
    conf_id = property(lambda self: self._conf_id.view)

    def __len__(self) -> int:
        return self._energy.n

    @property
    def n_atoms(self) -> np.ndarray:
        """Atoms per conformation [B], int64."""
        return np.diff(self.offsets)

    @property
    def elements(self) -> list[int]:
        """Sorted atomic numbers present."""
        return sorted(int(z) for z in np.unique(self.numbers))

    def numbers_list(self) -> list[np.ndarray]:
        """Atomic numbers of every conformation (list of [n] arrays)."""
        return np.split(self.numbers, self.offsets[1:-1])

    def conformation(self, i: int) -> Conformation:
        a, b = self.offsets[i], self.offsets[i + 1]
        return Conformation(
            numbers=self.numbers[a:b].copy(),
            positions=self.positions[a:b].copy(),
            smiles=self.smiles[i],
            mol_id=int(self.mol_id[i]),
            conf_id=int(self.conf_id[i]),
            molblock=self.molblocks[i],
        )

    def conformations(self) -> list[Conformation]:
        return [self.conformation(i) for i in range(len(self))]

    def labels(self, i: int) -> tuple[float, np.ndarray]:
        """(energy eV, forces [n,3] eV/A) of conformation i."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return float(self.energy[i]), self.forces[a:b].copy()

    # ------------------------------------------------------------------ selection / split
    def _atom_index(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Flat atom indices of conformations ``idx`` (in order) and their per-conformation counts."""
        starts = self.offsets[idx]
        counts = self.offsets[idx + 1] - starts
        total = int(counts.sum())
        shift = np.repeat(starts - (np.cumsum(counts) - counts), counts)
        return np.arange(total, dtype=np.int64) + shift, counts

    def subset(self, indices: Sequence[int] | np.ndarray) -> "LabelledData":
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        atoms, counts = self._atom_index(idx)
        return LabelledData.from_arrays(
            self.numbers[atoms],
            self.positions[atoms],
            counts,
            self.energy[idx],
            self.forces[atoms],
            self.mol_id[idx],
            self.conf_id[idx],
            [self.smiles[i] for i in idx],
            [self.molblocks[i] for i in idx],
        )

    def molecule_keys(self) -> list:
        """A grouping key per conformation: mol_id when known (>= 0), else SMILES, else unique."""
        keys = []
        for i in range(len(self)):
            m = int(self.mol_id[i])
            if m >= 0:
                keys.append(("id", m))
            elif self.smiles[i]:
                keys.append(("smiles", self.smiles[i]))
            else:
                keys.append(("row", i))
        return keys

    def split_by_molecule(self, val_fraction: float, seed: int = 0) -> tuple["LabelledData", "LabelledData"]:
        """Split into (train, val) so that no molecule has conformations in both.

        ``round(val_fraction * n_molecules)`` molecules (at least 1 when 0 < val_fraction and
        there are >= 2 molecules) go to validation; deterministic for a seed.
        """
        keys = self.molecule_keys()
        unique = sorted(set(keys), key=repr)
        n_val = int(round(val_fraction * len(unique)))
        if val_fraction > 0 and len(unique) >= 2:
            n_val = min(max(n_val, 1), len(unique) - 1)
        else:
            n_val = 0
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(unique))
        val_keys = {unique[i] for i in perm[:n_val]}
        is_val = np.array([k in val_keys for k in keys], dtype=bool)
        return self.subset(np.flatnonzero(~is_val)), self.subset(np.flatnonzero(is_val))

    # ------------------------------------------------------------------ collate
    def gather(self, indices: Sequence[int] | np.ndarray) -> dict[str, np.ndarray]:
        """NumPy arrays of conformations ``indices``: numbers, positions, n_atoms, energy, forces."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        atoms, counts = self._atom_index(idx)
        return {
            "numbers": self.numbers[atoms],
            "positions": self.positions[atoms],
            "n_atoms": counts,
            "energy": self.energy[idx],
            "forces": self.forces[atoms],
        }

    def collate(
        self,
        indices: Sequence[int] | np.ndarray,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> tuple[Batch, torch.Tensor, torch.Tensor]:
        """(Batch, energy [B] eV, forces [N,3] eV/A) of conformations ``indices`` in order."""
        return collate_arrays([self.gather(indices)], device, dtype)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict:
        """Plain arrays/lists (picklable, torch.save-able)."""
        return {
            "numbers": self.numbers.copy(),
            "positions": self.positions.copy(),
            "n_atoms": self.n_atoms.copy(),
            "energy": self.energy.copy(),
            "forces": self.forces.copy(),
            "mol_id": self.mol_id.copy(),
            "conf_id": self.conf_id.copy(),
            "smiles": list(self.smiles),
            "molblocks": list(self.molblocks),
        }

    @classmethod
    def from_state_dict(cls, state: dict) -> "LabelledData":
        return cls.from_arrays(**state)

    def __repr__(self) -> str:
        return (
            f"LabelledData({len(self)} conformations, {len(set(self.molecule_keys()))} molecules, "
            f"{len(self.numbers)} atoms)"
        )


def collate_arrays(
    parts: Sequence[dict[str, np.ndarray]],
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[Batch, torch.Tensor, torch.Tensor]:
    """Concatenate ``LabelledData.gather`` outputs into (Batch, energy [B] eV, forces [N,3] eV/A)."""
    numbers = np.concatenate([p["numbers"] for p in parts])
    positions = np.concatenate([p["positions"] for p in parts])
    n_atoms = np.concatenate([p["n_atoms"] for p in parts])
    energy = np.concatenate([p["energy"] for p in parts])
    forces = np.concatenate([p["forces"] for p in parts])
    n_mols = len(n_atoms)
    mol_idx = torch.repeat_interleave(
        torch.arange(n_mols, device=device), torch.as_tensor(n_atoms, device=device)
    )
    batch = Batch(
        torch.as_tensor(numbers, device=device).long(),
        torch.as_tensor(positions, dtype=dtype, device=device),
        mol_idx,
        n_mols,
    )
    return (
        batch,
        torch.as_tensor(energy, dtype=dtype, device=device),
        torch.as_tensor(forces, dtype=dtype, device=device),
    )


def _level_text(level: tuple[str, dict]) -> str:
    import json

    name, settings = level
    return f"{name} {json.dumps(settings, sort_keys=True, default=str)}" if settings else name


def _same_level(a: tuple[str, dict], b: tuple[str, dict]) -> bool:
    from golf.oracles import same_settings

    return a[0] == b[0] and same_settings(a[0], a[1], b[1])


#: bad rows of one db reported one by one; beyond this many, one count line says how many more.
MAX_ROWS_REPORTED = 20


def _read_db(path: Path) -> tuple[LabelledData, tuple[int, tuple[str, dict] | None]]:
    """Labelled rows of one ASE db and (first row id, level of theory) its rows record (see
    ``LabelledData.from_db``); InputError with the file name on any problem."""
    import json
    import warnings

    from golf.db import iter_rows, label_problem, row_level
    from golf.errors import GolfWarning

    if not path.is_file():
        raise InputError(f"{path}: no such file")
    data = LabelledData()
    n_rows = n_unlabelled = 0
    rows = []
    bad: list[str] = []
    level: tuple[int, tuple[str, dict] | None] = (0, None)
    agreed: set[tuple[str, str]] = set()
    try:
        for r in iter_rows(path):
            n_rows += 1
            energy, forces = r["energy"], r["forces"]
            if energy is None or forces is None:
                n_unlabelled += 1
                continue
            lv = row_level(r["kvp"], r["data"])
            seen = None if lv is None else (lv[0], json.dumps(lv[1], sort_keys=True, default=str))
            if lv is not None and seen not in agreed:  # compared once per distinct recorded level
                agreed.add(seen)
                if level[1] is None:
                    level = (r["id"], lv)
                elif not _same_level(level[1], lv):
                    raise InputError(f"{path}: row {level[0]} is labelled with {_level_text(level[1])} but row "
                                     f"{r['id']} with {_level_text(lv)}: one training set needs one level of theory")
            problem = label_problem(energy, forces)
            if problem is not None:
                bad.append(f"{path}: row {r['id']} left out: {problem}")
                continue
            rows.append(r)
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is bad input
        raise InputError(f"{path}: not a readable ASE database ({exc})") from exc
    # golf's data commands write results in the order they arrive from parallel workers, which
    # changes from run to run; ordering by record key makes the dataset (and every batch, split and
    # GOLF start drawn from it by index) a function of the rows alone. Plain ASE dbs keep row order.
    if rows and all("key" in r["kvp"] for r in rows):
        rows.sort(key=lambda r: str(r["kvp"]["key"]))
    for r in rows:
        data.append(r["conformation"], float(r["energy"]), r["forces"])
    if n_rows == 0:
        raise InputError(f"{path}: no labelled conformations (empty database)")
    if len(data) == 0:
        if bad:
            raise InputError(f"{bad[0]}; no row of {path} has a usable label ({len(bad)} bad)")
        raise InputError(f"{path}: no row has energy and forces (unlabelled database?)")
    for line in bad[:MAX_ROWS_REPORTED]:
        warnings.warn(line, GolfWarning, stacklevel=3)
    if len(bad) > MAX_ROWS_REPORTED:
        warnings.warn(f"{path}: {len(bad) - MAX_ROWS_REPORTED} more rows left out (bad labels)", GolfWarning,
                      stacklevel=3)
    if n_unlabelled:
        warnings.warn(f"{path}: skipped {n_unlabelled} rows without energy/forces", GolfWarning, stacklevel=3)
    return data, level
