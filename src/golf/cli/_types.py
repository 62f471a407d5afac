"""Option values checked where they are parsed, the same way in every command.

An option that sets a field of a ``golf.presets`` settings dataclass is declared with
``type=setting_type(SettingsClass, "field")``: its text is parsed to the field's kind and checked by the
field's own check (declared once, in the dataclass), so ``--workers 0`` is refused by every command that
has it, before any work. That declaration is the map from fields to options: a ``SettingError`` raised
later (a check across fields, a settings object built by the command) is reported on the option whose dest
is the field (``setting_error``). ``GolfArgumentParser`` parses every ``type=float`` option with
``finite_float`` (no option takes NaN or infinity) and prints an argparse error as one line,
``golf CMD: error: argument --fmax: ...``, exiting 2.

``install`` is the older mechanism, kept for the commands that do not declare settings yet
(``LEGACY_COMMANDS``): it gives their options whose dest is in ``TYPES`` a validator by name.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable, NoReturn

from golf.presets import check_value, field_check

#: Commands whose options are still checked by name (``install``); they declare settings in their rework.
LEGACY_COMMANDS = ("optimize", "predict", "conformers")


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


def call_counts(text: str) -> tuple[int, ...]:
    """Comma-separated oracle-call counts, each >= 1 (``--snapshots 16,32``)."""
    try:
        calls = tuple(positive_int(x) for x in text.split(",") if x.strip())
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"oracle-call counts: {exc}") from None
    if not calls:
        raise argparse.ArgumentTypeError(f"expected comma-separated oracle-call counts, got {text!r}")
    return calls


def setting_type(cls: type, name: str) -> Callable[[str], Any]:
    """The argparse ``type`` of an option that sets field ``name`` of settings class ``cls``: the text
    parsed to the field's kind, then the field's check (its message becomes the option's error)."""
    from golf.errors import SettingError

    check = field_check(cls, name)
    kind = getattr(check, "kind", str)

    def parse(text: str) -> Any:
        value = _number(text, kind) if kind in (int, float) else getattr(check, "normalize", str)(text)
        try:
            return check_value(cls, name, value)
        except SettingError as exc:
            raise argparse.ArgumentTypeError(exc.message) from None

    parse.__name__ = f"{cls.__name__}.{name}"
    parse.setting = (cls, name)  # type: ignore[attr-defined]
    return parse


def setting_error(command: str, exc: Any, args: argparse.Namespace) -> str:
    """The one line of a ``SettingError``: on the option whose dest is the field when the command has
    one (as argparse reports a bad value), else on the field."""
    if exc.field in vars(args):
        flag = "--" + exc.field.replace("_", "-")
        return f"golf {command}: error: argument {flag}: {exc.message} (see golf {command} --help)"
    return f"golf {command}: error: {exc}"


def _legacy_types() -> dict[str, Callable[[str], Any]]:
    """argparse dest -> validator of the ``LEGACY_COMMANDS``' own options: the settings fields' checks
    where a field of that name exists, plain number checks for the rest."""
    from golf.presets import Molecules, OracleRun, Relaxation, Training

    return {
        "workers": setting_type(OracleRun, "workers"),
        "threads_per_worker": setting_type(OracleRun, "threads_per_worker"),
        "timeout": setting_type(OracleRun, "timeout"),
        "scheduler": setting_type(OracleRun, "scheduler"),
        "batch_size": setting_type(Training, "batch_size"),
        "device": setting_type(Training, "device"),
        "conformers": setting_type(Molecules, "conformers"),
        "molecules": setting_type(Molecules, "molecules"),
        "max_steps": setting_type(Relaxation, "max_steps"),
        "fmax": setting_type(Relaxation, "fmax"),
        "refine_fmax": setting_type(Relaxation, "fmax"),
        "rmsd": nonnegative_float,
        "energy_threshold": nonnegative_float,
        "window": nonnegative_float,
    }


def install(parser: argparse.ArgumentParser) -> None:
    """Give the options of ``parser`` (a ``LEGACY_COMMANDS`` parser) whose dest has a validator in
    ``_legacy_types`` that validator, where the option is a plain ``int``/``float``/string one."""
    types = _legacy_types()
    for action in parser._actions:
        check = types.get(action.dest)
        if check is None or action.choices is not None or action.nargs not in (None, "?"):
            continue
        if action.type in (None, str, int, float):
            action.type = check


class GolfArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``golf CMD: error: MSG (see golf CMD --help)``,
    and whose ``type=float`` options refuse NaN and infinity (``finite_float``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("type", float, finite_float)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
