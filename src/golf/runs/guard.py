"""What every command checks before it writes: an output is never one of its inputs, an output is
what it should be (a file or a directory), the SQLite databases it reads or appends to are intact,
and no second golf process writes the same output at the same time.

``guard_command(args)`` does all of it for a parsed ``golf`` command line (``COMMAND_PATHS`` says
which options of which command are inputs and outputs) and holds the output locks until the command
ends. A lock is ``OUTPUT.golf-lock`` beside the output, holding the owner's pid, locked with ``flock``:
the kernel drops it when the process dies (even by kill -9), so a stale lock file never blocks.

Torch-free and quick: it runs before any heavy import.
"""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from golf.errors import InputError

#: suffix of the lock file beside an output
LOCK_SUFFIX = ".golf-lock"  # not ".lock": ASE's own db lock is DB.lock


def _real(path: str | os.PathLike) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def same_path(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name the same file (after symlinks, ``..``; hard links when both exist)."""
    if _real(a) == _real(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_output_is_input(inputs: Iterable[str | os.PathLike | None],
                           outputs: Iterable[str | os.PathLike | None]) -> None:
    """InputError when an output resolves to one of the inputs (it would be overwritten or mixed)."""
    ins = [i for i in inputs if i]
    for out in outputs:
        if not out:
            continue
        for inp in ins:
            if same_path(inp, out):
                raise InputError(f"{out} is both an input ({inp}) and an output; "
                                 "choose another output so the input is not overwritten")


def check_output_kind(path: str | os.PathLike, kind: str) -> None:
    """InputError when an existing ``path`` is not of ``kind`` ("file" or "dir")."""
    p = Path(path)
    if kind == "dir" and p.exists() and not p.is_dir():
        raise InputError(f"{p}: exists and is not a directory (the output is a run directory)")
    if kind == "file" and p.is_dir():
        raise InputError(f"{p}: is a directory (the output is a file)")


def check_sqlite(path: str | os.PathLike) -> None:
    """InputError naming ``path`` when it exists but is not an intact SQLite database
    (``PRAGMA quick_check``: damaged pages, broken indices, truncation). Missing or empty: fine."""
    p = Path(path)
    if not p.is_file() or p.stat().st_size == 0:
        return
    try:
        con = sqlite3.connect(f"file:{p.resolve()}?mode=ro", uri=True)
        try:
            rows = con.execute("PRAGMA quick_check").fetchall()
        finally:
            con.close()
    except sqlite3.Error as exc:
        raise InputError(f"{p}: damaged or not an SQLite database ({' '.join(str(exc).split())})") from None
    problems = " ".join(" ".join(str(r[0]).split()) for r in rows if r and r[0] != "ok")
    if problems:
        raise InputError(f"{p}: damaged SQLite database ({problems[:200]}{'...' if len(problems) > 200 else ''})")


class OutputLock:
    """An exclusive lock on an output (``OUTPUT.golf-lock`` beside it, with the owner's pid).

    ``acquire`` raises InputError naming the holder's pid when another process holds it; ``release``
    removes the lock file (and the parent directories ``acquire`` had to create, when empty).
    """

    def __init__(self, output: str | os.PathLike) -> None:
        self.output = Path(output)
        self.path = self.output.parent / (self.output.name + LOCK_SUFFIX)
        self._fd: int | None = None
        self._made_dirs: list[Path] = []

    def acquire(self) -> None:
        """Take the lock (non-blocking), making missing parent directories; InputError if held or unwritable."""
        parent = self.path.parent
        missing = []
        while not parent.exists() and parent != parent.parent:
            missing.append(parent)
            parent = parent.parent
        try:
            for d in reversed(missing):
                d.mkdir()
                self._made_dirs.insert(0, d)
            while True:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by workers (PEP 446)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.read(fd, 64).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    self._remove_dirs()
                    raise InputError(f"{self.output} is being written by another golf process (pid {holder}; "
                                     f"lock {self.path}); wait for it or choose another output") from None
                # the previous holder may have removed the file between our open and flock: retry
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            self._fd = fd
        except OSError as exc:
            self._remove_dirs()
            raise InputError(f"{self.output}: cannot write there ({exc.strerror or exc})") from None

    def release(self) -> None:
        """Remove the lock file and let go of the lock (a no-op when not held)."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.path)  # still holding the lock: a waiting process re-checks the file
        os.close(self._fd)
        self._fd = None
        self._remove_dirs()

    def _remove_dirs(self) -> None:
        """Remove the directories ``acquire`` made, innermost first, while they are empty."""
        for d in self._made_dirs:  # innermost first
            with contextlib.suppress(OSError):
                d.rmdir()
        self._made_dirs = []


@contextlib.contextmanager
def guarded_outputs(inputs: Sequence[str | os.PathLike | None],
                    outputs: Sequence[tuple[str | os.PathLike, str]]) -> Iterator[None]:
    """Check and lock ``outputs`` = [(path, "file" | "dir")] for the block (see the module docstring)."""
    refuse_output_is_input(inputs, [p for p, _ in outputs])
    for path, kind in outputs:
        check_output_kind(path, kind)
    with contextlib.ExitStack() as stack:
        for path, _ in outputs:
            lock = OutputLock(path)
            lock.acquire()
            stack.callback(lock.release)
        for path in [*inputs, *(p for p, kind in outputs if kind == "file")]:  # under the lock: no writer
            if path and os.fspath(path).lower().endswith(".db"):
                check_sqlite(path)
        yield


def command_paths(args: argparse.Namespace) -> tuple[list[str], list[tuple[str, str]]]:
    """(input paths, [(output path, "file" | "dir")]) of a parsed golf command line."""
    def get(name: str) -> str | None:
        value = getattr(args, name, None)
        return os.fspath(value) if value else None

    cmd = args.command
    inputs: list[str | None] = []
    outputs: list[tuple[str | None, str]] = []
    if cmd == "data" and getattr(args, "_data_run", None):
        inputs = [get("smiles"), get("input")]
        outputs = [(get("out"), "file")]
    elif cmd in ("predict", "optimize"):
        inputs = [get("input"), get("model")]
        outputs = [(get("output"), "file")]
    elif cmd == "conformers":
        inputs = [get("input"), get("model")]
        outputs = [(get("output"), "file"), (get("summary"), "file")]
    elif cmd == "train":
        inputs = [*(getattr(args, "data", None) or []), get("init"), get("from_model")]
        if getattr(args, "golf", False):
            outputs = [(get("out"), "dir")]
        else:
            out = get("out")
            outputs = [(out, "file"), (get("log_dir") or (f"{out}.d" if out else None), "dir")]
    elif cmd == "evaluate":
        inputs = [get("model"), get("reference")]
        outputs = [(get("out"), "dir")]
    elif cmd == "run":
        outputs = [(get("out"), "dir")]
    elif cmd == "adapt":
        inputs = [get("molecules"), get("model")]
        outputs = [(get("out"), "dir")]
    return [i for i in inputs if i], [(o, k) for o, k in outputs if o]


def guard_command(args: argparse.Namespace) -> contextlib.AbstractContextManager[None]:
    """``guarded_outputs`` for the inputs and outputs of a parsed golf command line."""
    inputs, outputs = command_paths(args)
    return guarded_outputs(inputs, outputs)
