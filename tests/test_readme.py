"""The README's commands are the ones CI runs."""
from __future__ import annotations

import re

from conftest import REPO


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = _bash_blocks(readme)
    test_cmd = next(b for b in blocks if "pytest" in b)
    assert test_cmd in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_main_job_is_golf_run():
    blocks = _bash_blocks((REPO / "README.md").read_text())
    assert blocks[0].endswith("golf run") and "torch==2.13.0" in blocks[0]
