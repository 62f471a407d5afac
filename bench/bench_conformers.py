"""Benchmark: ``golf conformers`` (GOLF-10k) side by side with Auto3D (ANI2xt) on CPU.

Same molecules, same machine, one run. Molecules: the first N of golf's NCI test split with 10-25
heavy atoms (``golf.pool.select_pool_molecules``) made of ANI2xt's elements (no Br: Auto3D's
ANI2xt refuses the whole input otherwise); a molecule with unassigned stereo elements is
given the first of its stereoisomers (RDKit enumeration), so both tools work on the same fully
specified stereoisomer (stereo enumeration off in both).

Comparable settings (both tools): the same number of RDKit ETKDG conformers per molecule
(``--n-conformers``), force convergence max |F| < ``--fmax`` eV/A, step limit ``--max-steps``,
duplicate removal at heavy-atom RMSD ``--rmsd`` A, the ``--top-k`` lowest kept, serial RDKit
embedding, ``--threads`` torch threads. Wall time: SMILES file in -> ranked SDF out, model loading
included (each tool's own).

Quality, judged by oracles neither model was trained on:

* GFN2-xTB single points (tblite, golf's executors) on every kept conformer of both tools;
  per molecule: is a tool's top-ranked conformer the lowest in xTB energy over the union of both
  tools' conformers (within ``--tie`` kcal/mol); its xTB excess over that minimum (kcal/mol); the
  Spearman correlation of the tool's relative energies with xTB's (molecules with >= 3 kept);
* heavy-atom RMSD (symmetry-aware) between a tool's top conformer and its own GFN2-xTB re-relaxation;
* bonds / stereo of every kept conformer checked against the input (golf's checks);
* optional (``--dft K``): DFT single points (golf's ``dft`` oracle, wB97X-D3BJ/def2-SVP) on the top
  conformer of each tool for the first K molecules: which tool's top is lower.

    nice -n 10 python bench/bench_conformers.py --n-molecules 50 --n-conformers 10 --top-k 5 --threads 2

Writes bench/results/conformers.json and prints a markdown table. ``--drugs``: ten marketed drugs, golf's
default vs its former batch size vs RDKit ETKDGv3 + MMFF94 (bench/conformers_drugs.py). Auto3D (PyPI ``auto3d``, with
``torchani`` for ANI2xt) is a benchmark-only dependency.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np


HERE = Path(__file__).resolve().parent
KCAL = 23.060547830619026  # kcal/mol per eV
HARTREE_EV = 27.211386245988


#: Elements of Auto3D's ANI2xt (no Br; golf's models also know Br).
ANI2XT_ELEMENTS = {"H", "C", "N", "O", "F", "S", "Cl"}


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its reaped children."""
    import resource

    a, b = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def pick_molecules(n: int, seed: int) -> list[tuple[str, str]]:
    """(name, fully stereo-specified SMILES) of the first n NCI test-split molecules with 10-25 heavy atoms
    and only ANI2xt's elements (H C N O F S Cl)."""
    from rdkit import Chem

    from golf.conformer_search import expand_stereoisomers
    from golf.pool import select_pool_molecules

    out = []
    for mol_id, smi in select_pool_molecules(None, split="test", seed=seed, min_heavy=10, max_heavy=25):
        mol = Chem.MolFromSmiles(smi)
        if any(a.GetSymbol() not in ANI2XT_ELEMENTS for a in mol.GetAtoms()):
            continue  # Auto3D refuses the whole input when one molecule is outside ANI2xt's elements
        if len(out) == n:
            break
        iso = expand_stereoisomers(mol, 1)[0]
        out.append((f"nci{mol_id}", Chem.MolToSmiles(iso)))
    return out


# ----------------------------------------------------------------------------------------------
# the two tools


def run_golf(smi_path: Path, out_dir: Path, args) -> dict:
    """golf conformers through its CLI entry (model loading, embedding, relaxation, checks, dedup)."""
    from golf.cli import main

    out = out_dir / "golf.sdf"
    argv = ["conformers", str(smi_path), "-o", str(out), "--model", args.model, "--n-conformers",
            str(args.n_conformers), "--fmax", str(args.fmax), "--max-steps", str(args.max_steps), "--rmsd",
            str(args.rmsd), "--top-k", str(args.top_k), "--threads", str(args.threads), "--no-progress"]
    t0, c0 = time.perf_counter(), cpu_seconds()
    rc = main(argv)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    if rc != 0:
        raise SystemExit(f"golf conformers failed ({rc})")
    return dict(sdf=str(out), wall_s=wall, cpu_s=cpu, argv=argv)


def run_auto3d(smi_path: Path, out_dir: Path, args) -> dict:
    import torch
    from Auto3D import Auto3DOptions, main

    torch.set_num_threads(args.threads)
    opts = Auto3DOptions(
        path=str(smi_path), k=args.top_k, optimizing_engine="ANI2xt", use_gpu=False,
        max_confs=args.n_conformers, enumerate_isomers=False, enumerate_tautomer=False,
        convergence_threshold=args.fmax, opt_steps=args.max_steps, threshold=args.rmsd,
        isomer_threads=1, use_parallel_embedding=False, memory=args.auto3d_memory, job_name="auto3d",
    )
    t0, c0 = time.perf_counter(), cpu_seconds()
    out = main(opts)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    dst = out_dir / "auto3d.sdf"
    log = Path(str(out)).parent / "Auto3D.log"
    import re

    found = re.findall(r"Total 3D conformers: (\d+)", log.read_text()) if log.is_file() else []
    Path(str(out)).replace(dst)
    settings = {k: getattr(opts, k) for k in ("k", "optimizing_engine", "use_gpu", "max_confs", "enumerate_isomers",
                                              "convergence_threshold", "opt_steps", "threshold", "patience",
                                              "memory", "batchsize_atoms", "isomer_threads",
                                              "use_parallel_embedding")}
    return dict(sdf=str(dst), wall_s=wall, cpu_s=cpu, settings=settings,
                relaxed_conformers=sum(int(x) for x in found) if found else None)


# ----------------------------------------------------------------------------------------------
# reading both outputs into golf conformations


def read_tool_sdf(path: str, tool: str, names: set[str]) -> dict[str, list[dict]]:
    """{molecule name: [{conf, energy_kcal (tool's own, absolute), rank}]}, each list ranked by the tool."""
    from rdkit import Chem

    from golf.chem import mol_to_conformations

    by: dict[str, list[dict]] = {}
    for m in Chem.SDMolSupplier(path, removeHs=False):
        if m is None:
            continue
        if tool == "golf":
            name, e = m.GetProp("golf_molecule"), m.GetDoubleProp("golf_energy_eV") * KCAL
        else:
            ident = m.GetProp("ID")
            name = ident.rsplit("_", 2)[0] if ident not in names else ident
            e = float(m.GetProp("E_tot")) * HARTREE_EV * KCAL
        conf = mol_to_conformations(m, mol_id=len(by), smiles=None)[0]
        by.setdefault(name, []).append(dict(conf=conf, energy_kcal=e))
    for recs in by.values():
        recs.sort(key=lambda r: r["energy_kcal"])
    return by


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    if len(a) < 3:
        return math.nan
    r = spearmanr(a, b).statistic
    return float(r) if np.isfinite(r) else math.nan


def oracle_jobs(jobs: dict, oracle: str, task: str, workers: int, settings: dict | None = None, **kw) -> dict:
    """Run {key: conformation} through golf's local executor; {key: result}."""
    from golf.oracles import OracleSpec
    from golf.oracles.executors import make_executor

    out = {}
    with make_executor(OracleSpec(oracle, settings or {}), kind="local", n_workers=workers) as ex:
        for key, conf in jobs.items():
            ex.submit(conf, key=key, task=task, **kw)
        for key, res in ex.as_completed():
            out[key] = res
    return out


def process_chunk(mols: list[tuple[str, str]], work: Path, args, use_auto3d: bool) -> dict:
    """Both tools on one chunk of molecules, then xTB single points / re-relaxations of their output."""
    from golf.conformer_search import (_mol_of, bond_graph, heavy_atom_rmsd_matrix, perceived_bonds, stereo_key)
    from rdkit import Chem

    work.mkdir(parents=True, exist_ok=True)
    smi = work / "molecules.smi"
    smi.write_text("".join(f"{s} {n}\n" for n, s in mols))
    names = {n for n, _ in mols}
    smiles_of = dict(mols)
    tfile = work / "timings.json"  # tool runs are kept, so --reuse redoes only the oracle stages
    saved = json.loads(tfile.read_text()) if args.reuse and tfile.is_file() else {}
    timings: dict[str, dict] = {}
    if "golf" in saved and Path(saved["golf"]["sdf"]).is_file():
        timings["golf"] = saved["golf"]
    else:
        timings["golf"] = run_golf(smi, work, args)
        tfile.write_text(json.dumps(timings, indent=1))
    print(f"golf: {timings['golf']['wall_s']:.1f} s wall, {timings['golf']['cpu_s']:.1f} s CPU", file=sys.stderr)
    tools = ["golf"]
    auto3d_error = None
    if use_auto3d:
        try:
            if "auto3d" in saved and Path(saved["auto3d"]["sdf"]).is_file():
                timings["auto3d"] = saved["auto3d"]
            else:
                timings["auto3d"] = run_auto3d(smi, work, args)
                tfile.write_text(json.dumps(timings, indent=1))
            tools.append("auto3d")
            print(f"auto3d: {timings['auto3d']['wall_s']:.1f} s wall, {timings['auto3d']['cpu_s']:.1f} s CPU",
                  file=sys.stderr)
        except Exception as exc:  # report precisely, keep the golf side
            auto3d_error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            print(f"auto3d failed: {auto3d_error}", file=sys.stderr)
    confs = {t: read_tool_sdf(timings[t]["sdf"], t, names) for t in tools}

    # bonds (perceived from 3D vs the file's own bond table) and stereo (from 3D vs the input SMILES)
    integrity = {t: dict(n=0, graph_changed=0, stereo_changed=0) for t in tools}
    for name, s in mols:
        ref_numbers = sorted(a.GetAtomicNum() for a in Chem.AddHs(Chem.MolFromSmiles(s)).GetAtoms())
        for t in tools:
            for r in confs[t].get(name, []):
                integrity[t]["n"] += 1
                c = r["conf"]
                if sorted(c.numbers.tolist()) != ref_numbers or \
                        perceived_bonds(c.numbers, c.positions) != bond_graph(_mol_of(c)):
                    integrity[t]["graph_changed"] += 1
                elif stereo_key(c) != s:
                    integrity[t]["stereo_changed"] += 1

    t0 = time.perf_counter()
    jobs = {(t, name, i): r["conf"] for t in tools for name, recs in confs[t].items() for i, r in enumerate(recs)}
    sp = oracle_jobs(jobs, "xtb", "compute", args.workers)
    xtb_sp_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    tops = {(t, name): recs[0]["conf"] for t in tools for name, recs in confs[t].items() if recs}
    rel = oracle_jobs(tops, "xtb", "relax", args.workers, fmax=args.xtb_relax_fmax, max_steps=300)
    xtb_relax_s = time.perf_counter() - t0
    print(f"xtb: {len(jobs)} single points in {xtb_sp_s:.0f} s, {len(tops)} relaxations in {xtb_relax_s:.0f} s",
          file=sys.stderr)

    per_mol = []
    for name, _ in mols:
        row: dict = dict(molecule=name, smiles=smiles_of[name])
        union = []
        for t in tools:
            recs = confs[t].get(name, [])
            x = [sp[(t, name, i)].energy * KCAL if sp[(t, name, i)].ok else math.nan for i in range(len(recs))]
            row[f"{t}_n"] = len(recs)
            row[f"{t}_xtb_kcal"] = x
            row[f"{t}_model_rel_kcal"] = [r["energy_kcal"] - recs[0]["energy_kcal"] for r in recs]
            ok = [i for i in range(len(recs)) if np.isfinite(x[i])]
            row[f"{t}_spearman"] = spearman([row[f"{t}_model_rel_kcal"][i] for i in ok], [x[i] for i in ok])
            union += [v for v in x if np.isfinite(v)]
            rr = rel.get((t, name))
            row[f"{t}_top_xtb_relax_rmsd"] = math.nan
            if rr is not None and rr.ok and rr.positions is not None:
                top = recs[0]["conf"]
                row[f"{t}_top_xtb_relax_rmsd"] = heavy_atom_rmsd_matrix([top, top.with_positions(rr.positions)])[(0, 1)]
        umin = min(union) if union else math.nan
        row["union_min_xtb_kcal"] = umin
        for t in tools:
            x = row[f"{t}_xtb_kcal"]
            row[f"{t}_top_excess_kcal"] = x[0] - umin if x and np.isfinite(x[0]) else math.nan
            row[f"{t}_top_is_lowest"] = bool(x and np.isfinite(x[0]) and x[0] - umin <= args.tie)
        per_mol.append(row)
    dft_rows = []
    if args.dft_left > 0 and len(tools) == 2:
        picked = [n for n, _ in mols if confs["golf"].get(n) and confs["auto3d"].get(n)][: args.dft_left]
        args.dft_left -= len(picked)
        djobs = {(t, n): confs[t][n][0]["conf"] for t in tools for n in picked}
        t0 = time.perf_counter()
        dres = oracle_jobs(djobs, "dft", "compute", args.workers, settings=dict(threads=1))
        print(f"dft: {len(djobs)} single points in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
        for n in picked:
            g, a = dres[("golf", n)], dres[("auto3d", n)]
            row = dict(molecule=n, ok=bool(g.ok and a.ok), seconds=g.seconds + a.seconds)
            if row["ok"]:
                row["golf_minus_auto3d_kcal"] = (g.energy - a.energy) * KCAL
                cg, ca = confs["golf"][n][0]["conf"], confs["auto3d"][n][0]["conf"]
                row["tops_rmsd"] = heavy_atom_rmsd_matrix([cg, ca])[(0, 1)]
            else:
                row["reason"] = g.reason or a.reason
            dft_rows.append(row)
    return dict(tools=tools, timings={t: {k: v for k, v in timings[t].items() if k != "argv"} for t in tools},
                auto3d_error=auto3d_error, integrity=integrity, per_mol=per_mol, xtb_sp_s=xtb_sp_s,
                xtb_relax_s=xtb_relax_s, n_xtb_sp=len(jobs), n_xtb_relax=len(tops), dft_rows=dft_rows)


def aggregate(chunks: list[dict], args, n_requested: int) -> dict:
    tools = [t for t in ("golf", "auto3d") if all(t in c["tools"] for c in chunks)]
    per_mol = [r for c in chunks for r in c["per_mol"]]
    n = len(per_mol)
    summary = {}
    for t in tools:
        rows = [r for r in per_mol if r.get(f"{t}_n")]
        sp_vals = [r[f"{t}_spearman"] for r in rows if np.isfinite(r[f"{t}_spearman"])]
        rmsd = [r[f"{t}_top_xtb_relax_rmsd"] for r in rows if np.isfinite(r[f"{t}_top_xtb_relax_rmsd"])]
        exc = [r[f"{t}_top_excess_kcal"] for r in rows if np.isfinite(r[f"{t}_top_excess_kcal"])]
        wall = sum(c["timings"][t]["wall_s"] for c in chunks)
        cpu = sum(c["timings"][t]["cpu_s"] for c in chunks)
        integ = {k: sum(c["integrity"][t][k] for c in chunks) for k in ("n", "graph_changed", "stereo_changed")}
        summary[t] = dict(
            molecules_with_output=len(rows), conformers_kept=sum(r[f"{t}_n"] for r in rows),
            wall_s=wall, cpu_s=cpu, input_conformers_per_s=args.n_conformers * n / wall,
            input_conformers_per_cpu_s=args.n_conformers * n / cpu,
            top_is_xtb_lowest=sum(r[f"{t}_top_is_lowest"] for r in rows), top_is_xtb_lowest_of=n,
            top_xtb_excess_kcal_mean=float(np.mean(exc)) if exc else math.nan,
            top_xtb_excess_kcal_median=float(np.median(exc)) if exc else math.nan,
            spearman_mean=float(np.mean(sp_vals)) if sp_vals else math.nan,
            spearman_median=float(np.median(sp_vals)) if sp_vals else math.nan,
            spearman_n_molecules=len(sp_vals),
            top_xtb_relax_rmsd_mean=float(np.mean(rmsd)) if rmsd else math.nan,
            top_xtb_relax_rmsd_median=float(np.median(rmsd)) if rmsd else math.nan,
            integrity=integ,
        )
    both = [r for r in per_mol if all(r.get(f"{t}_n") for t in tools)]
    if len(tools) == 2:
        summary["both_top_lowest"] = sum(r["golf_top_is_lowest"] and r["auto3d_top_is_lowest"] for r in both)
    dft_rows = [r for c in chunks for r in c["dft_rows"]]
    ok = [r for r in dft_rows if r["ok"]]
    dft = None
    if dft_rows:
        dft = dict(rows=dft_rows, n=len(ok), settings="golf dft oracle defaults (wB97X-D3BJ/def2-SVP, PySCF)",
                   golf_lower=sum(r["golf_minus_auto3d_kcal"] < -args.tie for r in ok),
                   auto3d_lower=sum(r["golf_minus_auto3d_kcal"] > args.tie for r in ok),
                   tie=sum(abs(r["golf_minus_auto3d_kcal"]) <= args.tie for r in ok),
                   seconds=sum(r["seconds"] for r in dft_rows))
    import torch

    return dict(
        benchmark="conformers", date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        machine=dict(platform=platform.platform(), cpus=os.cpu_count(), torch=torch.__version__,
                     load_note="2 cores shared with other jobs; wall times depend on the load, CPU times less so"),
        molecules=dict(n=n, requested=n_requested, chunk_size=args.chunk,
                       source="NCI first_5K test split (golf split seed 0), 10-25 heavy atoms, H C N O F S Cl only, first stereoisomer",
                       list=[(r["molecule"], r["smiles"]) for r in per_mol]),
        settings=dict(n_conformers=args.n_conformers, top_k=args.top_k, fmax_eV_A=args.fmax,
                      max_steps=args.max_steps, rmsd_A=args.rmsd, threads=args.threads, tie_kcal=args.tie,
                      xtb_relax_fmax=args.xtb_relax_fmax, golf_model=args.model,
                      auto3d=next((c["timings"]["auto3d"].get("settings") for c in chunks if "auto3d" in c["timings"]),
                                  None),
                      auto3d_error=next((c["auto3d_error"] for c in chunks if c["auto3d_error"]), None)),
        timings=dict(xtb_single_points_s=sum(c["xtb_sp_s"] for c in chunks),
                     xtb_relaxations_s=sum(c["xtb_relax_s"] for c in chunks),
                     n_xtb_single_points=sum(c["n_xtb_sp"] for c in chunks),
                     n_xtb_relaxations=sum(c["n_xtb_relax"] for c in chunks)),
        summary=summary, dft=dft, per_molecule=per_mol,
    )


def analysis(result: dict) -> dict:
    """Head-to-head and by-group numbers from the per-molecule rows (both tools present)."""
    rows = [r for r in result["per_molecule"] if r.get("golf_n") and r.get("auto3d_n")]
    if not rows:
        return {}
    tie = result["settings"]["tie_kcal"]
    d = [r["golf_top_excess_kcal"] - r["auto3d_top_excess_kcal"] for r in rows]
    groups = {"nitro_or_azo": [r for r in rows if "[N+](=O)[O-]" in r["smiles"] or "N=N" in r["smiles"]]}
    groups["rest"] = [r for r in rows if r not in groups["nitro_or_azo"]]
    out = dict(n_both=len(rows), golf_top_lower=sum(x < -tie for x in d), auto3d_top_lower=sum(x > tie for x in d),
               tie=sum(abs(x) <= tie for x in d), groups={})
    for name, rs in groups.items():
        out["groups"][name] = dict(n=len(rs), molecules=[r["molecule"] for r in rs], **{
            f"{t}_top_excess_kcal_{f.__name__}": float(f([r[f"{t}_top_excess_kcal"] for r in rs])) if rs else math.nan
            for t in ("golf", "auto3d") for f in (np.mean, np.median)})
    return out


def main() -> None:
    if len(sys.argv) == 6 and sys.argv[1] == "--_child":  # one measured method of --drugs
        sys.path.insert(0, str(HERE))
        from conformers_drugs import child

        child(*sys.argv[2:])
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drugs", action="store_true",
                    help="ten marketed drugs: golf default vs --batch-size 256 vs RDKit+MMFF (bench/conformers_drugs.py)")
    ap.add_argument("--before-src", default=None,
                    help="--drugs: a golf src directory to run as 'golf before' (default: this tree, --batch-size 256)")
    ap.add_argument("--before-timeout", type=float, default=None,
                    help="--drugs: stop 'golf before' after this many seconds and report its usage as a lower bound")
    ap.add_argument("--n-molecules", type=int, default=50)
    ap.add_argument("--chunk", type=int, default=10, help="molecules per round (golf, Auto3D, xTB); JSON after each")
    ap.add_argument("--n-conformers", type=int, default=10)
    ap.add_argument("--top-k", type=int, default=5)
    from golf.thresholds import NNP_FMAX  # here, not at the top: the --drugs child may run an older golf tree

    ap.add_argument("--fmax", type=float, default=NNP_FMAX)
    ap.add_argument("--max-steps", type=int, default=500)
    ap.add_argument("--rmsd", type=float, default=0.3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2, help="xTB/DFT worker processes")
    ap.add_argument("--model", default="GOLF-10k")
    ap.add_argument("--auto3d-memory", type=int, default=4, help="GB given to Auto3D (batch sizing)")
    ap.add_argument("--tie", type=float, default=0.1, help="kcal/mol: 'lowest' within this of the union minimum")
    ap.add_argument("--xtb-relax-fmax", type=float, default=NNP_FMAX)
    ap.add_argument("--dft", type=int, default=0, help="DFT single points on both tops of the first K molecules")
    ap.add_argument("--deadline", default=None, help="HH:MM UTC: start no new chunk after this")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default="/tmp/golf_bench_conformers")
    ap.add_argument("--out", default=str(HERE / "results" / "conformers.json"))
    ap.add_argument("--skip-auto3d", action="store_true")
    ap.add_argument("--reuse", action="store_true",
                    help="reuse each chunk's tool outputs and timings.json in --work (redo only the oracle stages)")
    ap.add_argument("--analyze", default=None, help="only add the head-to-head analysis to this results JSON")
    args = ap.parse_args()
    if args.drugs:
        sys.path.insert(0, str(HERE))
        from conformers_drugs import run, table as drugs_table

        out = Path(args.out) if args.out != str(HERE / "results" / "conformers.json") else \
            HERE / "results" / "conformers_drugs.json"
        print(drugs_table(run(Path(args.work) / "drugs", out, args.before_src, args.before_timeout)))
        return
    args.dft_left = args.dft
    if args.analyze:
        res = json.loads(Path(args.analyze).read_text())
        res["analysis"] = analysis(res)
        Path(args.analyze).write_text(json.dumps(res, indent=1) + "\n")
        print(json.dumps(res["analysis"], indent=1))
        return

    mols = pick_molecules(args.n_molecules, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    chunks: list[dict] = []
    for k in range(0, len(mols), args.chunk):
        if args.deadline and chunks and time.strftime("%H:%M", time.gmtime()) >= args.deadline:
            print(f"deadline {args.deadline} UTC: stopping after {k} molecules", file=sys.stderr)
            break
        print(f"chunk {k // args.chunk + 1}: molecules {k + 1}-{min(k + args.chunk, len(mols))}", file=sys.stderr)
        chunks.append(process_chunk(mols[k:k + args.chunk], Path(args.work) / f"chunk{k // args.chunk:02d}", args,
                                    use_auto3d=not args.skip_auto3d))
        result = aggregate(chunks, args, len(mols))
        result["analysis"] = analysis(result)
        out.write_text(json.dumps(result, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
                       + "\n")
        print(table(result), file=sys.stderr)
    print(table(result))


def table(result: dict) -> str:
    s = {k: v for k, v in result["summary"].items() if isinstance(v, dict)}
    tools = list(s)
    label = {"golf": f"golf ({result['settings']['golf_model']})", "auto3d": "Auto3D (ANI2xt)"}
    lines = ["| | " + " | ".join(label[t] for t in tools) + " |", "|---|" + "---|" * len(tools)]

    def row(title, fmt):
        lines.append(f"| {title} | " + " | ".join(fmt(s[t]) for t in tools) + " |")

    n = result["molecules"]["n"]
    row("wall time, s (SMILES -> ranked SDF)", lambda a: f"{a['wall_s']:.0f}")
    row("CPU time, s (process + children)", lambda a: f"{a['cpu_s']:.0f}")
    row("input conformers / s (wall)", lambda a: f"{a['input_conformers_per_s']:.2f}")
    row("input conformers / CPU s", lambda a: f"{a['input_conformers_per_cpu_s']:.2f}")
    row("molecules with output", lambda a: f"{a['molecules_with_output']}/{n}")
    row("conformers kept", lambda a: f"{a['conformers_kept']}")
    row(f"top conformer is the xTB-lowest of the union (within {result['settings']['tie_kcal']} kcal/mol)",
        lambda a: f"{a['top_is_xtb_lowest']}/{a['top_is_xtb_lowest_of']}")
    row("top conformer's xTB excess over the union minimum, kcal/mol (mean / median)",
        lambda a: f"{a['top_xtb_excess_kcal_mean']:.2f} / {a['top_xtb_excess_kcal_median']:.2f}")
    row("Spearman of relative energies vs xTB (mean / median, molecules)",
        lambda a: f"{a['spearman_mean']:.2f} / {a['spearman_median']:.2f} ({a['spearman_n_molecules']})")
    row("heavy-atom RMSD top vs its xTB re-relaxation, A (mean / median)",
        lambda a: f"{a['top_xtb_relax_rmsd_mean']:.3f} / {a['top_xtb_relax_rmsd_median']:.3f}")
    row("kept conformers with changed bonds / stereo",
        lambda a: f"{a['integrity']['graph_changed']} / {a['integrity']['stereo_changed']} of {a['integrity']['n']}")
    out = "\n".join(lines)
    if "both_top_lowest" in result["summary"]:
        out += f"\n\nBoth tops are the xTB-lowest in {result['summary']['both_top_lowest']}/{n} molecules."
    d = result.get("dft")
    if d:
        out += (f"\n\nDFT ({d['settings']}) on the top conformer of {d['n']} molecules: golf's top lower in "
                f"{d['golf_lower']}, Auto3D's lower in {d['auto3d_lower']}, tie (within "
                f"{result['settings']['tie_kcal']} kcal/mol) {d['tie']}.")
    return out


if __name__ == "__main__":
    main()
