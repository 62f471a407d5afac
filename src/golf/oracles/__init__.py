"""Oracles: the surrogate (MMFF94 via RDKit) and genuine ones (GFN2-xTB via tblite, DFT via PySCF).

Never imports torch (see ``golf.oracles.base``). Backends are imported lazily by ``make_oracle``.
"""
from __future__ import annotations

from typing import Any

from golf.errors import OracleUnavailable
from golf.oracles.base import Oracle, OracleResult, OracleSpec
from golf.oracles.factory import ORACLES, make_oracle, oracle_class, resolve_oracle
from golf.oracles.relax import RelaxResult

def default_settings(name: str) -> dict[str, Any]:
    """The constructor defaults of an oracle's settings."""
    import inspect

    params = inspect.signature(oracle_class(name).__init__).parameters
    return {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}


#: Python packages the genuine oracles need, with the install hint shown when one is missing.
BACKENDS: dict[str, tuple[str, str]] = {"xtb": ("tblite", "pip install tblite"),
                                        "dft": ("pyscf", "pip install 'golf[dft]'")}


def validated_spec(name: str, settings: dict[str, Any] | None = None, local: bool = True) -> OracleSpec:
    """The one way to turn (oracle name, settings) into an ``OracleSpec``, validated.

    Unknown oracles raise ``OracleUnavailable``; unknown or bad settings ``InputError``. With
    ``local`` (calls run on this machine) a missing backend raises ``OracleUnavailable`` with the
    install hint. The oracle is instantiated once when that is safe, so that the spec records its
    complete settings (defaults included); never beside torch for xtb/dft (libgomp clash), where the
    given settings are recorded as they are.
    """
    import importlib.util
    import inspect
    import sys

    from golf.errors import GolfError, InputError

    settings = dict(settings or {})
    cls = oracle_class(name)
    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in settings if k not in params]
    if unknown:
        allowed = [k for k in params if k != "self"]
        raise InputError(f"unknown {name} setting(s) {', '.join(unknown)}; known: {', '.join(allowed)}")
    backend, hint = BACKENDS.get(name, (None, ""))
    if backend and local and importlib.util.find_spec(backend) is None:
        raise OracleUnavailable(f"the {name} oracle needs {backend}, which is not installed; {hint}")
    try:
        if name in BACKENDS and "torch" in sys.modules:
            cls.check_settings(settings)  # the constructor's checks without the backend
            return OracleSpec(name, settings)
        oracle = cls(**settings)  # validates settings; records defaults too
        return OracleSpec(name, dict(oracle.settings))
    except OracleUnavailable:
        if local:
            raise
        return OracleSpec(name, settings)  # the cluster may have the backend
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad {name} settings: {exc}") from None
    except GolfError:
        raise
    except Exception as exc:  # a plugin's constructor (e.g. its own missing import): one line, no traceback
        detail = " ".join(str(exc).split()) or "no message"
        raise InputError(f"the {name} oracle could not be created: {type(exc).__name__}: {detail}") from None


def same_settings(name: str, a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Whether two settings of oracle ``name`` mean the same (omitted keys take the defaults)."""
    import json

    try:
        defaults = default_settings(name)
    except OracleUnavailable:
        defaults = {}

    def full(s: dict[str, Any]) -> str:
        return json.dumps({k: s.get(k, defaults.get(k)) for k in sorted(set(a) | set(b))}, sort_keys=True,
                          default=str)

    return full(a) == full(b)


__all__ = ["BACKENDS", "ORACLES", "Oracle", "OracleResult", "OracleSpec", "RelaxResult", "default_settings", "make_oracle", "oracle_class",
           "resolve_oracle", "same_settings", "validated_spec"]
