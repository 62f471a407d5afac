"""bench/spice_table.py end to end with MMFF standing in for DFT: charged molecules keep their charge
from the db to the oracle, the SPICE models relax them without seeing it, the table is written."""
from __future__ import annotations

import importlib.util
import json
import sqlite3
import sys

import pytest

from conftest import REPO, SHARED

SPICE = SHARED / "golf-checkpoints-spice"


def _load_bench():
    sys.path.insert(0, str(REPO / "bench"))
    sys.modules.pop("paper_table", None)  # spice_table adjusts paper_table's globals: a fresh copy each time
    spec = importlib.util.spec_from_file_location("spice_table", REPO / "bench" / "spice_table.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["spice_table"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_charged_list_has_no_zwitterion_and_the_stated_charges():
    from rdkit import Chem

    bench = _load_bench()
    assert len(bench.CHARGED) >= 8
    for name, smi, q in bench.CHARGED:
        mol = Chem.MolFromSmiles(smi)
        charges = [a.GetFormalCharge() for a in mol.GetAtoms()]
        assert Chem.GetFormalCharge(mol) == q != 0, name
        assert not (any(c > 0 for c in charges) and any(c < 0 for c in charges)), name


@pytest.mark.slow
def test_pipeline_with_mmff_oracle(tmp_path, monkeypatch):
    pytest.importorskip("pyscf")
    if not (SPICE / "GOLF-10k-SPICE.pt").exists():
        pytest.skip("SPICE checkpoints not available")
    monkeypatch.setenv("GOLF_SPICE_CHECKPOINTS", str(SPICE))
    bench = _load_bench()
    db = tmp_path / "s.db"
    argv = ["check", "molecules", "evaluate", "references", "score", "table", "--oracle", "mmff", "--db", str(db),
            "--n", "3", "--ref-steps", "60"]
    assert bench.main(argv) == 0
    doc = json.loads(db.with_suffix(".json").read_text())
    assert doc["format"] == "golf-spice-table/1"
    assert doc["dft_charge_check"]["ok"] is True
    assert [m["charge"] for m in doc["molecules"]] == [q for _, _, q in bench.CHARGED[:3]]
    assert any("never sees" in n for n in doc["notes"])
    assert set(doc["rows"]) == {"baseline-NNP-SPICE", "GOLF-10k-SPICE", "mmff"}
    assert doc["n_molecules_with_reference"] == 3
    for row in ("baseline-NNP-SPICE", "GOLF-10k-SPICE", "mmff"):
        a100 = next(a for a in doc["rows"][row]["aggregate"] if a["T"] == 100)
        assert a100["n"] == 3
    # the molecules reach the stages with their charge
    confs = bench.load_molecules(sqlite3.connect(str(db)))
    assert [c.charge for c in confs] == [q for _, _, q in bench.CHARGED[:3]]
