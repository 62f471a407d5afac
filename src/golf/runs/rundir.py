"""A run directory: the one place that owns what ``golf train``, ``golf train --golf`` and ``golf adapt``
keep on disk to be resumed.

* its configuration (a JSON file): read, written atomically, and compared with the configuration of a
  resume (``identity_diffs``): the entries that define the run must be equal. An entry a stored
  configuration lacks is not compared (it was added to golf after the run began); within a nested entry
  (e.g. the GOLF loop's settings) a setting the stored entry lacks, or stores as null (older golf stored
  a loop setting left to the loop's default as null), is read at its default: it matches when the
  resume uses the default. Where the run computes (``device``) is never compared.
* its checkpoints: written atomically (a temporary file in the directory, then a rename), verified when
  read back (a damaged or foreign file is a ``CheckpointError`` naming it).
* its log: CSV rows appended (fsynced) or rewritten whole.

Library code: errors name the directory and the settings, never a command-line option.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from golf.errors import CheckpointError, GolfError, InputError

#: entry -> equal(stored, now) for entries that are not compared by value (e.g. paths)
Comparers = Mapping[str, Callable[[Any, Any], bool]]
#: settings that say where a run computes, not what it computes: never compared (a run started on a GPU
#: may go on on the CPU), at the top level or within a nested entry
WHERE_IT_RUNS = frozenset({"device"})


def as_json(doc: Any) -> Any:
    """``doc`` as it reads back from JSON (tuples as lists, paths and other objects as strings)."""
    return json.loads(json.dumps(doc, default=str))


def _what(value: Any) -> Any:
    """``value`` without the ``WHERE_IT_RUNS`` settings of any mapping in it."""
    if isinstance(value, dict):
        return {k: _what(v) for k, v in value.items() if k not in WHERE_IT_RUNS}
    return value


class RunDir:
    """One run directory and its configuration file ``config`` (a name inside it)."""

    def __init__(self, path: str | os.PathLike, config: str = "config.json") -> None:
        self.path = Path(path)
        self.config_path = self.path / config

    def __truediv__(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------------------ configuration

    def stored_config(self) -> dict[str, Any] | None:
        """The stored configuration (None when there is none; InputError when it is unreadable)."""
        try:
            doc = json.loads(self.config_path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise InputError(f"{self.config_path}: unreadable run configuration ({exc})") from None
        if not isinstance(doc, dict):
            raise InputError(f"{self.config_path}: unreadable run configuration (not a JSON object)")
        return doc

    def write_config(self, doc: Mapping[str, Any]) -> None:
        """Write the configuration atomically (JSON; objects JSON cannot hold as strings)."""
        from golf.io import atomic_write_json

        atomic_write_json(self.config_path, as_json(dict(doc)))

    def identity_diffs(self, now: Mapping[str, Any], keys: Iterable[str] | None = None,
                       defaults: Mapping[str, Mapping[str, Any]] | None = None,
                       skip: Mapping[str, Iterable[str]] | None = None,
                       compare: Comparers | None = None) -> list[str]:
        """What differs between the stored configuration and ``now`` among the entries ``keys`` (None:
        every entry of either), as "entry old -> new" strings (empty: the same run).

        Args:
            defaults: entry -> {setting: default} of a nested entry; a setting the stored entry lacks or
                stores as null is read at its default.
            skip: entry -> settings of a nested entry a resume may change (not compared).
            compare: entry -> equal(stored, now) for entries not compared by value.
        """
        defaults, skip, compare = defaults or {}, skip or {}, compare or {}

        def what(config: Mapping[str, Any]) -> dict[str, Any]:  # WHERE_IT_RUNS left out, but inside compared entries
            return {k: v if k in compare else _what(v) for k, v in config.items() if k not in WHERE_IT_RUNS}

        stored, now = what(self.stored_config() or {}), what(as_json(dict(now)))
        names = list(keys) if keys is not None else sorted(set(stored) | set(now))
        diffs = []
        for key in names:
            if key not in stored:
                continue  # added to golf after this run began
            old, new = stored[key], now.get(key)
            if key in defaults and isinstance(old, dict) and isinstance(new, dict):
                fill = as_json(dict(defaults[key]))
                for k in sorted(set(old) | set(new)):
                    if k in set(skip.get(key, ())):
                        continue
                    was = old.get(k) if old.get(k) is not None else fill.get(k)
                    if k not in old and new.get(k) == fill.get(k, object()):
                        continue
                    if was != new.get(k):
                        diffs.append(f"{key}.{k} {old.get(k)!r} -> {new.get(k)!r}")
            elif key in compare:
                if not compare[key](old, new):
                    diffs.append(f"{key.replace('_', ' ')} {old!r} -> {new!r}")
            elif old != new:
                diffs.append(f"{key.replace('_', ' ')} {old!r} -> {new!r}")
        return diffs

    def check_identity(self, now: Mapping[str, Any], **kw: Any) -> None:
        """GolfError naming the differences unless ``identity_diffs`` finds none (arguments as there)."""
        diffs = self.identity_diffs(now, **kw)
        if diffs:
            raise GolfError(f"{self.path} was started with other settings ({'; '.join(diffs)}); resume it with "
                            "the original ones or choose another output")

    # ------------------------------------------------------------------------------ checkpoints

    def save_checkpoint(self, name: str, payload: Any) -> Path:
        """``torch.save(payload)`` to ``name`` atomically; returns its path."""
        import torch

        from golf.io import atomic_path

        path = self.path / name
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
        return path

    def load_checkpoint(self, name: str, device: Any = "cpu", what: str = "checkpoint",
                        check: Callable[[Any], Any] | None = None) -> Any:
        """The checkpoint ``name``, verified: CheckpointError naming it when it is missing, damaged,
        unreadable or fails ``check`` (e.g. lacks a key)."""
        import torch

        from golf.io import zip_damage

        path = self.path / name
        if not path.exists():
            raise CheckpointError(f"{path}: no such {what}")
        damage = zip_damage(path)
        if damage:
            raise CheckpointError(f"{path}: {damage}; not resuming from it")
        try:
            payload = torch.load(path, map_location=device, weights_only=False)
            if check is not None:
                check(payload)
            return payload
        except Exception as exc:  # noqa: BLE001 - truncated or foreign file
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise CheckpointError(f"{path}: unreadable {what} ({first})") from None

    # ------------------------------------------------------------------------------ log

    def log(self, name: str, row: Mapping[str, Any]) -> None:
        """Append one row to the CSV log ``name`` (fsynced; the header written with the first row)."""
        from golf.io import append_csv_row

        append_csv_row(self.path / name, dict(row))

    def write_log(self, name: str, rows: list[dict[str, Any]]) -> None:
        """Rewrite the CSV log ``name`` whole, atomically."""
        from golf.io import write_csv

        write_csv(self.path / name, rows)
