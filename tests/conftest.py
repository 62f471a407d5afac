"""Shared test fixtures. ``SHARED`` points at ../shared beside the checkout (read-only)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GOLF_SHARED") or REPO.parent / "shared")  # GOLF_SHARED: from a worktree
CHECKPOINTS = SHARED / "golf-checkpoints"


@pytest.fixture(scope="session")
def checkpoints_dir() -> Path:
    if not (CHECKPOINTS / "reference.json").exists():
        pytest.skip("../shared/golf-checkpoints not present")
    return CHECKPOINTS


@pytest.fixture
def one_torch_thread():
    """One intra-op torch thread: fastest for the tiny batches of tests, and no oversubscription on
    a busy 2-core machine. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def run_cli(*args: object) -> tuple[int, str]:
    """Run the golf CLI in this process: (exit code, stderr)."""
    import contextlib
    import io

    from golf.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main([str(a) for a in args])
    return rc, err.getvalue()


def one_line_error(rc: int, err: str, *expected: str) -> str:
    """The error line of a refused command (exit 2, one line, no traceback)."""
    lines = [ln for ln in err.splitlines() if "error:" in ln]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def interrupt_like_a_terminal(proc, log: Path) -> str:
    """Ctrl-C as a terminal sends it (SIGINT to the whole process group of ``proc``, started with
    ``start_new_session=True``), then check golf's contract: exit 130, one last "interrupted" line, no traceback
    from the parent or its workers. Returns the stderr written to ``log``."""
    import signal

    try:
        os.killpg(proc.pid, signal.SIGINT)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    stderr = log.read_text()
    assert rc == 130 and "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr
    assert stderr.strip().splitlines()[-1].endswith("interrupted"), stderr
    return stderr
