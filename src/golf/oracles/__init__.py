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


def make_oracle(name: str, **settings: Any) -> Oracle:
    """Build an oracle by registry name; unknown names and missing backends raise ``OracleUnavailable``."""
    import importlib

    if name not in ORACLES:
        raise OracleUnavailable(f"unknown oracle {name!r}; choose one of {', '.join(ORACLES)}")
    module_name, cls_name = ORACLES[name].split(":")
    module = importlib.import_module(module_name)
    return getattr(module, cls_name)(**settings)


__all__ = ["ORACLES", "Oracle", "OracleResult", "OracleSpec", "RelaxResult", "make_oracle"]
