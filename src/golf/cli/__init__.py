"""The ``golf`` command line. Like ASE's CLI: a table of lazily imported subcommand modules,
each with ``add_arguments(parser)`` and ``run(args) -> int``. Heavy imports (torch, RDKit,
oracle backends) happen inside ``run`` so ``golf --help`` is instant.

Before a command runs, ``golf.runs.guard`` (given the command's paths by ``golf.cli._paths``) refuses an output that is one of its inputs or is given
twice, or that would replace (or append to) an existing database of another kind, checks the
databases it reads, and locks its outputs, the implicit ones (summaries, failure logs, run
directories) included, against a second golf process until it ends. Outputs are written atomically;
an output that is a symlink is written through to its target (the link stays), and a replaced file
keeps its mode.
A ``GolfError`` raised anywhere becomes one line on stderr and exit code 2, as does a bad option
(validated where it is parsed by the check of the settings field it sets, the same in every command,
or reported on its option when a settings object refuses it later: ``golf.cli._types``) and an output the
machine will not take (disk full, quota, read-only, no permission: ``golf.io.writing``, or caught
here when a writer did not name its path); Ctrl-C exits 130.
Batch commands (``predict``, ``optimize``) report each structure they skip or fail on one stderr line,
go on with the others and exit 3 when their output lacks some structures (``golf.cli._batch``).
"""
from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("golf.cli.data", "build labelled datasets, reference optima and oracle trajectories"),
    "predict": ("golf.cli.predict", "energies and forces of structures with an NNP"),
    "optimize": ("golf.cli.optimize", "relax conformations with an NNP or an oracle"),
    "train": ("golf.cli.train", "train an NNP (baseline, traj-N, or GOLF with --golf)"),
    "evaluate": ("golf.cli.evaluate", "the paper's relaxation metrics for a model on a test set"),
    "run": ("golf.cli.run", "the end-to-end GOLF experiment (the main job)"),
    "conformers": ("golf.cli.conformers", "low-energy conformer ensembles of molecules (SMILES/SDF -> SDF)"),
    "models": ("golf.cli.models", "pretrained models by name: list, fetch, register"),
    "adapt": ("golf.cli.adapt", "adapt a pretrained model to your molecules with GOLF (your oracle, a small budget)"),
}

#: Subcommands whose work is torch model evaluation/training in this process.
TORCH_COMMANDS = frozenset({"predict", "optimize", "train", "evaluate", "run", "conformers", "adapt"})


def build_parser() -> argparse.ArgumentParser:
    from golf.cli._types import GolfArgumentParser, setting_options

    parser = GolfArgumentParser(
        prog="golf",
        description="GOLF: train neural network potentials that relax molecules like the reference method.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:  # a subcommand not built yet
            if exc.name != module_name:
                raise
            continue
        p = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _paths=getattr(module, "paths", None), _setting_options=setting_options(p))
    return parser


def main(argv: list[str] | None = None) -> int:
    from golf.errors import GolfError, RunExists, SettingError

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a bad option (2, one line already printed)
        return 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 2
    if args.version:
        from golf import __version__

        print(__version__)
        return 0
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    from golf.progress import configure

    _one_line_warnings(args.command)
    configure()  # progress bars on a terminal, status lines in logs
    if args.command in TORCH_COMMANDS:
        from golf.models.ops import tune_cpu_allocator

        tune_cpu_allocator()  # long CPU jobs: keep freed pair tensors instead of re-faulting them
    try:
        from golf.cli._paths import guard

        with guard(args):  # output != input, intact databases, one process per output
            return int(args._run(args) or 0)
    except RunExists as exc:  # the library names the run; how to go on is the command line's
        print(f"golf {args.command}: error: {exc}; continue it with --resume or choose another --out", file=sys.stderr)
        return 2
    except SettingError as exc:  # a settings field: reported on its option
        from golf.cli._types import setting_error

        print(setting_error(args.command, exc, args), file=sys.stderr)
        return 2
    except GolfError as exc:
        print(f"golf {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"golf {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - re-raised unless the machine refused a write
        from golf.io import write_failure

        cause = write_failure(exc)
        if cause is None:
            raise
        print(f"golf {args.command}: error: {_failed_write(args, exc, cause)}", file=sys.stderr)
        return 2


def _failed_write(args: argparse.Namespace, exc: BaseException, cause: str) -> str:
    """One line for a write the machine refused where the writer did not say which output it was."""
    filename = getattr(exc, "filename", None)
    if filename:
        return f"{filename}: {cause}"
    from golf.cli._paths import command_paths

    outputs = [o.path for o in command_paths(args)[1]]
    return f"cannot write {' or '.join(outputs) or 'the output'}: {cause}"


def _one_line_warnings(command: str) -> None:
    """Print every ``GolfWarning`` as one stderr line, ``golf COMMAND: warning: ...``, each time it
    is issued; other warnings keep Python's format."""
    import warnings

    from golf.errors import GolfWarning

    warnings.simplefilter("always", GolfWarning)
    current = warnings.showwarning
    if getattr(current, "golf_command", None) is not None:  # installed by an earlier main() in this process
        current.golf_command = command
        return

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001 - warnings' signature
        if issubclass(category, GolfWarning):
            print(f"golf {show.golf_command}: warning: {str(message).splitlines()[0]}", file=file or sys.stderr)
        else:
            current(message, category, filename, lineno, file, line)

    show.golf_command = command
    warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
