"""The GOLF paper's table at the paper's level of theory (wB97X-D/def2-SVP), resumable.

Stages (each resumable; every result is committed to ``bench/results/paper_table.db`` the moment it
arrives, so a killed run loses at most the DFT call in flight):

``cost``
    Wall time of one wB97X-D/def2-SVP energy+gradient (golf's ``dft`` oracle defaults: density
    fitting, grid level 3, grid-response gradient) on 1 and 2 threads for NCI test molecules of 8,
    11 and 14 heavy atoms (and, on 1 thread, without the grid response). One call each, in this
    process (no torch here); wall time (``OracleResult.seconds``: SCF + gradient, no import) and the
    process's CPU time (all threads), which is what an unloaded machine would give on 1 thread.
``molecules``
    The first ``--n`` molecules of golf's NCI test split (``golf.pool.select_pool_molecules``:
    hash split with ``--split-seed``, test fraction 0.2, H C N O F S Cl Br, neutral closed-shell,
    single fragment, MMFF-typable) with ``--min-heavy <= heavy atoms <= --max-heavy``, in the split's
    seeded order (a larger ``--n`` extends the list); one ETKDGv3 start conformation each
    (``golf.chem.generate_conformers``, seed ``--seed``), like nablaDFT's RDKit conformers.
``references``
    The DFT optimum of every start: ``golf.optim.relax`` (method ``--ref-method``, default
    ``lbfgs-precon``, float64) driving the DFT oracle, converged when max per-atom |F| <
    ``--ref-fmax`` (default 0.0154 eV/A = 3e-4 Hartree/Bohr, Psi4 optking's default QCHEM
    MAX_FORCE criterion; golf's test is on the per-atom norm, psi4's on components, so golf's is a
    little stricter), at most ``--ref-steps`` steps. Every DFT call (positions, energy, forces) is
    stored in ``dft_calls`` keyed by a hash of the geometry; a restarted relaxation replays the
    deterministic optimizer through the stored calls (no DFT) and continues from the last stored one.
``evaluate``
    Each official checkpoint (``--checkpoints``: baseline-NNP, traj-10k, traj-100k, traj-500k,
    GOLF-1k, GOLF-10k) relaxes the starts with the paper's optimizer (``--optimizer``, default
    ``lbfgs-golf``) for 100 steps through ``golf.evaluation.scoring.model_trajectories``; the MMFF row uses
    ``golf.evaluation.scoring.mmff_trajectories``. The structures at T = 1, 5, 21, 100 are stored with the golf
    commit and optimizer that produced them. Rows already stored are skipped unless
    ``--redo-evaluate`` (then their trajectories and scores are replaced).
``score``
    DFT single points at the stored structures (T = 100 first, then 1, 5, 21; ``--score-steps``),
    each stored as it arrives (structures that fell apart are not sent, as in ``golf.evaluation.scoring``);
    E_0 is the DFT energy of the start (the first call of its reference relaxation), E_opt the
    energy of the reference optimum. Then ``golf.evaluation.metrics.aggregate`` per row, printed beside the
    paper's numbers and written to ``bench/results/paper_table.json``.
``table``
    Only the last part of ``score`` (no DFT): metrics from what is stored, with 95% bootstrap
    intervals over molecules, paired differences of the rows the paper compares (``PAIRS``), and
    E_res at T = 100 per molecule and row (also in the JSON: ``e_res_100``).

Usage (the DFT stages should run niced on one thread)::

    OMP_NUM_THREADS=1 nice -n 10 python bench/paper_table.py cost
    OMP_NUM_THREADS=1 nice -n 10 python bench/paper_table.py molecules evaluate --n 12
    OMP_NUM_THREADS=1 nice -n 10 python bench/paper_table.py references score --n 12
    # or one process per core, each claiming the next molecule nobody holds and scoring it
    # (T = 100) as soon as its reference converges, so a stopped run leaves whole molecules:
    #   ... references --n 12 --shard auto --score-each --score-steps 100   (once per core)

Units: eV and Angstrom in the database; kcal/mol only in the printed/JSON metrics (E_res).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import os
import platform
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from golf.conformation import Conformation  # noqa: E402
from golf.oracles import OracleSpec  # noqa: E402
from golf.oracles.base import OracleResult  # noqa: E402

HERE = Path(__file__).resolve().parent
DB_PATH = HERE / "results" / "paper_table.db"
JSON_PATH = HERE / "results" / "paper_table.json"
CHECKPOINT_DIR = Path(os.environ.get("GOLF_CHECKPOINTS", HERE.parent.parent / "shared" / "golf-checkpoints"))
CHECKPOINTS = ("baseline-NNP", "traj-10k", "traj-100k", "traj-500k", "GOLF-1k", "GOLF-10k")
STEPS = (1, 5, 21, 100)

#: wB97X-D/def2-SVP, golf's ``dft`` defaults written out (stored in the db's meta table).
DFT_SETTINGS: dict[str, Any] = {
    "xc": "wb97x-d",
    "basis": "def2-svp",
    "dispersion": "auto",
    "density_fit": True,
    "conv_tol": 1e-9,
    "grid_level": 3,
    "grid_response": True,
}

#: The official README's table (nablaDFT test set, DFT oracle, 100 steps): pct (mean, std), pct_div,
#: E_res (kcal/mol), pct_success. golf's MMFF row (RDKit's MMFF94 relaxing the start itself) compares
#: with the table's "RDKit" row, listed there beside the conformer generators (Torsional Diffusion,
#: ConfOpt, Uni-Mol+). The row "f^rdkit" (93.09 ± 11.9, 3.8, 2.8, 35.4), sometimes quoted as
#: "rdkit (MMFF)", sits in the NNP block (f^baseline, f^traj-*, f^GOLF-*): a model, not MMFF, and
#: without a released checkpoint it cannot be evaluated here (kept in ``PAPER_F_RDKIT``).
PAPER: dict[str, tuple[float, float, float, float, float]] = {
    "baseline-NNP": (76.8, 22.4, 7.5, 8.6, 8.2),
    "mmff": (84.92, 10.6, 0.05, 5.5, 4.1),
    "traj-10k": (95.3, 7.3, 4.5, 2.0, 37.0),
    "traj-100k": (96.3, 9.8, 2.9, 1.5, 52.7),
    "traj-500k": (98.4, 9.2, 1.8, 0.5, 73.4),
    "GOLF-1k": (98.5, 5.3, 3.6, 1.1, 62.9),
    "GOLF-10k": (99.4, 5.2, 2.4, 0.5, 77.3),
}
PAPER_F_RDKIT: tuple[float, float, float, float, float] = (93.09, 11.9, 3.8, 2.8, 35.4)
PAPER_COLUMNS = ("pct_mean", "pct_std", "pct_div", "e_res_mean", "pct_success")
#: The oracle of the reference/score stages: "dft" with DFT_SETTINGS (``--oracle mmff`` only to test
#: the script quickly).
ORACLE: dict[str, Any] = {"name": "dft", "settings": DFT_SETTINGS}
ROWS = ("baseline-NNP", "mmff", "traj-10k", "traj-100k", "traj-500k", "GOLF-1k", "GOLF-10k")
#: ``--rows NAME=PATH`` entries: a row's model file when it is not an official checkpoint.
ROW_PATHS: dict[str, str] = {}


def row_model(row: str) -> str:
    """The model file (or golf model name) of a row: ``ROW_PATHS``, else the official checkpoint."""
    if row in ROW_PATHS:
        return ROW_PATHS[row]
    path = CHECKPOINT_DIR / f"{row}.pt"
    return str(path) if path.exists() else row

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS molecules (
    idx INTEGER PRIMARY KEY, mol_id INTEGER UNIQUE, smiles TEXT, n_heavy INTEGER, n_atoms INTEGER,
    numbers TEXT, positions TEXT, molblock TEXT, created TEXT);
CREATE TABLE IF NOT EXISTS dft_calls (
    id INTEGER PRIMARY KEY AUTOINCREMENT, mol_id INTEGER, geom_hash TEXT, settings_hash TEXT,
    purpose TEXT, ok INTEGER, energy REAL, forces TEXT, positions TEXT, reason TEXT, seconds REAL,
    created TEXT, UNIQUE (mol_id, geom_hash, settings_hash));
CREATE TABLE IF NOT EXISTS refs (
    mol_id INTEGER PRIMARY KEY, ok INTEGER, converged INTEGER, n_steps INTEGER, n_calls INTEGER,
    energy REAL, fmax REAL, positions TEXT, reason TEXT, method TEXT, fmax_threshold REAL,
    max_steps INTEGER, dft_seconds REAL, golf_commit TEXT, created TEXT);
CREATE TABLE IF NOT EXISTS trajectories (
    row TEXT, mol_id INTEGER, T INTEGER, positions TEXT, n_steps INTEGER, converged INTEGER,
    reason TEXT, optimizer TEXT, golf_commit TEXT, created TEXT, PRIMARY KEY (row, mol_id, T));
CREATE TABLE IF NOT EXISTS cost (
    id INTEGER PRIMARY KEY AUTOINCREMENT, mol_id INTEGER, smiles TEXT, n_heavy INTEGER,
    n_atoms INTEGER, threads INTEGER, grid_response INTEGER, ok INTEGER, seconds REAL,
    cpu_seconds REAL, loadavg TEXT, created TEXT);
CREATE TABLE IF NOT EXISTS claims (mol_id INTEGER PRIMARY KEY, pid INTEGER, host TEXT, created TEXT);
"""


# ----------------------------------------------------------------------------------------------
# database helpers


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def connect(path: Path = DB_PATH) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=60)
    con.executescript(SCHEMA)
    con.commit()
    return con


def settings_hash(settings: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]


def geom_hash(numbers: np.ndarray, positions: np.ndarray) -> str:
    """Hash of atomic numbers and coordinates rounded to 1e-8 A (a replayed float64 optimizer
    reproduces its coordinates bit for bit, so rounding only guards against -0.0 and the like)."""
    x = np.round(np.asarray(positions, dtype=np.float64), 8) + 0.0
    h = hashlib.sha1(np.asarray(numbers, dtype=np.int64).tobytes())
    h.update(x.tobytes())
    return h.hexdigest()


def golf_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", str(HERE), "status", "--porcelain", "--", "../src"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "")
    except Exception:
        return "unknown"


def to_json(a: np.ndarray) -> str:
    return json.dumps(np.asarray(a, dtype=np.float64).tolist())


def from_json(s: str | None) -> np.ndarray | None:
    return None if s is None else np.asarray(json.loads(s), dtype=np.float64)


def set_meta(con: sqlite3.Connection, key: str, value: Any) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
    con.commit()


def get_meta(con: sqlite3.Connection, key: str) -> Any:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else json.loads(row[0])


def load_molecules(con: sqlite3.Connection, n: int | None = None) -> list[Conformation]:
    rows = con.execute(
        "SELECT idx, mol_id, smiles, numbers, positions, molblock FROM molecules ORDER BY idx"
    ).fetchall()
    out = [
        Conformation(numbers=json.loads(z), positions=from_json(p), smiles=s, mol_id=m, conf_id=0,
                     molblock=b)
        for _, m, s, z, p, b in rows
    ]
    return out if n is None else out[:n]


# ----------------------------------------------------------------------------------------------
# DFT with a persistent cache


class StoredDFT:
    """``Oracle``-like object for ``golf.optim.providers.OracleEnergyForces``: each conformation is
    looked up in ``dft_calls`` first; misses go to a spawned worker (golf's local executor) and are
    committed to the db as soon as they return.

    Args:
        con: open db; settings: DFT oracle settings; purpose: label stored with new calls;
        threads: OpenMP threads of the worker; timeout: seconds per call.
    """

    def __init__(self, con: sqlite3.Connection, settings: dict[str, Any], purpose: str,
                 threads: int = 1, timeout: float = 7200.0, log=print) -> None:
        from golf.oracles.executors import make_executor

        self.con, self.settings, self.purpose = con, dict(settings), purpose
        self.shash = settings_hash(self.settings)
        is_dft = ORACLE["name"] == "dft"
        spec = OracleSpec(ORACLE["name"], {**self.settings, "threads": int(threads)} if is_dft else {})
        self.executor = make_executor(spec, kind="local", n_workers=1, threads_per_worker=int(threads),
                                      timeout=timeout)
        self.n_hits = self.n_new = 0
        self.seconds = 0.0
        self.log = log

    def close(self) -> None:
        self.executor.close()

    def lookup(self, conf: Conformation) -> OracleResult | None:
        row = self.con.execute(
            "SELECT ok, energy, forces, reason, seconds FROM dft_calls "
            "WHERE mol_id = ? AND geom_hash = ? AND settings_hash = ?",
            (int(conf.mol_id), geom_hash(conf.numbers, conf.positions), self.shash),
        ).fetchone()
        if row is None:
            return None
        ok, e, f, reason, sec = row
        if ok:
            return OracleResult(ok=True, energy=float(e), forces=from_json(f), seconds=float(sec or 0))
        return None  # failures are stored for the record but recomputed (they may be transient: timeouts)

    def has(self, conf: Conformation) -> bool:
        """Whether any result (success or failure) is stored for this geometry."""
        return self.con.execute(
            "SELECT 1 FROM dft_calls WHERE mol_id = ? AND geom_hash = ? AND settings_hash = ?",
            (int(conf.mol_id), geom_hash(conf.numbers, conf.positions), self.shash),
        ).fetchone() is not None

    def store(self, conf: Conformation, res: OracleResult) -> None:
        self.con.execute(
            "INSERT OR REPLACE INTO dft_calls (mol_id, geom_hash, settings_hash, purpose, ok, energy, "
            "forces, positions, reason, seconds, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (int(conf.mol_id), geom_hash(conf.numbers, conf.positions), self.shash, self.purpose,
             int(bool(res.ok)), None if not res.ok else float(res.energy),
             None if not res.ok else to_json(res.forces), to_json(conf.positions), res.reason,
             float(res.seconds), now()),
        )
        self.con.commit()

    def compute_batch(self, confs: Sequence[Conformation]) -> list[OracleResult]:
        out: list[OracleResult | None] = [self.lookup(c) for c in confs]
        missing = [k for k, r in enumerate(out) if r is None]
        self.n_hits += len(confs) - len(missing)
        for k in missing:
            self.executor.submit(confs[k], key=k, task="compute")
        for k, res in self.executor.as_completed():
            self.store(confs[k], res)
            out[k] = res
            self.n_new += 1
            self.seconds += float(res.seconds)
            self.log(f"    dft mol {confs[k].mol_id} ({self.purpose}): "
                     f"{'E = %.6f eV' % res.energy if res.ok else 'FAILED ' + res.reason} "
                     f"in {res.seconds:.1f} s")
        return [r for r in out if r is not None]

    def compute(self, conf: Conformation) -> OracleResult:
        return self.compute_batch([conf])[0]


# ----------------------------------------------------------------------------------------------
# stages


def log(msg: str) -> None:
    print(f"[{now()}] {msg}", flush=True)


def stage_cost(con: sqlite3.Connection, args: argparse.Namespace) -> None:
    from golf.chem import generate_conformers
    from golf.pool import select_pool_molecules

    pool = select_pool_molecules(None, split="test", seed=args.split_seed, min_heavy=8, max_heavy=14)
    from rdkit import Chem

    plan = []
    for heavy in (8, 11, 14):
        mol_id, smi = next((m, s) for m, s in pool if Chem.MolFromSmiles(s).GetNumHeavyAtoms() == heavy)
        conf = generate_conformers(smi, 1, args.seed, mol_id=mol_id)[0]
        plan += [(conf, heavy, 1, True), (conf, heavy, 2, True)]
        if heavy == 11:
            plan.append((conf, heavy, 1, False))
    from golf.oracles.dft import DFTOracle

    done = {(r[0], r[1], r[2]) for r in con.execute("SELECT mol_id, threads, grid_response FROM cost WHERE ok = 1")}
    for conf, heavy, threads, gr in plan:
        if (conf.mol_id, threads, int(gr)) in done:
            continue
        # in this process (the cost stage never imports torch): wall and CPU time of one call
        oracle = DFTOracle(**{**DFT_SETTINGS, "grid_response": gr}, threads=threads)
        cpu0 = time.process_time()
        res = oracle.compute(conf)
        cpu = time.process_time() - cpu0
        load = os.getloadavg()
        con.execute(
            "INSERT INTO cost (mol_id, smiles, n_heavy, n_atoms, threads, grid_response, ok, seconds, "
            "cpu_seconds, loadavg, created) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
            (conf.mol_id, conf.smiles, heavy, conf.n_atoms, threads, int(gr), int(res.ok), res.seconds,
             cpu, json.dumps([round(x, 2) for x in load]), now()),
        )
        con.commit()
        log(f"cost: {conf.smiles} ({heavy} heavy, {conf.n_atoms} atoms) threads={threads} "
            f"grid_response={gr}: wall {res.seconds:.1f} s, CPU {cpu:.1f} s, ok={res.ok}, load={load[0]:.2f}")
    print_cost(con)


def print_cost(con: sqlite3.Connection) -> None:
    rows = con.execute("SELECT n_heavy, n_atoms, smiles, threads, grid_response, seconds, cpu_seconds, "
                       "loadavg FROM cost WHERE ok = 1 ORDER BY n_heavy, grid_response DESC, threads").fetchall()
    print("heavy atoms | smiles | threads | grid response | wall s | CPU s (all threads) | load avg (1 min)")
    for h, n, s, t, g, sec, cpu, load in rows:
        print(f"{h} ({n} atoms) | {s} | {t} | {'yes' if g else 'no'} | {sec:.1f} | {cpu:.1f} | {json.loads(load)[0]}")


def stage_molecules(con: sqlite3.Connection, args: argparse.Namespace) -> None:
    from rdkit import Chem

    from golf.chem import generate_conformers
    from golf.pool import select_pool_molecules

    sel = {"split": "test", "split_seed": args.split_seed, "test_fraction": 0.2,
           "min_heavy": args.min_heavy, "max_heavy": args.max_heavy, "etkdg_seed": args.seed}
    old = get_meta(con, "selection")
    if old is not None and old != sel:
        raise SystemExit(f"db holds molecules selected with {old}, not {sel}; use another --db")
    set_meta(con, "selection", sel)
    have = con.execute("SELECT COUNT(*) FROM molecules").fetchone()[0]
    if have >= args.n:
        log(f"molecules: {have} stored (>= {args.n})")
        return
    pool = select_pool_molecules(None, split="test", seed=args.split_seed,
                                 min_heavy=args.min_heavy, max_heavy=args.max_heavy)
    stored = {r[0] for r in con.execute("SELECT mol_id FROM molecules")}
    idx = have
    for mol_id, smi in pool:
        if idx >= args.n:
            break
        if mol_id in stored:
            continue
        try:
            conf = generate_conformers(smi, 1, args.seed, mol_id=mol_id)[0]
        except Exception as exc:  # cannot embed: skip, deterministically
            log(f"molecules: skip {mol_id} {smi}: {exc}")
            continue
        heavy = Chem.MolFromSmiles(smi).GetNumHeavyAtoms()
        con.execute("INSERT INTO molecules VALUES (?,?,?,?,?,?,?,?,?)",
                    (idx, mol_id, conf.smiles, heavy, conf.n_atoms, json.dumps(conf.numbers.tolist()),
                     to_json(conf.positions), conf.molblock, now()))
        con.commit()
        log(f"molecules: #{idx} NCI {mol_id} {conf.smiles} ({heavy} heavy, {conf.n_atoms} atoms)")
        idx += 1


def stage_references(con: sqlite3.Connection, args: argparse.Namespace) -> None:
    import torch

    from golf.optim import relax
    from golf.optim.providers import OracleEnergyForces

    torch.set_num_threads(1)  # bitwise-reproducible optimizer replay on restart
    set_meta(con, "dft_settings", ORACLE["settings"])
    stored_start = get_meta(con, "ref_start") or "start"
    if con.execute("SELECT COUNT(*) FROM refs").fetchone()[0] and stored_start != args.ref_start:
        raise SystemExit(f"{args.db} holds references started from {stored_start!r}, not {args.ref_start!r}")
    set_meta(con, "ref_start", args.ref_start)
    confs = load_molecules(con, args.n)
    dft = StoredDFT(con, ORACLE["settings"], purpose="reference", threads=args.threads, log=log)
    try:
        for k, conf in _reference_work(con, confs, args):
            log(f"references: #{k} NCI {conf.mol_id} {conf.smiles} ({conf.n_atoms} atoms)")
            hits0, new0, sec0 = dft.n_hits, dft.n_new, dft.seconds
            start = conf
            if args.ref_start == "mmff":
                dft.compute(conf)  # E_0, the DFT energy of the start, which the metrics need
                start = mmff_start(conf)
            provider = OracleEnergyForces(dft, templates=[start])
            (rec,) = relax(provider, [start], method=args.ref_method, fmax=args.ref_fmax,
                           max_steps=args.ref_steps, dtype=torch.float64)
            ok = bool(np.isfinite(rec.energy))
            con.execute(
                "INSERT OR REPLACE INTO refs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (conf.mol_id, int(ok), int(rec.converged), rec.n_steps, rec.n_force_calls,
                 float(rec.energy) if ok else None, float(rec.fmax), to_json(rec.positions),
                 rec.reason, args.ref_method, args.ref_fmax, args.ref_steps,
                 dft.seconds - sec0, golf_commit(), now()))
            con.commit()
            log(f"references: NCI {conf.mol_id} done: converged={rec.converged} steps={rec.n_steps} "
                f"calls={rec.n_force_calls} (stored before: {dft.n_hits - hits0}, new: {dft.n_new - new0}, "
                f"{dft.seconds - sec0:.0f} s DFT) fmax={rec.fmax:.4f} reason={rec.reason}")
            if args.score_each and ok:
                dft.purpose = "score"
                try:
                    _score_molecule(con, dft, conf, args)
                finally:
                    dft.purpose = "reference"
    finally:
        dft.close()
        _release_claims(con)


def mmff_start(conf: Conformation) -> Conformation:
    """The MMFF94 optimum of ``conf`` (RDKit BFGS, 10000 iterations at most): a start for the DFT
    reference that needs fewer DFT calls than the raw ETKDG conformation (``--ref-start mmff``)."""
    from golf.evaluation.scoring import mmff_trajectories

    (tr,) = mmff_trajectories([conf], [10000])
    return conf.with_positions(tr.frames[tr.frame_of_step[0]])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _reference_work(con: sqlite3.Connection, confs: Sequence[Conformation], args: argparse.Namespace):
    """Yield (k, conformation) of the references this process should compute.

    ``--shard I/M`` is a static split (k % M == I); ``--shard auto`` claims the next molecule without
    a reference that no live process on this host holds (table ``claims``, taken inside one write
    transaction), so any number of processes share the work without idling on an uneven split.
    """
    def done() -> set[int]:
        return {r[0] for r in con.execute(
            "SELECT mol_id FROM refs" + (" WHERE ok = 1" if args.retry_failed else ""))}

    if args.shard != "auto":
        finished = done()
        for k, conf in enumerate(confs):
            if conf.mol_id not in finished and k % args.shard[1] == args.shard[0]:
                yield k, conf
        return
    host = platform.node()
    while True:
        con.commit()
        con.execute("BEGIN IMMEDIATE")
        try:
            finished = done()
            held = {m for m, pid, h in con.execute("SELECT mol_id, pid, host FROM claims")
                    if h != host or (pid != os.getpid() and _pid_alive(pid))}
            pick = next(((k, c) for k, c in enumerate(confs)
                         if c.mol_id not in finished and c.mol_id not in held), None)
            con.execute("DELETE FROM claims WHERE pid = ? AND host = ?", (os.getpid(), host))
            if pick is not None:
                con.execute("INSERT OR REPLACE INTO claims VALUES (?,?,?,?)",
                            (pick[1].mol_id, os.getpid(), host, now()))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        if pick is None:
            return
        yield pick


def _release_claims(con: sqlite3.Connection) -> None:
    con.execute("DELETE FROM claims WHERE pid = ? AND host = ?", (os.getpid(), platform.node()))
    con.commit()


def stage_evaluate(con: sqlite3.Connection, args: argparse.Namespace) -> None:
    import torch

    from golf.evaluation.scoring import mmff_trajectories, model_trajectories
    from golf.models import load_model

    torch.set_num_threads(args.threads)
    confs = load_molecules(con, args.n)
    steps = sorted(set(args.score_steps))
    commit = golf_commit()
    for row in ROWS:
        have = {r[0] for r in con.execute("SELECT DISTINCT mol_id FROM trajectories WHERE row = ?", (row,))}
        if args.redo_evaluate:
            con.execute("DELETE FROM trajectories WHERE row = ?", (row,))
            con.commit()
            have = set()
        todo = [c for c in confs if c.mol_id not in have]
        if not todo:
            continue
        t0 = time.perf_counter()
        if row == "mmff":
            trajs = mmff_trajectories(todo, steps)
            optimizer = "rdkit-mmff94-bfgs"
        else:
            model = load_model(row_model(row))
            trajs = model_trajectories(model, todo, steps, optimizer=args.optimizer)
            optimizer = args.optimizer
        for conf, tr in zip(todo, trajs):
            for t, f in zip(steps, tr.frame_of_step):
                con.execute("INSERT OR REPLACE INTO trajectories VALUES (?,?,?,?,?,?,?,?,?,?)",
                            (row, conf.mol_id, t, to_json(tr.frames[f]), tr.n_steps, int(tr.converged),
                             tr.reason, optimizer, commit, now()))
        con.commit()
        log(f"evaluate: {row}: {len(todo)} relaxations ({optimizer}, {max(steps)} steps) "
            f"in {time.perf_counter() - t0:.1f} s, golf {commit}")


def _ref_energies(con: sqlite3.Connection, confs: Sequence[Conformation], shash: str) -> tuple[np.ndarray, np.ndarray]:
    """E_0 (DFT at the start) and E_opt (reference optimum) per molecule, eV (NaN if missing)."""
    e0 = np.full(len(confs), np.nan)
    eopt = np.full(len(confs), np.nan)
    for i, c in enumerate(confs):
        r = con.execute("SELECT energy FROM dft_calls WHERE mol_id = ? AND geom_hash = ? AND "
                        "settings_hash = ? AND ok = 1",
                        (c.mol_id, geom_hash(c.numbers, c.positions), shash)).fetchone()
        if r is not None:
            e0[i] = r[0]
        r = con.execute("SELECT energy FROM refs WHERE mol_id = ? AND ok = 1", (c.mol_id,)).fetchone()
        if r is not None:
            eopt[i] = r[0]
    return e0, eopt


def stage_score(con: sqlite3.Connection, args: argparse.Namespace, run_dft: bool = True) -> dict[str, Any]:
    confs = load_molecules(con, args.n)
    shash = settings_hash(ORACLE["settings"])
    with_ref = [c for c in confs if con.execute(
        "SELECT 1 FROM refs WHERE mol_id = ? AND ok = 1", (c.mol_id,)).fetchone()]
    if run_dft and with_ref:
        dft = StoredDFT(con, ORACLE["settings"], purpose="score", threads=args.threads, log=log)
        try:
            for c in with_ref:
                _score_molecule(con, dft, c, args)
        finally:
            dft.close()
    return write_table(con, confs, shash, args)


def _score_molecule(con: sqlite3.Connection, dft: StoredDFT, c: Conformation,
                    args: argparse.Namespace) -> None:
    """DFT single points at one molecule's stored structures (T = 100 first, then the others);
    structures that fell apart are not sent (scored as failures, as in ``golf.evaluation.scoring``)."""
    from golf.evaluation.scoring import dissociation

    for t in sorted(set(args.score_steps), key=lambda t: (t != 100, t)):
        for row in ROWS:
            r = con.execute("SELECT positions FROM trajectories WHERE row=? AND mol_id=? AND T=?",
                            (row, c.mol_id, t)).fetchone()
            if r is None:
                continue
            frame = from_json(r[0])
            if dissociation(c, frame) is not None:
                continue
            conf = c.with_positions(frame)
            if (dft.lookup(conf) is None) if args.retry_failed else not dft.has(conf):
                log(f"score: {row} T={t} NCI {c.mol_id}")
                dft.compute(conf)


def write_table(con: sqlite3.Connection, confs: Sequence[Conformation], shash: str,
                args: argparse.Namespace) -> dict[str, Any]:
    from golf.evaluation import metrics
    from golf.evaluation.scoring import dissociation
    from golf.evaluation.stats import N_BOOTSTRAP, bootstrap_intervals

    steps = sorted(set(args.score_steps))
    e0_all, eopt_all = _ref_energies(con, confs, shash)
    keep = np.isfinite(e0_all) & np.isfinite(eopt_all)
    confs = [c for c, k in zip(confs, keep) if k]
    e0, eopt = e0_all[keep], eopt_all[keep]
    doc: dict[str, Any] = {
        "format": "golf-paper-table/1",
        "oracle": ORACLE,
        "n_molecules_with_reference": len(confs),
        "mol_ids": [int(c.mol_id) for c in confs],
        "steps": steps,
        "paper": {k: dict(zip(PAPER_COLUMNS, v)) for k, v in PAPER.items()},
        "paper_f_rdkit_not_evaluated": dict(zip(PAPER_COLUMNS, PAPER_F_RDKIT)),
        "rows": {},
        "created": now(),
        "platform": platform.platform(),
    }
    lines = ["row          | n  | pct_100 (golf / paper)  | pct_div      | E_res kcal/mol | pct_success"]
    cols_100: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]] = {}
    status_100: dict[str, list[str]] = {}  # row -> per molecule: "", "split" or "fail" (no E_T at T = 100)
    for row in ROWS:
        et = np.full((len(confs), len(steps)), np.nan)
        complete = np.zeros((len(confs), len(steps)), dtype=bool)
        status = np.full((len(confs), len(steps)), "", dtype=object)
        meta = None
        for i, c in enumerate(confs):
            for k, t in enumerate(steps):
                r = con.execute("SELECT positions, optimizer, golf_commit FROM trajectories "
                                "WHERE row=? AND mol_id=? AND T=?", (row, c.mol_id, t)).fetchone()
                if r is None:
                    continue
                meta = {"optimizer": r[1], "golf_commit": r[2]}
                frame = from_json(r[0])
                if dissociation(c, frame) is not None:
                    complete[i, k] = True  # scored as a failure (NaN)
                    status[i, k] = "split"
                    continue
                d = con.execute("SELECT ok, energy FROM dft_calls WHERE mol_id=? AND geom_hash=? AND "
                                "settings_hash=?", (c.mol_id, geom_hash(c.numbers, frame), shash)).fetchone()
                if d is not None:
                    complete[i, k] = True
                    if d[0]:
                        et[i, k] = d[1]
                    else:
                        status[i, k] = "fail"
        # only molecules scored at a given T enter that T's aggregate
        agg = []
        for k, t in enumerate(steps):
            m = complete[:, k]
            if m.any():
                agg.append(metrics.aggregate(e0[m], et[m, k:k + 1], eopt[m], [t])[0])
            else:
                agg.append({"T": t, "n": 0})
        doc["rows"][row] = {"aggregate": agg, **(meta or {}),
                            "E_T": {str(t): et[:, k].tolist() for k, t in enumerate(steps)}}
        if 100 in steps:
            k = steps.index(100)
            status_100[row] = list(status[:, k])
            m = complete[:, k]
            if m.any():
                cols = {key: v[:, 0] for key, v in
                        metrics.conformation_metrics(e0[m], et[m, k:k + 1], eopt[m]).items() if key != "degenerate"}
                doc["rows"][row]["intervals_100"] = bootstrap_intervals(cols)
                cols_100[row] = (m, cols)
        a100 = next((a for a in agg if a["T"] == 100), {"n": 0})
        p = PAPER.get(row, (float("nan"),) * 5)
        if a100.get("n", 0):
            lines.append(
                f"{row:12s} | {a100['n']:2d} | {a100['pct_mean']:5.1f} ± {a100['pct_std']:4.1f} / "
                f"{p[0]:5.1f} ± {p[1]:4.1f} | {a100['pct_div']:4.1f} / {p[2]:4.1f} | "
                f"{a100['e_res_mean']:5.2f} / {p[3]:4.1f}   | {a100['pct_success']:5.1f} / {p[4]:4.1f}")
        else:
            lines.append(f"{row:12s} |  0 | (not scored yet) paper: {p[0]} ± {p[1]}, {p[2]}, {p[3]}, {p[4]}")
    doc["paired_100"] = _paired_differences(cols_100)
    doc["e0"] = e0.tolist()
    doc["eopt"] = eopt.tolist()
    per_mol = _per_molecule_lines(con, confs, doc, eopt, status_100)
    tmp = JSON_PATH.with_suffix(".json.tmp")
    from golf.evaluation.scoring import json_clean as _json_clean

    tmp.write_text(json.dumps(_json_clean(doc), indent=1, allow_nan=False))
    os.replace(tmp, JSON_PATH)
    md = JSON_PATH.with_suffix(".md")
    md.with_suffix(".md.tmp").write_text(markdown_table(doc))
    os.replace(md.with_suffix(".md.tmp"), md)
    print("\n".join(lines))
    print(f"({len(confs)} molecules with a DFT reference; T = 100; golf / paper)")
    print(f"golf's 95% bootstrap intervals over molecules (T = 100, {N_BOOTSTRAP} resamples, seed 0):")
    for row in ROWS:
        iv = doc["rows"][row].get("intervals_100")
        if iv:
            print(f"  {row:12s} E_res mean {_fmt_iv(iv['e_res_mean'])}  median {_fmt_iv(iv['e_res_median'])}  "
                  f"pct_success {_fmt_iv(iv['pct_success'], 1)}")
    print("paired differences A - B on the molecules both scored (95% bootstrap, seed 0):")
    for name, d in doc["paired_100"].items():
        print(f"  {name:26s} n={d['n']:2d}  E_res mean {_fmt_iv(d['e_res_mean'])}  "
              f"median {_fmt_iv(d['e_res_median'])}  pct_success {_fmt_iv(d['pct_success'], 1)}")
    print("\n".join(per_mol))
    return doc


#: Paired comparisons printed with the table (A, B): the paper's claims at T = 100.
PAIRS = (("GOLF-10k", "traj-500k"), ("GOLF-10k", "baseline-NNP"), ("GOLF-10k", "mmff"),
         ("GOLF-1k", "traj-100k"), ("traj-500k", "baseline-NNP"))


def _paired_differences(cols_100: dict[str, tuple[np.ndarray, dict[str, np.ndarray]]],
                        seed: int = 0) -> dict[str, dict[str, Any]]:
    """``golf.evaluation.stats.paired_columns`` of each pair in ``PAIRS`` at T = 100, over the molecules both
    rows have scored. ``cols_100``: row -> (molecule mask [M], that row's columns over the mask)."""
    from golf.evaluation.stats import paired_columns

    out: dict[str, dict[str, Any]] = {}
    for a, b in PAIRS:
        if a not in cols_100 or b not in cols_100:
            continue
        (ma, ca), (mb, cb) = cols_100[a], cols_100[b]
        both = ma & mb
        ia, ib = np.flatnonzero(both[ma]), np.flatnonzero(both[mb])  # positions within each row's columns
        out[f"{a} - {b}"] = paired_columns({k: v[ia] for k, v in ca.items()}, {k: v[ib] for k, v in cb.items()},
                                           ("e_res_mean", "e_res_median", "pct_success"), seed=seed)
    return out


def markdown_table(doc: dict[str, Any]) -> str:
    """The README's tables from ``write_table``'s document: golf beside the paper at T = 100 (E_res
    mean and pct_success with 95% bootstrap intervals), the paired differences, E_res per molecule."""
    iv = _fmt_iv
    out = ["| model | paper E_res | paper pct_success | n | golf E_res mean | golf E_res median | "
           "golf pct_success | golf pct_100 | golf pct_div |", "|---|---|---|---|---|---|---|---|---|"]
    for row in ROWS:
        p = doc["paper"].get(row, {"e_res_mean": "", "pct_success": ""})
        r = doc["rows"][row]
        label = "mmff (paper: its RDKit row)" if row == "mmff" else row
        a = next((a for a in r["aggregate"] if a["T"] == 100), {"n": 0})
        if not a.get("n"):
            out.append(f"| {label} | {p['e_res_mean']} | {p['pct_success']} | 0 | | | | | |")
            continue
        i = r["intervals_100"]
        out.append(f"| {label} | {p['e_res_mean']} | {p['pct_success']} | {a['n']} | {iv(i['e_res_mean'])} | "
                   f"{iv(i['e_res_median'])} | {iv(i['pct_success'], 1)} | {a['pct_mean']:.1f} ± {a['pct_std']:.1f} | "
                   f"{a['pct_div']:.1f} |")
    out += ["", "| A − B (paired, T = 100) | n | Δ E_res mean | Δ E_res median | Δ pct_success |",
            "|---|---|---|---|---|"]
    for name, d in doc.get("paired_100", {}).items():
        star = lambda m: "*" if d[m]["excludes_zero"] else ""  # noqa: E731
        out.append(f"| {name.replace(' - ', ' − ')} | {d['n']} | {iv(d['e_res_mean'])}{star('e_res_mean')} | "
                   f"{iv(d['e_res_median'])}{star('e_res_median')} | {iv(d['pct_success'], 1)}{star('pct_success')} |")
    per_mol = doc.get("e_res_100", {})
    if per_mol:
        out += ["", "| NCI | " + " | ".join(ROWS) + " |", "|---" * (len(ROWS) + 1) + "|"]
        for mol_id, values in per_mol.items():
            cells = [(f"{v:.2f}" if isinstance(v, float) else (v or "")) for v in (values[r] for r in ROWS)]
            out.append(f"| {mol_id} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def _fmt_iv(iv: dict[str, float], digits: int = 2) -> str:
    return f"{iv['value']:.{digits}f} [{iv['lo']:.{digits}f}, {iv['hi']:.{digits}f}]"


def _per_molecule_lines(con: sqlite3.Connection, confs: Sequence[Conformation], doc: dict[str, Any],
                        eopt: np.ndarray, status_100: dict[str, list[str]]) -> list[str]:
    """E_res at T = 100 (kcal/mol) per molecule and row, also written to ``doc["e_res_100"]``:
    blank = not scored yet, "split" = fell apart, "fail" = the DFT call failed (``status_100``, from
    ``write_table``'s pass over the stored structures)."""
    from golf.units import EV_TO_KCAL_MOL

    if 100 not in doc["steps"]:
        return []
    heavy = dict(con.execute("SELECT mol_id, n_heavy FROM molecules"))
    width = max(len(r) for r in ROWS)
    lines = ["E_res at T = 100 per molecule (kcal/mol):",
             f"{'NCI':>6} {'heavy':>5} " + " ".join(f"{r:>{width}}" for r in ROWS)]
    doc["e_res_100"] = {}
    for i, c in enumerate(confs):
        cells, values = [], {}
        for row in ROWS:
            e = doc["rows"][row]["E_T"]["100"][i]
            if np.isfinite(e):
                values[row] = (e - eopt[i]) * EV_TO_KCAL_MOL
                cells.append(f"{values[row]:{width}.2f}")
            else:
                values[row] = status_100[row][i] or None
                cells.append(f"{status_100[row][i]:>{width}}")
        doc["e_res_100"][str(int(c.mol_id))] = values
        lines.append(f"{int(c.mol_id):>6} {heavy.get(c.mol_id, 0):>5} " + " ".join(cells))
    return lines


def print_status(con: sqlite3.Connection) -> None:
    n_mol = con.execute("SELECT COUNT(*) FROM molecules").fetchone()[0]
    refs = con.execute("SELECT COUNT(*), SUM(converged), AVG(n_calls), AVG(dft_seconds) FROM refs").fetchone()
    calls = con.execute("SELECT purpose, COUNT(*), SUM(seconds) FROM dft_calls GROUP BY purpose").fetchall()
    print(f"molecules: {n_mol}; references: {refs[0]} ({refs[1]} converged, mean {refs[2]} calls, "
          f"mean {refs[3]} s DFT); dft calls: {calls}")
    for row in con.execute("SELECT r.mol_id, m.smiles, m.n_heavy, m.n_atoms, r.converged, r.n_steps, "
                           "r.n_calls, r.dft_seconds, r.fmax FROM refs r JOIN molecules m USING (mol_id)"):
        print("  ref", row)


def _shard(text: str) -> tuple[int, int] | str:
    if text == "auto":
        return text
    try:
        i, m = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/M, e.g. 0/2, got {text!r}") from None
    if not 0 <= i < m:
        raise argparse.ArgumentTypeError(f"need 0 <= I < M, got {text!r}")
    return i, m


def main(argv: list[str] | None = None) -> None:
    global DB_PATH, JSON_PATH, ROWS, PAIRS
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("stages", nargs="+",
                    choices=("cost", "molecules", "references", "evaluate", "score", "table", "status"))
    ap.add_argument("--db", type=Path, default=DB_PATH)
    ap.add_argument("--n", type=int, default=12, help="number of molecules (a larger n extends the set)")
    ap.add_argument("--min-heavy", type=int, default=8)
    ap.add_argument("--max-heavy", type=int, default=10)
    ap.add_argument("--split-seed", type=int, default=0, help="golf's NCI hash split seed")
    ap.add_argument("--seed", type=int, default=0, help="ETKDG seed")
    ap.add_argument("--threads", type=int, default=1, help="OpenMP threads of the DFT worker / torch")
    ap.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/M",
                    help="references: only molecules whose index k has k %% M == I, so M processes (one "
                         "per core) share the DFT through SQLite's locking; 'auto': each process claims "
                         "the next molecule nobody holds (no idle process on an uneven split)")
    ap.add_argument("--score-each", action="store_true",
                    help="references: score each molecule (its stored trajectories, --score-steps) as soon "
                         "as its reference converges, so an interrupted run leaves whole molecules")
    ap.add_argument("--ref-method", default="lbfgs-precon")
    ap.add_argument("--ref-fmax", type=float, default=0.0154, help="eV/A (3e-4 Hartree/Bohr)")
    ap.add_argument("--ref-steps", type=int, default=150)
    ap.add_argument("--ref-start", choices=("start", "mmff"), default="start",
                    help="start of the DFT reference: the molecule's start conformation (the paper's "
                         "table) or its MMFF94 optimum (fewer DFT calls; E_0 is still DFT at the start)")
    ap.add_argument("--rows", default=",".join(ROWS),
                    help="comma-separated rows: mmff, an official checkpoint name, or NAME=PATH of a model")
    ap.add_argument("--pairs", default=None,
                    help="comma-separated A:B paired comparisons at T = 100 (default: the paper's)")
    ap.add_argument("--optimizer", default="lbfgs-golf", help="the models' optimizer (evaluate)")
    ap.add_argument("--score-steps", type=int, nargs="+", default=list(STEPS))
    ap.add_argument("--dft-basis", default="def2-svp",
                    help="basis of the DFT oracle (def2-svp = the paper's; others only to test the script)")
    ap.add_argument("--retry-failed", action="store_true",
                    help="references: rerun relaxations whose DFT failed (e.g. a timeout under load)")
    ap.add_argument("--oracle", default="dft", choices=("dft", "mmff"),
                    help="dft (the benchmark); mmff only to test the script in seconds")
    ap.add_argument("--redo-evaluate", action="store_true",
                    help="recompute the model/MMFF trajectories (e.g. after an optimizer fix)")
    ap.add_argument("--table-json", type=Path, default=None,
                    help="score/table: write the table here (and its .md beside it); default: "
                         "bench/results/paper_table.json for the default db, else the db's name with .json")
    args = ap.parse_args(argv)
    ROWS = tuple(r.split("=", 1)[0] for r in args.rows.split(","))
    ROW_PATHS.update(dict(r.split("=", 1) for r in args.rows.split(",") if "=" in r))
    if args.pairs:
        PAIRS = tuple(tuple(p.split(":", 1)) for p in args.pairs.split(","))
    if args.db != DB_PATH:
        DB_PATH, JSON_PATH = args.db, args.db.with_suffix(".json")
    if args.table_json is not None:
        JSON_PATH = args.table_json
    DFT_SETTINGS["basis"] = args.dft_basis
    if args.oracle != "dft":
        ORACLE.update(name=args.oracle, settings={"oracle": args.oracle})
    con = connect(args.db)
    stored = get_meta(con, "dft_settings")
    if stored is not None and stored != ORACLE["settings"]:
        raise SystemExit(f"{args.db} holds results of oracle settings {stored}, not {ORACLE['settings']}")
    for stage in args.stages:
        log(f"stage {stage} (golf {golf_commit()}, python {sys.version.split()[0]})")
        if stage == "cost":
            stage_cost(con, args)
        elif stage == "molecules":
            stage_molecules(con, args)
        elif stage == "references":
            stage_references(con, args)
        elif stage == "evaluate":
            stage_evaluate(con, args)
        elif stage == "score":
            stage_score(con, args)
        elif stage == "table":
            stage_score(con, args, run_dft=False)
        elif stage == "status":
            print_status(con)


if __name__ == "__main__":
    main()
