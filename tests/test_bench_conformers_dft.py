"""bench/conformers_dft.py end to end with MMFF standing in for DFT: generate (golf, RDKit+MMFF94,
+GFN2-xTB), single points on the union, report; a rerun recomputes nothing."""
from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys

import pytest

from conftest import REPO


def _load_bench():
    spec = importlib.util.spec_from_file_location("conformers_dft", REPO / "bench" / "conformers_dft.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["conformers_dft"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_mmff_ensemble_has_distinct_starts():
    """RDKit's ETKDG with randomSeed 0 embeds every conformer at the same coordinates: the MMFF method
    would keep one conformer of a flexible molecule."""
    bench = _load_bench()
    confs, energies = bench.mmff_ensemble("CCCCCCO", 10)
    assert len(confs) >= 2
    assert energies == sorted(energies)


@pytest.mark.slow
def test_pipeline_with_mmff_oracle(tmp_path):
    bench = _load_bench()
    smi = tmp_path / "m.smi"
    smi.write_text("CCOC(=O)c1ccccc1 ethylbenzoate\nCCCCO butanol\n")
    db, out = tmp_path / "c.db", tmp_path / "c.json"
    args = ["--smiles", str(smi), "--methods", "golf,rdkit-mmff,rdkit-mmff-xtb", "--top-k", "3", "--xtb-pool", "3",
            "--oracle", "mmff", "--db", str(db), "--out", str(out)]
    assert bench.main(["generate", "dft", "report", *args]) == 0
    doc = json.loads(out.read_text())
    assert doc["molecules_complete"] == 2 and doc["oracle"] == "mmff"
    for method in ("golf", "rdkit-mmff", "rdkit-mmff-xtb"):
        s = doc["summary"][method]
        assert s["molecules_scored"] == 2 and s["molecules_failed"] == 0
        assert 0.0 <= s["top_within_0_5_fraction"] <= 1.0
        assert s["top_above_union_min_kcal"]["median"] >= 0.0
        assert s["wall_s"] > 0 and s["cpu_s"] > 0
    # the MMFF method ranked by MMFF94 itself: its top is the MMFF minimum over its own conformers
    for row in doc["per_molecule"]:
        rel = row["methods"]["rdkit-mmff"]["oracle_rel_to_union_min_kcal"]
        assert rel[0] == pytest.approx(min(rel), abs=1e-6)
    con = sqlite3.connect(str(db))
    n = con.execute("SELECT COUNT(*) FROM singles").fetchone()[0]
    assert n == con.execute("SELECT COUNT(DISTINCT rep_id) FROM same_as").fetchone()[0]
    # resumable: a rerun of every stage adds no conformer and no single point
    n_conf = con.execute("SELECT COUNT(*) FROM conformers").fetchone()[0]
    assert bench.main(["generate", "dft", "report", *args]) == 0
    assert con.execute("SELECT COUNT(*) FROM singles").fetchone()[0] == n
    assert con.execute("SELECT COUNT(*) FROM conformers").fetchone()[0] == n_conf
