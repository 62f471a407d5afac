"""Option values checked where they are parsed, the same way in every command.

An option that sets a field of a settings dataclass (``golf.presets``, or the settings of a ``golf.runs``
function) is declared with ``type=setting_type(SettingsClass, "field")``: its text is parsed to the field's
kind and checked by the field's own check (declared once, in the dataclass), so ``--workers 0`` is refused
by every command that has it, before any work. That declaration is the map from fields to options: a
``SettingError`` raised later (a check across fields, a settings object built by the command) is reported
on the option declared for the field, else on the option whose dest is the field (``setting_error``).
``GolfArgumentParser`` parses every ``type=float`` option with ``finite_float`` (no option takes NaN or
infinity) and prints an argparse error as one line, ``golf CMD: error: argument --fmax: ...``, exiting 2.
"""
from __future__ import annotations

import argparse
import math
from typing import Any, Callable, NoReturn

from golf.presets import check_value, field_check

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


def setting_type(cls: type, name: str, *, means_none: Any = None) -> Callable[[str], Any]:
    """The argparse ``type`` of an option that sets field ``name`` of settings class ``cls``: the text
    parsed to the field's kind, then the field's check (its message becomes the option's error).
    ``means_none``: the option value that stands for the field's None (``--top-k 0``: no limit)."""
    from golf.errors import SettingError

    check = field_check(cls, name)
    kind = getattr(check, "kind", str)

    def parse(text: str) -> Any:
        value = _number(text, kind) if kind in (int, float) else getattr(check, "normalize", str)(text)
        if means_none is not None and value == means_none:
            return None
        try:
            return check_value(cls, name, value)
        except SettingError as exc:
            allowed = f" (or {means_none})" if means_none is not None else ""
            raise argparse.ArgumentTypeError(exc.message + allowed) from None

    parse.__name__ = f"{cls.__name__}.{name}"
    parse.setting = (cls, name)  # type: ignore[attr-defined]
    return parse


def setting_options(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Settings field -> the option of ``parser`` declared to set it (``setting_type``)."""
    options = {}
    for action in parser._actions:
        setting = getattr(action.type, "setting", None)
        if setting is not None and action.option_strings:
            options[setting[1]] = max(action.option_strings, key=len)
    return options


def setting_error(command: str, exc: Any, args: argparse.Namespace) -> str:
    """The one line of a ``SettingError``: on the option declared for the field (``setting_options``,
    which ``golf.cli.build_parser`` stores in ``args``) or whose dest is the field, as argparse reports
    a bad value; else on the field."""
    flag = (getattr(args, "_setting_options", None) or {}).get(exc.field)
    if flag is None and exc.field in vars(args):
        flag = "--" + exc.field.replace("_", "-")
    if flag is not None:
        return f"golf {command}: error: argument {flag}: {exc.message} (see golf {command} --help)"
    return f"golf {command}: error: {exc}"


class GolfArgumentParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line: ``golf CMD: error: MSG (see golf CMD --help)``,
    and whose ``type=float`` options refuse NaN and infinity (``finite_float``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.register("type", float, finite_float)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
