"""Bad input gives one clear line on stderr, a non-zero exit, no traceback and no output file; in a
file with good records, each bad record is reported on one line and the good ones are labelled (exit 3).

Runs ``python -m golf data build`` on the corpus in tests/data/bad/ (all cases started concurrently
to keep the test fast) and checks the reading functions in-process.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from golf.errors import GolfError, InputError

BAD = Path(__file__).parent / "data" / "bad"
GOOD = Path(__file__).parent / "data" / "tiny.smi"

# file -> substring expected in the one-line message
CORPUS = {
    "invalid_smiles.smi": "invalid SMILES",
    "invalid_smiles.csv": "invalid SMILES",
    "unsupported_element.smi": "unsupported element Si",
    "unsupported_element.xyz": "unsupported element I",
    "charged.smi": "charged molecule",
    "ammonium.xyz": "charge",
    "radical.smi": "radical",
    "empty.smi": "empty file",
    "empty.sdf": "empty file",
    "empty.xyz": "empty file",
    "only_comments.smi": "no molecules",
    "truncated.xyz": "truncated",
    "truncated.sdf": "truncated",
    "nan_coords.xyz": "non-finite",
    "close_atoms.xyz": "apart",
    "missing_file.smi": "no such file",
    "salt.smi": "has 2 disconnected fragments",
    "huge.smi": "at most 500 atoms",
    "charge_not_integer.sdf": "SDF field <charge> is '1.5', not an integer",
}

# files with good records besides the bad one: the good ones are labelled, the bad one reported, exit 3
PARTIAL_FILES = {"invalid_smiles.smi", "invalid_smiles.csv", "unsupported_element.smi"}

# extra command lines (relative to a fresh --out) -> expected substring
EXTRA = {
    "unknown_oracle": (["--smiles", str(GOOD), "--oracle", "nope"], "unknown oracle"),
    "bad_oracle_option": (["--smiles", str(GOOD), "--oracle", "mmff", "--oracle-option", "bogus=1"], "unknown mmff setting"),
    "xtb_option_for_mmff": (["--smiles", str(GOOD), "--oracle", "mmff", "--xtb-accuracy", "0.1"], "applies to --oracle xtb"),
    "wrong_charge": (["--input", str(BAD / "charged.smi"), "--charge", "2", "--oracle", "mmff"], "does not match"),
    "bad_scheduler": (["--smiles", str(GOOD), "--oracle", "mmff", "--scheduler", "not a url::/"],
                      "not a Dask scheduler address"),
    "out_not_db": (["--smiles", str(GOOD), "--oracle", "mmff", "--out-override", "x.sdf"], "must be an ASE SQLite"),
}


def _cmd(extra: list[str], out: Path) -> list[str]:
    if "--out-override" in extra:
        i = extra.index("--out-override")
        out = out.parent / extra[i + 1]
        extra = extra[:i] + extra[i + 2:]
    return [sys.executable, "-m", "golf", "data", "build", *extra, "--executor", "serial", "--out", str(out)]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    procs = {}
    cases = {name: (["--input", str(BAD / name), "--oracle", "mmff"], None) for name in CORPUS}
    cases.update({k: (v[0], None) for k, v in EXTRA.items()})
    for name, (extra, _) in cases.items():
        d = root / name.replace(".", "_")
        d.mkdir()
        out = d / "out.db"
        procs[name] = (subprocess.Popen(_cmd(extra, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True, env=env, cwd=d), d)
    res = {}
    for name, (p, d) in procs.items():
        stdout, stderr = p.communicate(timeout=120)
        res[name] = (p.returncode, stdout, stderr, sorted(x.name for x in d.iterdir()))
    return res


def _check(result, expected: str):
    rc, stdout, stderr, files = result
    assert rc == 2, (rc, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith(("golf data: error: ", "golf data build: error: "))  # the latter: argparse
    assert expected in lines[0], lines[0]
    assert files == [], files  # no output db, no failures log, no temp file


@pytest.mark.parametrize("name", sorted(set(CORPUS) - PARTIAL_FILES))
def test_bad_file_cli(results, name):
    _check(results[name], CORPUS[name])


@pytest.mark.parametrize("name", sorted(PARTIAL_FILES))
def test_one_bad_record_is_reported_and_the_others_labelled(results, name):
    rc, stdout, stderr, files = results[name]
    assert rc == 3, (rc, stderr)
    assert "Traceback" not in stderr
    skipped = [line for line in stderr.splitlines() if line.startswith("golf data: skipped ")]
    assert len(skipped) == 1 and CORPUS[name] in skipped[0], stderr
    assert re.search(r"[1-9]\d* labelled", stderr) and "1 bad input records" in stderr
    assert "out.db" in files


@pytest.mark.parametrize("name", sorted(EXTRA))
def test_bad_options_cli(results, name):
    _check(results[name], EXTRA[name][1])


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_file_reader(name):
    from golf.formats import read_conformations

    with pytest.raises(InputError, match=CORPUS[name]) as info:
        read_conformations(BAD / name)
    assert "\n" not in str(info.value)


def test_unknown_oracle_in_process():
    from golf.errors import OracleUnavailable
    from golf.oracles import make_oracle

    with pytest.raises(OracleUnavailable):
        make_oracle("nope")
    assert issubclass(OracleUnavailable, GolfError)
