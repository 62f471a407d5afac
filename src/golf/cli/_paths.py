"""What each command reads and writes, for the guard (``golf.runs.guard.guarded_outputs``): an output is
never one of its inputs, is what it should be, and is locked against a second golf process.

A command module declares ``paths(args) -> (inputs, outputs)``: the inputs as (path, option) and the
outputs as ``golf.runs.guard.Output`` s, the ones the user names with the option that names them and the
implicit ones from its ``golf.runs`` module's ``implicit_outputs`` (so what is locked is what is written).
A command without ``paths`` (``golf models``) reads and writes no path the guard checks.
"""
from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

Paths = tuple[list[tuple[str, str]], list[Any]]


def given(args: argparse.Namespace, name: str) -> str | None:
    """The path option ``name`` of ``args`` as a string (None when not given)."""
    value = getattr(args, name, None)
    return os.fspath(value) if value else None


def command_paths(args: argparse.Namespace) -> Paths:
    """(inputs, outputs) of a parsed golf command line (its module's ``paths``)."""
    paths = getattr(args, "_paths", None)
    return paths(args) if paths is not None else ([], [])


def guard(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """The guard of a parsed golf command line, held while it runs."""
    from golf.runs.guard import guarded_outputs

    inputs, outputs = command_paths(args)
    return guarded_outputs(inputs, outputs)
