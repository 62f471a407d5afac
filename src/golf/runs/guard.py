"""What every command checks before it writes: an output is never one of its inputs nor given twice,
an output is what it should be (a file or a directory), an existing database is replaced or appended
to only by a command that writes its kind, the SQLite databases it reads or appends to are intact,
and no second golf process writes the same output at the same time.

``guarded_outputs(inputs, outputs)`` does all of it for the paths a command reads and writes, given by
its caller, and holds the output locks until the block ends. This module knows no command: the command
line passes every path a command will write, the implicit outputs included (every file or directory a
command writes without the user naming it, e.g. ``OUT.failures.jsonl``, a training run directory), which
each ``golf.runs`` module declares next to the function that writes them (``implicit_outputs``), so what
is checked and locked is what is written.

A lock is ``OUTPUT.golf-lock`` beside the output (beside the file a symlinked output points to),
holding the owner's pid, locked with ``flock``: the kernel drops it when the process dies (even by
kill -9), so a stale lock file never blocks.

Torch-free and quick: it runs before any heavy import.
"""
from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from golf.errors import InputError, OutputError

#: suffix of the lock file beside an output
LOCK_SUFFIX = ".golf-lock"  # not ".lock": ASE's own db lock is DB.lock


@dataclasses.dataclass(frozen=True)
class Output:
    """One output of a command.

    Attributes:
        path: where it is written.
        kind: ``"file"`` or ``"dir"``.
        option: how the user names it, for messages (an option the caller gives, or how an implicit
            output is derived, e.g. ``"the summary (-o with .csv)"``).
        db: the kind of golf database the command writes there (``golf.db.DB_KINDS``), or None for
            anything else: an existing database of another kind is never replaced or appended to.
        append: whether the command appends to an existing database of its kind (else it replaces it).
    """

    path: str
    kind: str = "file"
    option: str = "-o"
    db: str | None = None
    append: bool = False


# ---------------------------------------------------------------------------------------------
# The names of implicit outputs (used by the commands that write them and by command_paths).


def summary_path(output: str | os.PathLike) -> str:
    """The default per-molecule summary of ``golf conformers -o OUTPUT``: OUTPUT with ``.csv``."""
    return os.fspath(Path(output).with_suffix(".csv"))


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


def _named(item: str | os.PathLike | tuple[str | os.PathLike, str]) -> tuple[str, str]:
    """(path, how the user named it) of an input given as a path or (path, option)."""
    if isinstance(item, tuple):
        return os.fspath(item[0]), item[1]
    return os.fspath(item), ""


def refuse_output_is_input(inputs: Iterable[str | os.PathLike | tuple[str | os.PathLike, str] | None],
                           outputs: Iterable[str | os.PathLike | Output | None]) -> None:
    """InputError when an output resolves to one of the inputs (it would be overwritten or mixed).

    Inputs are paths or (path, option); outputs paths or ``Output`` s. The paths are compared after
    symlinks, relative parts and hard links (``same_path``)."""
    ins = [_named(i) for i in inputs if i]
    for out in outputs:
        if not out:
            continue
        o = out if isinstance(out, Output) else Output(os.fspath(out), option="")
        for inp, opt in ins:
            if same_path(inp, o.path):
                given = f" ({opt} {inp})" if opt else f" ({inp})" if inp != o.path else ""
                as_out = f" ({o.option})" if o.option else ""
                raise InputError(f"{o.path} is both an input{given} and an output{as_out}; "
                                 "choose another output so the input is not overwritten")


def refuse_repeated_outputs(outputs: Sequence[Output]) -> None:
    """InputError naming both when two outputs of one command are the same path (after symlinks)."""
    for i, a in enumerate(outputs):
        for b in outputs[i + 1:]:
            if same_path(a.path, b.path):
                what = f"{a.path} is" if a.path == b.path else f"{a.path} and {b.path} are the same file,"
                raise InputError(f"{what} given as two outputs, {a.option or a.path} and {b.option or b.path}; "
                                 "give them different paths")


def check_db_output(out: Output) -> None:
    """InputError when ``out.path`` is an existing, non-empty database the command must not write:
    one of another kind than ``out.db`` (a labelled dataset is never replaced by predictions, a
    reference database never appended to by ``golf data build``) or any database when the output is
    not one. Not an SQLite file, missing or empty: fine."""
    from golf.db import DB_KINDS, db_kind

    found = db_kind(out.path)
    if found is None:
        return
    kind, rows = found
    if rows == 0 or (kind == out.db and out.db is not None):
        return
    what = f"{DB_KINDS.get(kind, kind)}, {rows} row{'s' if rows != 1 else ''}"
    opt = f"{out.option} " if out.option.startswith("-") else ""
    if out.append and out.db is not None:
        raise InputError(f"{opt}{out.path}: is {what}; this command appends only to {DB_KINDS.get(out.db, out.db)}: "
                         "choose another output")
    new = DB_KINDS.get(out.db, out.db) if out.db is not None else "a file that is not a database"
    raise InputError(f"{opt}{out.path}: is {what}; writing {new} there would destroy it: "
                     "choose another output, or remove it first")


def check_output_kind(path: str | os.PathLike, kind: str, option: str = "") -> None:
    """InputError when an existing ``path`` is not of ``kind`` ("file" or "dir"); ``option`` names
    the output in the message."""
    p = Path(path)
    named = f"{option}: " if option else ""
    if kind == "dir" and p.exists() and not p.is_dir():
        raise InputError(f"{p}: exists and is not a directory ({named}the output is a directory)")
    if kind == "file" and p.is_dir():
        raise InputError(f"{p}: is a directory ({named}the output is a file)")


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
        real = Path(_real(output)) if self.output.is_symlink() else self.output  # written through the link
        self.path = real.parent / (real.name + LOCK_SUFFIX)
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
            self._fd = fd
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # e.g. a full disk: no lock file is left behind
            self.release()
            self._remove_dirs()
            raise OutputError(self.output, exc.strerror or str(exc), "nothing written") from None

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


def _as_output(out: Output | tuple[str | os.PathLike, str]) -> Output:
    return out if isinstance(out, Output) else Output(os.fspath(out[0]), out[1], option="")


@contextlib.contextmanager
def guarded_outputs(inputs: Sequence[str | os.PathLike | tuple[str | os.PathLike, str] | None],
                    outputs: Sequence[Output | tuple[str | os.PathLike, str]]) -> Iterator[None]:
    """Check and lock ``outputs`` (``Output`` s, or (path, "file" | "dir")) for the block; ``inputs``
    are paths or (path, option). See the module docstring."""
    outs = [_as_output(o) for o in outputs]
    refuse_repeated_outputs(outs)
    refuse_output_is_input(inputs, outs)
    for out in outs:
        check_output_kind(out.path, out.kind, out.option)
    with contextlib.ExitStack() as stack:
        for out in outs:
            lock = OutputLock(out.path)
            lock.acquire()
            stack.callback(lock.release)
        # under the lock: no golf writer changes them meanwhile
        for path in [*(_named(i)[0] for i in inputs if i), *(o.path for o in outs if o.kind == "file")]:
            if path.lower().endswith(".db"):
                check_sqlite(path)
        for out in outs:
            if out.kind == "file":
                check_db_output(out)
        yield
