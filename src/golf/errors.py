"""User-facing errors. The CLI prints ``GolfError`` as one line on stderr and exits non-zero;
anything else is a bug and keeps its traceback."""
from __future__ import annotations


class GolfError(Exception):
    """An error caused by the user's input or environment, reported as one line."""


class GolfWarning(UserWarning):
    """Something the user should know that does not stop the command; the CLI prints it as one line."""


class InputError(GolfError):
    """Unreadable, malformed or unsupported input (file, molecule, geometry, element, charge)."""


class OutputError(GolfError):
    """An output that cannot be written for a reason of the machine: disk full, quota, read-only file
    system, no permission (``golf.io.writing``).

    Attributes:
        path: the output.
        cause: why, e.g. ``"No space left on device"``.
        note: what became of the output, e.g. ``"nothing written; out.sdf is unchanged"``.
    """

    def __init__(self, path: object, cause: str, note: str = "") -> None:
        self.path, self.cause, self.note = str(path), str(cause), str(note)
        super().__init__(f"cannot write {self.path}: {self.cause}" + (f" ({self.note})" if self.note else ""))


class CheckpointError(GolfError):
    """A model file that is missing, corrupt or of an unknown format."""


class OracleUnavailable(GolfError):
    """An oracle whose backend is not installed or an unknown oracle name."""


class ChargeSpinError(InputError):
    """A charged or open-shell molecule given without the charge/multiplicity that accepts it.

    Attributes:
        where: the record, e.g. ``"in.xyz: structure 2"``.
        kind: ``"charge"`` or ``"multiplicity"``.
        value: the value that would accept it (net charge, or 2S+1).
        what: ``"charged molecule (net charge -1)"`` or ``"radical (1 unpaired electron(s))"``.
    """

    def __init__(self, where: str, kind: str, value: int, what: str) -> None:
        self.where, self.kind, self.value, self.what = where, kind, int(value), what
        super().__init__(f"{where}: {what}; pass --{kind} {value} to accept it")


class SettingError(InputError):
    """A setting with an impossible value, named by its settings FIELD (``golf.presets``), not by a
    command-line option: the command line maps the field to its option.

    Attributes:
        field: the dataclass field, e.g. ``"batch_size"``.
        message: why, e.g. ``"must be at least 1, got 0"``.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field, self.message = str(field), str(message)
        super().__init__(f"{self.field}: {self.message}")


class RunExists(GolfError):
    """An output directory that already holds a run, written into without resuming it (the command line
    says how to resume or where else to write)."""
