"""The README's commands are the ones CI runs."""
from __future__ import annotations

import re

from conftest import REPO

MAIN_JOB = ("python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && "
            "pip install -q -e . && golf run")
TEST_CMD = ('python3 -m venv .venv && . .venv/bin/activate && pip install -q torch==2.13.0 && '
            'pip install -q -e ".[test,dft,cluster]" && pytest -m "not slow"')


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def test_ci_runs_the_readme_test_command():
    readme = (REPO / "README.md").read_text()
    blocks = _bash_blocks(readme)
    test_cmd = next(b for b in blocks if "pytest" in b)
    assert test_cmd == TEST_CMD
    assert test_cmd in (REPO / ".ci" / "run").read_text().splitlines()


def test_readme_main_job_is_golf_run():
    blocks = _bash_blocks((REPO / "README.md").read_text())
    assert MAIN_JOB in blocks
