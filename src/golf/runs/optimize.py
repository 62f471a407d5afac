"""``golf optimize``: relax conformations with an NNP (batched, ``golf.optim``) or with an oracle.

    from golf.runs.optimize import OptimizeSettings, optimize
    outcome = optimize("mols.smi", "relaxed.sdf", OptimizeSettings(model="GOLF-10k", max_steps=200))

Input: SMILES (``conformers`` ETKDG conformers each), SDF, XYZ/extXYZ or ASE db. Output: .sdf (bonds
kept, the input's own SDF fields passed through), .extxyz/.xyz or .db, with the fields of
``golf.outputs`` (``golf_energy_eV``, ``golf_fmax_eV_A``, ``golf_steps``, ``golf_converged``,
``golf_model``, ``golf_energy_reference``...). Oracles run in spawned worker processes.

One structure never aborts the batch (``golf.runs.batch_run``): a structure that cannot be read, that the
method cannot handle (an NNP: unseen elements, charged or open-shell for a neutral-only model,
fragments kept with ``keep_fragments``, more than ``golf.chem.MAX_ATOMS`` atoms; MMFF: bond orders
that cannot be assigned) or whose relaxation fails is reported on one stderr line and left out.
Salts are stripped to their largest organic fragment (one stderr line each) unless ``keep_fragments``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any

from golf.errors import InputError, SettingError
from golf.presets import COUNT, DEFAULT_DEVICE, DEVICE, DTYPE, FORCE, INTEGER, PH, STEPS, OracleRun, check_settings, one_of, setting
from golf.runs.predict import BatchOutcome
from golf.thresholds import NNP_FMAX, NNP_MAX_STEPS

METHODS = ("lbfgs", "lbfgs-precon", "lbfgs-golf", "lbfgs-ase", "fire", "gd")


@dataclass(frozen=True)
class OptimizeSettings:
    """Settings of :func:`optimize`.

    Each field is checked by the check declared with it (``golf.presets.setting``): an impossible
    value raises ``golf.errors.SettingError`` naming the field.

    Attributes:
        model: NNP (model name, checkpoint path or a loaded ``golf.models.Potential``); or
        oracle: relax with this oracle instead (xtb, mmff, dft): exactly one of the two.
        optimizer: one of ``METHODS``.
        fmax: convergence, max |force| per atom (eV/A).
        max_steps: step limit per conformation.
        batch_size: conformations optimized at once (None: automatic).
        conformers: ETKDG conformers per SMILES / 2D record.
        seed: conformer generation seed.
        device, dtype: of the model (oracle runs use float64); threads: torch threads (None: torch's in one
            process, the cores shared when several relax).
        processes: NNP relaxation processes (None: automatic, ``golf.runs.relax_pool.auto_processes``).
        workers: oracle worker processes.
        charge, multiplicity: of charged/open-shell input (None: an SDF record's fields, else neutral).
        keep_fragments: keep counter-ions/solvents (oracle relaxations only; an NNP refuses them).
        ph: protonate embedded molecules at this pH (optional dimorphite-dl); None: as given.
        progress: show progress bars.
    """

    model: Any = None
    oracle: str | None = None
    optimizer: str = setting("lbfgs-precon", one_of(METHODS))
    fmax: float = setting(NNP_FMAX, FORCE)
    max_steps: int = setting(NNP_MAX_STEPS, STEPS)
    batch_size: int | None = setting(None, COUNT)
    conformers: int = setting(1, COUNT)
    seed: int = setting(0, INTEGER)
    device: str = setting(DEFAULT_DEVICE, DEVICE)
    dtype: str = setting("float32", DTYPE)
    threads: int | None = setting(None, COUNT)
    processes: int | None = setting(None, COUNT)
    workers: int = setting(OracleRun.workers, COUNT)
    charge: int | None = setting(None, INTEGER)
    multiplicity: int | None = setting(None, COUNT)
    keep_fragments: bool = False
    ph: float | None = setting(None, PH)
    progress: bool = True

    def __post_init__(self) -> None:
        if (self.model is None) == (self.oracle is None):
            raise SettingError("oracle" if self.model is None else "model",
                               "give exactly one of model and oracle")
        check_settings(self)


def implicit_outputs(output: str) -> list[Any]:
    """What :func:`optimize` writes besides ``output``: nothing."""
    return []


def optimize(input: str, output: str, settings: OptimizeSettings) -> BatchOutcome:
    """Relax every structure of ``input`` and write ``output`` (.sdf, .extxyz/.xyz, .db) atomically.

    A summary line goes to stderr. InputError when no structure could be relaxed."""
    import numpy as np
    import torch

    from golf.formats import write_conformations
    from golf.optim import relax
    from golf.optim.state import MAX_STEPS
    from golf.outputs import model_energy_reference, oracle_energy_reference
    from golf.progress import progress_bar
    from golf.runs.batch_run import describe, load_nnp, read_batch, report_stripped, split_supported

    s = settings
    if s.model is not None:
        model, device, dtype, name = load_nnp(s.model, s.device, s.dtype, s.threads)  # before reading: what it can take
        bond_orders, neutral_only = False, model.neutral_only
        reference = model_energy_reference(name)
    else:
        from golf.oracles import oracle_class
        from golf.runs.data import oracle_spec

        oracle = OracleRun(oracle=s.oracle, workers=s.workers)
        spec = oracle_spec(oracle)  # the oracle and its settings, before any work
        bond_orders = bool(getattr(oracle_class(spec.name), "needs_bond_orders", False))
        neutral_only, name = False, f"oracle:{spec.name}"
        reference = oracle_energy_reference(spec.name)

    embed_bar: list = []  # made at the first molecule embedded: a SMILES file's ETKDG can take minutes

    def embedded(done: int, total: int) -> None:
        if not embed_bar:
            embed_bar.append(progress_bar(total=total, unit="mol", desc="embed", disable=not s.progress))
        embed_bar[0].update(1)
        if done == total:
            embed_bar[0].close()

    confs, skipped = read_batch("optimize", input, bond_orders=bond_orders, neutral_only=neutral_only,
                                conformers=s.conformers, seed=s.seed, charge=s.charge,
                                multiplicity=s.multiplicity, embedded=embedded,
                                fragments="keep" if s.keep_fragments else "strip", ph=s.ph)
    t0 = time.perf_counter()
    if s.model is not None:
        from golf.runs.relax_pool import relax_nnp

        confs = split_supported(model, confs, skipped, relax=True)
        report_stripped("optimize", confs)
        with progress_bar(total=len(confs), unit="conf", desc="optimize", disable=not s.progress) as bar:
            recs, _ = relax_nnp(s.model, model, confs, s.processes, s.threads, device, dtype, method=s.optimizer,
                                fmax=s.fmax, max_steps=s.max_steps, batch_size=s.batch_size, progress=bar.update)
    else:
        from golf.optim import OracleEnergyForces
        from golf.runs.data import open_executor

        report_stripped("optimize", confs)
        with open_executor(oracle, spec) as ex, \
                progress_bar(total=len(confs), unit="conf", desc="optimize", disable=not s.progress) as bar:
            recs = relax(OracleEnergyForces(ex, templates=confs), confs, dtype=torch.float64, method=s.optimizer,
                         fmax=s.fmax, max_steps=s.max_steps, batch_size=s.batch_size, progress=bar.update)
    seconds = time.perf_counter() - t0

    done, props, n_failed = [], [], 0
    for c, r in zip(confs, recs):
        if not r.converged and r.reason != MAX_STEPS:  # the relaxation itself failed
            n_failed += 1
            skipped(f"{describe(c)}: relaxation failed: {r.reason}")
            continue
        done.append(c.with_positions(r.positions))
        props.append({"golf_model": name, "golf_energy_eV": float(r.energy), "golf_energy_reference": reference,
                      "golf_fmax_eV_A": float(r.fmax), "golf_steps": int(r.n_steps),
                      "golf_force_calls": int(r.n_force_calls), "golf_converged": bool(r.converged),
                      "golf_stop_reason": str(r.reason),
                      "stripped_fragments": str(c.info.get("stripped_fragments", ""))})
    if not done:
        raise InputError(f"no structure could be relaxed ({skipped.reasons[-1]})")
    if s.model is not None:  # how far to trust each NNP relaxation (golf.trust); NaN where MMFF cannot type it
        from golf.trust import mmff_energy_drop
        from golf.units import EV_TO_KCAL_MOL

        for p, drop in zip(props, mmff_energy_drop(done)):
            p["trust_mmff_drop_kcal_mol"] = float(drop) * EV_TO_KCAL_MOL
    from golf.errors import OutputError

    try:
        write_conformations(output, done, props, kind="optimize")
    except OutputError as exc:  # say that the relaxations are lost, not only that the file is missing
        raise OutputError(exc.path, exc.cause, f"{exc.note}; the {len(done)} relaxed conformations were not "
                                               "saved: free space or choose another output and run again") from None
    n_mols, n_stereo = input_molecules(confs)
    n_conv = sum(p["golf_converged"] for p in props)
    stereo = f" ({n_stereo} stereoisomers)" if n_stereo > n_mols else ""
    print(
        f"golf optimize: {n_mols} molecules{stereo}, {len(recs)} conformations, {n_conv} converged"
        f"{f', {n_failed} failed' if n_failed else ''}"
        f"{f', {len(skipped)} left out (reported above)' if len(skipped) else ''}, "
        f"median steps {np.median([r.n_steps for r in recs]):.0f}, "
        f"{len(recs) / max(seconds, 1e-9):.2f} conformations/s -> {output}",
        file=sys.stderr,
    )
    return BatchOutcome(str(output), len(done), list(skipped.reasons))


def input_molecules(confs: list[Any]) -> tuple[int, int]:
    """``(input molecules, stereoisomers)`` among conformations: a molecule is a record name, else a
    constitution (SMILES without stereo), else a molecule id, so the enantiomers of a racemate and
    the conformers of one molecule count once; its stereoisomers are its distinct isomeric SMILES."""
    from golf.chem import quiet_rdkit

    stereo: dict[str, set[str]] = {}
    for c in confs:
        flat = ""
        if c.smiles:
            from rdkit import Chem

            with quiet_rdkit():
                mol = Chem.MolFromSmiles(c.smiles)
            flat = Chem.MolToSmiles(mol, isomericSmiles=False) if mol is not None else c.smiles
        key = str(c.info.get("name") or flat or f"#{c.mol_id}")
        stereo.setdefault(key, set()).add(c.smiles or f"#{c.mol_id}")
    return len(stereo), sum(len(v) for v in stereo.values())
