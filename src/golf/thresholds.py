"""The force thresholds (eV/Angstrom) at which a relaxation counts as converged, and the step limits of
relaxations, declared once.

A relaxation converges when the largest atomic force, max_i |F_i|, falls below ``fmax``. Every default
``fmax`` and step limit of golf (options, settings, function arguments) is one of these constants. Plain constants:
imported by oracle workers, so no torch, no RDKit.
"""
from __future__ import annotations

#: NNP relaxations of ``golf optimize`` and ``golf conformers`` (``golf.optim.relax``; also the oracle
#: refinement of ``golf conformers``): ASE's default, the usual threshold of a molecular geometry optimisation.
NNP_FMAX: float = 0.05
#: Oracle relaxations (``Oracle.relax``, ``golf.presets.Relaxation``): the reference optima and oracle
#: trajectories of ``golf data reference``/``trajectories`` and of ``golf run``.
ORACLE_FMAX: float = 0.01
#: The paper's evaluation (``golf evaluate``): so small that no relaxation converges, so every model
#: relaxation runs its full step budget T, as the paper's fixed-length trajectories do.
EVAL_FMAX: float = 1e-6

#: Step limit of every NNP relaxation (``golf optimize``, ``golf conformers``, ``golf.optim.relax``): far
#: above what a converging relaxation needs (drug-sized molecules converge in tens of steps with
#: ``lbfgs-precon``), so it only stops relaxations that wander.
NNP_MAX_STEPS: int = 1000
#: Step limit of oracle relaxations (``Oracle.relax``, ``golf.presets.Relaxation``, the oracle
#: re-relaxation of ``golf conformers --refine-opt``).
ORACLE_MAX_STEPS: int = 500
