"""File output: atomic writes (a file golf writes is either complete or absent, never half-written),
fsynced JSON-lines logs and CSV tables.

An output golf cannot write for a reason of the machine, not of the program (disk full, quota,
read-only file system, no permission) is an ``OutputError`` naming the path and the cause
(``writing``), one line at the command line.

Torch-free (oracle workers and data commands import it too).
"""
from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from golf.errors import OutputError

#: errno values that mean "this output cannot be written here", not a bug
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EFBIG,
                          errno.EIO})


def write_failure(exc: BaseException) -> str | None:
    """The cause, when ``exc`` is a failure to write of the machine's making (an ``OSError`` with
    one of ``WRITE_ERRNOS``, or SQLite's "database or disk is full", "attempt to write a readonly
    database", "disk I/O error"), else None."""
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRNOS:
        return exc.strerror or os.strerror(exc.errno)
    import sqlite3

    if isinstance(exc, sqlite3.OperationalError):
        text = " ".join(str(exc).split())
        if any(k in text for k in ("disk is full", "readonly", "disk I/O error", "unable to open")):
            return text
    return None


@contextlib.contextmanager
def writing(path: str | os.PathLike, note: str = "") -> Iterator[None]:
    """Turn a failure to write ``path`` (``write_failure``) inside the block into ``OutputError``
    naming ``path`` and the cause; ``note`` says what became of the output (e.g. that it is unchanged)."""
    try:
        yield
    except OutputError:
        raise
    except Exception as exc:  # noqa: BLE001 - re-raised unless it is a failure to write
        cause = write_failure(exc)
        if cause is None:
            raise
        raise OutputError(path, cause, note) from exc


def new_file_mode() -> int:
    """The mode a new file gets here: 0o666 without the process umask."""
    try:  # Linux states the umask; os.umask would have to change it to read it
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The temporary file exists (empty) on entry; on any exception it is removed and ``path`` is left
    untouched. ``suffix`` lets writers that pick a format from the extension see the right one.
    A symlink ``path`` is written through: its target is replaced and the link stays, as with a
    shell redirection. The new file gets the mode of the file it replaces, or a new file's usual
    mode (0o666 without the umask). A failure to write (disk full, read-only, ...) is an
    ``OutputError`` naming ``path``.
    """
    path = Path(path)
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    note = f"nothing written; {path} is unchanged" if os.path.lexists(path) else "nothing written"
    with writing(path, note):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            mode = target.stat().st_mode & 0o7777
        except FileNotFoundError:
            mode = new_file_mode()
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
        os.close(fd)
        try:
            yield Path(tmp)
            os.chmod(tmp, mode)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2, **dumps_kwargs: Any) -> Path:
    """Write ``obj`` as JSON to ``path`` atomically (``default=str`` unless given); returns ``path``."""
    dumps_kwargs.setdefault("default", str)
    path = Path(path)
    atomic_write_text(path, json.dumps(obj, indent=indent, **dumps_kwargs) + "\n")
    return path


def append_jsonl(path: str | os.PathLike, record: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` and fsync it (failure logs survive a kill -9)."""
    with writing(path), open(path, "a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def count_lines(path: str | os.PathLike) -> int:
    """Non-blank lines of a text file (0 if it does not exist), e.g. records of a JSONL log."""
    path = Path(path)
    return sum(1 for line in path.read_text().splitlines() if line.strip()) if path.exists() else 0


def write_csv(path: str | os.PathLike, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as CSV atomically (columns: union of keys in first-seen order)."""
    cols: list[str] = []
    for r in rows:
        cols += [k for k in r if k not in cols]
    out = io.StringIO()
    w = csv.DictWriter(out, fieldnames=cols)
    w.writeheader()
    for r in rows:
        w.writerow(r)
    atomic_write_text(path, out.getvalue())


def append_csv_row(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one row to a CSV file, writing the header (the row's keys) when the file is new."""
    path = Path(path)
    new = not path.exists()
    with writing(path), open(path, "a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def zip_damage(path: str | os.PathLike) -> str | None:
    """What is wrong with a zip archive (a torch checkpoint), or None when every member's CRC checks.

    Files that are not zip archives at all (legacy torch pickles) are not judged here: None.
    """
    import zipfile

    try:
        if not zipfile.is_zipfile(path):
            return None
        with zipfile.ZipFile(path) as z:
            bad = z.testzip()
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, struct.error, EOFError: all damage
        return f"damaged zip archive ({str(exc).strip() or type(exc).__name__})"
    return None if bad is None else f"damaged bytes (CRC mismatch in {bad})"
