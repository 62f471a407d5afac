"""Argument groups several subcommands share, and their mapping onto ``golf.presets`` settings.

An option left out is None here and keeps the value of the preset (every default lives in
``golf.presets``).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
from typing import Any, TypeVar

from golf.cli._types import nonnegative_float, setting_type
from golf.presets import EXECUTORS, MAX_DISPLACEMENT, GolfTraining, Molecules, OracleRun, Relaxation

T = TypeVar("T")

#: oracle-specific options: (argparse dest, oracle setting, oracle)
ORACLE_FLAGS = (("xtb_method", "method", "xtb"), ("xtb_accuracy", "accuracy", "xtb"),
                ("xtb_temperature", "electronic_temperature", "xtb"), ("dft_xc", "xc", "dft"),
                ("dft_basis", "basis", "dft"))


def override(base: T, args: argparse.Namespace, **renamed: str) -> T:
    """``base`` with every field whose option was given on the command line replaced.

    ``renamed`` maps a field to its argparse dest where the two differ.
    """
    changes = {}
    for f in dataclasses.fields(base):  # type: ignore[arg-type]
        value = getattr(args, renamed.get(f.name, f.name), None)
        if value is not None:
            changes[f.name] = value
    return dataclasses.replace(base, **changes)  # type: ignore[type-var]


def add_molecule_args(p: argparse.ArgumentParser, defaults: Molecules, default_molecules: str) -> None:
    g = p.add_argument_group("molecules (default: the NCI pool shipped with RDKit)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--smiles", metavar="FILE",
                     help="SMILES file (.smi/.txt: SMILES [id] per line; .csv with a 'smiles' column); "
                          "a line without an integer id gets one that no line of the file uses")
    src.add_argument("--input", metavar="FILE", help="structures: .sdf/.mol, .xyz/.extxyz (bonds perceived), .db (ASE), or SMILES")
    g.add_argument("--molecules", type=setting_type(Molecules, "molecules"), default=None, metavar="N",
                   help=f"number of pool molecules (default: {default_molecules})")
    g.add_argument("--min-heavy", type=setting_type(Molecules, "min_heavy"), default=None, metavar="K",
                   help=f"pool: minimum heavy atoms (default {defaults.min_heavy})")
    g.add_argument("--max-heavy", type=setting_type(Molecules, "max_heavy"), default=None, metavar="K",
                   help=f"pool: maximum heavy atoms (default {defaults.max_heavy})")
    g.add_argument("--split", choices=("train", "test", "all"), default=None,
                   help=f"pool: which split (by molecule) to draw from (default {defaults.split})")
    g.add_argument("--test-fraction", type=setting_type(Molecules, "test_fraction"), default=None,
                   help=f"pool: fraction of molecules in the test split (default {defaults.test_fraction})")
    g.add_argument("--conformers", type=setting_type(Molecules, "conformers"), default=None, metavar="K",
                   help=f"ETKDGv3 conformers per molecule for SMILES/pool input (default {defaults.conformers})")
    g.add_argument("--displacement", type=setting_type(Molecules, "displacement"), default=None, metavar="A",
                   help="std (Angstrom) of a random Gaussian displacement of generated conformers "
                        f"(at most {MAX_DISPLACEMENT:g}; default {defaults.displacement:g})")
    g.add_argument("--seed", type=setting_type(Molecules, "seed"), default=None,
                   help=f"seed of the split, molecule order, ETKDG and displacement (default {defaults.seed})")
    g.add_argument("--charge", type=setting_type(Molecules, "charge"), default=None, help="total charge (required for charged molecules; XYZ bonds perceived with it)")
    g.add_argument("--multiplicity", type=setting_type(Molecules, "multiplicity"), default=None, help="spin multiplicity 2S+1 (required for radicals)")


def add_oracle_args(p: argparse.ArgumentParser, default: str | None = OracleRun.oracle) -> None:
    g = p.add_argument_group("oracle")
    g.add_argument("--oracle", default=None,
                   help=f"mmff, xtb (GFN2-xTB via tblite) or dft (PySCF){f' (default {default})' if default else ''}")
    g.add_argument("--xtb-method", default=None, help="xtb: GFN2-xTB (default) or GFN1-xTB")
    g.add_argument("--xtb-accuracy", type=float, default=None, help="xtb: tblite accuracy (default 1.0)")
    g.add_argument("--xtb-temperature", type=nonnegative_float, default=None, help="xtb: electronic temperature in K (default 300)")
    g.add_argument("--dft-xc", default=None, help="dft: functional (default wb97x-d: wB97X-D with its Chai-Head-Gordon dispersion; wb97x-d3bj also)")
    g.add_argument("--dft-basis", default=None, help="dft: basis set (default def2-svp)")
    g.add_argument("--oracle-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other oracle setting (repeatable), VALUE parsed as JSON if possible")


def add_executor_args(p: argparse.ArgumentParser, threads: bool = True) -> None:
    d = OracleRun()
    g = p.add_argument_group("execution")
    g.add_argument("--executor", choices=EXECUTORS, default=None,
                   help=f"local: spawned process pool; serial: in this process; dask: a Dask cluster (default {d.executor})")
    g.add_argument("--workers", type=setting_type(OracleRun, "workers"), default=None, help=f"number of worker processes (default {d.workers})")
    if threads:
        g.add_argument("--threads-per-worker", type=setting_type(OracleRun, "threads_per_worker"), default=None,
                       help=f"OpenMP threads per worker (default {d.threads_per_worker})")
    g.add_argument("--scheduler", type=setting_type(OracleRun, "scheduler"), default=None, metavar="ADDRESS",
                   help="dask scheduler address (default: $DASK_SCHEDULER_ADDRESS or a local cluster)")
    g.add_argument("--timeout", type=setting_type(OracleRun, "timeout"), default=None, metavar="S", help="per-call timeout in seconds")


def add_relax_args(p: argparse.ArgumentParser) -> None:
    d = Relaxation()
    g = p.add_argument_group("relaxation")
    g.add_argument("--fmax", type=setting_type(Relaxation, "fmax"), default=None, help=f"convergence: max |force| in eV/A (default {d.fmax})")
    g.add_argument("--max-steps", type=setting_type(Relaxation, "max_steps"), default=None, help=f"optimizer step limit (default {d.max_steps})")


def parse_value(text: str) -> Any:
    """A KEY=VALUE option's value: JSON when it parses, else the string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def oracle_settings(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """Oracle settings from the oracle-specific options and ``--oracle-option KEY=VALUE``."""
    from golf.errors import InputError

    settings: dict[str, Any] = {}
    for opt, key, oracle in ORACLE_FLAGS:
        value = getattr(args, opt, None)
        if value is not None:
            if oracle != name:
                raise InputError(f"--{opt.replace('_', '-')} applies to --oracle {oracle}, not {name}")
            settings[key] = value
    for item in getattr(args, "oracle_option", None) or []:
        if "=" not in item:
            raise InputError(f"--oracle-option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        value = parse_value(v.strip())
        if isinstance(value, float) and not math.isfinite(value):  # JSON parses NaN and Infinity
            raise InputError(f"--oracle-option {item!r}: must be a finite number")
        settings[k.strip()] = value
    return settings


def oracle_run(args: argparse.Namespace, base: OracleRun = OracleRun()) -> OracleRun:
    """``OracleRun`` from the oracle and execution options over ``base``."""
    run = override(base, args)
    return dataclasses.replace(run, settings={**run.settings, **oracle_settings(args, run.oracle)})


def add_trigger_args(g: argparse._ArgumentGroup) -> None:
    """``--trigger``/``--signal-threshold``: what sends a conformation to the genuine oracle (``golf.loop``)."""
    from golf.trust import SIGNAL_THRESHOLD, TRIGGERS

    g.add_argument("--trigger", choices=TRIGGERS, default=None,
                   help="what sends a conformation to the oracle: surrogate (official: MMFF energy rose, or the step "
                        "limit), signal (episodes run to the step limit; labelled when the trust signal reaches "
                        "--signal-threshold), both (the surrogate rule; step-limit labels only when the signal reaches it)")
    g.add_argument("--signal-threshold", type=setting_type(GolfTraining, "signal_threshold"), default=None, metavar="EV",
                   help=f"trust signal (MMFF94 energy drop, eV) from which the signal/both triggers label "
                        f"(default {SIGNAL_THRESHOLD:.4f} eV = 2 kcal/mol)")


def nnp_process_help() -> tuple[str, str]:
    """Help of ``--threads`` and ``--processes`` for the commands that relax with an NNP (optimize, conformers)."""
    from golf.runs.relax_pool import MIN_CONFORMATIONS_PER_PROCESS

    return ("torch threads (default: torch's in one process; with several processes, the cores shared among "
            "them)",
            "NNP relaxation processes side by side, sharing the cores (default: one per core on the CPU, "
            f"with at least {MIN_CONFORMATIONS_PER_PROCESS} conformations each, else 1)")
