"""Every code block a user would paste from README.md, docs/*.md and bench/README.md runs here.

Blocks of one document run in order in one temporary directory (later blocks use the files earlier
ones wrote, as a user pasting them would), with ``golf`` and ``python`` of this interpreter on PATH,
this checkout's ``src`` first on PYTHONPATH and a private model cache (``GOLF_MODELS_DIR``).

An HTML comment on the line before a fence says how its block is tested (``<!-- test: ... -->``,
directives separated by ``;``):

* no comment: run as written in the default (cheap) test; it must take seconds;
* ``cheap OLD => NEW; OLD2 => NEW2``: the default test runs the block with each OLD replaced by its
  NEW (small sizes), the slow test runs it as written; every OLD must occur in the block;
* ``slow``: run as written, only by the slow test (``pytest -m slow``);
* ``skip: KIND``: never run, for one of the reasons in ``SKIP_REASONS``;
* ``file: NAME``: the block is a file the next blocks use; it is written to NAME (python files are
  compiled), not run.

bash and python blocks must be runnable or carry a directive; other languages (text, bibtex) are not
code to paste. The tests below also check the documents themselves (length, links, wording).
"""
from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import REPO

#: Why a block is never run (the only accepted ``skip:`` kinds).
SKIP_REASONS = {
    "install": "creates a virtual environment and installs packages; CI (.ci/run) runs the README's "
               "test command from a clean clone, and the main job is `golf run` (slow test of README)",
    "measurement": "reproduces a published measurement: tens of minutes to days of CPU "
                   "(docs/results.md gives each one's time)",
    "cluster": "needs a SLURM/PBS cluster (dask-jobqueue)",
    "network": "downloads from the internet",
    "gpu": "needs a CUDA device",
}
RUN_LANGS = ("bash", "python")
TEXT_LANGS = ("", "text", "bibtex", "console-output")
BLOCK_TIMEOUT_S = 1800

DIRECTIVE = re.compile(r"^\s*<!--\s*test:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^```([\w-]*)\s*$")


def documents() -> list[Path]:
    docs = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    bench = REPO / "bench" / "README.md"
    return docs + ([bench] if bench.exists() else [])


@dataclass
class Block:
    doc: Path
    line: int
    lang: str
    code: str
    mode: str = "run"  # run | slow | skip | file
    reason: str = ""
    file: str = ""
    subs: list[tuple[str, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        doc = self.doc.relative_to(REPO) if self.doc.is_relative_to(REPO) else self.doc
        return f"{doc}:{self.line}"

    def text(self, cheap: bool) -> str:
        code = self.code
        if cheap:
            for old, new in self.subs:
                code = code.replace(old, new)
        return code


def _directive(block: Block, text: str) -> None:
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        if part == "slow":
            block.mode = "slow"
        elif part.startswith("skip:"):
            block.mode, block.reason = "skip", part[len("skip:"):].strip()
        elif part.startswith("file:"):
            block.mode, block.file = "file", part[len("file:"):].strip()
        elif part.startswith("cheap ") or (block.subs and "=>" in part):
            old, sep, new = part.removeprefix("cheap ").partition("=>")
            if not sep or not old.strip():
                raise ValueError(f"{block.where}: 'cheap' needs OLD => NEW, got {part!r}")
            block.subs.append((old.strip(), new.strip()))
        else:
            raise ValueError(f"{block.where}: unknown test directive {part!r}")


def parse(doc: Path) -> list[Block]:
    lines = doc.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start = i
        j = i + 1
        while j < len(lines) and lines[j].rstrip() != "```":
            j += 1
        block = Block(doc, start + 1, m.group(1), "\n".join(lines[start + 1:j]) + "\n")
        d = DIRECTIVE.match(lines[start - 1]) if start > 0 else None
        if d:
            _directive(block, d.group(1))
        blocks.append(block)
        i = j + 1
    return blocks


def all_blocks() -> list[Block]:
    return [b for doc in documents() for b in parse(doc)]


def _env(tmp: Path) -> dict[str, str]:
    shims = tmp / ".shims"
    shims.mkdir(exist_ok=True)
    golf = shims / "golf"
    golf.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m golf "$@"\n')
    golf.chmod(0o755)
    python = shims / "python"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    python.chmod(0o755)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(shims), str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO / "src"), env.get("PYTHONPATH", "")] if p)
    env["GOLF_MODELS_DIR"] = str(tmp / ".golf-models")
    env["MPLBACKEND"] = "Agg"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("DASK_SCHEDULER_ADDRESS", None)
    return env


def _cpu_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _run(block: Block, tmp: Path, env: dict[str, str], cheap: bool) -> tuple[float, float]:
    """Run one block in ``tmp``; (wall seconds, CPU seconds of its processes). Fails the test on a
    non-zero exit, with the block and the tail of its output."""
    code = block.text(cheap)
    t0, cpu0 = time.perf_counter(), _cpu_children()
    if block.mode == "file":
        path = tmp / block.file
        path.write_text(code)
        if block.lang == "python":
            compile(code, str(path), "exec")
        return 0.0, 0.0
    if block.lang == "python":
        script = tmp / f".block_{block.line}.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    seconds, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        pytest.fail(f"{block.where} ({block.lang}) exited {proc.returncode}:\n{code}\n--- output ---\n{tail}")
    return seconds, cpu


def _run_doc(doc: Path, tmp: Path, slow: bool) -> list[tuple[str, tuple[float, float]]]:
    env = _env(tmp)
    times = []
    for block in parse(doc):
        if block.lang not in RUN_LANGS or block.mode == "skip" or (block.mode == "slow" and not slow):
            continue
        print(f"\n[docs] {block.where} ...", end="", flush=True)  # progress with -s
        times.append((block.where, _run(block, tmp, env, cheap=not slow)))
    return times


DOC_IDS = [str(d.relative_to(REPO)) for d in documents()]


@pytest.mark.parametrize("doc", documents(), ids=DOC_IDS)
def test_examples_run(doc: Path, tmp_path: Path) -> None:
    """The cheap run: every block without ``slow``/``skip``, with its ``cheap`` substitutions."""
    times = _run_doc(doc, tmp_path, slow=False)
    print("".join(f"\n{wall:6.1f} s wall {cpu:6.1f} s CPU  {w}" for w, (wall, cpu) in times))


@pytest.mark.slow
@pytest.mark.timeout(4 * 3600)  # the whole document at realistic sizes (golf run --preset smoke, training)
@pytest.mark.parametrize("doc", documents(), ids=DOC_IDS)
def test_examples_run_as_written(doc: Path, tmp_path: Path) -> None:
    """Every block but ``skip`` ones, exactly as written (realistic sizes; minutes)."""
    times = _run_doc(doc, tmp_path, slow=True)
    print("".join(f"\n{wall:6.1f} s wall {cpu:6.1f} s CPU  {w}" for w, (wall, cpu) in times))


# ---------------------------------------------------------------------------------------------- the documents


def test_every_code_block_is_tested_or_skipped_for_a_listed_reason() -> None:
    blocks = all_blocks()
    assert blocks
    for b in blocks:
        assert b.lang in RUN_LANGS + TEXT_LANGS, f"{b.where}: unknown block language {b.lang!r}"
        if b.lang not in RUN_LANGS:
            assert b.mode == "run" and not b.subs, f"{b.where}: a test directive on a {b.lang or 'plain'} block"
            continue
        if b.mode == "skip":
            assert b.reason in SKIP_REASONS, f"{b.where}: skip reason {b.reason!r} not in SKIP_REASONS"
        if b.mode == "file":
            assert b.file and "/" not in b.file, f"{b.where}: file: needs a plain file name"
        for old, _ in b.subs:
            assert old in b.code, f"{b.where}: cheap substitution {old!r} does not occur in the block"


def test_directive_parser_rejects_unknown_directives(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("<!-- test: sometimes -->\n```bash\necho hi\n```\n")
    with pytest.raises(ValueError, match="unknown test directive"):
        parse(doc)
    doc.write_text("<!-- test: skip: install; cheap a => b -->\n```bash\necho a\n```\n")
    (b,) = parse(doc)
    assert (b.mode, b.reason, b.subs, b.text(True), b.text(False)) == ("skip", "install", [("a", "b")],
                                                                       "echo b\n", "echo a\n")


def test_a_failing_block_fails_the_test(tmp_path: Path) -> None:
    b = Block(REPO / "README.md", 1, "bash", "golf optimize --model GOLF-10k missing.smi -o out.sdf\n")
    with pytest.raises(pytest.fail.Exception, match="exited 2"):
        _run(b, tmp_path, _env(tmp_path), cheap=True)


#: words that belong to a lab notebook or a machine, not to a user's manual
FORBIDDEN = [
    r"\bissues? \d+", r"\bissue-\d+", r"/work/", r"\bSIGSTOP\b", r"\bthis stop\b", r"\bthe brief\b",
    r"\bbrief's\b", r"\bsession\b", r"local disk", r"\bthis project's (machine|brief)", r"\.\./shared/",
]


@pytest.mark.parametrize("doc", documents(), ids=DOC_IDS)
def test_no_notebook_or_machine_words(doc: Path) -> None:
    text = doc.read_text()
    for pattern in FORBIDDEN:
        hits = [f"line {text[:m.start()].count(chr(10)) + 1}: {m.group(0)!r}"
                for m in re.finditer(pattern, text, flags=re.I)]
        assert not hits, f"{doc.relative_to(REPO)}: {pattern} at {', '.join(hits)}"


def test_forbidden_words_are_caught() -> None:
    for bad in ("see issue 12", "fixed in this session", "under /work/main", "as the brief says"):
        assert any(re.search(p, bad, flags=re.I) for p in FORBIDDEN), bad


@pytest.mark.parametrize("doc", documents(), ids=DOC_IDS)
def test_relative_links_resolve(doc: Path) -> None:
    text = doc.read_text()
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+://", target):
            continue
        assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)}: link to missing {target}"


def test_readme_is_a_manual_not_a_notebook() -> None:
    readme = (REPO / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    for doc in ("docs/fidelity.md", "docs/results.md", "docs/architecture.md", "docs/oracles.md",
                "docs/troubleshooting.md", "docs/usage.md", "bench/README.md"):
        assert f"]({doc})" in readme, f"README does not link {doc}"
