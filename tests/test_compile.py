"""Opt-in ``torch.compile`` of the message blocks (``golf.models.compile``): the same energies and forces,
and eager execution when compilation fails."""
from __future__ import annotations

import warnings

import pytest
import torch

from golf.batch import Batch
from golf.chem import generate_conformers
from golf.errors import GolfWarning
from golf.models import build_model
from golf.models.compile import compile_blocks


def _batch() -> Batch:
    confs = [c for i, smi in enumerate(["CC(=O)Nc1ccc(O)cc1", "CCO"]) for c in generate_conformers(smi, 2, seed=0, mol_id=i)]
    return Batch.from_conformations(confs)


def test_a_failed_compilation_runs_eagerly_with_one_warning(monkeypatch):
    torch.manual_seed(0)
    model = build_model("painn", n_atom_basis=16, n_interactions=2, cutoff=5.0, n_rbf=12)
    batch = _batch()
    e0, f0 = model.energy_and_forces(batch)

    def broken(fn, **kwargs):
        def fail(*args, **kw):
            raise RuntimeError("InductorError: no C++ compiler\nmore lines")
        return fail

    monkeypatch.setattr(torch, "compile", broken)
    assert compile_blocks(model) == 4  # 2 interaction + 2 mixing blocks
    assert compile_blocks(model) == 0  # already wrapped
    with pytest.warns(GolfWarning, match=r"torch.compile of the model's interactions\[0\] failed "
                                         r"\(InductorError: no C\+\+ compiler\); running the model eagerly") as seen:
        e1, f1 = model.energy_and_forces(batch)
    assert torch.equal(e0, e1) and torch.equal(f0, f1)
    assert len([w for w in seen if issubclass(w.category, GolfWarning)]) == 1  # one warning for the model
    with warnings.catch_warnings():  # and it stays eager
        warnings.simplefilter("error", GolfWarning)
        model.energy_and_forces(batch)


def test_a_model_without_message_blocks_is_left_alone():
    model = build_model("schnet", n_atom_basis=16, n_interactions=2, cutoff=5.0, n_rbf=12)
    assert compile_blocks(model) == 0


@pytest.mark.slow
def test_compiled_golf_10k_gives_the_same_energies_and_forces():
    """GOLF-10k compiled: energies within 1e-3 eV and forces within 1e-4 eV/A of eager (float32 reassociation),
    for two batches of different sizes (dynamic shapes: no recompilation needed for correctness)."""
    import golf

    eager, compiled = golf.load_model("GOLF-10k"), golf.load_model("GOLF-10k")
    assert compile_blocks(compiled) == 6
    big = _batch()
    small = Batch.from_conformations(generate_conformers("CCN(CC)C(=O)c1ccccc1", 3, seed=1))
    with warnings.catch_warnings():
        warnings.simplefilter("error", GolfWarning)  # a fallback would hide a broken compilation
        for batch in (big, small):
            e0, f0 = eager.energy_and_forces(batch)
            e1, f1 = compiled.energy_and_forces(batch)
            assert torch.allclose(e0, e1, atol=1e-3) and torch.allclose(f0, f1, atol=1e-4)


def test_compile_is_an_option_of_optimize_and_conformers_off_by_default():
    from golf.cli import build_parser
    from golf.cli.conformers import resolve_settings as conformers_settings
    from golf.cli.optimize import resolve_settings as optimize_settings

    parser = build_parser()
    for argv, resolve in ((["conformers", "m.smi", "-o", "c.sdf"], conformers_settings),
                          (["optimize", "--model", "GOLF-10k", "m.smi", "-o", "r.sdf"], optimize_settings)):
        assert resolve(parser.parse_args(argv)).compile is False
        assert resolve(parser.parse_args([*argv, "--compile"])).compile is True
