"""Pretrained models by name: shipped, downloadable and user-registered checkpoints.

``golf.load_model("GOLF-10k")`` and ``--model GOLF-10k`` work wherever a model path works:
:func:`resolve_model` turns a name into a file path before the checkpoint is read.

Three kinds of names:

* shipped: the official GOLF-10k and baseline-NNP checkpoints are package data
  (``golf/models/pretrained``, MIT licence and provenance beside them);
* downloadable: the other official checkpoints (GOLF-1k, traj-10k/100k/500k) are fetched on first
  use from the official repository at a pinned commit, verified against a pinned sha256 and kept in
  the cache directory (``GOLF_MODELS_DIR``, default ``$XDG_CACHE_HOME/golf/models`` or
  ``~/.cache/golf/models``); ``GOLF_MODELS_URL`` replaces the download base URL (a mirror of the
  repository layout, e.g. ``file:///srv/golf-mirror``);
* registered: a checkpoint of the user's own (e.g. from ``golf train``) recorded under a name in
  ``registry.json`` in the cache directory (``golf.runs.models.register_model``, ``golf models register``).

This module imports no torch and no other golf.models module (registering a model, which loads it once
to check it, is ``golf.runs.models``).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from golf.errors import CheckpointError
from golf.io import atomic_write_text

__all__ = [
    "PretrainedModel", "PRETRAINED", "OFFICIAL_REPO", "OFFICIAL_COMMIT", "models_dir", "resolve_model",
    "fetch_model", "registered_models", "list_models", "sha256_file",
    "model_info",
]

#: The official GOLF repository and the commit the checkpoints are pinned to.
OFFICIAL_REPO = "AIRI-Institute/GOLF"
OFFICIAL_COMMIT = "deaaab858b9034b9d7a8359d9cdc61618f484334"
LEVEL_OF_THEORY = "wB97X-D/def2-SVP"
#: The GOLF-SPICE family: branch GOLF-SPICE of the official repository, pinned to this commit.
SPICE_COMMIT = "d572b459c04a77e39bf449628a5969698998101f"
OFFICIAL_ELEMENTS = ("H", "C", "N", "O", "F", "S", "Cl", "Br")
OFFICIAL_SIZE = 2510137  # bytes of each official checkpoint
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")
_CHUNK = 1 << 16


@dataclass(frozen=True)
class PretrainedModel:
    """One official checkpoint.

    Attributes:
        name: the name users pass (``--model NAME``).
        sha256: hex digest of the checkpoint file (pinned).
        size: file size in bytes.
        shipped: whether it is package data (else downloaded on demand).
        description: what it was trained on.
        repo_path: path of the file in the official repository.
        commit: the official commit the file is pinned to.
        training_data: the dataset of its initial training (D0).
        level_of_theory: of the labels it learned; the genuine oracle of the official GOLF runs.
        charged_molecules: whether it was trained on (and takes) charged molecules. No official
            checkpoint was: the model has no charge input and the official oracle never sets one.
    """

    name: str
    sha256: str
    size: int
    shipped: bool
    description: str
    repo_path: str
    commit: str = OFFICIAL_COMMIT
    training_data: str = "nablaDFT"
    level_of_theory: str = LEVEL_OF_THEORY
    charged_molecules: bool = False

    @property
    def elements(self) -> tuple[str, ...]:
        return OFFICIAL_ELEMENTS

    @property
    def source(self) -> str:
        return f"github.com/{OFFICIAL_REPO}@{self.commit[:7]}:{self.repo_path}"

    def url(self, base: str | None = None) -> str:
        """Download URL (``GOLF_MODELS_URL`` or the official raw-GitHub base at the pinned commit)."""
        base = base or os.environ.get("GOLF_MODELS_URL") or \
            f"https://raw.githubusercontent.com/{OFFICIAL_REPO}/{self.commit}"
        return f"{base.rstrip('/')}/{self.repo_path}"


def _official(name: str, sha: str, shipped: bool, description: str) -> PretrainedModel:
    return PretrainedModel(name, sha, OFFICIAL_SIZE, shipped, description,
                           f"checkpoints/{name}/NNP_checkpoint_actor")


#: What the official GOLF-SPICE code and weights establish (branch GOLF-SPICE): elements H C N O F S Cl
#: Br (only those embedding rows differ between the SPICE checkpoints, i.e. were trained); no charge
#: input (the PaiNN input is atomic numbers and positions) and an oracle (env/dft_worker.py) that never
#: passes a charge to Psi4, so neutral molecules only; energies in Hartree with atomrefs taken from the
#: official SPICE databases' metadata (not in the repository). The level of theory of the SPICE D0
#: labels is not recorded in the repository (SPICE's own is wB97M-D3(BJ)/def2-TZVPPD); the GOLF and
#: traj-N fine-tuning labels come from the branch's wB97X-D/def2-SVP oracle.
SPICE_LEVEL = "wB97X-D/def2-SVP (fine-tuning); SPICE D0: not recorded"


def _spice(name: str, sha: str, shipped: bool, description: str) -> PretrainedModel:
    return PretrainedModel(name, sha, OFFICIAL_SIZE, shipped, description,
                           f"checkpoints/{name}/NNP_checkpoint_actor", commit=SPICE_COMMIT,
                           training_data="SPICE (neutral molecules)", level_of_theory=SPICE_LEVEL)


#: The official GOLF checkpoints (PaiNN, nablaDFT, wB97X-D/def2-SVP), by name.
PRETRAINED: dict[str, PretrainedModel] = {m.name: m for m in (
    _official("GOLF-10k", "030115ca7eed0b7da7bf8e6d5ead42b96366de9a8ac99cec9ad30bae1e56133f", True,
              "baseline-NNP fine-tuned by GOLF with 10k DFT oracle calls (the paper's best model)"),
    _official("baseline-NNP", "28bad5779cdadeac7b14bf7c93621ef689bac30ecb3777da23577193b9fd27d8", True,
              "PaiNN trained on the initial nablaDFT dataset D0"),
    _official("GOLF-1k", "bd9f95e2e45c59e97c8c4fb4dd857126d1042148eb7ce907b7cf94dd7672ba29", False,
              "baseline-NNP fine-tuned by GOLF with 1k DFT oracle calls"),
    _official("traj-10k", "189fe431bc3b05d01a1d51c721afe7428e595c582d34166ddcd0106872c2372a", False,
              "trained on D0 + 10k DFT optimization-trajectory conformations"),
    _official("traj-100k", "222f1daaa0c55605d065160d3e5dae514d31ff27964426cdfcd9ab02c7888ac6", False,
              "trained on D0 + 100k DFT optimization-trajectory conformations"),
    _official("traj-500k", "3a269e3089cdf71b8fd44fe994ff2c0681ee03666feee46130a9b99b49d756ac", False,
              "trained on D0 + 500k DFT optimization-trajectory conformations"),
    _spice("GOLF-10k-SPICE", "61ae4aa07ef9e9d15c6cd7100bb72c5b89ff231b92b276fce75047e4c4604163", True,
           "baseline-NNP-SPICE fine-tuned by GOLF with 10k DFT oracle calls"),
    _spice("baseline-NNP-SPICE", "101f25fcfe038df3ae019ee81ec3d1cea7f2750c03cc82060986ed6f8b1a7463", False,
           "PaiNN trained on neutral SPICE conformations"),
    _spice("traj-10k-SPICE", "c0f4ce59a7faaa37462366073e3c36eaca800603c96921e3b9e214ba0d238d60", False,
           "baseline-NNP-SPICE + 10k DFT optimization-trajectory conformations"),
    _spice("traj-100k-SPICE", "b513a3722de85321023136bad6f87aea084a9799336d5d7210ff8ac6a4b2fce3", False,
           "baseline-NNP-SPICE + 100k DFT optimization-trajectory conformations"),
    _spice("traj-220k-SPICE", "f394c2cbd35d3344807c6f2f709a3b5d6ba68c1ca0865b931fa2026213b3767f", False,
           "baseline-NNP-SPICE + 220k DFT optimization-trajectory conformations"),
)}


def models_dir() -> Path:
    """The cache directory of downloaded models and of ``registry.json`` (not created here)."""
    env = os.environ.get("GOLF_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "golf" / "models"


def _shipped_path(name: str) -> Path:
    return Path(__file__).resolve().parent / "pretrained" / f"{name}.pt"


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def _verify(path: Path, model: PretrainedModel) -> None:
    digest = sha256_file(path)
    if digest != model.sha256:
        raise CheckpointError(
            f"{path}: sha256 {digest[:12]}... does not match the pinned {model.sha256[:12]}... of {model.name}; "
            "delete the file and fetch it again"
        )


def fetch_model(
    name: str, dest_dir: str | os.PathLike | None = None, url: str | None = None, timeout: float = 60.0,
    force: bool = False,
) -> Path:
    """Download an official checkpoint into the cache and return its path.

    The file is streamed into a temporary file in ``dest_dir`` (default :func:`models_dir`), its
    sha256 is checked against the pinned digest and only then renamed to ``{name}.pt`` (atomic): a
    failed or tampered download leaves nothing behind. An already cached, verified file is reused
    unless ``force``. Shipped models are returned from the package without a download.

    Raises:
        CheckpointError: unknown name, network/URL failure or sha256 mismatch (one line).
    """
    if name not in PRETRAINED:
        raise CheckpointError(f"unknown pretrained model {name!r}; known: {', '.join(PRETRAINED)}")
    model = PRETRAINED[name]
    if model.shipped and dest_dir is None and url is None:
        return _shipped_path(name)
    dest = Path(dest_dir) if dest_dir is not None else models_dir()
    target = dest / f"{name}.pt"
    if target.is_file() and not force:
        _verify(target, model)
        return target
    src = url or model.url()
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CheckpointError(f"cannot create the model cache {dest} ({exc.strerror or exc})") from None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=dest)
    tmp = Path(tmp_name)
    try:
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(src, timeout=timeout) as resp:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    h.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc
            raise CheckpointError(f"cannot download {name} from {src} ({str(reason).splitlines()[0]})") from None
        if h.hexdigest() != model.sha256:
            raise CheckpointError(
                f"download of {name} from {src} has sha256 {h.hexdigest()[:12]}..., expected "
                f"{model.sha256[:12]}...; refused"
            )
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


# ----------------------------------------------------------------------------------------------
# user-registered models


def _registry_file() -> Path:
    return models_dir() / "registry.json"


def _read_registry() -> dict[str, Any]:
    """The raw ``models`` table of ``registry.json`` ({} when there is none); its entries unchecked.

    Raises:
        CheckpointError: the file is unreadable, not JSON, or not an object with a ``models`` object.
    """
    path = _registry_file()
    try:
        if not path.is_file():
            return {}
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: unreadable model registry ({exc}); fix or delete the file") from None
    if not isinstance(data, dict):
        raise CheckpointError(
            f"{path}: model registry is a JSON {type(data).__name__}, expected an object "
            '{"models": {NAME: {"path": ...}}}; fix or delete the file'
        )
    models = data.get("models")
    if models is None:
        return {}
    if not isinstance(models, dict):
        raise CheckpointError(
            f'{path}: "models" in the model registry is a JSON {type(models).__name__}, expected an object '
            "of NAME: entry; fix or delete the file"
        )
    return models


#: optional entry fields and their JSON types
_ENTRY_TYPES: dict[str, tuple[type, ...]] = {
    "description": (str,), "elements": (list,), "sha256": (str,), "size": (int,), "mtime_ns": (int,),
}


def _entry_problem(entry: Any) -> str | None:
    """What is wrong with one registry entry, or None."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, expected an object"
    if not isinstance(entry.get("path"), str) or not entry["path"]:
        return 'has no "path"'
    for key, types in _ENTRY_TYPES.items():
        v = entry.get(key)
        if v is not None and (not isinstance(v, types) or isinstance(v, bool)):
            return f'has a "{key}" that is not a {types[0].__name__}'
    if not all(isinstance(e, str) for e in entry.get("elements") or []):
        return 'has "elements" that are not element symbols'
    return None


def registered_models() -> dict[str, dict[str, Any]]:
    """The user's registered models: ``{name: {"path", "description", "elements", "sha256", "size",
    "mtime_ns"}}``.

    Raises:
        CheckpointError: the registry file is damaged (one line naming it, and the entry).
    """
    entries = _read_registry()
    for name, entry in entries.items():
        problem = _entry_problem(entry)
        if problem:
            raise CheckpointError(
                f"{_registry_file()}: registered model {name!r} {problem}; unregister it (and register it "
                "again) or fix the file"
            )
    return {str(k): dict(v) for k, v in entries.items()}


def _write_registry(entries: dict[str, Any]) -> None:
    reg = _registry_file()
    try:
        reg.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(reg, json.dumps({"models": entries}, indent=2, sort_keys=True) + "\n")
    except OSError as exc:
        why = exc.strerror or str(exc)
        if reg.parent.exists() and not reg.parent.is_dir():
            why = "it is not a directory"
        raise CheckpointError(
            f"cannot write the model registry {reg} ({why}); GOLF_MODELS_DIR sets the model cache directory"
        ) from None


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}


def _changed(entry: dict[str, Any]) -> str | None:
    """Why a registered file no longer is the one registered (its sha256 differs), or None.

    Cheap when the file's size and modification time are those recorded (no hashing then)."""
    path = Path(entry["path"])
    recorded = entry.get("sha256")
    if not recorded:
        return None  # registered before sha256s were recorded: nothing to compare with
    try:
        stamp = _stamp(path)
    except OSError:
        return None  # missing: reported as such by the callers
    if entry.get("mtime_ns") is not None and stamp == {"size": entry.get("size"), "mtime_ns": entry["mtime_ns"]}:
        return None
    digest = sha256_file(path)
    if digest == recorded:
        return None
    return f"sha256 {digest[:12]}... differs from the registered {recorded[:12]}..."


# ----------------------------------------------------------------------------------------------
# resolution


def _looks_like_name(text: str) -> bool:
    return bool(_NAME_RE.match(text)) and "/" not in text and os.sep not in text and not Path(text).suffix


def resolve_model(name_or_path: str | os.PathLike, download: bool = True) -> tuple[Path, dict[str, Any] | None]:
    """The checkpoint file of a model name or path, and the name's provenance (None for a plain path).

    An existing file always wins (a file called ``GOLF-10k`` in the working directory is used as
    is). Otherwise official names resolve to the package data or the download cache (downloading
    when ``download``), registered names to their recorded path. A string that looks like a name
    (no directory part, no extension) but is none raises CheckpointError listing the known names;
    anything else is returned as a path (the loader reports a missing file).
    """
    if isinstance(name_or_path, Path) or os.path.exists(str(name_or_path)):
        return Path(name_or_path), None
    text = str(name_or_path)
    if text in PRETRAINED:
        model = PRETRAINED[text]
        if model.shipped:
            path = _shipped_path(text)
        else:
            path = models_dir() / f"{text}.pt"
            if not path.is_file():
                if not download:
                    raise CheckpointError(f"model {text} is not downloaded yet; run: golf models fetch {text}")
                path = fetch_model(text)
        _verify(path, model)
        info = dict(name=text, source=model.source, sha256=model.sha256, level_of_theory=model.level_of_theory,
                    training_data=model.training_data, charged_molecules=model.charged_molecules,
                    license="MIT, Copyright (c) 2024 AIRI")
        return path, info
    entries = registered_models() if _looks_like_name(text) else {}
    if text in entries:
        entry = entries[text]
        path = Path(entry["path"])
        if not path.is_file():
            raise CheckpointError(f"registered model {text!r}: file {path} is gone")
        changed = _changed(entry)
        if changed:
            raise CheckpointError(
                f"registered model {text!r}: {path} changed since it was registered ({changed}); "
                "register it again to use the new file"
            )
        return path, dict(name=text, source=str(path), registered=True, sha256=entry.get("sha256", ""))
    if _looks_like_name(text):
        known = list(PRETRAINED) + sorted(entries)
        raise CheckpointError(f"unknown model {text!r}: not a file and not a model name (known: {', '.join(known)})")
    return Path(text), None


def model_info(name: str) -> dict[str, Any]:
    """Listing row of one known model (official or registered)."""
    if name in PRETRAINED:
        m = PRETRAINED[name]
        if m.shipped:
            where = "shipped"
        else:
            where = "cached" if (models_dir() / f"{name}.pt").is_file() else "download"
        return dict(name=name, kind="official", status=where, level_of_theory=m.level_of_theory,
                    training_data=m.training_data, charged_molecules=m.charged_molecules,
                    elements=" ".join(m.elements), size_mb=round(m.size / 1e6, 2), source=m.source,
                    description=m.description, sha256=m.sha256)
    entry = registered_models()[name]
    size = entry.get("size")
    if not Path(entry["path"]).is_file():
        status = "missing"
    else:
        status = "changed" if _changed(entry) else "registered"
    return dict(name=name, kind="registered", status=status,
                level_of_theory="(user)", elements=" ".join(entry.get("elements") or []),
                size_mb=round(size / 1e6, 2) if size else None, source=entry["path"],
                description=entry.get("description", ""), sha256=entry.get("sha256", ""))


def list_models() -> list[dict[str, Any]]:
    """All known models: official first, then registered."""
    return [model_info(n) for n in PRETRAINED] + [model_info(n) for n in sorted(registered_models())]


def as_dict(model: PretrainedModel) -> dict[str, Any]:
    """Plain-dict view of an official model entry."""
    return asdict(model)
