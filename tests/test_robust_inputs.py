"""Reading user inputs: SDF fields, charges and their sources, molecule ids, text encodings, what is
not a regular file, option values, models trained on neutral molecules only, molecule size and
disconnected fragments. Each bad record is one line; the others go on.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import pytest
import torch

from golf.cli import main
from golf.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tiny(path, **save_kw):
    from golf.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("painn", elements=[1, 6, 7, 8], n_atom_basis=8, n_interactions=1, n_rbf=8)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "__version__", str(torch.__version__))
        save_model(model, path, **save_kw)
    return path


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return _tiny(tmp_path_factory.mktemp("model") / "tiny.pt")


def _lines(text: str) -> list[str]:
    return [ln for ln in text.strip().splitlines() if ln.strip()]


def _sdf(path, records, embed=True):
    """An SDF of (SMILES, {field: text}) records, 3D unless ``embed`` is False."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    w = Chem.SDWriter(str(path))
    for smi, fields in records:
        m = Chem.MolFromSmiles(smi)
        if embed:
            m = Chem.AddHs(m)
            AllChem.EmbedMolecule(m, randomSeed=1)
        for k, v in fields.items():
            m.SetProp(k, v)
        w.write(m)
    w.close()
    return path


# ---------------------------------------------------------------------------------------------
# 1-2. SDF fields are read tolerantly; a charge field names itself when it does not fit


def test_sdf_fields_that_are_not_integers(tmp_path):
    from golf.formats import read_conformations

    p = _sdf(tmp_path / "z.sdf", [("CCO", {"mol_id": "ZINC000123", "charge": "0.0"}),
                                 ("CCN", {"mol_id": "0", "conf_id": "x"}),
                                 ("OCC=O", {"charge": "1.5"}),
                                 ("CC", {"mol_id": "3.0", "multiplicity": " 1 "})])
    errors: list = []
    confs = read_conformations(p, on_error=errors.append, bond_orders=False)
    assert [str(e) for e in errors] == [f"{p}: record 3: SDF field <charge> is '1.5', not an integer"]
    assert [c.smiles for c in confs] == ["CCO", "CCN", "CC"]
    assert confs[0].info["name"] == "ZINC000123" and confs[0].charge == 0
    assert [c.mol_id for c in confs] == [1, 0, 3]  # the implicit id avoids the explicit 0 and 3
    assert confs[1].conf_id == 0


def test_optimize_goes_on_past_bad_sdf_fields(tiny_model, tmp_path, capsys):
    p = _sdf(tmp_path / "z.sdf", [("CCO", {"mol_id": "ZINC000123", "charge": "0.0"}),
                                 ("CCO", {"charge": "1"}),  # neutral ethanol with a charge field of 1
                                 ("CCN", {"charge": "1.5"})])
    out = tmp_path / "o.sdf"
    assert main(["optimize", "--model", str(tiny_model), str(p), "-o", str(out), "--max-steps", "2",
                 "--no-progress"]) == 3
    err = _lines(capsys.readouterr().err)
    skipped = [ln for ln in err if "skipped" in ln]
    assert len(skipped) == 2 and "Traceback" not in "".join(err)
    assert (f"{p}: record 2: charge 1 (its SDF field <charge>) does not match the net formal charge +0 "
            "of the molecule") in skipped[0] and "--charge" not in skipped[0]
    assert "record 3: SDF field <charge> is '1.5'" in skipped[1]
    from rdkit import Chem

    assert [m.GetProp("_Name") for m in Chem.SDMolSupplier(str(out))] == ["ZINC000123"]


def test_conformers_reads_the_sdf_charge_field(tmp_path):
    from golf import conformer_search as gc

    p = _sdf(tmp_path / "c.sdf", [("C[NH3+]", {"charge": "1"}), ("CCO", {"charge": "1"}),
                                 ("CCO", {"mol_id": "ZINC7"})], embed=False)
    mols = gc.read_molecules(p)
    assert mols[0].error is None and mols[0].charge == 1
    assert "record 2: charge 1 (its SDF field <charge>) does not match" in mols[1].error
    assert mols[2].error is None and mols[2].name == "ZINC7"


# ---------------------------------------------------------------------------------------------
# 3. a model trained on neutral molecules refuses charged ones, per molecule, in every NNP command


def test_neutral_only_is_model_metadata(tmp_path):
    from golf.models import load_model

    neutral = load_model(_tiny(tmp_path / "n.pt"))
    charged = load_model(_tiny(tmp_path / "c.pt", provenance={"charged_molecules": True}))
    assert neutral.neutral_only and not charged.neutral_only
    with pytest.raises(InputError, match=r"charge \+1: the model was trained on neutral closed-shell"):
        neutral.check_charge(1)
    with pytest.raises(InputError, match="multiplicity 2"):
        neutral.check_charge(0, 2)
    neutral.check_charge(0, 1)
    charged.check_charge(-1, 1)


def test_conformers_refuses_a_cation_for_a_neutral_only_model(tiny_model, tmp_path, capsys):
    from golf import conformer_search as gc
    from golf.models import load_model

    p = tmp_path / "c.smi"
    p.write_text("C[NH3+] methylammonium\n")
    settings = gc.ConformerSettings(n_conformers=2, max_steps=2, charge=1)
    res = gc.generate_conformer_ensembles(gc.read_molecules(p, charge=1), load_model(tiny_model), settings)
    assert res[0].error.startswith(f"{p}: line 1: charge +1: the model was trained on neutral closed-shell "
                                   "molecules only; no official golf model takes charged")
    assert res[0].n_embedded == 0
    charged = load_model(_tiny(tmp_path / "c.pt", provenance={"charged_molecules": True}))
    res = gc.generate_conformer_ensembles(gc.read_molecules(p, charge=1), charged, settings)
    assert res[0].error is None and res[0].n_embedded == 2
    # the command line: one line for the molecule, one for the error, no output
    out = tmp_path / "o.sdf"
    assert main(["conformers", str(p), "-o", str(out), "--model", str(tiny_model), "--charge", "1",
                 "--n-conformers", "2", "--no-progress"]) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 2 and "neutral closed-shell" in err[0] and "error:" in err[1] and not out.exists()
    # without --charge: no advice to pass one the model cannot take
    assert main(["conformers", str(p), "-o", str(out), "--model", str(tiny_model), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "neutral closed-shell" in err and "--charge" not in err


def test_predict_and_optimize_refuse_a_charged_sdf_record(tiny_model, tmp_path, capsys):
    p = _sdf(tmp_path / "c.sdf", [("C[NH3+]", {"charge": "1"}), ("CCO", {})])
    for cmd in (["predict"], ["optimize", "--max-steps", "2", "--no-progress"]):
        assert main([*cmd, "--model", str(tiny_model), str(p), "-o", str(tmp_path / "o.sdf")]) == 3
        skipped = [ln for ln in _lines(capsys.readouterr().err) if "skipped" in ln]
        assert len(skipped) == 1 and "charge +1: the model was trained on neutral closed-shell" in skipped[0]


# ---------------------------------------------------------------------------------------------
# 4. implicit ids never collide with explicit ones; a byte-order mark is no data


def test_implicit_ids_avoid_explicit_ones(tmp_path):
    from golf.formats import read_conformations

    p = tmp_path / "m.smi"
    p.write_text("CCO\nCCN 0\nCCC\nCC 1\n")
    confs = read_conformations(p)
    assert [(c.smiles, c.mol_id) for c in confs] == [("CCO", 2), ("CCN", 0), ("CCC", 3), ("CC", 1)]
    p.write_text("CCO 4\nCCN 4\nCC\n")  # a real duplicate: the later line is reported, the others go on
    errors: list = []
    confs = read_conformations(p, on_error=errors.append)
    assert [(c.smiles, c.mol_id) for c in confs] == [("CCO", 4), ("CC", 0)]
    assert [str(e) for e in errors] == [f"{p}: line 2: molecule id 4 is already the id of line 1"]
    # 2D SDF records: the same scheme
    s = _sdf(tmp_path / "m.sdf", [("CCO", {}), ("CCN", {"mol_id": "0"})], embed=False)
    assert [(c.smiles, c.mol_id) for c in read_conformations(s, conformers=2)] == [
        ("CCO", 1), ("CCO", 1), ("CCN", 0), ("CCN", 0)]


def test_conformers_names_avoid_explicit_ones(tmp_path):
    from golf import conformer_search as gc

    p = tmp_path / "m.smi"
    p.write_text("CCO\nCCN mol1\n")
    assert [m.name for m in gc.read_molecules(p)] == ["mol1_2", "mol1"]


def test_byte_order_mark_is_stripped(tmp_path):
    from golf import conformer_search as gc
    from golf.formats import read_conformations

    bom = "\ufeff"
    csv_ = tmp_path / "m.csv"
    csv_.write_text(bom + "smiles,name\nCCO,ethanol\nCCN,ethylamine\n", encoding="utf-8")
    assert [c.info["name"] for c in read_conformations(csv_)] == ["ethanol", "ethylamine"]
    assert [(m.name, m.error) for m in gc.read_molecules(csv_)] == [("ethanol", None), ("ethylamine", None)]
    smi = tmp_path / "m.smi"
    smi.write_text(bom + "CCO ethanol\n", encoding="utf-8")
    assert read_conformations(smi)[0].smiles == "CCO"
    xyz = tmp_path / "w.xyz"
    xyz.write_text(bom + "3\nwater\nO 0 0 0\nH 0.96 0 0\nH -0.24 0.93 0\n", encoding="utf-8")
    assert read_conformations(xyz)[0].smiles == "O"
    sdf = _sdf(tmp_path / "plain.sdf", [("CCO", {})])
    bsdf = tmp_path / "b.sdf"
    bsdf.write_bytes(b"\xef\xbb\xbf" + sdf.read_bytes())
    confs = read_conformations(bsdf)
    assert confs[0].smiles == "CCO" and not confs[0].info.get("name", "").startswith(bom)


# ---------------------------------------------------------------------------------------------
# 5. a directory or a FIFO is not reported as a missing file


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_directory_and_fifo_inputs(tiny_model, tmp_path, capsys):
    from golf import conformer_search as gc
    from golf.formats import read_conformations

    d = tmp_path / "dir.smi"
    d.mkdir()
    fifo = tmp_path / "f.smi"
    os.mkfifo(fifo)
    for path, message in ((d, "is a directory"), (fifo, "is not a regular file")):
        for read in (read_conformations, gc.read_molecules):
            with pytest.raises(InputError, match=f"{path}: {message}$"):
                read(path)  # never opens the FIFO (that would block)
        for argv in (["optimize", "--model", str(tiny_model)], ["conformers", "--model", str(tiny_model)],
                     ["predict", "--model", str(tiny_model)]):
            assert main([*argv, str(path), "-o", str(tmp_path / "o.sdf")]) == 2
            err = _lines(capsys.readouterr().err)
            assert len(err) == 1 and err[0].endswith(f"{path}: {message}"), err


# ---------------------------------------------------------------------------------------------
# 6. no option takes NaN or infinity


def _all_actions():
    """(prog, action, the function that parses its text) of every option of every command."""
    from golf.cli import build_parser

    def walk(parser):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub in set(action.choices.values()):
                    yield from walk(sub)
            else:
                yield parser.prog, action, parser._registry_get("type", action.type, action.type)

    return list(walk(build_parser()))


def _takes_numbers(convert) -> bool:
    """Whether an option's parser reads a real number (so "nan" is a candidate)."""
    for text in ("0.5", "2.5"):
        try:
            return isinstance(convert(text), float)
        except (argparse.ArgumentTypeError, TypeError, ValueError):
            continue
    return False


def test_every_float_option_refuses_nan_and_inf():
    floats = [(prog, a, convert) for prog, a, convert in _all_actions()
              if a.option_strings and callable(convert) and a.nargs in (None, "?") and a.choices is None and convert is not str
              and _takes_numbers(convert)]
    assert {"--window", "--rmsd", "--energy-threshold", "--refine-fmax", "--lr", "--xtb-temperature"} <= {
        a.option_strings[-1] for _, a, _ in floats}
    for prog, action, convert in floats:
        assert convert is not float, (prog, action.dest)  # a plain float() takes "nan"
        for text in ("nan", "inf", "-inf", "NaN"):
            with pytest.raises(argparse.ArgumentTypeError):
                convert(text)


@pytest.mark.parametrize("argv, option", [
    (["conformers", "x.smi", "-o", "y.sdf", "--window", "nan"], "--window"),
    (["conformers", "x.smi", "-o", "y.sdf", "--rmsd", "-1"], "--rmsd"),
    (["conformers", "x.smi", "-o", "y.sdf", "--refine-fmax", "inf"], "--refine-fmax"),
    (["train", "--golf", "--lr", "nan"], "--lr"),
    (["data", "build", "--smiles", "x.smi", "--out", "b.db", "--xtb-temperature", "inf"], "--xtb-temperature"),
    (["data", "build", "--smiles", "x.smi", "--out", "b.db", "--test-fraction", "1.5"], "--test-fraction"),
])
def test_bad_float_option_is_one_line(argv, option, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # were the option taken: no x.smi here, and nothing lands in the checkout
    assert main(argv) == 2
    err = _lines(capsys.readouterr().err)
    assert len(err) == 1 and f"argument {option}" in err[0], err


def test_oracle_option_nan_is_refused(tmp_path, capsys):
    smi = tmp_path / "m.smi"
    smi.write_text("CCO\n")
    assert main(["data", "build", "--smiles", str(smi), "--oracle", "mmff", "--oracle-option", "x=NaN",
                 "--out", str(tmp_path / "b.db")]) == 2
    assert "must be a finite number" in capsys.readouterr().err


def test_conformer_settings_refuse_nan():
    from golf.conformer_search import ConformerSettings

    for bad in (dict(window=float("nan")), dict(rmsd_threshold=float("nan")), dict(fmax=float("inf"))):
        with pytest.raises(InputError):
            ConformerSettings(**bad).check()


# ---------------------------------------------------------------------------------------------
# 7-8. one molecule of a stated size: refused before any embedding, with a status line for the rest


def test_large_molecule_is_refused_before_embedding(monkeypatch):
    from rdkit.Chem import rdDistGeom

    from golf.chem import MAX_ATOMS, generate_conformers

    monkeypatch.setattr(rdDistGeom, "EmbedMultipleConfs", lambda *a, **k: pytest.fail("embedded"))
    with pytest.raises(InputError, match=f"602 atoms .*at most {MAX_ATOMS} atoms"):
        generate_conformers("C" * 200, 1, 0, where="big")


def test_size_limit_is_documented():
    from golf.chem import MAX_ATOMS
    from golf.cli import build_parser

    sub = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)][0]
    for name in ("optimize", "conformers"):
        assert f"at most {MAX_ATOMS} atoms" in " ".join(sub.choices[name].format_help().split())


def test_large_xyz_is_refused_for_nnp_relaxation(tiny_model, tmp_path, capsys):
    from ase import Atoms
    from ase.io import write

    from golf.chem import MAX_ATOMS

    n = MAX_ATOMS // 5 + 1  # methane-like CH4 units on a grid: more than MAX_ATOMS atoms
    pos = []
    for k in range(n):
        c = np.array([k % 10, (k // 10) % 10, k // 100], dtype=float) * 4.0
        pos += [c, c + [0.63, 0.63, 0.63], c + [-0.63, -0.63, 0.63], c + [-0.63, 0.63, -0.63], c + [0.63, -0.63, -0.63]]
    big = Atoms("CH4" * n, positions=pos)
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    p = tmp_path / "in.xyz"
    write(p, [big, water], format="extxyz")
    assert main(["optimize", "--model", str(tiny_model), str(p), "-o", str(tmp_path / "o.xyz"),
                 "--max-steps", "2", "--no-progress"]) == 3
    skipped = [ln for ln in _lines(capsys.readouterr().err) if "skipped" in ln]
    assert len(skipped) == 1 and f"{5 * n} atoms" in skipped[0] and len(skipped[0]) < 300


def test_conformers_shows_an_embedding_status_line(tiny_model, tmp_path, capsys):
    p = tmp_path / "m.smi"
    p.write_text("CCO ethanol\n")
    assert main(["conformers", str(p), "-o", str(tmp_path / "o.sdf"), "--model", str(tiny_model),
                 "--n-conformers", "2", "--max-steps", "2", "--mmff-start", "0"]) == 0  # two relaxed
    err = capsys.readouterr().err
    assert "embed: 0/1" in err and "embed: 1/1" in err and "relax: 2/2" in err


def test_optimize_shows_an_embedding_status_line(tiny_model, tmp_path, capsys):
    p = tmp_path / "m.smi"
    p.write_text("CCO ethanol\nCCN ethylamine\n")
    assert main(["optimize", "--model", str(tiny_model), str(p), "-o", str(tmp_path / "o.sdf"),
                 "--max-steps", "2"]) == 0
    err = capsys.readouterr().err
    assert "embed: 0/2" in err and "embed: 2/2" in err
    assert main(["optimize", "--model", str(tiny_model), str(p), "-o", str(tmp_path / "o.sdf"),
                 "--max-steps", "2", "--no-progress"]) == 0
    assert "embed:" not in capsys.readouterr().err


def test_multi_fragment_molecules_are_stripped_or_refused(tiny_model, tmp_path, capsys):
    """Salts are stripped to their largest organic fragment on reading (one line each); fragments kept
    on purpose are never handed to an NNP relaxation (one line each), nor embedded without asking."""
    from golf import conformer_search as gc
    from golf.chem import generate_conformers

    message = "has 2 disconnected fragments; an NNP relaxes single molecules"
    with pytest.raises(InputError, match="^salt: " + message):
        generate_conformers("CCO.Cl", 1, 0, where="salt")
    p = tmp_path / "m.smi"
    p.write_text("CCO.Cl ethanol_hcl\nCC[NH3+].[Cl-] salt\nCCO ethanol\n")
    mols = gc.read_molecules(p)
    assert mols[0].error is None and mols[0].stripped == "Cl" and mols[0].smiles == "CCO"
    assert mols[1].stripped == "[Cl-]" and "net charge +1" in mols[1].error  # the cation, as given
    assert mols[2].error is None and mols[2].stripped == ""
    # 3D input: a water dimer is stripped to one water (reported); kept, it is refused for an NNP
    from ase import Atoms
    from ase.io import write

    dimer = Atoms("OH2OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0],
                                       [4, 0, 0], [4.96, 0, 0], [3.76, 0.93, 0]])
    water = Atoms("OH2", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    x = tmp_path / "w.xyz"
    write(x, [dimer, water], format="extxyz")
    assert main(["optimize", "--model", str(tiny_model), str(x), "-o", str(tmp_path / "o.xyz"),
                 "--max-steps", "2", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert len([ln for ln in _lines(err) if "stripped O" in ln]) == 1, err
    assert main(["optimize", "--model", str(tiny_model), str(x), "-o", str(tmp_path / "o.xyz"), "--keep-fragments",
                 "--max-steps", "2", "--no-progress"]) == 3
    skipped = [ln for ln in _lines(capsys.readouterr().err) if "skipped" in ln]
    assert len(skipped) == 1 and message in skipped[0]


def test_ids_beyond_32_bits_name_the_record(tmp_path):
    from golf.formats import integral, read_conformations, write_conformations

    assert [integral(v) for v in ("3", " -1 ", "0.0", 2.0, "1.5", "abc", "nan", True, 2**40, "1e300")] == [
        3, -1, 0, 2, None, None, None, None, None, None]
    p = tmp_path / "m.smi"
    p.write_text("CCO 99999999999\n")
    confs = read_conformations(p)
    assert confs[0].mol_id == 0 and confs[0].info["name"] == "99999999999"
    write_conformations(tmp_path / "o.sdf", confs)  # an SDF integer field holds the id
