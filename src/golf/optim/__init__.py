"""Batched conformation optimizers (L-BFGS, FIRE, gradient descent) over many molecules at once.

Optimizers are ``init(batch, provider, **cfg) -> state`` / ``step(state, provider) -> state`` pairs over
plain dataclass states (``golf.optim.state``); ``select``/``concat`` let molecules leave and join a
running optimization with their own history. ``relax`` drives a whole set of conformations.
"""
from golf.optim.fire import FIREConfig, FIREState, fire_init, fire_step
from golf.optim.gd import GDConfig, GDState, gd_init, gd_step
from golf.optim.lbfgs import LBFGS_PRESETS, LBFGSConfig, LBFGSState, lbfgs_config, lbfgs_init, lbfgs_step
from golf.optim.providers import LennardJones, Morse, OracleEnergyForces, Quadratic
from golf.optim.driver import DEFAULT_FMAX, DEFAULT_MAX_STEPS, METHODS, RelaxRecord, get_optimizer, relax
from golf.optim.state import OptimConfig, OptimState, concat, evaluate, select

__all__ = [
    "DEFAULT_FMAX", "DEFAULT_MAX_STEPS", "FIREConfig", "FIREState", "GDConfig", "GDState", "LBFGSConfig",
    "LBFGSState", "LBFGS_PRESETS", "LennardJones", "METHODS", "Morse", "OptimConfig", "OptimState",
    "OracleEnergyForces", "Quadratic", "RelaxRecord", "concat", "evaluate", "fire_init", "fire_step",
    "gd_init", "gd_step", "get_optimizer", "lbfgs_config", "lbfgs_init", "lbfgs_step", "relax", "select",
]
