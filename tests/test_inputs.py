"""Real drug inputs: charged molecules and models that take them, salts and mixtures, protonation,
existing 3D ensembles, one output vocabulary, Boltzmann weights, racemates, and the ``golf.runs``
functions behind ``optimize``/``predict``/``conformers``.

Corpus: tests/data/inputs/ (fluoxetine hydrochloride, a protonated amine, a carboxylate, a 3D
RDKit ensemble of propanol with its own SDF fields, a racemate).
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli
from golf.errors import InputError

pytestmark = pytest.mark.usefixtures("one_torch_thread")

DATA = Path(__file__).parent / "data" / "inputs"
ADVICE = "no official golf model takes charged or open-shell molecules"


def _tiny(path: Path, charged: bool = False) -> Path:
    from golf.models import build_model, save_model

    torch.manual_seed(0)
    model = build_model("painn", elements=[1, 6, 7, 8, 9, 17], n_atom_basis=8, n_interactions=1, n_rbf=8)
    save_model(model, path, provenance={"charged_molecules": True} if charged else None)
    return path


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory.mktemp("m") / "tiny.pt")


@pytest.fixture(scope="module")
def tiny_charged(tmp_path_factory) -> Path:
    return _tiny(tmp_path_factory.mktemp("m") / "charged.pt", charged=True)


def _sdf(path: Path) -> list:
    from rdkit import Chem

    return [m for m in Chem.SDMolSupplier(str(path), removeHs=False) if m is not None]


def _rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(path.read_text().splitlines()))


# ---------------------------------------------------------------------------------------------
# 1. charged molecules


@pytest.mark.parametrize("command", ["optimize", "predict", "conformers"])
def test_charged_molecule_refused_per_molecule_by_a_neutral_model(tiny, tmp_path, command):
    out = tmp_path / "o.sdf"
    extra = ["--max-steps", "3", "--no-progress"] if command != "predict" else []
    if command == "conformers":
        extra += ["--n-conformers", "2"]
    rc, err = run_cli(command, "--model", tiny, DATA / "protonated_amine.smi", "-o", out, *extra)
    assert rc == 3, err
    refused = [ln for ln in err.splitlines() if "net charge +1" in ln]
    assert len(refused) == 1, err
    assert "neutral closed-shell molecules only" in refused[0] and ADVICE in refused[0] and "oracle" in refused[0]
    assert "charged_molecules=True" in refused[0] and "--charge" not in refused[0]
    assert out.exists() and len(_sdf(out)) >= 1


def test_charge_option_no_longer_refuses_the_whole_run(tiny, tmp_path):
    """--charge 1 with a neutral-only model: each molecule is refused on its own line (before: one
    global refusal); conformers never runs the cation through the model."""
    p = tmp_path / "c.smi"
    p.write_text("CC[NH3+] ethylammonium\nC[NH3+] methylammonium\n")
    for command in ("optimize", "conformers"):
        rc, err = run_cli(command, "--model", tiny, p, "-o", tmp_path / f"{command}.sdf", "--charge", "1",
                          "--max-steps", "2", "--no-progress")
        assert rc == 2, err
        assert ADVICE in err and "Traceback" not in err
        assert not (tmp_path / f"{command}.sdf").exists()


def test_a_model_that_takes_charged_molecules_relaxes_them(tiny_charged, tmp_path):
    out = tmp_path / "o.sdf"
    p = tmp_path / "c.smi"
    p.write_text("CC[NH3+] ethylammonium\n")
    rc, err = run_cli("optimize", "--model", tiny_charged, p, "-o", out, "--charge", "1", "--max-steps", "3",
                      "--no-progress")
    assert rc == 0, err
    (mol,) = _sdf(out)
    assert mol.GetIntProp("charge") == 1
    # conformers: the relaxed conformers (which an oracle refinement receives) carry the charge
    from golf import conformer_search as gc
    from golf.models import load_model

    model = load_model(tiny_charged)
    mols = gc.read_molecules(p, charge=1)
    res = gc.generate_conformer_ensembles(mols, model, gc.ConformerSettings(n_conformers=2, max_steps=2))
    assert res[0].ok and all(rec.conf.charge == 1 for rec in res[0].conformers)


def test_refinement_oracle_gets_charge_and_multiplicity(tiny_charged, tmp_path, monkeypatch):
    from golf import conformer_search as gc
    from golf.models import load_model

    p = tmp_path / "c.smi"
    p.write_text("CC(=O)[O-] acetate\n")
    res = gc.generate_conformer_ensembles(gc.read_molecules(p, charge=-1), load_model(tiny_charged),
                                          gc.ConformerSettings(n_conformers=2, max_steps=2))
    seen = []

    class Spy:
        def __init__(self, *a, **k):
            self.done = []

        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

        def submit(self, conf, key, **kw):
            seen.append((conf.charge, conf.multiplicity))
            self.done.append(key)

        def as_completed(self):
            from types import SimpleNamespace

            for key in self.done:
                yield key, SimpleNamespace(ok=True, energy=-1.0, positions=None, reason="")

    monkeypatch.setattr("golf.oracles.executors.make_executor", Spy)
    gc.refine(res, "mmff")
    assert seen and all(q == (-1, 1) for q in seen)


# ---------------------------------------------------------------------------------------------
# 2. salts and mixtures


def test_hydrochloride_is_stripped_and_reported(tiny, tmp_path):
    out = tmp_path / "o.sdf"
    rc, err = run_cli("optimize", "--model", tiny, DATA / "fluoxetine_hcl.smi", "-o", out, "--max-steps", "2",
                      "--no-progress")
    assert rc == 0, err
    lines = [ln for ln in err.splitlines() if "stripped Cl" in ln]
    assert len(lines) == 1 and "fluoxetine_hcl" in lines[0]
    (mol,) = _sdf(out)
    assert mol.GetProp("stripped_fragments") == "Cl" and "Cl" not in mol.GetProp("smiles")
    assert mol.GetNumAtoms() == 40


def test_conformers_strip_salts_and_say_so_in_the_csv(tiny, tmp_path):
    p = tmp_path / "s.smi"
    p.write_text("CCO.O ethanol_hydrate\nCNC.Cl dimethylamine_hcl\n")
    out = tmp_path / "c.sdf"
    rc, err = run_cli("conformers", "--model", tiny, p, "-o", out, "--n-conformers", "2", "--max-steps", "2",
                      "--no-progress")
    assert rc == 0, err
    assert sum("stripped" in ln for ln in err.splitlines()) == 2
    rows = _rows(tmp_path / "c.csv")
    assert [r["stripped_fragments"] for r in rows] == ["O", "Cl"]
    assert {m.GetProp("stripped_fragments") for m in _sdf(out)} == {"O", "Cl"}


def test_conformers_of_a_stripped_salt_use_the_default_conformer_count(tiny, tmp_path):
    """The kept fragment of a salt has its ring information (the default conformer count reads its
    rotatable bonds)."""
    out = tmp_path / "c.sdf"
    rc, err = run_cli("conformers", "--model", tiny, DATA / "fluoxetine_hcl.smi", "-o", out, "--max-conformers", "2",
                      "--max-steps", "2", "--no-progress")
    assert rc == 0, err
    assert all(m.GetProp("stripped_fragments") == "Cl" for m in _sdf(out))


def test_kept_fragments_go_to_oracles_only(tiny, tmp_path):
    rc, err = run_cli("optimize", "--model", tiny, DATA / "fluoxetine_hcl.smi", "-o", tmp_path / "a.sdf",
                      "--keep-fragments", "--max-steps", "2", "--no-progress")
    assert rc == 2 and "2 disconnected fragments" in err and len(err.strip().splitlines()) == 1, err
    out = tmp_path / "b.sdf"
    hydrate = tmp_path / "h.smi"
    hydrate.write_text("CCO.O ethanol_hydrate\n")  # (MMFF94 types no HCl)
    rc, err = run_cli("optimize", "--oracle", "mmff", hydrate, "-o", out, "--keep-fragments",
                      "--max-steps", "3", "--workers", "1", "--no-progress")
    assert rc == 0, err
    (mol,) = _sdf(out)
    assert mol.GetNumAtoms() == 12 and mol.GetProp("golf_model") == "oracle:mmff"
    assert mol.GetProp("stripped_fragments") == ""


def test_xyz_salt_is_stripped_on_reading():
    from golf.chem import largest_fragment, parse_smiles

    kept, stripped, atoms = largest_fragment(parse_smiles("[Na+].CC(=O)[O-]"))
    assert stripped == ["[Na+]"] and len(atoms) == 4 and kept.GetNumAtoms() == 4
    mol = parse_smiles("CCO")
    assert largest_fragment(mol)[1] == []


# ---------------------------------------------------------------------------------------------
# 3. protonation


def test_ph_needs_dimorphite_dl(tiny, tmp_path):
    pytest.importorskip("rdkit")
    try:
        import dimorphite_dl  # noqa: F401
    except ImportError:
        rc, err = run_cli("conformers", "--model", tiny, DATA / "carboxylate.smi", "-o", tmp_path / "o.sdf",
                          "--ph", "7.4", "--no-progress", "--n-conformers", "2", "--max-steps", "2")
        assert "dimorphite-dl" in err and "pip install dimorphite-dl" in err, err
        rc, err = run_cli("optimize", "--model", tiny, DATA / "carboxylate.smi", "-o", tmp_path / "p.sdf",
                          "--ph", "7.4", "--no-progress", "--max-steps", "2")
        assert rc == 2 and "dimorphite-dl" in err, err
    else:
        pytest.skip("dimorphite-dl is installed")


def test_ph_protonates_with_dimorphite_dl(tiny, tiny_charged, tmp_path):
    pytest.importorskip("dimorphite_dl")
    from golf.formats import read_conformations

    (c,) = read_conformations(DATA / "carboxylate.smi", ph=7.4, fragments="strip")[1:]  # acetic acid at pH 7.4
    assert c.smiles == "CC(=O)[O-]" and c.charge == -1
    rc, err = run_cli("conformers", "--model", tiny, DATA / "carboxylate.smi", "-o", tmp_path / "o.sdf",
                      "--ph", "7.4", "--no-progress", "--n-conformers", "2", "--max-steps", "2")
    assert rc == 2 and ADVICE in err  # both are acetate at pH 7.4: a neutral-only model takes neither
    rc, err = run_cli("conformers", "--model", tiny_charged, DATA / "carboxylate.smi", "-o", tmp_path / "c.sdf",
                      "--ph", "7.4", "--no-progress", "--n-conformers", "2", "--max-steps", "2")
    assert rc == 0, err
    assert {m.GetIntProp("charge") for m in _sdf(tmp_path / "c.sdf")} == {-1}


def test_ph_out_of_range_names_the_field(tiny, tmp_path):
    rc, err = run_cli("optimize", "--model", tiny, DATA / "carboxylate.smi", "-o", tmp_path / "p.sdf", "--ph", "20")
    assert rc == 2 and "ph" in err and "between 0 and 14" in err


# ---------------------------------------------------------------------------------------------
# 4. existing 3D ensembles


def test_3d_ensemble_is_relaxed_from_its_own_coordinates(tiny, tmp_path):
    src = _sdf(DATA / "ensemble_3d.sdf")
    out = tmp_path / "e.sdf"
    rc, err = run_cli("conformers", "--model", tiny, DATA / "ensemble_3d.sdf", "-o", out, "--max-steps", "0",
                      "--top-k", "0", "--rmsd", "0", "--energy-threshold", "0", "--no-progress")
    assert rc == 0, err
    (row,) = _rows(tmp_path / "e.csv")
    assert row["golf_coordinates"] == "input" and row["n_input_conformers"] == str(len(src))
    assert row["golf_input_molecule"] == "propanol" and "1/1 molecules" in err
    mols = _sdf(out)
    assert len(mols) == len(src)
    # max-steps 0: the output coordinates are the input's (hydrogens included, same atom order)
    inputs = [np.array(m.GetConformer().GetPositions()) for m in src]
    for m in mols:
        pos = np.array(m.GetConformer().GetPositions())
        assert min(np.abs(pos - ref).max() for ref in inputs) < 1e-3
        assert m.GetProp("vendor_id") == "P-001"  # the input's own fields, unchanged
    assert sorted(m.GetProp("source_conformer") for m in mols) == ["1", "2", "3", "4"]


def test_embed_forces_new_conformers(tiny, tmp_path):
    out = tmp_path / "e.sdf"
    rc, err = run_cli("conformers", "--model", tiny, DATA / "ensemble_3d.sdf", "-o", out, "--embed",
                      "--n-conformers", "2", "--max-steps", "0", "--no-progress")
    assert rc == 0, err
    rows = _rows(tmp_path / "e.csv")
    assert {r["golf_coordinates"] for r in rows} == {"embedded"}
    assert [r["n_input_conformers"] for r in rows] == ["2"] * 4  # each record embedded on its own


# ---------------------------------------------------------------------------------------------
# 5. one vocabulary


def _names(path: Path) -> set[str]:
    if path.suffix == ".sdf":
        return {k for m in _sdf(path) for k in m.GetPropNames()}
    if path.suffix == ".extxyz":
        from ase.io import read

        frames = read(path, index=":")
        return {k for a in frames for k in a.info} | {k for a in frames for k in a.arrays
                                                       if k not in ("numbers", "positions")}
    import ase.db

    with ase.db.connect(path) as db:
        names = {k for row in db.select() for k in row.key_value_pairs}
        if any(row.get("energy") is not None for row in db.select()):
            names.add("energy")
    return names


def test_every_command_writes_only_names_from_the_vocabulary(tiny, tmp_path):
    from golf.outputs import PROPERTIES, SUMMARY_COLUMNS, unknown_names

    inp = DATA / "ensemble_3d.sdf"
    own = {"vendor_id", "source_conformer"}
    outputs = []
    for ext in ("sdf", "extxyz", "db"):
        o = tmp_path / f"opt.{ext}"
        assert run_cli("optimize", "--model", tiny, inp, "-o", o, "--max-steps", "2", "--no-progress")[0] == 0
        outputs.append(o)
        p = tmp_path / f"pred.{ext}"
        assert run_cli("predict", "--model", tiny, inp, "-o", p)[0] == 0
        outputs.append(p)
    c = tmp_path / "conf.sdf"
    assert run_cli("conformers", "--model", tiny, inp, "-o", c, "--max-steps", "2", "--no-progress")[0] == 0
    outputs.append(c)
    for o in outputs:
        names = _names(o)
        assert not unknown_names(sorted(names), sorted(own)), (o.name, unknown_names(sorted(names), sorted(own)))
        assert {"golf_energy_eV", "golf_model"} <= names or {"energy", "golf_model"} <= names, o.name
        if o.suffix == ".sdf":
            assert own <= names and "golf_energy_reference" in names, o.name
            assert "energy" not in names and "model_energy_eV" not in names
    header = (tmp_path / "conf.csv").read_text().splitlines()[0].split(",")
    assert set(header) <= set(SUMMARY_COLUMNS)
    for name in list(PROPERTIES) + list(SUMMARY_COLUMNS):  # units in the names of quantities
        if "energy" in name and name not in ("energy", "golf_energy_reference", "golf_energy_eV"):
            assert name.endswith(("_eV", "_kcal_mol")), name


def test_energy_meaning_is_stated(tiny, tmp_path):
    out = tmp_path / "o.sdf"
    assert run_cli("optimize", "--model", tiny, DATA / "carboxylate.smi", "-o", out, "--max-steps", "1",
                   "--no-progress")[0] == 3
    (mol,) = _sdf(out)
    ref = mol.GetProp("golf_energy_reference")
    assert "atom reference energies" in ref and "only differences within one molecule and one model" in ref
    assert mol.GetProp("golf_model") == "tiny"


# ---------------------------------------------------------------------------------------------
# 6. Boltzmann weights


def test_boltzmann_weights_by_hand():
    from ase.units import kB

    from golf.outputs import boltzmann_weights

    e = np.array([0.0, 0.01, 0.05, float("nan")])
    w = boltzmann_weights(e, 298.15)
    x = np.exp(-e[:3] / (kB * 298.15))
    np.testing.assert_allclose(w[:3], x / x.sum(), rtol=1e-12)
    assert w[3] == 0.0 and math.isclose(w.sum(), 1.0)
    w500 = boltzmann_weights(e[:3], 500.0)
    assert w500[0] < w[0]  # hotter: flatter


def test_conformers_write_boltzmann_weights(tiny, tmp_path):
    from ase.units import kB

    from golf.units import EV_TO_KCAL_MOL

    out = tmp_path / "c.sdf"
    rc, err = run_cli("conformers", "--model", tiny, DATA / "ensemble_3d.sdf", "-o", out, "--max-steps", "3",
                      "--rmsd", "0", "--energy-threshold", "0", "--temperature", "400", "--no-progress")
    assert rc == 0, err
    mols = _sdf(out)
    assert len(mols) > 1
    w = np.array([m.GetDoubleProp("boltzmann_weight") for m in mols])
    de = np.array([m.GetDoubleProp("golf_rel_energy_kcal_mol") for m in mols]) / EV_TO_KCAL_MOL
    x = np.exp(-de / (kB * 400.0))
    np.testing.assert_allclose(w, x / x.sum(), rtol=1e-6)
    assert math.isclose(w.sum(), 1.0, rel_tol=1e-9)
    assert {m.GetDoubleProp("golf_temperature_K") for m in mols} == {400.0}
    (row,) = _rows(tmp_path / "c.csv")
    np.testing.assert_allclose([float(x) for x in row["boltzmann_weights"].split()], sorted(w, reverse=True),
                               atol=1e-6)


# ---------------------------------------------------------------------------------------------
# 7. racemates


def test_racemate_is_one_input_molecule_with_stereoisomer_groups(tiny, tmp_path):
    p = tmp_path / "r.smi"
    p.write_text((DATA / "racemate.smi").read_text() + "CCO ethanol\n")
    out = tmp_path / "r.sdf"
    rc, err = run_cli("conformers", "--model", tiny, p, "-o", out, "--enumerate-stereo", "--n-conformers", "2",
                      "--max-steps", "2", "--no-progress")
    assert rc == 0, err
    assert "2/2 molecules (3 stereoisomer groups)" in err
    rows = _rows(tmp_path / "r.csv")
    assert [r["golf_input_molecule"] for r in rows] == ["butan-2-ol", "butan-2-ol", "ethanol"]
    assert [r["n_stereoisomers"] for r in rows] == ["2", "2", "1"]
    assert {m.GetProp("golf_input_molecule") for m in _sdf(out)} == {"butan-2-ol", "ethanol"}


def test_optimize_counts_a_racemate_as_one_input_molecule(tiny, tmp_path):
    """Records of both enantiomers of one input (a 3D SDF of a racemate) are one molecule in the summary
    line, with its stereoisomers counted under it."""
    from rdkit import Chem
    from rdkit.Chem import AllChem

    p = tmp_path / "rac.sdf"
    with Chem.SDWriter(str(p)) as w:
        for smi in ("C[C@H](O)CC", "C[C@@H](O)CC", "C[C@@H](O)CC"):
            m = Chem.AddHs(Chem.MolFromSmiles(smi))
            AllChem.EmbedMolecule(m, randomSeed=1)
            m.SetProp("_Name", "butan-2-ol")
            w.write(m)
    rc, err = run_cli("optimize", "--model", tiny, p, "-o", tmp_path / "o.sdf", "--max-steps", "1", "--no-progress")
    assert rc == 0, err
    assert "golf optimize: 1 molecules (2 stereoisomers), 3 conformations" in err


def test_mirror_images_are_duplicates_in_a_racemic_group():
    from golf import conformer_search as gc
    from golf.chem import generate_conformers

    (c,) = generate_conformers("CC(O)CC", 1, 3)
    mirror = c.with_positions(c.positions * np.array([-1.0, 1.0, 1.0]))
    assert gc.stereo_key(c) != gc.stereo_key(mirror)
    kept, dup = gc.deduplicate([c, mirror], [0.0, 0.0], 0.3, 1.0, mirror=False)
    assert kept == [0, 1]
    kept, dup = gc.deduplicate([c, mirror], [0.0, 0.0], 0.3, 1.0, mirror=True)
    assert kept == [0] and dup == {1: 0}


# ---------------------------------------------------------------------------------------------
# 8. runs functions with typed settings


def test_runs_functions_are_callable_from_python(tiny, tmp_path, capsys):
    from golf.conformer_search import ConformerSettings
    from golf.runs.conformers import ConformersSettings, conformers
    from golf.runs.optimize import OptimizeSettings, optimize
    from golf.runs.predict import PredictSettings, predict

    smi = tmp_path / "m.smi"
    smi.write_text("CCO ethanol\n")
    a = optimize(str(smi), str(tmp_path / "a.sdf"), OptimizeSettings(model=str(tiny), max_steps=2, progress=False))
    assert a.n_written == 1 and a.exit_code == 0
    b = predict(str(tmp_path / "a.sdf"), str(tmp_path / "b.extxyz"), PredictSettings(model=str(tiny), device="cpu"))
    assert b.n_written == 1
    c = conformers(str(smi), str(tmp_path / "c.sdf"),
                   ConformersSettings(model=str(tiny), ensemble=ConformerSettings(n_conformers=2, max_steps=2),
                                      progress=False))
    assert c.exit_code == 0 and c.n_written >= 1 and Path(c.summary).exists()


@pytest.mark.parametrize("make, field", [
    (lambda: __import__("golf.runs.optimize", fromlist=["x"]).OptimizeSettings(model="m", fmax=-1.0), "fmax"),
    (lambda: __import__("golf.runs.optimize", fromlist=["x"]).OptimizeSettings(model="m", oracle="xtb"), "oracle"),
    (lambda: __import__("golf.runs.predict", fromlist=["x"]).PredictSettings(batch_size=0), "batch_size"),
    (lambda: __import__("golf.conformer_search", fromlist=["x"]).ConformerSettings(top_k=0), "top_k"),
    (lambda: __import__("golf.conformer_search", fromlist=["x"]).ConformerSettings(window=-1.0), "window"),
    (lambda: __import__("golf.conformer_search", fromlist=["x"]).ConformerSettings(temperature=0.0), "temperature"),
    (lambda: __import__("golf.runs.conformers", fromlist=["x"]).ConformersSettings(refine_opt=True), "refine"),
])
def test_settings_are_validated_naming_the_field(make, field):
    with pytest.raises(InputError, match=field):
        make()
