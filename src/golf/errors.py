"""User-facing errors. The CLI prints ``GolfError`` as one line on stderr and exits non-zero;
anything else is a bug and keeps its traceback."""
from __future__ import annotations


class GolfError(Exception):
    """An error caused by the user's input or environment, reported as one line."""


class InputError(GolfError):
    """Unreadable, malformed or unsupported input (file, molecule, geometry, element, charge)."""


class CheckpointError(GolfError):
    """A model file that is missing, corrupt or of an unknown format."""


class OracleUnavailable(GolfError):
    """An oracle whose backend is not installed or an unknown oracle name."""
