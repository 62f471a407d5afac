"""The oracle factory: the registry of names to "module:Class" entries, and building an oracle from its name and
settings (backends imported lazily, here or in a worker process). Imports no other golf.oracles module."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from golf.errors import OracleUnavailable

if TYPE_CHECKING:  # annotations only
    from golf.oracles.base import Oracle

#: registry name -> "module:Class"
ORACLES: dict[str, str] = {
    "mmff": "golf.oracles.mmff:MMFFOracle",
    "xtb": "golf.oracles.xtb:XTBOracle",
    "dft": "golf.oracles.dft:DFTOracle",
}


def resolve_oracle(name: str) -> str:
    """The "module:Class" entry of an oracle: a registry name, or a user's own "module:Class"
    (a plugin oracle, importable in the worker processes too); registers the latter."""
    if name in ORACLES:
        return ORACLES[name]
    if ":" in name and all(part.replace(".", "").replace("_", "").isalnum() for part in name.split(":")):
        ORACLES[name] = name
        return name
    raise OracleUnavailable(f"unknown oracle {name!r}; choose one of {', '.join(ORACLES)} (or module:Class)")


def make_oracle(name: str, **settings: Any) -> Oracle:
    """Build an oracle by registry name (or "module:Class"); unknown names and missing backends raise
    ``OracleUnavailable``."""
    import importlib

    module_name, cls_name = resolve_oracle(name).split(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, cls_name)
    except (ImportError, AttributeError) as exc:
        if name in ("mmff", "xtb", "dft"):
            raise
        raise OracleUnavailable(f"cannot import oracle {name!r}: {exc}") from exc
    return cls(**settings)


def oracle_class(name: str) -> type:
    """The class of an oracle (registry name or "module:Class"); OracleUnavailable if unknown."""
    import importlib

    target = resolve_oracle(name)
    module_name, cls_name = target.split(":")
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except ImportError as exc:
        if module_name.startswith("golf."):  # a built-in oracle's own import broke: a bug, keep the traceback
            raise
        raise OracleUnavailable(f"oracle {name!r}: cannot import module {module_name!r} ({exc})") from exc
    except AttributeError:
        raise OracleUnavailable(f"oracle {name!r}: module {module_name!r} has no class {cls_name!r}") from None
    if not isinstance(cls, type):
        raise OracleUnavailable(f"oracle {name!r}: {target} is not a class")
    return cls
