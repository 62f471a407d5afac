"""Names of the models, stages and directories of a ``golf run`` with several training seeds.

Seed 0 keeps the plain name (a one-seed run is named as before seeds existed); training seed s > 0 appends
``-s<s>``: ``baseline-s2``, ``GOLF-100-s2``, ``golf-s2/``.
"""
from __future__ import annotations

import re

_SEED_SUFFIX = re.compile(r"^(.+)-s(\d+)$")


def seed_name(name: str, seed: int) -> str:
    """The model, stage or path name ``name`` of training seed ``seed``: ``name`` for seed 0,
    ``<name>-s<seed>`` otherwise."""
    return name if seed == 0 else f"{name}-s{seed}"


def split_seed(name: str) -> tuple[str, int]:
    """Inverse of ``seed_name``: ``"GOLF-100-s2"`` -> ``("GOLF-100", 2)``, ``"traj-1000"`` -> ``("traj-1000", 0)``."""
    m = _SEED_SUFFIX.match(name)
    return (m.group(1), int(m.group(2))) if m else (name, 0)
