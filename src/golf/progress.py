"""Progress reporting: a live tqdm bar on a terminal, compact status lines in logs.

The one place that decides how progress looks. On a terminal (stderr is a TTY) ``progress_bar`` is a
plain tqdm bar. Otherwise (a file, a pipe, a CI or batch-system log) redrawing a bar with carriage
returns many times a second fills logs with hundreds of kilobytes; there it prints one status line
(``desc: n/total [elapsed<remaining, rate, postfix]``) at most every ``STATUS_INTERVAL`` seconds,
and a last one when it closes.

``configure()`` (called by the ``golf`` CLI) sets the same interval as tqdm's default through
``TQDM_MININTERVAL`` for bars made elsewhere with plain ``tqdm``.
"""
from __future__ import annotations

import os
import sys
from typing import Any, Callable, TextIO

from tqdm import tqdm

#: seconds between two status lines when stderr is not a terminal.
STATUS_INTERVAL = 30.0

#: the status line of log mode (no bar: one short line per update).
LOG_FORMAT = "{desc}: {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}{postfix}]"


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default stderr) is an interactive terminal."""
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Lines:
    """A stream that passes on only writes with text (tqdm ends a bar with a bare newline)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, s: str) -> None:
        if s.strip():
            self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()


class LogTqdm(tqdm):
    """tqdm that writes whole status lines (no carriage returns, no redraws of the same text)."""

    @staticmethod
    def status_printer(file: TextIO) -> Callable[[str], None]:
        last = [""]

        def print_status(s: str) -> None:
            s = s.strip()
            if s and s != last[0]:
                file.write(s + "\n")
                file.flush()
                last[0] = s

        return print_status

    # a postfix or description change must not force a line: only the refresh interval prints
    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        super().set_postfix(ordered_dict, refresh=False, **kwargs)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh=False)

    def set_description(self, desc: str | None = None, refresh: bool = True) -> None:
        super().set_description(desc, refresh=False)


def progress_bar(total: int | None = None, desc: str = "", unit: str = "it", disable: bool = False,
                 file: TextIO | None = None, **kwargs: Any) -> tqdm:
    """A progress bar on ``file`` (default stderr) that suits where it goes (see module docstring).

    ``kwargs`` go to tqdm (e.g. ``initial``, ``leave``); in log mode ``mininterval`` and the format
    are set here.
    """
    file = sys.stderr if file is None else file
    if is_terminal(file):
        kwargs.setdefault("dynamic_ncols", True)
        return tqdm(total=total, desc=desc, unit=unit, disable=disable, file=file, **kwargs)
    kwargs.pop("dynamic_ncols", None)
    kwargs.update(mininterval=STATUS_INTERVAL, maxinterval=max(STATUS_INTERVAL, 10.0), miniters=1,
                  bar_format=LOG_FORMAT)
    return LogTqdm(total=total, desc=desc or "progress", unit=unit, disable=disable, file=_Lines(file), **kwargs)


def configure() -> None:
    """When stderr is not a terminal, make ``STATUS_INTERVAL`` tqdm's default refresh interval (for
    bars not made by ``progress_bar``); an explicit ``TQDM_MININTERVAL`` is kept."""
    if not is_terminal():
        os.environ.setdefault("TQDM_MININTERVAL", f"{STATUS_INTERVAL:g}")
