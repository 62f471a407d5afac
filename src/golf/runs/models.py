"""``golf models register`` / ``unregister``: record a golf checkpoint under a name in the model registry
(``golf.models.registry``, which resolves names and imports no checkpoint code), after loading it once to
check it."""
from __future__ import annotations

import os
from pathlib import Path

from golf.errors import CheckpointError
from golf.models import registry


def register_model(name: str, path: str | os.PathLike, description: str = "", overwrite: bool = False) -> dict:
    """Register a golf checkpoint under ``name`` (after loading it once to check it).

    The absolute path, the model's elements, the file's sha256, size and modification time are
    recorded in ``registry.json`` (written atomically). Official names cannot be taken. Loading the
    name later refuses a file whose contents changed since (see ``golf.models.registry.resolve_model``).

    Returns the registry entry. Raises CheckpointError for a bad name, an unloadable file or a
    registry that cannot be written.
    """
    if not registry._NAME_RE.match(name) or name.endswith(".pt"):
        raise CheckpointError(f"invalid model name {name!r} (letters, digits, _ . + -; no .pt suffix)")
    if name in registry.PRETRAINED:
        raise CheckpointError(f"{name!r} is an official model name; choose another")
    path = Path(path).expanduser().resolve()
    entries = registry._read_registry()  # a damaged entry of another name is kept as it is; this one may replace it
    if name in entries and not overwrite:
        old = entries[name].get("path") if isinstance(entries[name], dict) else None
        raise CheckpointError(f"model name {name!r} is already registered ({old}); registering it again needs overwrite")
    from golf.models.checkpoint import load_model  # torch only here

    model = load_model(path)
    from ase.data import chemical_symbols

    stamp = registry._stamp(path)
    entry = dict(path=str(path), description=description,
                 elements=[chemical_symbols[int(z)] for z in model.elements], sha256=registry.sha256_file(path), **stamp)
    entries[name] = entry
    registry._write_registry(entries)
    return entry


def unregister_model(name: str) -> None:
    """Forget a registered name (the checkpoint file is left alone); works on a damaged entry too."""
    entries = registry._read_registry()
    if name not in entries:
        raise CheckpointError(f"no registered model {name!r}")
    del entries[name]
    registry._write_registry(entries)
