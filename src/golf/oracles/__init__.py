"""Oracles: the surrogate (MMFF94 via RDKit) and genuine ones (GFN2-xTB via tblite, DFT via PySCF).

Never imports torch (see ``golf.oracles.base``). Backends are imported lazily by ``make_oracle``.
"""
from __future__ import annotations

from typing import Any

from golf.errors import OracleUnavailable
from golf.oracles.base import Oracle, OracleResult, OracleSpec, RelaxResult

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


__all__ = ["ORACLES", "Oracle", "OracleResult", "OracleSpec", "RelaxResult", "make_oracle", "resolve_oracle"]
