"""Progress reporting: a live tqdm bar on a terminal, compact status lines in logs.

The one place that decides how progress looks. On a terminal (stderr is a TTY) ``progress_bar`` is a
plain tqdm bar. Otherwise (a file, a pipe, a CI or batch-system log) redrawing a bar with carriage
returns many times a second fills logs with hundreds of kilobytes; there it prints one status line
(``desc: n/total [elapsed<remaining, rate, postfix]``) at most every ``STATUS_INTERVAL`` seconds,
and a last one when it closes.

Work that runs many items at once (a batched relaxation: a few hundred conformers in flight, the first
finishing only after minutes) gets a time estimate that counts the items in flight: a bar told its
``concurrency`` (``set_concurrency``) counts each unfinished item in flight as a quarter done (``stream_rate``),
so the estimate is sensible from the first finished item instead of assuming items finish one by one.

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


#: the share of its work an item in flight is counted as done. The first conformers of a batched relaxation
#: converge after about a quarter to a third of the mean number of steps (the fastest in ~10 steps, the mean
#: ~35 for drug-like molecules), so when the first finishes the others are about a quarter done.
IN_FLIGHT_DONE = 0.25


def stream_rate(n_done: float, elapsed: float, total: float | None, concurrency: int | None) -> float | None:
    """Items per second for a time estimate of ``total`` items processed ``concurrency`` at a time.

    Work done = the ``n_done`` finished items plus ``IN_FLIGHT_DONE`` of each item in flight
    (``min(concurrency, total - n_done)`` of them): items start together and finish after a spread of
    times, so when the first finishes the others are part way. With no concurrency (items one after another) it is the
    plain average n_done / elapsed. None before the first finished item or without elapsed time.
    """
    if n_done <= 0 or elapsed <= 0:
        return None
    work = float(n_done)
    if concurrency and concurrency > 1:
        in_flight = concurrency if total is None else max(0.0, min(float(concurrency), float(total) - n_done))
        work += IN_FLIGHT_DONE * in_flight
    return work / elapsed


class _StreamETA:
    """tqdm mixin: the rate (and so the remaining time) of ``stream_rate`` once ``concurrency`` is set."""

    concurrency: int | None = None

    def set_concurrency(self, n: int | None) -> None:
        """Items processed at once (None or 1: one after another)."""
        self.concurrency = None if n is None else int(n)

    @property
    def format_dict(self) -> dict[str, Any]:
        d = super().format_dict  # type: ignore[misc]
        if self.concurrency and self.concurrency > 1 and d.get("elapsed"):
            rate = stream_rate(d["n"] - (d.get("initial") or 0), d["elapsed"], d.get("total"), self.concurrency)
            if rate is not None:
                d["rate"] = rate
        return d


class Bar(_StreamETA, tqdm):
    """A terminal tqdm bar with the stream estimate (``set_concurrency``)."""


class _Lines:
    """A stream that passes on only writes with text (tqdm ends a bar with a bare newline)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, s: str) -> None:
        if s.strip():
            self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()


class LogTqdm(_StreamETA, tqdm):
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
                 file: TextIO | None = None, concurrency: int | None = None, **kwargs: Any) -> tqdm:
    """A progress bar on ``file`` (default stderr) that suits where it goes (see module docstring).

    ``concurrency``: items processed at once, for the time estimate (see ``stream_rate``; also settable
    later with ``bar.set_concurrency``, which ``golf.optim.relax`` does for its progress bar).
    ``kwargs`` go to tqdm (e.g. ``initial``, ``leave``); in log mode ``mininterval`` and the format
    are set here.
    """
    file = sys.stderr if file is None else file
    if is_terminal(file):
        kwargs.setdefault("dynamic_ncols", True)
        bar = Bar(total=total, desc=desc, unit=unit, disable=disable, file=file, **kwargs)
        bar.set_concurrency(concurrency)
        return bar
    kwargs.pop("dynamic_ncols", None)
    kwargs.update(mininterval=STATUS_INTERVAL, maxinterval=max(STATUS_INTERVAL, 10.0), miniters=1,
                  bar_format=LOG_FORMAT)
    bar = LogTqdm(total=total, desc=desc or "progress", unit=unit, disable=disable, file=_Lines(file), **kwargs)
    bar.set_concurrency(concurrency)
    return bar


def configure() -> None:
    """When stderr is not a terminal, make ``STATUS_INTERVAL`` tqdm's default refresh interval (for
    bars not made by ``progress_bar``); an explicit ``TQDM_MININTERVAL`` is kept."""
    if not is_terminal():
        os.environ.setdefault("TQDM_MININTERVAL", f"{STATUS_INTERVAL:g}")


class ProgressHook:
    """A progress callback ``hook(k)`` that updates the bar ``get_bar()`` returns at call time (e.g. a bar made
    only once the total is known) and passes ``set_concurrency`` on to it."""

    def __init__(self, get_bar: Callable[[], Any]) -> None:
        self.get_bar = get_bar

    def __call__(self, k: int) -> None:
        self.get_bar().update(k)

    def set_concurrency(self, n: int | None) -> None:
        setter = getattr(self.get_bar(), "set_concurrency", None)
        if callable(setter):
            setter(n)
