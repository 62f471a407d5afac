"""golf: Gradual Optimization Learning for conformational energy minimization (Tsypin et al., ICLR 2024).

The top-level package imports neither torch nor any oracle backend: oracle worker processes import
``golf.oracles`` and must never pull torch in (tblite and torch ship incompatible libgomp builds).
Model entry points are therefore resolved lazily.
"""
from __future__ import annotations

from golf._version import __version__

__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from golf.models.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'golf' has no attribute {name!r}")
