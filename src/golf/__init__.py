"""golf: Gradual Optimization Learning for conformational energy minimization (Tsypin et al., ICLR 2024).

The top-level package imports neither torch nor any oracle backend: oracle worker processes import
``golf.oracles`` and must never pull torch in (tblite and torch ship incompatible libgomp builds).
Model entry points are therefore resolved lazily.
"""
from __future__ import annotations

import os as _os

# OpenMP threads that wait for work sleep instead of spinning (read once, when torch loads its OpenMP
# runtime; an explicit setting wins). Model evaluations are many short parallel regions: on a busy machine
# spinning threads burned ~9x the CPU of a PaiNN force call with 2 threads (2.6 vs 0.30 ms per atom).
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from golf._version import __version__  # noqa: E402

__all__ = ["__version__", "load_model"]


def __getattr__(name: str):
    if name == "load_model":
        from golf.models.checkpoint import load_model

        return load_model
    raise AttributeError(f"module 'golf' has no attribute {name!r}")
