"""Pretrained models by name: shipped package data, pinned-sha256 fetch (file:// mirror), registration,
``golf models`` and names accepted wherever a model path is."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch

from golf.cli import main
from golf.errors import CheckpointError, InputError
from golf.models import load_model, registry
from golf.runs.models import register_model


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("GOLF_MODELS_DIR", str(d))
    monkeypatch.delenv("GOLF_MODELS_URL", raising=False)
    return d


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A file:// mirror of the official repository layout holding "traj-10k": the real file when
    ../shared is there, else a tiny golf checkpoint whose sha256 is pinned for the test."""
    from conftest import CHECKPOINTS
    from golf.models import build_model, save_model

    root = tmp_path / "mirror"
    dst = root / "checkpoints" / "traj-10k" / "NNP_checkpoint_actor"
    dst.parent.mkdir(parents=True)
    if (CHECKPOINTS / "traj-10k.pt").is_file():
        shutil.copyfile(CHECKPOINTS / "traj-10k.pt", dst)
    else:
        torch.manual_seed(0)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(torch, "__version__", str(torch.__version__))
            save_model(build_model("painn", elements=[1, 6], n_atom_basis=8, n_interactions=1), dst)
        pinned = dataclasses.replace(registry.PRETRAINED["traj-10k"], sha256=registry.sha256_file(dst))
        monkeypatch.setitem(registry.PRETRAINED, "traj-10k", pinned)
    return root


def test_shipped_models_are_the_pinned_official_files():
    pkg = Path(registry.__file__).parent / "pretrained"
    for name in ("GOLF-10k", "baseline-NNP"):
        assert registry.sha256_file(pkg / f"{name}.pt") == registry.PRETRAINED[name].sha256
    assert "Copyright (c) 2024 AIRI" in (pkg / "LICENSE").read_text()
    prov = (pkg / "PROVENANCE.md").read_text()
    assert registry.OFFICIAL_COMMIT in prov and "wB97X-D/def2-SVP" in prov
    assert sorted(p.name for p in pkg.glob("*.pt")) == ["GOLF-10k-SPICE.pt", "GOLF-10k.pt", "baseline-NNP.pt"]
    assert registry.sha256_file(pkg / "GOLF-10k-SPICE.pt") == registry.PRETRAINED["GOLF-10k-SPICE"].sha256
    assert registry.SPICE_COMMIT in prov


def test_spice_family_by_name_with_what_is_known_of_it():
    """The GOLF-SPICE models: pinned to the GOLF-SPICE branch's commit, neutral-only (no charge input),
    the level of their SPICE D0 labels stated as not recorded."""
    spice = [n for n in registry.PRETRAINED if n.endswith("-SPICE")]
    assert spice == ["GOLF-10k-SPICE", "baseline-NNP-SPICE", "traj-10k-SPICE", "traj-100k-SPICE", "traj-220k-SPICE"]
    for name in spice:
        m = registry.PRETRAINED[name]
        assert m.commit == registry.SPICE_COMMIT and not m.charged_molecules and "not recorded" in m.level_of_theory
        assert m.url().endswith(f"{registry.SPICE_COMMIT}/checkpoints/{name}/NNP_checkpoint_actor")
    assert registry.PRETRAINED["traj-10k"].url().startswith(
        f"https://raw.githubusercontent.com/AIRI-Institute/GOLF/{registry.OFFICIAL_COMMIT}/")
    model = load_model("GOLF-10k-SPICE")
    assert model.neutral_only and model.provenance["name"] == "GOLF-10k-SPICE"
    assert model.provenance["training_data"].startswith("SPICE")


def test_load_by_name_equals_load_by_path(checkpoints_dir):
    by_name = load_model("GOLF-10k")
    by_path = load_model(checkpoints_dir / "GOLF-10k.pt")
    assert by_name.provenance["name"] == "GOLF-10k"
    assert by_name.provenance["level_of_theory"] == "wB97X-D/def2-SVP"
    for k, v in by_path.state_dict().items():
        assert torch.equal(v, by_name.state_dict()[k])


def test_unknown_name_is_one_clear_error():
    with pytest.raises(CheckpointError, match="unknown model 'GOLF-2k'.*GOLF-10k"):
        load_model("GOLF-2k")
    with pytest.raises(CheckpointError, match="not found"):
        load_model("some/dir/missing.pt")


def test_fetch_from_file_url_verifies_and_caches(mirror, cache, monkeypatch):
    monkeypatch.setenv("GOLF_MODELS_URL", mirror.as_uri())
    path = registry.fetch_model("traj-10k")
    assert path == cache / "traj-10k.pt" and registry.sha256_file(path) == registry.PRETRAINED["traj-10k"].sha256
    assert [p.name for p in cache.iterdir()] == ["traj-10k.pt"]  # no temp file left
    model = load_model("traj-10k")  # now from the cache, no download
    assert model.provenance["name"] == "traj-10k"


def test_load_by_name_downloads_on_first_use(mirror, cache, monkeypatch):
    monkeypatch.setenv("GOLF_MODELS_URL", mirror.as_uri())
    assert load_model("traj-10k").provenance["sha256"] == registry.PRETRAINED["traj-10k"].sha256
    assert (cache / "traj-10k.pt").is_file()


def test_fetch_with_wrong_sha256_is_refused_and_leaves_nothing(mirror, cache, monkeypatch):
    bad = mirror / "checkpoints" / "traj-10k" / "NNP_checkpoint_actor"
    data = bytearray(bad.read_bytes())
    data[-1] ^= 0xFF
    bad.write_bytes(bytes(data))
    monkeypatch.setenv("GOLF_MODELS_URL", mirror.as_uri())
    with pytest.raises(CheckpointError, match="sha256.*refused"):
        registry.fetch_model("traj-10k")
    assert not cache.exists() or list(cache.iterdir()) == []


def test_tampered_cached_file_is_refused(mirror, cache, monkeypatch):
    monkeypatch.setenv("GOLF_MODELS_URL", mirror.as_uri())
    path = registry.fetch_model("traj-10k")
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CheckpointError, match="does not match the pinned"):
        load_model("traj-10k")


def test_fetch_failure_is_one_line(cache, tmp_path):
    with pytest.raises(CheckpointError, match="cannot download traj-100k") as exc:
        registry.fetch_model("traj-100k", url=(tmp_path / "nope").as_uri())
    assert "\n" not in str(exc.value)
    assert not cache.exists() or list(cache.iterdir()) == []


def test_register_a_trained_model(tmp_path, cache):
    from golf.models import build_model, save_model

    model = build_model("painn", elements=[1, 6, 8], n_atom_basis=8, n_interactions=1)
    path = tmp_path / "mine.pt"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "__version__", str(torch.__version__))
        save_model(model, path)
    assert main(["models", "register", "my-nnp", str(path), "--description", "test"]) == 0
    loaded = load_model("my-nnp")
    assert loaded.elements == [1, 6, 8] and loaded.provenance["name"] == "my-nnp"
    assert main(["models", "register", "my-nnp", str(path)]) == 2  # taken
    assert main(["models", "register", "GOLF-10k", str(path)]) == 2  # official
    rows = registry.list_models()
    assert rows[-1]["name"] == "my-nnp" and rows[-1]["elements"] == "H C O"
    assert main(["models", "unregister", "my-nnp"]) == 0
    with pytest.raises(CheckpointError, match="unknown model"):
        load_model("my-nnp")


def test_golf_models_lists(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in registry.PRETRAINED:
        assert name in out
    assert "shipped" in out and "download" in out and "H C N O F S Cl Br" in out and "2.51" in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == set(registry.PRETRAINED)


def test_model_name_on_the_command_line(tmp_path, capsys):
    smi = tmp_path / "in.smi"
    smi.write_text("CCO\n")
    out = tmp_path / "o.sdf"
    assert main(["optimize", "--model", "GOLF-10k", str(smi), "-o", str(out), "--max-steps", "3",
                 "--no-progress"]) == 0
    assert out.exists()


def test_unseen_element_refused_by_pretrained_model():
    import numpy as np

    model = load_model("baseline-NNP")
    with pytest.raises(InputError, match="never trained on element.*Si"):
        model.check_elements(np.array([6, 14, 1]))


def test_sha_helper_matches_hashlib(tmp_path):
    p = tmp_path / "x.bin"
    p.write_bytes(b"golf" * 100_000)
    assert registry.sha256_file(p) == hashlib.sha256(b"golf" * 100_000).hexdigest()


def test_golf_models_fetch_cli(mirror, cache, monkeypatch, capsys):
    monkeypatch.setenv("GOLF_MODELS_URL", mirror.as_uri())
    assert main(["models", "fetch", "traj-10k"]) == 0
    assert (cache / "traj-10k.pt").is_file()
    assert main(["models"]) == 0
    assert any(line.startswith("traj-10k") and "cached" in line for line in capsys.readouterr().out.splitlines())
    monkeypatch.setenv("GOLF_MODELS_URL", (mirror / "nowhere").as_uri())
    assert main(["models", "fetch", "traj-100k"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot download traj-100k" in err[0]


# ------------------------------------------------------------------ damaged registries, changed files
def _save_tiny(path, seed=0):
    from golf.models import build_model, save_model

    torch.manual_seed(seed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(torch, "__version__", str(torch.__version__))
        save_model(build_model("painn", elements=[1, 6, 8], n_atom_basis=8, n_interactions=1), path)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("where", ["a-file", "under-a-file"])
def test_register_into_an_impossible_cache_is_one_line(tmp_path, monkeypatch, capsys, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    cache = blocker if where == "a-file" else blocker / "sub" / "cache"
    monkeypatch.setenv("GOLF_MODELS_DIR", str(cache))
    model = _save_tiny(tmp_path / "mine.pt")
    assert main(["models", "register", "mine", str(model)]) == 2
    line = _one_error_line(capsys)
    assert f"cannot write the model registry {cache / 'registry.json'}" in line
    assert main(["models"]) == 0  # nothing registered: the listing still works


@pytest.mark.parametrize("content,what", [
    ("[]", "is a JSON list, expected an object"),
    ('{"models": []}', '"models" in the model registry is a JSON list'),
    ('{"models": {"mine": {"description": "x"}}}', "registered model 'mine' has no \"path\""),
    ('{"models": {"mine": "/x.pt"}}', "registered model 'mine' is a JSON str"),
    ('{"models": {"mine": {"path": "/x.pt", "elements": 6}}}', "registered model 'mine' has a \"elements\""),
    ("{not json", "unreadable model registry"),
])
def test_damaged_registry_is_one_line_everywhere(tmp_path, cache, capsys, content, what):
    cache.mkdir(parents=True)
    reg = cache / "registry.json"
    reg.write_text(content)
    smi = tmp_path / "in.smi"
    smi.write_text("CCO\n")
    for argv in (["models"], ["models", "--json"],
                 ["optimize", "--model", "mine", str(smi), "-o", str(tmp_path / "o.sdf"), "--no-progress"]):
        assert main(argv) == 2, argv
        line = _one_error_line(capsys)
        assert str(reg) in line and what in line, line
    with pytest.raises(CheckpointError, match="registry"):
        load_model("mine")
    assert not (tmp_path / "o.sdf").exists()
    if "mine" in content:  # a damaged entry can be removed by name
        assert main(["models", "unregister", "mine"]) == 0
        assert main(["models"]) == 0


def test_replaced_registered_file_is_refused_until_registered_again(tmp_path, cache, capsys, monkeypatch):
    path = _save_tiny(tmp_path / "my.pt", seed=0)
    assert main(["models", "register", "mine", str(path)]) == 0
    registered = registry.registered_models()["mine"]["sha256"]
    assert load_model("mine").provenance["sha256"] == registered
    _save_tiny(tmp_path / "other.pt", seed=1).replace(path)
    with pytest.raises(CheckpointError, match="changed since it was registered.*register it again") as exc:
        load_model("mine")
    assert "\n" not in str(exc.value)
    capsys.readouterr()
    assert main(["models", "--json"]) == 0
    row = next(r for r in json.loads(capsys.readouterr().out) if r["name"] == "mine")
    assert row["status"] == "changed" and row["sha256"] == registered  # the listing says what load refuses
    assert main(["models", "register", "mine", str(path), "--force"]) == 0
    assert load_model("mine").provenance["sha256"] == registry.sha256_file(path) != registered


def test_registered_file_is_hashed_only_when_its_stamp_changed(tmp_path, cache, monkeypatch):
    import os

    path = _save_tiny(tmp_path / "my.pt")
    register_model("mine", path)
    calls = []
    real = registry.sha256_file
    monkeypatch.setattr(registry, "sha256_file", lambda p: calls.append(p) or real(p))
    load_model("mine")
    assert calls == []  # size and mtime as registered: no hashing
    os.utime(path, ns=(0, 10**18))  # same bytes, new mtime: hashed once, accepted
    load_model("mine")
    assert len(calls) == 1
