"""File output: atomic writes (a file golf writes is either complete or absent, never half-written),
fsynced JSON-lines logs and CSV tables.

Torch-free (oracle workers and data commands import it too).
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces ``path`` when the block succeeds.

    The temporary file exists (empty) on entry; on any exception it is removed and ``path`` is left
    untouched. ``suffix`` lets writers that pick a format from the extension see the right one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
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
    with open(path, "a") as fh:
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
    with open(path, "a", newline="") as fh:
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
