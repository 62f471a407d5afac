"""Option values checked where they are parsed, the same way in every command.

``install(parser)`` gives every option whose destination is in ``TYPES`` its validator (argparse
``type=``), whichever command defines it, so ``--workers 0`` or ``--fmax nan`` is refused by
``optimize``, ``train``, ``data ...`` alike, before any work; every other ``type=float`` option gets
``finite_float``: no option takes NaN or infinity. ``GolfArgumentParser`` prints an
argparse error as one line, ``golf CMD: error: argument --fmax: ...``, and exits 2.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable, NoReturn

#: Largest ``--displacement`` (standard deviation in Angstrom of the Gaussian noise added to generated
#: conformers). The paper perturbs by a few tenths of an Angstrom; beyond 1 Angstrom bonds break and
#: the labels are MeV-scale energies of fragments, not training data.
MAX_DISPLACEMENT = 1.0


def _number(text: str, kind: type) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, got {text!r}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (counts: workers, batch sizes, conformers, budgets)."""
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def nonnegative_int(text: str) -> int:
    """An integer >= 0 (step limits; 0 = evaluate the start only)."""
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def finite_float(text: str) -> float:
    """Any finite number (the check every float option gets: NaN and infinity are never a setting)."""
    return _number(text, float)


def nonnegative_float(text: str) -> float:
    """A finite number >= 0 (thresholds and windows: RMSD in Angstrom, energies in kcal/mol)."""
    value = _number(text, float)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value:g}")
    return value


def fraction(text: str) -> float:
    """A fraction of the data: 0 <= value < 1."""
    value = _number(text, float)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {value:g}")
    return value


def _positive(text: str, must: str) -> float:
    """A finite number > 0; ``must`` opens the message when it is not."""
    value = _number(text, float)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{must}, got {value:g}")
    return value


def force_threshold(text: str) -> float:
    """A convergence threshold on the largest atomic force: finite, > 0, in eV/Angstrom."""
    return _positive(text, "must be a positive force in eV/A")


def seconds(text: str) -> float:
    """A time limit in seconds: finite and > 0."""
    return _positive(text, "must be a positive number of seconds")


def call_counts(text: str) -> tuple[int, ...]:
    """Comma-separated oracle-call counts, each >= 1 (``--snapshots 16,32``)."""
    try:
        calls = tuple(positive_int(x) for x in text.split(",") if x.strip())
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"oracle-call counts: {exc}") from None
    if not calls:
        raise argparse.ArgumentTypeError(f"expected comma-separated oracle-call counts, got {text!r}")
    return calls


def displacement(text: str) -> float:
    """A displacement standard deviation in Angstrom, 0 <= value <= ``MAX_DISPLACEMENT``."""
    value = _number(text, float)
    if not 0.0 <= value <= MAX_DISPLACEMENT:
        raise argparse.ArgumentTypeError(
            f"must be between 0 and {MAX_DISPLACEMENT:g} Angstrom, got {value:g} "
            "(larger displacements break bonds)")
    return value


def device(text: str) -> str:
    """A torch device that exists here: ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``.

    torch is imported only for a device other than ``auto``/``cpu``.
    """
    name = text.strip().lower()
    if name in ("auto", "cpu"):
        return name
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"unknown device {text!r} (use auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text!r}: CUDA is not available on this machine (use cpu)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(
                f"{text!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps":
        if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError(f"{text!r}: MPS is not available on this machine (use cpu)")
    elif dev.type != "cpu":
        raise argparse.ArgumentTypeError(f"unsupported device {text!r} (use auto, cpu, cuda, cuda:N)")
    return name


def scheduler_address(text: str) -> str:
    """A Dask scheduler address, ``[tcp://]HOST[:PORT]`` (form only; see
    ``golf.oracles.executors.dask.check_scheduler_address``)."""
    from golf.errors import InputError
    from golf.oracles.executors.dask import check_scheduler_address

    try:
        return check_scheduler_address(text)
    except InputError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


#: argparse destination -> validator, for every command that has the option.
TYPES: dict[str, Callable[[str], Any]] = {
    "workers": positive_int,
    "threads_per_worker": positive_int,
    "batch_size": positive_int,
    "conformers": positive_int,
    "molecules": positive_int,
    "budget": positive_int,
    "epochs": positive_int,
    "n_parallel": positive_int,
    "seeds": positive_int,
    "max_steps": nonnegative_int,
    "fmax": force_threshold,
    "refine_fmax": force_threshold,
    "rmsd": nonnegative_float,
    "energy_threshold": nonnegative_float,
    "window": nonnegative_float,
    "signal_threshold": nonnegative_float,
    "xtb_temperature": nonnegative_float,
    "test_fraction": fraction,
    "val_fraction": fraction,
    "timeout": seconds,
    "displacement": displacement,
    "device": device,
    "scheduler": scheduler_address,
}

#: the plain argparse type each validator replaces (an option of another kind keeps its own type)
_REPLACES: dict[Callable[[str], Any], tuple[Any, ...]] = {
    positive_int: (int,), nonnegative_int: (int,), force_threshold: (float,),
    seconds: (float, int), displacement: (float,), device: (None, str), nonnegative_float: (float,),
    fraction: (float,), scheduler_address: (None, str),
}


def install(parser: argparse.ArgumentParser) -> None:
    """Give the options of ``parser`` and of all its subcommands their validators from ``TYPES``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in set(action.choices.values()):
                install(sub)
            continue
        check = TYPES.get(action.dest)
        if check is None or action.type not in _REPLACES[check]:
            check = finite_float if action.type is float else None  # no float option takes NaN/inf
        if check is None or action.choices is not None:
            continue
        if check is not finite_float and action.nargs not in (None, "?"):  # flags and lists keep their own handling
            continue
        action.type = check
        if check is displacement and action.help and "at most" not in action.help:
            action.help = action.help.replace("(default", f"(at most {MAX_DISPLACEMENT:g}; default", 1)


class GolfArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``golf CMD: error: MSG (see golf CMD --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
