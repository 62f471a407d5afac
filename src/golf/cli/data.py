"""``golf data``: build labelled datasets, reference optima and oracle trajectories.

Subcommands (each a function of ``golf.runs``; all resumable, failures in ``OUT.failures.jsonl``):

* ``golf data build``: choose molecules (the embedded NCI pool, or ``--smiles``/``--input``), generate
  ETKDG conformers, label each with an oracle (energy + forces), append to an ASE SQLite db.
* ``golf data reference``: relax every conformation with the genuine oracle; store start geometry,
  start energy/forces, optimal energy and geometry (the reference optima for evaluation).
* ``golf data trajectories``: relax conformations with the genuine oracle, keep every step, and write
  the first N trajectory conformations (traj-N: N counts oracle calls).
"""
from __future__ import annotations

import argparse

from golf.cli._batch import PARTIAL
from golf.cli._common import add_executor_args, add_molecule_args, add_oracle_args, add_relax_args
from golf.cli._types import positive_int
from golf.presets import (
    BUILD_MOLECULES,
    BUILD_POOL_MOLECULES,
    REFERENCE_MOLECULES,
    TRAJECTORY_MOLECULES,
)


def _add_output_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", required=True, metavar="DB", help=what)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p = sub.add_parser(
        "build",
        help="generate conformers and label them with an oracle into an ASE db",
        description="Choose molecules (the NCI default pool, or your own), generate ETKDGv3 conformers, "
        "label each with an oracle (energy eV, forces eV/A) and append them to an ASE SQLite db. "
        "Resumable: re-running skips records already in OUT.",
    )
    add_molecule_args(p, BUILD_MOLECULES, f"{BUILD_POOL_MOLECULES} from the pool, all of a file")
    add_oracle_args(p)
    add_executor_args(p)
    _add_output_args(p, "output ASE SQLite database (.db)")
    p.set_defaults(_data_run=_run_build)

    p = sub.add_parser(
        "reference",
        help="relax every conformation with the genuine oracle (reference optima)",
        description="Relax each conformation of a (test) set to the oracle's own minimum and store the "
        "start geometry with its energy/forces plus opt_energy, opt_positions, opt_converged, opt_steps. "
        "Resumable.",
    )
    add_molecule_args(p, REFERENCE_MOLECULES, "all of the split or file")
    add_oracle_args(p)
    add_relax_args(p)
    add_executor_args(p)
    _add_output_args(p, "output reference database (.db)")
    p.set_defaults(_data_run=_run_reference)

    p = sub.add_parser(
        "trajectories",
        help="oracle relaxation trajectories: the first N steps as a dataset (traj-N)",
        description="Relax conformations (in order) with the genuine oracle keeping every step, and write "
        "the first --budget trajectory conformations (energy + forces each; one oracle call each) to an "
        "ASE db. Resumable.",
    )
    add_molecule_args(p, TRAJECTORY_MOLECULES, "all of the split or file")
    add_oracle_args(p)
    add_relax_args(p)
    p.add_argument("--budget", type=positive_int, required=True, metavar="N",
                   help="number of trajectory conformations (oracle calls) to write")
    add_executor_args(p)
    _add_output_args(p, "output trajectory database (.db)")
    p.set_defaults(_data_run=_run_trajectories)
    parser.set_defaults(_data_parser=parser)


def paths(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list]:
    """What a data command reads and writes (``golf.cli._paths``)."""
    from golf.cli._paths import given
    from golf.runs.data import DB_KIND, implicit_outputs
    from golf.runs.guard import Output

    if not getattr(args, "_data_run", None):
        return [], []
    inputs = [(p, o) for p, o in ((given(args, "smiles"), "--smiles"), (given(args, "input"), "--input")) if p]
    out, sub = given(args, "out"), getattr(args, "data_command", None) or ""
    if not out:
        return inputs, []
    return inputs, [Output(out, option="--out", db=DB_KIND.get(sub), append=True), *implicit_outputs(sub, out)]


def run(args: argparse.Namespace) -> int:
    fn = getattr(args, "_data_run", None)
    if fn is None:
        args._data_parser.print_help()
        return 1
    return int(fn(args) or 0)


def _run_build(args: argparse.Namespace) -> int:
    from golf.cli._common import oracle_run, override
    from golf.runs.build import build

    counts = build(args.out, override(BUILD_MOLECULES, args), oracle_run(args), quiet=args.quiet)
    return PARTIAL if counts["bad input records"] else 0


def _run_reference(args: argparse.Namespace) -> int:
    from golf.cli._common import oracle_run, override
    from golf.presets import Relaxation
    from golf.runs.reference import reference

    counts = reference(args.out, override(REFERENCE_MOLECULES, args), oracle_run(args),
                       override(Relaxation(), args), quiet=args.quiet)
    return PARTIAL if counts["bad input records"] else 0


def _run_trajectories(args: argparse.Namespace) -> int:
    from golf.cli._common import oracle_run, override
    from golf.presets import Relaxation
    from golf.runs.trajectories import trajectories

    trajectories(args.out, args.budget, override(TRAJECTORY_MOLECULES, args), oracle_run(args),
                 override(Relaxation(), args), quiet=args.quiet)
    return 0
