"""Model files: golf's self-describing checkpoints and the official GOLF / schnetpack state dicts.

A golf checkpoint is a ``torch.save``d dict of plain types and tensors (loadable with
``weights_only=True``)::

    {"format": "golf-model", "version": 1,
     "architecture": "painn", "hparams": {...}, "output": {...}, "energy_scale": 1.0,
     "units": {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom"},
     "atomrefs": float64 [119] (eV), "elements": [1, 6, ...],
     "provenance": {...}, "extra": {...}, "golf_version": "...", "torch_version": "...",
     "state_dict": {...}}

Official GOLF checkpoints are schnetpack ``NeuralNetworkPotential`` state dicts (keys
``model.representation.*``, ``model.output_modules.0.outnet.*``) whose energies are Hartree; they are
recognised by their key names, hyperparameters are read off tensor shapes, and ``energy_scale`` becomes
HARTREE_TO_EV so everything downstream is eV and eV/Angstrom.
"""
from __future__ import annotations

import os
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from golf.errors import CheckpointError
from golf.io import atomic_path, zip_damage
from golf.models.potential import Potential
from golf.units import HARTREE_TO_EV

__all__ = ["save_model", "load_model", "resolve_device", "resolve_dtype", "FORMAT", "VERSION"]

FORMAT = "golf-model"
VERSION = 1
#: elements of the official GOLF checkpoints (nablaDFT).
OFFICIAL_ELEMENTS = (1, 6, 7, 8, 9, 16, 17, 35)
UNITS = {"energy": "eV", "length": "Angstrom", "forces": "eV/Angstrom"}


def resolve_device(device: str | torch.device | None) -> torch.device:
    """"auto"/None -> CUDA when available else CPU; anything else as given."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """torch.float32 / torch.float64 or their names ("float32", "float64", "double")."""
    if isinstance(dtype, torch.dtype):
        return dtype
    table = {"float32": torch.float32, "float": torch.float32, "float64": torch.float64, "double": torch.float64}
    if dtype not in table:
        raise ValueError(f"unsupported dtype {dtype!r} (float32, float64)")
    return table[dtype]


def _plain(obj: Any) -> Any:
    """Reduce to types that ``torch.load(weights_only=True)`` accepts."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def save_model(
    model: Potential,
    path: str | os.PathLike,
    provenance: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write a self-describing golf checkpoint atomically (temp file in the same directory + rename)."""
    from golf._version import __version__

    path = Path(path)
    cfg = model.config
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": cfg["architecture"],
        "hparams": _plain(cfg["hparams"]),
        "output": _plain(cfg["output"]),
        "energy_scale": float(cfg["energy_scale"]),
        "units": dict(UNITS),
        "atomrefs": model.atomrefs.detach().cpu().to(torch.float64).clone(),
        "elements": [int(z) for z in model.elements],
        "provenance": _plain(provenance or {}),
        "extra": _plain(extra or {}),
        "golf_version": __version__,
        "torch_version": str(torch.__version__),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def _read(path: Path) -> Any:
    if not path.exists():
        raise CheckpointError(f"model file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"model path is a directory, not a checkpoint file: {path}")
    damage = zip_damage(path)  # torch.load does not check the CRCs: damaged bytes would load silently
    if damage:
        raise CheckpointError(f"{path}: {damage}; not loading it")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unpickling failed"
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise CheckpointError(
                f"{path}: contains Python objects that cannot be loaded safely (only tensors/state dicts are "
                "accepted)"
            ) from None
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, AttributeError, KeyError,
            IndexError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({first[:200]})") from None


def _from_golf(obj: dict, path: Path) -> Potential:
    version = obj.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CheckpointError(f"{path}: golf checkpoint version {version!r} is newer than this golf ({VERSION})")
    try:
        model = Potential(
            obj["architecture"],
            dict(obj["hparams"]),
            output=dict(obj["output"]),
            energy_scale=float(obj["energy_scale"]),
            elements=obj["elements"],
            atomrefs=obj["atomrefs"].numpy() if isinstance(obj["atomrefs"], torch.Tensor) else obj["atomrefs"],
        )
        model.load_state_dict(obj["state_dict"], strict=True)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: damaged golf checkpoint ({first[:200]})") from None
    model.provenance = dict(obj.get("provenance") or {})
    model.extra = dict(obj.get("extra") or {})
    model.source_format = FORMAT
    return model


def _count(keys: list[str], pattern: str) -> int:
    idx = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
    return max(idx) + 1 if idx else 0


def _from_schnetpack(sd: dict[str, torch.Tensor], path: Path) -> Potential:
    """Map a schnetpack NeuralNetworkPotential state dict (official GOLF checkpoints) to a Potential."""
    anchor = [k for k in sd if k.endswith("representation.embedding.weight")]
    if len(anchor) != 1:
        raise CheckpointError(f"{path}: unrecognised checkpoint (neither a golf model nor a schnetpack PaiNN/SchNet)")
    prefix = anchor[0][: -len("representation.embedding.weight")]
    mapped: dict[str, torch.Tensor] = {}
    for key, value in sd.items():
        if not key.startswith(prefix):
            raise CheckpointError(f"{path}: unsupported key {key!r} in schnetpack checkpoint")
        rest = key[len(prefix):]
        if rest.startswith("representation."):
            mapped[rest] = value
        elif rest.startswith("output_modules.0.outnet."):
            mapped["output." + rest[len("output_modules.0."):]] = value
        elif rest.startswith("input_modules."):
            continue
        else:  # e.g. postprocessors with offsets, extra output heads: would change the energy
            raise CheckpointError(f"{path}: unsupported schnetpack module in checkpoint: {key!r}")
    keys = list(mapped)
    try:
        emb = mapped["representation.embedding.weight"]
        n_int = _count(keys, r"representation\.interactions\.(\d+)\.")
        cutoff = float(mapped["representation.cutoff_fn.cutoff"].reshape(-1)[0])
        n_out = _count(keys, r"output\.outnet\.(\d+)\.weight")
        out_sizes = [int(mapped[f"output.outnet.{k}.weight"].shape[0]) for k in range(n_out)]
        output = {"n_layers": n_out, "n_hidden": out_sizes[:-1], "activation": "silu"}
        if "representation.interactions.0.interatomic_context_net.0.weight" in mapped:
            f = int(emb.shape[1])
            hp = dict(
                n_atom_basis=f, n_interactions=n_int, cutoff=cutoff, max_z=int(emb.shape[0]),
                n_rbf=int(mapped["representation.radial_basis.freqs"].shape[0]),
                shared_filters=int(mapped["representation.filter_net.weight"].shape[0]) == 3 * f and n_int > 1,
            )
            arch = "painn"
        elif "representation.interactions.0.filter_network.0.weight" in mapped:
            rbf = "bessel" if "representation.radial_basis.freqs" in mapped else "gaussian"
            n_rbf = int(mapped["representation.interactions.0.filter_network.0.weight"].shape[1])
            hp = dict(
                n_atom_basis=int(emb.shape[1]), n_interactions=n_int, cutoff=cutoff, max_z=int(emb.shape[0]),
                n_rbf=n_rbf, rbf=rbf,
                n_filters=int(mapped["representation.interactions.0.in2f.weight"].shape[0]),
            )
            arch = "schnet"
        else:
            raise CheckpointError(f"{path}: unrecognised schnetpack representation (expected PaiNN or SchNet)")
        model = Potential(arch, hp, output=output, energy_scale=HARTREE_TO_EV, elements=OFFICIAL_ELEMENTS)
        mapped["atomrefs"] = torch.zeros_like(model.atomrefs)  # atomization energies are not part of the model
        model.load_state_dict(mapped, strict=True)
    except CheckpointError:
        raise
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: schnetpack checkpoint does not match PaiNN/SchNet ({first[:200]})") from None
    model.provenance = {"source": str(path), "format": "schnetpack state dict (official GOLF)",
                        "native_energy_unit": "Hartree"}
    model.extra = {}
    model.source_format = "schnetpack"
    return model


def load_model(
    path: str | os.PathLike,
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
) -> Potential:
    """Load a golf checkpoint or an official GOLF/schnetpack state dict as a Potential (eval mode).

    ``path`` may also be a model name ("GOLF-10k", see ``golf.models.registry``).
    Energies of the returned model are eV and forces eV/Angstrom whatever the file's native units.
    Raises CheckpointError (one line) for a missing, corrupt, non-torch or unrecognised file.
    """
    from golf.models.registry import resolve_model

    path, named = resolve_model(path)
    obj = _read(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        model = _from_golf(obj, path)
    elif isinstance(obj, dict):
        sd = obj.get("state_dict") if isinstance(obj.get("state_dict"), dict) else obj
        if not all(isinstance(v, torch.Tensor) for v in sd.values()):
            raise CheckpointError(f"{path}: unrecognised checkpoint (neither a golf model nor a schnetpack state dict)")
        model = _from_schnetpack(sd, path)
    else:
        raise CheckpointError(f"{path}: unrecognised checkpoint content ({type(obj).__name__})")
    if named:
        model.provenance = {**model.provenance, **named}
    model = model.to(device=resolve_device(device), dtype=resolve_dtype(dtype))
    model.eval()
    return model
