"""Conformer search judged at the model's level of theory: DFT single points on every method's kept conformers.

Methods (``--methods``), each given the same molecules and the same number of ETKDGv3 starts per molecule
(golf's automatic count, ``golf.conformer_search.default_n_conformers``: 5 x (rotatable bonds + 1), 10..50):

``golf``
    ``golf conformers`` with its defaults and GOLF-10k (``--threads`` torch threads), run through golf's CLI
    entry point on one molecule at a time; its ranking is the model's energy.
``rdkit-mmff``
    RDKit ETKDGv3 (seed 1: seed 0 gives identical starts in RDKit) + MMFF94 relaxation of every start
    (RDKit, 2000 iterations), duplicates removed as golf does (``golf.conformer_search.deduplicate``: heavy-atom
    RMSD 0.3 A and 1 kcal/mol), ranked by MMFF94.
``rdkit-mmff-xtb``
    The ``--xtb-pool`` (default 2 K) MMFF94-lowest unique conformers of ``rdkit-mmff`` re-relaxed with
    GFN2-xTB (golf's ``xtb`` oracle, fmax 0.05 eV/A, 300 steps), deduplicated again and ranked by xTB; its
    wall/CPU time includes the MMFF stage it starts from.
``auto3d``
    Auto3D (ANI2xt, CPU; benchmark-only dependency ``auto3d`` + ``torchani``) with the same start count,
    fmax 0.05 eV/A, RMSD 0.3 A, top K, no isomer/tautomer enumeration; ranked by ANI2xt.

Each method keeps its top ``--top-k`` (K = 5) conformers by its own energy, which bounds the DFT cost.

Stages (a SQLite db, ``bench/results/conformers_dft.db``; each result is committed as it arrives, and a rerun
skips what is stored):

``generate``
    Every method on every molecule (cheap, no DFT): the kept conformers, each method's own energies, wall
    and CPU time (process + reaped children) per molecule and method. A method that fails on a molecule is
    recorded with its reason (one line) and the others go on.
``dft``
    Single points with ``--oracle`` (default ``dft``: golf's DFT oracle at wB97X-D/def2-SVP, 1 thread; energies
    only, ``Oracle.compute_energy``: no gradient, about half the cost; the first 13 single points of the db were
    energy+gradient calls, the same energy to the SCF tolerance) on the union of the kept
    conformers of one molecule, after merging geometries that are the same (all-atom RMSD, hydrogens
    included, below ``--same-rmsd``, 0.01 A: one single point for them). Sharded per molecule
    (``--shard I/M``), niceable, resumable. ``--oracle mmff|xtb`` runs the same pipeline in seconds (tests).
``report``
    Per method: ``top_within_0_5_fraction`` (molecules whose top-ranked conformer is within 0.5 kcal/mol of
    the lowest oracle energy over the union of all methods' conformers), the oracle energy of its top
    conformer above that minimum (median / mean / max, kcal/mol), ``median_spearman`` of its own relative
    energies against the oracle's (molecules with >= 3 conformers), wall and CPU time; per molecule, every
    conformer's own and oracle energy. Only molecules whose union is complete (every method that produced
    conformers, every conformer scored) are counted. Writes ``bench/results/conformers_dft.json``.

    OMP_NUM_THREADS=1 nice -n 10 python bench/conformers_dft.py generate
    OMP_NUM_THREADS=1 nice -n 10 python bench/conformers_dft.py dft --shard 0/2 &   # one per core
    OMP_NUM_THREADS=1 nice -n 10 python bench/conformers_dft.py dft --shard 1/2 &
    python bench/conformers_dft.py report
"""
from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import json
import math
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent
DB_PATH = HERE / "results" / "conformers_dft.db"
JSON_PATH = HERE / "results" / "conformers_dft.json"
KCAL = 23.060547830619026  # kcal/mol per eV
HARTREE_EV = 27.211386245988
METHODS = ("golf", "rdkit-mmff", "rdkit-mmff-xtb", "auto3d")
#: Methods run or stored only when named in ``--methods``: ``golf-etkdg-start`` is ``golf conformers --mmff-start 0``,
#: the default before the MMFF start (its rows were generated as "golf" at commit 3369f64 and renamed).
OPTIONAL_METHODS = ("golf-etkdg-start",)

#: Known drugs, neutral, H C N O F S Cl, 20-27 heavy atoms (33-50 atoms with H), stereo fully specified.
DRUGS: dict[str, str] = {
    "diazepam": "CN1C(=O)CN=C(c2ccccc2)c2cc(Cl)ccc21",
    "fluoxetine": "CNCC[C@H](Oc1ccc(C(F)(F)F)cc1)c1ccccc1",
    "clopidogrel": "COC(=O)[C@H](c1ccccc1Cl)N1CCc2sccc2C1",
    "warfarin": "CC(=O)C[C@H](c1ccccc1)c1c(O)c2ccccc2oc1=O",
    "zolpidem": "Cc1ccc(-c2nc3ccc(C)cn3c2CC(=O)N(C)C)cc1",
    "omeprazole": "COc1ccc2[nH]c([S@@](=O)Cc3ncc(C)c(OC)c3C)nc2c1",
    "celecoxib": "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1",
    "haloperidol": "O=C(CCCN1CCC(O)(c2ccc(Cl)cc2)CC1)c1ccc(F)cc1",
    "loratadine": "CCOC(=O)N1CCC(=C2c3ccc(Cl)cc3CCc3cccnc32)CC1",
    "metoclopramide": "CCN(CC)CCNC(=O)c1cc(Cl)c(N)cc1OC",
    "ondansetron": "Cn1c2ccccc2c2c1CC[C@@H](Cn1ccnc1C)C2=O",
    "sertraline": "CN[C@H]1CC[C@@H](c2ccc(Cl)c(Cl)c2)c2ccccc21",
}

#: golf's dft oracle defaults written out (wB97X-D/def2-SVP), stored in the db's meta table.
DFT_SETTINGS: dict[str, Any] = {"xc": "wb97x-d", "basis": "def2-svp", "dispersion": "auto", "density_fit": True,
                                "conv_tol": 1e-9, "grid_level": 3, "grid_response": True}

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS molecules (name TEXT PRIMARY KEY, idx INTEGER, smiles TEXT, n_heavy INTEGER,
    n_atoms INTEGER, n_starts INTEGER);
CREATE TABLE IF NOT EXISTS runs (name TEXT, method TEXT, ok INTEGER, n_kept INTEGER, wall_s REAL, cpu_s REAL,
    reason TEXT, settings TEXT, created TEXT, PRIMARY KEY (name, method));
CREATE TABLE IF NOT EXISTS conformers (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, method TEXT,
    rank INTEGER, own_energy_eV REAL, numbers TEXT, positions TEXT, molblock TEXT, UNIQUE (name, method, rank));
CREATE TABLE IF NOT EXISTS same_as (conf_id INTEGER PRIMARY KEY, rep_id INTEGER, rmsd REAL);
CREATE TABLE IF NOT EXISTS singles (rep_id INTEGER, oracle TEXT, ok INTEGER, energy_eV REAL, reason TEXT,
    seconds REAL, created TEXT, PRIMARY KEY (rep_id, oracle));
"""


# ----------------------------------------------------------------------------------------------
# db helpers


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def log(msg: str) -> None:
    print(f"[{now()}] {msg}", flush=True)


def connect(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(str(path), timeout=120)
    con.executescript(SCHEMA)
    con.commit()
    return con


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def oracle_key(name: str) -> str:
    """Oracle name + settings hash, the key of stored single points (mmff/xtb: golf's defaults)."""
    settings = DFT_SETTINGS if name == "dft" else {}
    return f"{name}:{hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]}"


def load_conformers(con: sqlite3.Connection, name: str, methods: Any = METHODS) -> list[dict[str, Any]]:
    """The stored conformers of a molecule by ``methods``' (default: the standard methods)."""
    from golf.conformation import Conformation

    out = []
    for cid, method, rank, e, z, p, mb in con.execute(
            "SELECT id, method, rank, own_energy_eV, numbers, positions, molblock FROM conformers WHERE name = ? "
            "AND method IN (%s) ORDER BY method, rank" % ",".join("?" * len(methods)), (name, *methods)):
        conf = Conformation(numbers=json.loads(z), positions=np.asarray(json.loads(p)), molblock=mb,
                            conf_id=cid, mol_id=0)
        out.append(dict(id=cid, method=method, rank=rank, own_eV=e, conf=conf))
    return out


def store_run(con: sqlite3.Connection, name: str, method: str, confs: list, energies_ev: list[float],
              wall: float, cpu: float, settings: dict[str, Any], reason: str = "") -> None:
    """One method's kept conformers (ranked, lowest first) on one molecule, in one transaction."""
    from golf.chem import conformation_to_mol
    from rdkit import Chem

    con.execute("DELETE FROM conformers WHERE name = ? AND method = ?", (name, method))
    for rank, (c, e) in enumerate(zip(confs, energies_ev)):
        mb = c.molblock or Chem.MolToMolBlock(conformation_to_mol(c))
        con.execute("INSERT INTO conformers (name, method, rank, own_energy_eV, numbers, positions, molblock) "
                    "VALUES (?,?,?,?,?,?,?)", (name, method, rank, float(e), json.dumps(c.numbers.tolist()),
                                               json.dumps(np.round(c.positions, 6).tolist()), mb))
    con.execute("INSERT OR REPLACE INTO runs VALUES (?,?,?,?,?,?,?,?,?)",
                (name, method, int(not reason), len(confs), wall, cpu, reason or None, json.dumps(settings), now()))
    con.commit()


# ----------------------------------------------------------------------------------------------
# the methods (each: smiles -> ranked conformations + own energies, eV)


def _mol_and_starts(smiles: str):
    from rdkit import Chem

    from golf.conformer_search import default_n_conformers

    mol = Chem.MolFromSmiles(smiles)
    return mol, default_n_conformers(mol)


def run_golf(name: str, smiles: str, n_starts: int, args: argparse.Namespace,
             extra: tuple[str, ...] = ()) -> tuple[list, list[float], dict]:
    from rdkit import Chem

    from golf.chem import mol_to_conformations
    from golf.cli import main as golf_main

    with tempfile.TemporaryDirectory(prefix="conformers_dft_") as tmp:
        smi, out = Path(tmp) / "in.smi", Path(tmp) / "out.sdf"
        smi.write_text(f"{smiles} {name}\n")
        argv = ["conformers", str(smi), "-o", str(out), "--model", args.model, "--threads", str(args.threads),
                "--no-progress", *extra]
        rc = golf_main(argv)
        if rc != 0:
            raise RuntimeError(f"golf conformers exited with {rc}")
        recs = []
        for m in Chem.SDMolSupplier(str(out), removeHs=False):
            if m is not None:
                recs.append((m.GetDoubleProp("golf_energy_eV"), mol_to_conformations(m, mol_id=0)[0]))
    recs.sort(key=lambda r: r[0])
    recs = recs[: args.top_k]
    return [c for _, c in recs], [e for e, _ in recs], dict(argv=argv[5:], n_starts="golf default (same count)")


#: RDKit's ETKDG seed for the MMFF methods. Not 0: with ``randomSeed = 0`` this RDKit embeds every
#: conformer of ``EmbedMultipleConfs`` at the same coordinates (checked: 35 identical starts for fluoxetine).
ETKDG_SEED = 1


def mmff_ensemble(smiles: str, n_starts: int, seed: int = ETKDG_SEED) -> tuple[list, list[float]]:
    """ETKDGv3 starts relaxed with MMFF94, deduplicated like golf, lowest first (all unique ones)."""
    from rdkit import Chem
    from rdkit.Chem import AllChem, rdDistGeom

    from golf.chem import mol_to_conformations
    from golf.conformer_search import deduplicate

    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = rdDistGeom.ETKDGv3()
    params.randomSeed = int(seed)
    params.numThreads = 1
    ids = list(rdDistGeom.EmbedMultipleConfs(mol, int(n_starts), params))
    if not ids:
        raise RuntimeError("ETKDG embedded no conformer")
    res = AllChem.MMFFOptimizeMoleculeConfs(mol, numThreads=1, maxIters=2000)
    energies = [e / KCAL for _, e in res]
    confs = mol_to_conformations(mol, mol_id=0, conf_ids=ids)
    kept, _ = deduplicate(confs, energies)
    return [confs[i] for i in kept], [energies[i] for i in kept]


def run_rdkit_mmff(name: str, smiles: str, n_starts: int, args) -> tuple[list, list[float], dict]:
    confs, e = mmff_ensemble(smiles, n_starts)
    return confs[: args.top_k], e[: args.top_k], dict(etkdg=f"v3 seed {ETKDG_SEED}", mmff_max_iters=2000, rmsd=0.3,
                                                      energy_threshold_kcal=1.0)


def run_rdkit_mmff_xtb(name: str, smiles: str, n_starts: int, args) -> tuple[list, list[float], dict]:
    from golf.conformer_search import deduplicate
    from golf.oracles import OracleSpec
    from golf.oracles.executors import make_executor

    confs, _ = mmff_ensemble(smiles, n_starts)
    pool = confs[: args.xtb_pool or 2 * args.top_k]
    results: dict[int, Any] = {}
    # tblite cannot share a process with torch (libgomp): a worker process, closed (and reaped) per molecule
    with make_executor(OracleSpec("xtb", {}), kind="local", n_workers=1, threads_per_worker=1) as ex:
        for k, c in enumerate(pool):
            ex.submit(c, key=k, task="relax", fmax=0.05, max_steps=300)
        for k, r in ex.as_completed():
            results[k] = r
    relaxed, energies, failed = [], [], 0
    for k, c in enumerate(pool):
        r = results.get(k)
        if r is not None and r.ok and r.positions is not None and r.energy is not None:
            relaxed.append(c.with_positions(r.positions))
            energies.append(float(r.energy))
        else:
            failed += 1
    if not relaxed:
        raise RuntimeError("every GFN2-xTB re-relaxation failed")
    kept, _ = deduplicate(relaxed, energies)
    kept = kept[: args.top_k]
    return [relaxed[i] for i in kept], [energies[i] for i in kept], dict(
        xtb_pool=len(pool), xtb_fmax=0.05, xtb_max_steps=300, xtb_failed=failed)


def run_auto3d(name: str, smiles: str, n_starts: int, args) -> tuple[list, list[float], dict]:
    import torch
    from Auto3D import Auto3DOptions, main as auto3d_main
    from rdkit import Chem

    from golf.chem import mol_to_conformations

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="conformers_dft_auto3d_") as tmp:
        smi = Path(tmp) / "in.smi"
        smi.write_text(f"{smiles} {name}\n")
        opts = Auto3DOptions(path=str(smi), k=args.top_k, optimizing_engine="ANI2xt", use_gpu=False,
                             max_confs=n_starts, enumerate_isomers=False, enumerate_tautomer=False,
                             convergence_threshold=0.05, opt_steps=500, threshold=0.3, isomer_threads=1,
                             use_parallel_embedding=False, memory=4, job_name="auto3d")
        out = auto3d_main(opts)
        recs = []
        for m in Chem.SDMolSupplier(str(out), removeHs=False):
            if m is not None:
                recs.append((float(m.GetProp("E_tot")) * HARTREE_EV, mol_to_conformations(m, mol_id=0)[0]))
    recs.sort(key=lambda r: r[0])
    recs = recs[: args.top_k]
    return [c for _, c in recs], [e for e, _ in recs], dict(engine="ANI2xt", max_confs=n_starts, fmax=0.05,
                                                             opt_steps=500, rmsd=0.3)


RUNNERS = {"golf": run_golf, "rdkit-mmff": run_rdkit_mmff, "rdkit-mmff-xtb": run_rdkit_mmff_xtb,
           "auto3d": run_auto3d,
           "golf-etkdg-start": lambda *a: run_golf(*a, extra=("--mmff-start", "0"))}


# ----------------------------------------------------------------------------------------------
# stages


def selected_molecules(args: argparse.Namespace) -> dict[str, str]:
    if args.smiles:
        out = {}
        for line in Path(args.smiles).read_text().splitlines():
            parts = line.split()
            if parts and not parts[0].startswith("#"):
                out[parts[1] if len(parts) > 1 else f"mol{len(out)}"] = parts[0]
    else:
        out = dict(DRUGS)
    if args.molecules:
        names = args.molecules.split(",")
        unknown = [n for n in names if n not in out]
        if unknown:
            raise SystemExit(f"conformers_dft.py: unknown molecule {unknown[0]!r}")
        out = {n: out[n] for n in names}
    return out


def stage_generate(con: sqlite3.Connection, args: argparse.Namespace) -> None:
    import torch
    from rdkit import Chem

    torch.set_num_threads(args.threads)
    set_meta(con, "top_k", args.top_k)
    mols = selected_molecules(args)
    for idx, (name, smi) in enumerate(mols.items()):
        mol, n_starts = _mol_and_starts(smi)
        con.execute("INSERT OR REPLACE INTO molecules VALUES (?,?,?,?,?,?)",
                    (name, idx, smi, mol.GetNumHeavyAtoms(), Chem.AddHs(mol).GetNumAtoms(), n_starts))
        con.commit()
        for method in args.methods:
            done = con.execute("SELECT ok FROM runs WHERE name = ? AND method = ?", (name, method)).fetchone()
            if done is not None and (done[0] or not args.retry_failed):
                continue
            t0, c0 = time.perf_counter(), cpu_seconds()
            try:
                confs, energies, settings = RUNNERS[method](name, smi, n_starts, args)
                reason = ""
            except Exception as exc:  # one method failing on one molecule is recorded; the rest go on
                confs, energies, settings = [], [], {}
                reason = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            store_run(con, name, method, confs, energies, wall, cpu, settings, reason)
            msg = f"{len(confs)} kept" if not reason else f"FAILED {reason}"
            log(f"generate: {name} {method}: {msg}, wall {wall:.1f} s, CPU {cpu:.1f} s")
            if reason:
                print(f"conformers_dft.py: {name} {method}: {reason}", file=sys.stderr)


def set_meta(con: sqlite3.Connection, key: str, value: Any) -> None:
    con.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(value)))
    con.commit()


def get_meta(con: sqlite3.Connection, key: str, default: Any = None) -> Any:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return default if row is None else json.loads(row[0])


def assign_representatives(con: sqlite3.Connection, name: str, same_rmsd: float,
                           methods: Any = METHODS) -> dict[int, int]:
    """Map every conformer of a molecule (of ``methods``) to a representative (the first stored conformer of
    those methods within ``same_rmsd`` A all-atom RMSD, hydrogens included, symmetry-aware); stored in
    ``same_as`` so every shard and rerun agrees."""
    from rdkit import Chem
    from rdkit.Chem import rdMolAlign

    from golf.chem import conformation_to_mol, quiet_rdkit

    def rmsd(a, b) -> float:
        with quiet_rdkit():
            return float(rdMolAlign.GetBestRMS(Chem.Mol(conformation_to_mol(b)), conformation_to_mol(a),
                                               maxMatches=2000))

    recs = load_conformers(con, name, methods)
    stored = dict(con.execute("SELECT conf_id, rep_id FROM same_as WHERE conf_id IN (%s)" %
                              ",".join("?" * len(recs)), [r["id"] for r in recs]).fetchall()) if recs else {}
    ids = {r["id"] for r in recs}
    if len(stored) == len(recs) and set(stored.values()) <= ids:
        return stored
    reps: list[dict[str, Any]] = []
    out: dict[int, int] = {}
    for r in sorted(recs, key=lambda r: r["id"]):
        hit, best = None, math.inf
        for q in reps:
            if len(q["conf"].numbers) != len(r["conf"].numbers):
                continue
            d = rmsd(q["conf"], r["conf"])
            if d < same_rmsd and d < best:
                hit, best = q, d
        if hit is None:
            reps.append(r)
            out[r["id"]] = r["id"]
            best = 0.0
        else:
            out[r["id"]] = hit["id"]
        con.execute("INSERT OR REPLACE INTO same_as VALUES (?,?,?)", (r["id"], out[r["id"]], float(best)))
    con.commit()
    return out


def stage_dft(con: sqlite3.Connection, args: argparse.Namespace) -> None:
    from golf.oracles import OracleSpec
    from golf.oracles.executors import make_executor

    okey = oracle_key(args.oracle)
    names = [r[0] for r in con.execute("SELECT name FROM molecules ORDER BY idx")]
    if args.molecules:
        names = [n for n in names if n in args.molecules.split(",")]
    i, m = args.shard
    names = [n for k, n in enumerate(names) if k % m == i]
    settings = {**DFT_SETTINGS, "threads": args.threads} if args.oracle == "dft" else {}
    with make_executor(OracleSpec(args.oracle, settings), kind="local", n_workers=1,
                       threads_per_worker=args.threads, timeout=args.timeout) as ex:
        for name in names:
            rep = assign_representatives(con, name, args.same_rmsd, args.methods)
            recs = {r["id"]: r for r in load_conformers(con, name, args.methods)}
            done = {r[0] for r in con.execute("SELECT rep_id FROM singles WHERE oracle = ? AND ok = 1", (okey,))}
            # each method's top conformer first, then rank 1 of each, ...: partial molecules are still telling
            todo = sorted({rep[c] for c in recs} - done, key=lambda c: (recs[c]["rank"], c))
            if not todo:
                continue
            log(f"{args.oracle}: {name}: {len(todo)} single points ({len(set(rep.values()))} unique of {len(recs)})")
            for cid in todo:
                ex.submit(recs[cid]["conf"], key=cid, task="energy")
            for cid, res in ex.as_completed():
                con.execute("INSERT OR REPLACE INTO singles VALUES (?,?,?,?,?,?,?)",
                            (cid, okey, int(bool(res.ok)), float(res.energy) if res.ok else None,
                             None if res.ok else res.reason, float(res.seconds), now()))
                con.commit()
                log(f"  {name} conf {cid}: " + (f"E = {res.energy:.6f} eV" if res.ok else f"FAILED {res.reason}")
                    + f" in {res.seconds:.1f} s")


def _spearman(a: list[float], b: list[float]) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return math.nan
    r = spearmanr(a, b).statistic
    return float(r) if np.isfinite(r) else math.nan


def _stats(x: list[float]) -> dict[str, float | None]:
    x = [v for v in x if np.isfinite(v)]
    if not x:
        return dict(median=None, mean=None, max=None)
    return dict(median=float(np.median(x)), mean=float(np.mean(x)), max=float(np.max(x)))


def stage_report(con: sqlite3.Connection, args: argparse.Namespace) -> dict[str, Any]:
    okey = oracle_key(args.oracle)
    mol_rows = con.execute("SELECT name, smiles, n_heavy, n_atoms, n_starts FROM molecules ORDER BY idx").fetchall()
    methods = [m for m in args.methods if con.execute("SELECT 1 FROM runs WHERE method = ?", (m,)).fetchone()]
    energies = dict(con.execute("SELECT rep_id, energy_eV FROM singles WHERE oracle = ? AND ok = 1", (okey,)))
    per_mol, complete = [], []
    for name, smi, nh, na, ns in mol_rows:
        rep = dict(con.execute("SELECT s.conf_id, s.rep_id FROM same_as s JOIN conformers c ON c.id = s.conf_id "
                               "WHERE c.name = ?", (name,)))
        recs = load_conformers(con, name, methods)
        row: dict[str, Any] = dict(molecule=name, smiles=smi, n_heavy=nh, n_atoms=na, n_starts=ns, methods={})
        scored = [energies.get(rep.get(r["id"])) for r in recs]
        row["complete"] = bool(recs) and all(e is not None for e in scored)
        union = [e for e in scored if e is not None]
        umin = min(union) if union else None
        row["union_min_eV"] = umin
        for method in methods:
            run = con.execute("SELECT ok, wall_s, cpu_s, reason FROM runs WHERE name = ? AND method = ?",
                              (name, method)).fetchone()
            mine = [r for r in recs if r["method"] == method]
            own = [r["own_eV"] for r in mine]
            orc = [energies.get(rep.get(r["id"])) for r in mine]
            m: dict[str, Any] = dict(ok=bool(run and run[0]), wall_s=run[1] if run else None,
                                     cpu_s=run[2] if run else None, reason=run[3] if run else "not run",
                                     own_rel_kcal=[(e - own[0]) * KCAL for e in own],
                                     oracle_rel_to_union_min_kcal=[None if e is None or umin is None else
                                                                   (e - umin) * KCAL for e in orc],
                                     conf_ids=[r["id"] for r in mine])
            if mine and all(e is not None for e in orc) and umin is not None:
                m["top_above_union_min_kcal"] = (orc[0] - umin) * KCAL
                m["spearman"] = _spearman(own, orc)
            row["methods"][method] = m
        per_mol.append(row)
        if row["complete"]:
            complete.append(row)
    summary: dict[str, Any] = {}
    for method in methods:
        tops = [r["methods"][method].get("top_above_union_min_kcal") for r in complete]
        tops = [t for t in tops if t is not None]
        sp = [r["methods"][method].get("spearman") for r in complete]
        sp = [s for s in sp if s is not None and np.isfinite(s)]
        runs = con.execute("SELECT ok, wall_s, cpu_s FROM runs WHERE method = ?", (method,)).fetchall()
        summary[method] = dict(
            molecules_scored=len(tops), molecules_failed=sum(1 for r in runs if not r[0]),
            top_within_0_5_fraction=(sum(t <= 0.5 for t in tops) / len(tops)) if tops else None,
            top_above_union_min_kcal=_stats(tops), median_spearman=float(np.median(sp)) if sp else None,
            spearman_molecules=len(sp), wall_s=float(sum(r[1] for r in runs)), cpu_s=float(sum(r[2] for r in runs)),
            conformers_kept=con.execute("SELECT COUNT(*) FROM conformers WHERE method = ?", (method,)).fetchone()[0],
        )
    n_conf = con.execute("SELECT COUNT(*) FROM conformers").fetchone()[0]
    n_unique = con.execute("SELECT COUNT(DISTINCT rep_id) FROM same_as").fetchone()[0]
    n_done = con.execute("SELECT COUNT(*) FROM singles WHERE oracle = ? AND ok = 1", (okey,)).fetchone()[0]
    n_unassigned = con.execute("SELECT COUNT(*) FROM conformers WHERE id NOT IN (SELECT conf_id FROM same_as)"
                               ).fetchone()[0]
    doc = dict(
        benchmark="conformers_dft", date=now(), oracle=args.oracle,
        oracle_settings=DFT_SETTINGS if args.oracle == "dft" else "golf defaults (test mode, not DFT)",
        oracle_note="energies only (Oracle.compute_energy, no gradient); the first 13 DFT single points were "
                    "energy+gradient calls (same energy to the SCF tolerance, 1e-9 Hartree)",
        top_k=get_meta(con, "top_k", args.top_k),
        same_rmsd_A=args.same_rmsd, tie_kcal=0.5, molecules_total=len(mol_rows), molecules_complete=len(complete),
        conformers=n_conf, unique_geometries=n_unique, single_points_done=n_done,
        conformers_not_yet_grouped=n_unassigned, summary=summary, per_molecule=per_mol,
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    os.replace(tmp, out)
    print(f"{len(complete)}/{len(mol_rows)} molecules complete ({args.oracle}); "
          f"{n_conf} conformers, {n_unique} unique geometries ({n_unassigned} not grouped yet), "
          f"{n_done} single points stored")
    print("| method | top within 0.5 kcal/mol | top above union min, kcal/mol (median/mean/max) "
          "| median Spearman | wall s | CPU s | failed |")
    print("|---|---|---|---|---|---|---|")
    for method, s in summary.items():
        st = s["top_above_union_min_kcal"]
        fmt = (lambda v: "-" if v is None else f"{v:.2f}")
        print(f"| {method} | {fmt(s['top_within_0_5_fraction'])} ({s['molecules_scored']}) | "
              f"{fmt(st['median'])} / {fmt(st['mean'])} / {fmt(st['max'])} | {fmt(s['median_spearman'])} | "
              f"{s['wall_s']:.0f} | {s['cpu_s']:.0f} | {s['molecules_failed']} |")
    print(f"wrote {out}")
    return doc


def _shard(text: str) -> tuple[int, int]:
    try:
        i, m = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/M, got {text!r}") from None
    if not 0 <= i < m:
        raise argparse.ArgumentTypeError(f"shard {text!r}: need 0 <= I < M")
    return i, m


def _methods(text: str) -> list[str]:
    out = [m for m in text.split(",") if m]
    known = METHODS + OPTIONAL_METHODS
    bad = [m for m in out if m not in known]
    if bad or not out:
        raise argparse.ArgumentTypeError(f"unknown method {bad[0] if bad else text!r} (known: {', '.join(known)})")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("stages", nargs="+", choices=("generate", "dft", "report"))
    ap.add_argument("--db", type=Path, default=DB_PATH)
    ap.add_argument("--out", type=Path, default=JSON_PATH)
    ap.add_argument("--methods", type=_methods, default=list(METHODS), help=f"comma list of {', '.join(METHODS)}")
    ap.add_argument("--smiles", default=None, help="'SMILES name' per line instead of the built-in drug list")
    ap.add_argument("--molecules", default=None, help="comma list of molecule names (default all)")
    ap.add_argument("--top-k", type=int, default=5, help="conformers kept per method (default 5)")
    ap.add_argument("--xtb-pool", type=int, default=0, help="MMFF conformers re-relaxed with xTB (default 2 K)")
    ap.add_argument("--model", default="GOLF-10k")
    ap.add_argument("--threads", type=int, default=1, help="torch / DFT threads (default 1)")
    ap.add_argument("--oracle", default="dft", choices=("dft", "xtb", "mmff"),
                    help="single-point oracle (default dft; xtb/mmff only to test the pipeline)")
    ap.add_argument("--same-rmsd", type=float, default=0.01,
                    help="A, all-atom: geometries this close share one single point (default 0.01)")
    ap.add_argument("--shard", type=_shard, default=(0, 1), metavar="I/M", help="dft: molecules k with k %% M == I")
    ap.add_argument("--timeout", type=float, default=4 * 3600.0, help="seconds per single point")
    ap.add_argument("--retry-failed", action="store_true", help="generate: rerun methods that failed")
    args = ap.parse_args(argv)
    if args.top_k < 1:
        print("conformers_dft.py: --top-k must be >= 1", file=sys.stderr)
        return 2
    con = connect(args.db)
    try:
        for stage in args.stages:
            if stage == "generate":
                stage_generate(con, args)
            elif stage == "dft":
                stage_dft(con, args)
            else:
                stage_report(con, args)
    finally:
        con.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
