"""``golf adapt``: GOLF on a user's own molecules, from a pretrained model, at the user's level of theory.

The same GOLF run as ``golf train --golf`` (``golf.runs.golf.train_golf``, the official rules: surrogate
check, labels, filters, replay mixing, block cadence, the official fine-tuning learning rate 1e-4),
prepared for a series of molecules:

1. ``start.db``: ETKDGv3 conformers of the series labelled by the genuine oracle (``golf.runs.build``):
   the episodes' starts and the replay buffer's D0.
2. ``init.pt``: the pretrained model with its per-element energy offsets refit to ``start.db`` and an
   oracle-labelled generic set (as ``golf train --init --refit-offsets``) when the oracle's level of theory
   is not the model's, or when the model's energies have no per-element offsets (``energy_offsets_known``:
   the official checkpoints predict total energies minus reference energies that are not in the
   repository, so even at their own level of theory their energies sit tens of keV from an oracle's
   total energies); forces and the rest of the weights are unchanged.
3. ``generic.db``: generic conformations mixed into every replay batch (``Adaptation.generic_share``),
   so the adapted model stays good outside the series (golf's option; the official loop has no such
   source). ``teacher``: NCI-pool conformations labelled by the starting model itself (``init.pt``
   when its offsets were refit; no oracle calls; only when the oracle is at the model's level of theory,
   else the labels would mix two levels); ``oracle``: the same conformations labelled by the oracle (they cost calls); ``none``;
   or a labelled database of the user's.
4. ``golf/``: the GOLF run directory (``golf.runs.golf``) with what is left of the budget.
5. ``model.pt``: the adapted model, registered under ``Adaptation.name`` when given.

``budget`` counts every oracle call the adaptation makes (start set, oracle-labelled generic set and
GOLF), failed ones included: what the user pays. Each stage resumes from what is on disk
(``resume=True``), after a kill -9 too; ``adapt.json`` holds the settings that define the run, and a
resume with other ones is refused.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from golf.errors import GolfError, InputError, RunExists
from golf.presets import COUNT, DEFAULT_MODEL, FRACTION, GolfTraining, Molecules, OracleRun, check_settings, one_of, setting

START_DB = "start.db"
GENERIC_DB = "generic.db"
INIT = "init.pt"
GOLF_DIR = "golf"
MODEL = "model.pt"
CONFIG = "adapt.json"
SUMMARY = "summary.json"

GENERIC_KINDS = ("auto", "teacher", "oracle", "none")
REFIT_CHOICES = ("auto", "always", "never")


@dataclass(frozen=True)
class Adaptation:
    """What ``golf adapt`` does around the GOLF run.

    Attributes:
        model: the pretrained model to adapt (name or file).
        budget: every oracle call of the adaptation (start set, oracle-labelled generic set, GOLF).
        conformers: ETKDGv3 conformers per series molecule in the start set.
        generic: "auto" (teacher when the oracle is at the model's level of theory, else oracle),
            "teacher", "oracle", "none", or the path of a labelled database.
        generic_molecules: NCI-pool molecules (training split, one conformer each) of the generic set.
        generic_share: fraction of every replay batch drawn from the generic set.
        refit_offsets: "auto" (when the levels of theory differ or the model's energies have no
            per-element offsets, as the official checkpoints'), "always" or "never".
        name: register the adapted model under this name (None: not registered).
        seed: conformer generation and the generic set's molecule order.
    """

    model: str = DEFAULT_MODEL
    budget: int = setting(300, COUNT)
    conformers: int = setting(2, COUNT)
    generic: str = "auto"
    generic_molecules: int = setting(200, COUNT)
    generic_share: float = setting(0.2, FRACTION)
    refit_offsets: str = setting("auto", one_of(REFIT_CHOICES))
    name: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_settings(self)


#: The GOLF settings of an adaptation: the official fine-tuning learning rate (``GolfTraining.lr``,
#: the official run_training_GOLF_10k.sh --lr 1e-4) and a small series' scale.
ADAPT_GOLF = GolfTraining(n_parallel=8, utd_ratio=5, batch_size=16, eval_fraction=0.2, eval_every=20,
                          checkpoint_every=8)


def level_of_theory(spec: Any) -> str:
    """A comparable name of an oracle's level of theory ("wb97x-d/def2-svp", "xtb/gfn2", "mmff")."""
    name, settings = spec.name, dict(spec.settings or {})
    if name == "dft":
        from golf.oracles.dft import WB97X_D_NAMES

        xc = str(settings.get("xc", "wb97x-d")).lower()
        xc = "wb97x-d" if xc in WB97X_D_NAMES else xc
        return f"{xc}/{str(settings.get('basis', 'def2-svp')).lower()}"
    if name == "xtb":
        return f"xtb/{str(settings.get('method', 'gfn2')).lower()}"
    return name


def model_level(path: Path, info: dict[str, Any] | None) -> str | None:
    """The level of theory a model was trained at, when it is known: a pretrained model's, or the
    oracle of a golf-trained checkpoint's provenance (None: unknown)."""
    if info and info.get("level_of_theory"):
        return str(info["level_of_theory"]).lower().replace("ω", "w")
    from golf.models import load_model

    prov = load_model(path).provenance or {}
    if prov.get("level_of_theory"):
        return str(prov["level_of_theory"])
    if prov.get("oracle"):
        from golf.oracles.base import OracleSpec

        return level_of_theory(OracleSpec(str(prov["oracle"]), prov.get("oracle_settings") or {}))
    return None


def energy_offsets_known(path: Path) -> bool:
    """Whether the model's energies include per-element reference energies (atomrefs), so that they are an
    oracle's total energies. golf-trained models fit theirs to their data; the official GOLF checkpoints
    carry none (their training energies had references subtracted that the repository does not hold)."""
    from golf.models import load_model

    return bool((load_model(path).atomrefs != 0).any())


def adapt_identity(molecules: Molecules, settings: Adaptation, golf: GolfTraining, oracle: OracleRun) -> dict[str, Any]:
    """What defines an adaptation (adapt.json): the model, the oracle, the series, the settings and the
    GOLF settings but its budget; a resume must find the same (``_check_identity``)."""
    from golf.models.registry import resolve_model
    from golf.runs.data import oracle_spec

    spec = oracle_spec(oracle)
    model_path, info = resolve_model(settings.model)
    oracle_level, start_level = level_of_theory(spec), model_level(model_path, info)
    same_level = start_level is not None and _same_level(start_level, oracle_level)
    generic = settings.generic
    if generic == "auto":
        generic = "teacher" if same_level else "oracle"
    if generic == "teacher" and not same_level:
        raise InputError(f"generic 'teacher' labels come from {settings.model} ({start_level or 'level unknown'}), "
                         f"not from the oracle ({oracle_level}): they would mix two levels of theory; "
                         "use 'oracle', 'none' or a labelled database")
    if generic not in GENERIC_KINDS and not Path(generic).is_file():
        raise InputError(f"generic: {generic}: no such labelled database (or one of {GENERIC_KINDS})")
    refit = settings.refit_offsets == "always" or (
        settings.refit_offsets == "auto" and not (same_level and energy_offsets_known(model_path)))
    series = dataclasses.replace(molecules, conformers=settings.conformers, seed=settings.seed)
    identity = dict(model=str(settings.model), model_file=str(model_path), oracle=spec.name,
                    oracle_settings=spec.settings, molecules=dataclasses.asdict(series),
                    adaptation=dataclasses.asdict(settings), generic=generic, refit=refit,
                    golf={k: v for k, v in dataclasses.asdict(golf).items() if k not in ("budget", "generic_share")})
    return identity


def adapt(
    molecules: Molecules,
    out: str | os.PathLike,
    settings: Adaptation = Adaptation(),
    golf: GolfTraining = ADAPT_GOLF,
    oracle: OracleRun = OracleRun(),
    resume: bool = False,
    progress: bool = True,
) -> Path:
    """Adapt ``settings.model`` to ``molecules`` with GOLF; returns the path of the adapted model
    (``out/model.pt``). See the module docstring for the stages and files."""
    from golf.models.registry import resolve_model
    from golf.runs.data import choose_conformations, oracle_spec

    out = Path(out)
    identity = adapt_identity(molecules, settings, golf, oracle)
    spec = oracle_spec(oracle)
    model_path, generic, refit = Path(identity["model_file"]), identity["generic"], identity["refit"]
    series = dataclasses.replace(molecules, conformers=settings.conformers, seed=settings.seed)
    start_level = model_level(model_path, resolve_model(settings.model)[1])
    oracle_level = level_of_theory(spec)
    _check_identity(out, identity, resume)

    confs, _ = choose_conformations(series)
    planned = len(confs) + (settings.generic_molecules if generic == "oracle" else 0)
    if planned >= settings.budget:
        raise InputError(f"a budget of {settings.budget} oracle calls does not cover the start set ({len(confs)} "
                         f"conformations{', and the generic set' if generic == 'oracle' else ''}) and a GOLF run; "
                         "raise the budget or lower the conformers per molecule")
    out.mkdir(parents=True, exist_ok=True)
    _write_json(out / CONFIG, identity)
    say = (lambda msg: print(f"golf adapt: {msg}", file=sys.stderr))

    from golf.runs.build import build

    start = out / START_DB
    say(f"start set: {len(confs)} conformations of {len({c.mol_id for c in confs})} molecules, labelled by {spec.name}")
    build(str(start), series, oracle, quiet=not progress)
    calls = _calls(start)
    generic_dbs: list[str] = []
    if generic == "oracle":
        say(f"generic set: {settings.generic_molecules} NCI molecules labelled by {spec.name}")
        build(str(out / GENERIC_DB), _generic_molecules(out, settings, model_path, confs), oracle,
              quiet=not progress)
        generic_dbs = [str(out / GENERIC_DB)]
        calls += _calls(out / GENERIC_DB)
    elif generic not in ("none", "teacher"):
        generic_dbs = [str(generic)]
    left = settings.budget - calls
    if left < 1:
        raise GolfError(f"the start and generic sets took {calls} of the {settings.budget} oracle calls; "
                        "nothing is left for GOLF")
    baseline: Path = model_path
    if refit:
        from golf.runs.train import refit_pretrained

        if not (out / INIT).exists():
            # the generic set too: its elements may be absent from the series, and an element whose offset
            # stays at the model's level would put its labels hundreds of eV away (training diverges)
            # (teacher labels come after the refit, from the refit model)
            fit = refit_pretrained(model_path, [str(start), *generic_dbs], out / INIT)
            say(f"energy offsets of {settings.model} refit to the start{' and generic' if generic_dbs else ''} "
                f"set{'s' if generic_dbs else ''} ({start_level or 'level unknown'} -> {oracle_level}): "
                f"energy MAE {fit['energy_mae_mev_before']:.0f} -> {fit['energy_mae_mev_after']:.0f} meV")
        baseline = out / INIT
    if generic == "teacher":  # labelled by the model GOLF starts from: the oracle's energy scale after a refit
        generic_dbs = [str(_teacher_set(out / GENERIC_DB, model_path, baseline, settings, confs, say))]
    run = dataclasses.replace(golf, budget=left, generic_share=settings.generic_share if generic_dbs else 0.0)
    from golf.runs.golf import train_golf

    say(f"GOLF: {left} oracle calls ({calls} spent on the start/generic sets), from {baseline}")
    golf_dir = out / GOLF_DIR
    trained = train_golf(baseline, [str(start)], golf_dir, run, oracle, resume=resume and golf_dir.exists(),
                         progress=progress, generic=generic_dbs)
    return _finish(out, trained, settings, identity, calls, say, {c.smiles for c in confs if c.smiles})


def _same_level(a: str, b: str) -> bool:
    norm = (lambda s: s.lower().replace("ω", "w").replace("wb97xd", "wb97x-d").replace(" ", ""))
    return norm(a) == norm(b)


def _check_identity(out: Path, identity: dict[str, Any], resume: bool) -> None:
    """Refuse to write into a directory that is not this adaptation (``golf.runs.rundir`` rules: settings
    added to golf after the run began, or stored as null by an older golf, are read at their default)."""
    from golf.runs.rundir import RunDir

    if not out.exists() or not any(out.iterdir()):
        return
    rundir = RunDir(out, CONFIG)
    if not rundir.config_path.exists():
        raise GolfError(f"{out} exists and is not a golf adapt directory; choose another output directory")
    if not resume:
        raise RunExists(f"{out} holds an adaptation")
    defaults = {k: v for k, v in dataclasses.asdict(GolfTraining()).items() if k not in ("budget", "generic_share")}
    rundir.check_identity(identity, defaults={"golf": defaults})


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    from golf.io import atomic_write_json
    from golf.runs.rundir import as_json

    atomic_write_json(path, as_json(doc))


def _calls(db: Path) -> int:
    """Oracle calls a labelled database cost: its rows and its logged failures."""
    from golf.db import count_rows
    from golf.io import count_lines

    n = count_rows(db) if db.exists() else 0
    return n + sum(count_lines(p) for p in db.parent.glob(db.name + "*.failures*"))


GENERIC_SMI = "generic.smi"
#: Unseen NCI molecules (test split) on which ``summary.json`` reports the teacher drift (teacher mode only).
DRIFT_MOLECULES = 24


def _outside_series(split: str, seed: int, known: set[int], series: set[str]) -> Iterator[tuple[int, str]]:
    """(NCI id, SMILES) of the NCI pool's ``split`` in its seeded order, made only of the elements ``known``
    and not in the series (canonical SMILES ``series``): the generic set's and the teacher drift's molecules."""
    from rdkit import Chem

    from golf.pool import select_pool_molecules

    for mol_id, smi in select_pool_molecules(None, split=split, seed=seed):
        if smi not in series and {a.GetAtomicNum() for a in Chem.AddHs(Chem.MolFromSmiles(smi)).GetAtoms()} <= known:
            yield mol_id, smi


def _generic_molecules(out: Path, settings: Adaptation, model_path: Path, series: list) -> Molecules:
    """The generic set's molecules, written once to ``out/generic.smi``: the first
    ``generic_molecules`` of the NCI pool's training split (seeded order) made only of elements the
    model knows and not in the series (by canonical SMILES); one ETKDGv3 conformer each."""
    path = out / GENERIC_SMI
    if not path.exists():
        from itertools import islice

        from golf.io import atomic_path
        from golf.models import load_model

        known = set(load_model(model_path).elements)
        pool = _outside_series("train", settings.seed, known, {c.smiles for c in series if c.smiles})
        lines = [f"{smi} {mol_id}\n" for mol_id, smi in islice(pool, settings.generic_molecules)]
        with atomic_path(path, suffix=".smi") as tmp:
            tmp.write_text("".join(lines))
    return Molecules(smiles=str(path), conformers=1, seed=settings.seed)


def _teacher_set(path: Path, model_path: Path, labeller: Path, settings: Adaptation, series: list, say) -> Path:
    """NCI-pool conformations (training split, not the series' molecules; chosen for ``model_path``'s
    elements) labelled by ``labeller`` (the model GOLF starts from), written once (atomically) to ``path``."""
    if path.exists():
        return path

    from golf.batch import Batch
    from golf.db import append_labelled
    from golf.io import atomic_path
    from golf.models import load_model
    from golf.oracles.base import OracleResult
    from golf.runs.data import choose_conformations

    confs, _ = choose_conformations(_generic_molecules(path.parent, settings, model_path, series))
    model = load_model(labeller)
    say(f"generic set: {len(confs)} NCI conformations labelled by {settings.model}"
        f"{' (offsets refit)' if labeller != model_path else ''} (no oracle calls)")
    with atomic_path(path, suffix=".db") as tmp:
        for lo in range(0, len(confs), 32):
            chunk = confs[lo:lo + 32]
            energy, forces = model.energy_and_forces(Batch.from_conformations(chunk, dtype=model.dtype))
            per_mol = Batch.from_conformations(chunk).split(forces.detach())
            for c, e, f in zip(chunk, energy.detach().double().numpy(), per_mol):
                res = OracleResult(ok=True, energy=float(e), forces=f.double().numpy())
                append_labelled(tmp, c, res, f"teacher:{settings.model}", key=f"generic-{c.mol_id}-{c.conf_id}")
    return path


def _generic_drift(model: Any, teacher_path: Path, settings: Adaptation, series: set[str]) -> dict[str, Any]:
    """``golf.evaluation.drift.teacher_drift`` of the adapted model against the start model on
    ``DRIFT_MOLECULES`` NCI test-split molecules outside the series (canonical SMILES ``series``; the generic
    set is drawn from the training split), one ETKDGv3 conformer each: the forgetting that costs no oracle
    call (kcal/mol)."""
    import numpy as np

    from golf.chem import generate_conformers
    from golf.evaluation.drift import teacher_drift
    from golf.models import load_model

    teacher = load_model(teacher_path)
    confs = []
    for mol_id, smi in _outside_series("test", settings.seed, set(teacher.elements), series):
        if len(confs) == DRIFT_MOLECULES:
            break
        try:
            confs += generate_conformers(smi, 1, seed=settings.seed, mol_id=mol_id)
        except GolfError:  # an embedding failure: the next molecule
            continue
    drift = teacher_drift(model, teacher, confs)
    finite = drift[np.isfinite(drift)]
    return dict(teacher_drift_n=len(confs), teacher_drift_fell_apart=int(len(drift) - len(finite)),
                teacher_drift_median_kcal_mol=float(np.median(finite)) if len(finite) else None,
                teacher_drift_molecules=[int(c.mol_id) for c in confs])


def _finish(out: Path, trained: Path, settings: Adaptation, identity: dict[str, Any], calls_sets: int,
            say, series: set[str]) -> Path:
    """``out/model.pt`` with the adaptation's provenance, registration, and a summary of held-out errors."""
    import csv

    from golf.models import load_model, save_model

    model = load_model(trained)
    save_model(model, out / MODEL, provenance=dict(
        kind="golf adapt", model=identity["model"], oracle=identity["oracle"],
        oracle_settings=identity["oracle_settings"], series=identity["molecules"], budget=settings.budget))
    rows = list(csv.DictReader(open(out / GOLF_DIR / "log.csv"))) if (out / GOLF_DIR / "log.csv").exists() else []
    key = "heldout_forces_mae_mev_a"
    first = next((r for r in rows if r.get(key)), None)
    last = next((r for r in reversed(rows) if r.get(key)), None)
    summary = dict(model=str(out / MODEL), calls_start_and_generic=calls_sets,
                   calls_golf=int(last["calls"]) if last else None,
                   heldout_forces_mae_mev_a_start=float(first[key]) if first else None,
                   heldout_forces_mae_mev_a_end=float(last[key]) if last else None)
    if identity["generic"] == "teacher":
        drift = _generic_drift(model, Path(identity["model_file"]), settings, series)
        summary.update(drift)
        median = drift["teacher_drift_median_kcal_mol"]
        say(f"teacher drift on {drift['teacher_drift_n']} unseen NCI molecules: median "
            f"{'-' if median is None else f'{median:.2f}'} kcal/mol ({settings.model}'s energy at the adapted "
            f"model's minima above its own; {drift['teacher_drift_fell_apart']} fell apart)")
    if settings.name:
        from golf.runs.models import register_model

        register_model(settings.name, out / MODEL, description=f"{settings.model} adapted by golf adapt "
                       f"({identity['oracle']}, {settings.budget} oracle calls)", overwrite=True)
        summary["name"] = settings.name
    _write_json(out / SUMMARY, summary)
    if first and last:
        say(f"held-out start-set force MAE {float(first[key]):.0f} -> {float(last[key]):.0f} meV/A")
    say(f"adapted model: {out / MODEL}" + (f" (registered as {settings.name})" if settings.name else ""))
    return out / MODEL
