"""What the runs share: the validated oracle spec and its executor (every run), and for the data
pipelines (``build``, ``reference``, ``trajectories``) choosing conformations, checking the output
database, streaming calls through the executor and the failure log.

Every record has a unique key (``golf.db.record_key``) and an identity (``identity_key``: the
molecule's canonical SMILES with the recipe of a generated conformer or the hash of a given
geometry; never its line or record number) and is committed as soon as its result arrives;
re-running ``build`` or ``reference`` skips identities already in the db, so adding, removing or
reordering molecules in the input neither relabels nor duplicates anything. Failed oracle calls are not written to
the db; they are appended to ``OUT.failures.jsonl`` (one JSON object per failure: key, mol_id,
conf_id, smiles, task, reason, time) and retried on the next run.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Any, Callable

from golf.conformation import Conformation
from golf.errors import InputError
from golf.oracles.base import OracleSpec
from golf.presets import Molecules, OracleRun
from golf.runs.guard import Output


#: the kind of database each data command writes (``golf.db.DB_KINDS``)
DB_KIND = {"build": "dataset", "reference": "reference", "trajectories": "trajectories"}


def failures_path(out: str | os.PathLike) -> str:
    """The failure log of a data command writing ``out``: ``OUT.failures.jsonl``."""
    return os.fspath(out) + ".failures.jsonl"


def arrived_path(out: str | os.PathLike) -> str:
    """Where ``trajectories`` keeps relaxations not yet in ``out``: ``OUT.arrived/``."""
    return os.fspath(out) + ".arrived"


def implicit_outputs(command: str, out: str | os.PathLike) -> list[Output]:
    """What the data command ``command`` ("build", "reference", "trajectories") writes beside its
    database ``out`` without being told: the failure log, and for trajectories the arrived relaxations."""
    outputs = [Output(failures_path(out), option=f"the failure log beside {os.fspath(out)}")]
    if command == "trajectories":
        outputs.append(Output(arrived_path(out), "dir", option=f"the arrived relaxations beside {os.fspath(out)}"))
    return outputs


def oracle_spec(run: OracleRun) -> OracleSpec:
    """The validated spec of ``run``'s oracle (``golf.oracles.validated_spec``)."""
    from golf.oracles import validated_spec

    return validated_spec(run.oracle, run.settings, local=run.executor != "dask")


def open_executor(run: OracleRun, spec: OracleSpec) -> Any:
    """An open-able ``OracleExecutor`` for ``spec`` where ``run`` says (its numbers checked by ``OracleRun``)."""
    from golf.oracles.executors import make_executor

    return make_executor(spec, kind=run.executor, n_workers=run.workers, threads_per_worker=run.threads_per_worker,
                         scheduler=run.scheduler, timeout=run.timeout)


def choose_conformations(m: Molecules, default_molecules: int | None = None) -> tuple[list[Conformation], dict]:
    """Conformations selected by ``m`` and (confs, stats); ``default_molecules`` pool molecules when
    ``m.molecules`` is None (None: all of the split). A bad record of an input file is reported on
    stderr, listed in ``stats["bad_records"]`` and skipped; InputError when no record is good."""
    from golf import chem, formats, pool

    stats: dict[str, Any] = {"source": "", "skipped_molecules": 0, "bad_records": []}
    path = m.smiles or m.input
    if path:
        bad = stats["bad_records"]
        confs = formats.read_conformations(
            path, conformers=m.conformers, seed=m.seed, charge=m.charge,
            multiplicity=m.multiplicity, displacement=m.displacement, on_error=lambda exc: bad.append(str(exc)),
        )
        if not confs:  # nothing to do: the first reason is the one-line error
            raise InputError(bad[0] if bad else f"{path}: no molecules in file")
        for reason in bad:  # one bad record is reported and the others go on
            print(f"golf data: skipped {reason}", file=sys.stderr)
        stats["source"] = str(path)
        if m.molecules is not None:
            keep, seen = [], []
            for c in confs:
                if c.mol_id not in seen:
                    seen.append(c.mol_id)
                if len(seen) <= m.molecules and c.mol_id in seen[: m.molecules]:
                    keep.append(c)
            confs = keep
        return confs, stats
    n = m.molecules if m.molecules is not None else default_molecules  # counts checked by ``Molecules``
    lo, hi = m.min_heavy, m.max_heavy
    ordered = pool.select_pool_molecules(
        None, split=m.split, test_fraction=m.test_fraction, seed=m.seed, min_heavy=lo, max_heavy=hi,
    )
    confs: list = []
    n_ok = 0
    for mol_id, smi in ordered:
        if n is not None and n_ok >= n:
            break
        try:
            cs = chem.generate_conformers(smi, m.conformers, m.seed, m.displacement, mol_id=mol_id)
        except InputError:
            stats["skipped_molecules"] += 1
            continue
        confs.extend(cs)
        n_ok += 1
    if not confs:
        raise InputError(f"no molecules in the NCI pool with {lo}..{hi} heavy atoms in split {m.split!r}")
    if n is not None and n_ok < n:
        print(f"golf data: warning: only {n_ok} molecules available in split {m.split!r} "
              f"with {lo}..{hi} heavy atoms", file=sys.stderr)
    stats["source"] = f"NCI pool ({m.split}, {lo}..{hi} heavy atoms, seed {m.seed})"
    return confs, stats


def check_out(out: str, spec: OracleSpec, kind: str) -> None:
    """OUT must be a .db; if it exists it must be a database of ``kind`` (``golf.db.DB_KINDS``: the
    one the command appends to) holding labels of the same oracle and settings."""
    import json

    from golf.db import db_oracle
    from golf.oracles import same_settings
    from golf.runs.guard import Output, check_db_output

    from golf.formats import check_writable

    if not out.lower().endswith(".db"):
        raise InputError(f"{out}: the output must be an ASE SQLite database ending in .db")
    if os.path.isdir(out):
        raise InputError(f"{out}: the output is a directory")
    check_writable(out, (".db",), option="output")  # before any oracle call
    check_db_output(Output(out, option="output", db=kind, append=True))
    if os.path.exists(out) and os.path.getsize(out) > 0:
        try:
            prev = db_oracle(out)
        except Exception as exc:
            raise InputError(f"{out}: exists and is not a readable ASE database ({exc})") from None
        if prev is not None:
            name, settings = prev
            if name != spec.name or not same_settings(name, settings, spec.settings):
                given = json.loads(json.dumps(spec.settings, sort_keys=True, default=str))
                raise InputError(
                    f"{out} already holds records labelled with {name} {settings}; "
                    f"not mixing with {spec.name} {given} (choose another output)"
                )


def log_failure(out: str, conf: Conformation, key: str, task: str, reason: str) -> None:
    """Append one failed call to ``OUT.failures.jsonl`` (fsynced)."""
    from golf.io import append_jsonl

    append_jsonl(failures_path(out), dict(key=key, mol_id=conf.mol_id, conf_id=conf.conf_id, smiles=conf.smiles,
                                               task=task, reason=reason, time=time.strftime("%Y-%m-%dT%H:%M:%S")))


def generation_recipe(m: Molecules) -> str | None:
    """How ``m``'s conformers are generated from SMILES (ETKDG seed, displacement), or None when
    ``m`` reads given geometries (SDF, XYZ, db). Part of the identity of generated conformers."""
    from golf.formats import CSV_EXTS, SMILES_EXTS

    path = m.smiles or m.input
    if path and not str(path).lower().endswith(SMILES_EXTS + CSV_EXTS):
        return None
    return f"seed={m.seed},displacement={m.displacement:g}"


def identity_key(conf: Conformation, recipe: str | None) -> str:
    """The record key of a conformation by what it is: ``SMILES#conf_id@recipe`` for a conformer
    generated by ``recipe`` (``generation_recipe``), ``SMILES@geometry-hash`` for a given geometry.
    Without a SMILES: ``golf.db.record_key``."""
    from golf.db import geometry_hash, record_key

    if not conf.smiles:
        return record_key(conf)
    if recipe is not None:
        return f"{conf.smiles}#{conf.conf_id}@{recipe}"
    return f"{conf.smiles}@{geometry_hash(conf.numbers, conf.positions)}"


@dataclasses.dataclass(frozen=True)
class Pending:
    """What a data command does with its chosen conformations: ``todo`` (record key, conformation) to
    compute, ``stored`` skipped because already in the output db, ``duplicates`` skipped because they
    repeat an earlier input conformation (same ``identity_key``)."""

    todo: list[tuple[str, Conformation]]
    stored: int
    duplicates: int

    def describe(self, out: str) -> str:
        """``"3 already in OUT, 1 duplicate in the input"`` for the command's first line."""
        plural = "" if self.duplicates == 1 else "s"
        dup = f", {self.duplicates} duplicate{plural} in the input" if self.duplicates else ""
        return f"{self.stored} already in {out}{dup}"

    def skipped(self) -> dict[str, int]:
        """The two skip counts of the command's summary."""
        return {"skipped (already in db)": self.stored, "duplicates in input": self.duplicates}


def pending(confs: list[Conformation], out: str, recipe: str | None = None) -> Pending:
    """The (record key, conformation) of ``confs`` not yet in ``out``, in order, and what was skipped.

    A conformation repeats the input when an earlier one has the same ``identity_key`` (``recipe``: see
    ``generation_recipe``), and is in ``out`` when its identity is, or, for rows of older databases
    without identities, its ``golf.db.record_key``. The ones to do carry their identity in
    ``info["identity"]`` (stored with the row). A molecule already in ``out`` keeps the mol_id it has
    there, and a new one never takes another molecule's mol_id.
    """
    from golf.db import record_key, stored_identities

    identities, keys, mol_ids = stored_identities(out)
    used = set(mol_ids.values())
    new_ids: dict[tuple[int, str], int] = {}  # (input mol_id, SMILES) -> mol_id in out
    seen: set[str] = set()
    todo, n_stored, n_duplicates = [], 0, 0
    for c in confs:
        ident = identity_key(c, recipe)
        if ident in seen:
            n_duplicates += 1
            continue
        seen.add(ident)
        if ident in identities or record_key(c) in keys:
            n_stored += 1
            continue
        if c.smiles in mol_ids:
            c.mol_id = mol_ids[c.smiles]
        elif c.smiles:
            if (c.mol_id, c.smiles) not in new_ids:
                mol_id = c.mol_id if c.mol_id not in used else max(used) + 1
                new_ids[(c.mol_id, c.smiles)] = mol_id
                used.add(mol_id)
            c.mol_id = new_ids[(c.mol_id, c.smiles)]
        c.info["identity"] = ident
        todo.append((record_key(c), c))
    return Pending(todo, n_stored, n_duplicates)


def bar(total: int, desc: str, quiet: bool) -> Any:
    from golf.progress import progress_bar

    return progress_bar(total=total, desc=desc, unit="call", disable=quiet, smoothing=0.1)


def stream(ex: Any, items: list, task: str, task_kwargs: dict, handle: Callable[[str, Any], None], bar: Any, window: int) -> None:
    """Submit ``items`` = [(key, conf)] with at most ``window`` in flight; ``handle(key, result)``
    for each result as it arrives."""
    it = iter(items)
    for key, conf in it:
        ex.submit(conf, key, task=task, **task_kwargs)
        if ex.n_pending >= window:
            break
    exhausted = ex.n_pending < window
    while ex.n_pending:
        for key, result in ex.poll(timeout=1.0):
            handle(key, result)
            bar.update(1)
            if not exhausted:
                nxt = next(it, None)
                if nxt is None:
                    exhausted = True
                else:
                    ex.submit(nxt[1], nxt[0], task=task, **task_kwargs)


def report_failures(cmd: str, out: str, n_failed: int, n_done: int, first_reason: str) -> None:
    """One stderr line on the failed oracle calls of a run: their count and the first reason."""
    if n_failed:
        print(f"golf data {cmd}: {n_failed} of {n_done} oracle calls failed (first: {first_reason or 'unknown'}); "
              f"all in {failures_path(out)} (retried on re-run)", file=sys.stderr)


def summary(cmd: str, out: str, counts: dict, seconds: float, n_calls: int) -> None:
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    rate = n_calls / seconds if seconds > 0 else 0.0
    print(f"golf data {cmd}: {parts} in {seconds:.1f} s ({rate:.2f} oracle calls/s) -> {out}", file=sys.stderr)


