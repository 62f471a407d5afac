"""Shared test fixtures. ``SHARED`` points at ../shared beside the checkout (read-only)."""
from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CHECKPOINTS = SHARED / "golf-checkpoints"


@pytest.fixture(scope="session")
def checkpoints_dir() -> Path:
    if not (CHECKPOINTS / "reference.json").exists():
        pytest.skip("../shared/golf-checkpoints not present")
    return CHECKPOINTS
