"""``bench/bench_conformers.py --drugs``: ``golf conformers`` on ten marketed drugs against RDKit ETKDGv3 + MMFF94.

Methods, each in a fresh subprocess (CPU seconds of that process and its relaxation processes, from
``getrusage``; peak resident size of the whole process tree, sampled every 0.5 s and never below the process's own
exact peak; model loading, embedding, relaxation, checks, deduplication and writing included):

* ``golf default``: ``golf conformers drugs.smi`` with every default (the batch size is then sized by memory, the
  relaxation runs in one process per core);
* ``golf ETKDG start``: the same with ``--mmff-start 0`` (the model relaxes the ETKDG conformers themselves, as
  before the MMFF start became the default);
* ``golf one process``: the same with ``--processes 1`` (the default before relaxation processes: torch's threads);
* ``golf before``: the same with ``--batch-size 256`` (the former default), all else equal;
* ``RDKit+MMFF``: the same ETKDGv3 conformers (golf's embedding: same counts and seed), each relaxed with
  RDKit's MMFF94 (500 iterations), then golf's deduplication (heavy-atom RMSD 0.3 A, 1 kcal/mol) and the
  10 lowest kept, as golf does.

Force calls: conformer energy + force evaluations of the NNP (a count of molecules over all model calls);
MMFF's optimizer does not report them. Outputs compared: per molecule, the energies of the kept conformers of
``golf default`` and ``golf before`` (sorted), max |dE| in kcal/mol.

    nice -n 10 python bench/bench_conformers.py --drugs

Writes bench/results/conformers_drugs.json and bench/results/conformers_drugs.md.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KCAL = 23.060547830619026  # kcal/mol per eV

#: (name, SMILES); fluoxetine as its neutral free base.
DRUGS = [
    ("atorvastatin", "CC(C)c1c(C(=O)Nc2ccccc2)c(-c2ccccc2)c(-c2ccc(F)cc2)n1CC[C@@H](O)C[C@@H](O)CC(=O)O"),
    ("celecoxib", "Cc1ccc(-c2cc(C(F)(F)F)nn2-c2ccc(S(N)(=O)=O)cc2)cc1"),
    ("sildenafil", "CCCc1nn(C)c2c(=O)[nH]c(-c3cc(S(=O)(=O)N4CCN(C)CC4)ccc3OCC)nc12"),
    ("oseltamivir", "CCOC(=O)C1=C[C@@H](OC(CC)CC)[C@H](NC(C)=O)[C@@H](N)C1"),
    ("propranolol", "CC(C)NCC(O)COc1cccc2ccccc12"),
    ("caffeine", "Cn1c(=O)c2c(ncn2C)n(C)c1=O"),
    ("warfarin", "CC(=O)CC(c1ccccc1)c1c(O)c2ccccc2oc1=O"),
    ("fluoxetine", "CNCCC(Oc1ccc(C(F)(F)F)cc1)c1ccccc1"),
    ("imatinib", "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"),
    ("penicillin G", "CC1(C)S[C@@H]2[C@H](NC(=O)Cc3ccccc3)C(=O)N2[C@H]1C(=O)O"),
]

METHODS = {"golf default": [], "golf ETKDG start": ["--mmff-start", "0"], "golf one process": ["--processes", "1"],
           "RDKit+MMFF": None, "golf before": ["--batch-size", "256"]}
#: source tree (a ``src`` directory) of "golf before" (None: this one): e.g. an export of the commit before the
#: change, so "before" is the code of then with its default batch size (256) rather than today's code
BEFORE_SRC: str | None = None


def _usage() -> dict:
    """CPU of this process and of its ended children (golf's relaxation processes), peak resident size of this one
    (the whole tree's is sampled by ``measure``)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    user, system = r.ru_utime + c.ru_utime, r.ru_stime + c.ru_stime
    return dict(cpu_s=user + system, user_s=user, sys_s=system, peak_rss_gb=r.ru_maxrss / 2**20)


def _tree_rss_gb(pid: int) -> float:
    """Resident size now of ``pid`` and all its descendants (Linux /proc), GB."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text().splitlines()
            total += int(next(ln for ln in status if ln.startswith("VmRSS:")).split()[1])
            for t in Path(f"/proc/{p}/task").iterdir():
                todo.extend(int(c) for c in (t / "children").read_text().split())
        except (OSError, StopIteration, ValueError):
            continue
    return total / 2**20


def _run_golf(smi: Path, out: Path, extra: list[str]) -> dict:
    """In the child: ``golf conformers`` through its CLI entry, counting model conformer evaluations."""
    from golf.cli import main
    from golf.models import potential

    calls = {"force_calls": 0, "model_calls": 0}
    orig = potential.ModelEnergyForces.__call__

    def counted(self, batch):
        calls["force_calls"] += int(batch.n_mols)
        calls["model_calls"] = None if calls["model_calls"] is None else calls["model_calls"] + 1
        return orig(self, batch)

    potential.ModelEnergyForces.__call__ = counted
    try:  # relaxations in worker processes: their records count the force calls
        from golf.runs import relax_pool
    except ImportError:  # an older tree ("golf before")
        relax_pool = None
    if relax_pool is not None:
        orig_pool = relax_pool.relax_in_processes

        def counted_pool(*args, **kwargs):
            recs = orig_pool(*args, **kwargs)
            calls["force_calls"] += sum(r.n_force_calls for r in recs)
            calls["model_calls"] = None  # batches of the workers are not seen here
            return recs

        relax_pool.relax_in_processes = counted_pool
    emulated = False
    if "--batch-size" not in extra:
        import argparse

        from golf.cli import conformers as cli_conformers

        p = argparse.ArgumentParser()
        cli_conformers.add_arguments(p)
        if p.get_default("batch_size") is not None:
            # the CLI still defaults to a fixed batch size: relax with golf.optim's default (sized by memory)
            import golf.optim

            orig_relax = golf.optim.relax

            def relax_default(*args, **kwargs):
                kwargs["batch_size"] = None
                return orig_relax(*args, **kwargs)

            golf.optim.relax = relax_default
            emulated = True
    calls["batch_size_default_emulated"] = emulated
    rc = main(["conformers", str(smi), "-o", str(out), "--no-progress", *extra])
    if rc != 0:
        raise SystemExit(f"golf conformers failed ({rc})")
    from rdkit import Chem

    kept: dict[str, list[float]] = {}
    for m in Chem.SDMolSupplier(str(out), removeHs=False):
        name = m.GetProp("golf_molecule") if m.HasProp("golf_molecule") else m.GetProp("molecule")  # older golf
        energy = m.GetProp("golf_energy_eV") if m.HasProp("golf_energy_eV") else m.GetProp("model_energy_eV")
        kept.setdefault(name, []).append(float(energy) * KCAL)
    return dict(calls, kept={k: sorted(v) for k, v in kept.items()})


def _run_mmff(smi: Path) -> dict:
    """In the child: golf's ETKDGv3 conformers, RDKit MMFF94 relaxations, golf's deduplication, top 10."""
    import numpy as np
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from golf.chem import quiet_rdkit
    from golf.conformer_search import ConformerSettings, _embed, deduplicate, read_molecules, select_conformers

    settings = ConformerSettings()
    kept: dict[str, list[float]] = {}
    for k, item in enumerate(read_molecules(smi)):
        with quiet_rdkit():
            confs = _embed(item, item.mol, item.name, k, settings)
        relaxed, energies = [], []
        for c in confs:
            m = Chem.MolFromMolBlock(c.molblock, removeHs=False)
            props = AllChem.MMFFGetMoleculeProperties(m)
            ff = AllChem.MMFFGetMoleculeForceField(m, props)
            ff.Minimize(maxIts=500)
            relaxed.append(c.with_positions(np.array(ff.Positions()).reshape(-1, 3)))
            energies.append(ff.CalcEnergy() / KCAL)
        keep, _ = deduplicate(relaxed, energies, settings.rmsd_threshold, settings.energy_threshold)
        top = select_conformers([energies[i] for i in keep], 10, None)
        kept[item.name] = sorted(energies[keep[i]] * KCAL for i in top)
    return dict(force_calls=None, model_calls=None, kept=kept)


def child(method: str, smi: str, out: str, result: str) -> None:
    """Entry of one measured subprocess: run ``method``, write its JSON to ``result``."""
    t0 = time.perf_counter()
    # a listed method, or "golf OPTIONS..." (golf conformers with those options; bench/conformers_mmff_start.py)
    extra = METHODS[method] if method in METHODS else method.split()[1:]
    r = _run_mmff(Path(smi)) if extra is None else _run_golf(Path(smi), Path(out), extra)
    r.update(wall_s=time.perf_counter() - t0, **_usage())
    Path(result).write_text(json.dumps(r))


def _proc_usage(pid: int) -> dict | None:
    """CPU seconds and peak resident size so far of a running process (Linux /proc), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        user, system = int(fields[11]) / tick, int(fields[12]) / tick
        hwm = [ln for ln in Path(f"/proc/{pid}/status").read_text().splitlines() if ln.startswith("VmHWM:")]
        peak = int(hwm[0].split()[1]) / 2**20 if hwm else float("nan")
    except (OSError, IndexError, ValueError):
        return None
    return dict(cpu_s=user + system, user_s=user, sys_s=system, peak_rss_gb=peak)


def measure(method: str, work: Path, timeout: float | None = None) -> dict:
    smi = work / "drugs.smi"
    res = work / f"{method.replace(' ', '_')}.json"
    cmd = [sys.executable, str(HERE / "bench_conformers.py"), "--_child", method, str(smi),
           str(work / f"{method.replace(' ', '_').replace('+', '')}.sdf"), str(res)]
    t0 = time.perf_counter()
    src = BEFORE_SRC if (method == "golf before" and BEFORE_SRC) else str(HERE.parent / "src")
    proc = subprocess.Popen(cmd, env={**os.environ, "PYTHONPATH": src})
    last = None
    tree_peak = 0.0
    while proc.poll() is None:
        last = _proc_usage(proc.pid) or last
        tree_peak = max(tree_peak, _tree_rss_gb(proc.pid))
        if timeout is not None and time.perf_counter() - t0 > timeout:
            proc.kill()
            proc.wait()
            if last is None:
                raise SystemExit(f"{method}: timed out before any measurement")
            # a lower bound: CPU and peak so far; its kept conformers are those of the same run without a limit
            return dict(last, timed_out=True, wall_s=time.perf_counter() - t0, force_calls=None, model_calls=None,
                        kept={}, n_kept=None, source=src != str(HERE.parent / "src") and "before-src" or "this tree")
        time.sleep(0.5)
    if proc.returncode != 0:
        raise SystemExit(f"{method} failed ({proc.returncode})")
    r = json.loads(res.read_text())
    # the peak of the whole process tree (sampled every 0.5 s), never below the process's own exact peak
    r["peak_rss_gb"] = max(r["peak_rss_gb"], tree_peak)
    r["wall_outer_s"] = time.perf_counter() - t0
    r["source"] = "before-src" if src != str(HERE.parent / "src") else "this tree"
    r["load_average_after"] = os.getloadavg()
    r["n_kept"] = sum(len(v) for v in r["kept"].values())
    r["cpu_s_per_kept"] = r["cpu_s"] / max(1, r["n_kept"])
    return r


def run(work: Path, out_json: Path, before_src: str | None = None, before_timeout: float | None = None) -> dict:
    global BEFORE_SRC
    BEFORE_SRC = before_src
    work.mkdir(parents=True, exist_ok=True)
    (work / "drugs.smi").write_text("".join(f"{s} {n.replace(' ', '_')}\n" for n, s in DRUGS))
    results = {}
    for method in METHODS:
        print(f"{method} ... (load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        results[method] = measure(method, work, before_timeout if method == "golf before" else None)
        print(f"  {results[method]['cpu_s']:.1f} CPU s, {results[method]['peak_rss_gb']:.2f} GB", file=sys.stderr)
    new, old = results["golf default"], results["golf before"]
    if old.get("timed_out"):  # same conformers as the default run: divide by its kept count (a lower bound)
        old["n_kept"] = new["n_kept"]
        old["cpu_s_per_kept"] = old["cpu_s"] / max(1, new["n_kept"])
    dmax = {m: max((abs(a - b) for a, b in zip(new["kept"].get(m, []), old["kept"].get(m, []))), default=None)
            for m in old["kept"]}
    out = dict(
        drugs=DRUGS, results=results,
        ratios={"cpu_per_kept_before_over_default": old["cpu_s_per_kept"] / new["cpu_s_per_kept"],
                "cpu_per_kept_one_process_over_default":
                    results["golf one process"]["cpu_s_per_kept"] / new["cpu_s_per_kept"],
                "wall_one_process_over_default": results["golf one process"]["wall_s"] / new["wall_s"],
                "peak_before_over_default": old["peak_rss_gb"] / new["peak_rss_gb"],
                "before_timed_out (ratios are lower bounds)": bool(old.get("timed_out")),
                "cpu_per_kept_default_over_mmff": new["cpu_s_per_kept"] / results["RDKit+MMFF"]["cpu_s_per_kept"]},
        same_kept_counts={m: len(new["kept"].get(m, [])) == len(v) for m, v in old["kept"].items()},
        max_abs_dE_kcal_default_vs_before=dmax,
        machine=dict(platform=platform.platform(), cpus=os.cpu_count(), python=sys.version.split()[0]),
        before_source="an export of the code before the change (its default --batch-size 256)" if before_src
        else "this tree with --batch-size 256",
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(out, indent=1) + "\n")
    md = table(out) + ("\n\n" + lowest_energy_comparison(out) if "golf ETKDG start" in results else "")
    out_json.with_suffix(".md").write_text(md + "\n")
    return out


def table(out: dict) -> str:
    rows = ["| method | kept conformers | CPU s | CPU s / kept | peak RSS GB | force calls | wall s |",
            "|---|---|---|---|---|---|---|"]
    for method, r in out["results"].items():
        fc = "-" if r["force_calls"] is None else str(r["force_calls"])
        more = ">= " if r.get("timed_out") else ""
        rows.append(f"| {method} | {r['n_kept']} | {more}{r['cpu_s']:.1f} | {more}{r['cpu_s_per_kept']:.3f} | "
                    f"{more}{r['peak_rss_gb']:.2f} | {fc} | {more}{r['wall_s']:.1f} |")
    q = out["ratios"]
    d = [v for v in out["max_abs_dE_kcal_default_vs_before"].values() if v is not None]
    rows.append("")
    rows.append(f"CPU s per kept conformer, before / default: {q['cpu_per_kept_before_over_default']:.2f}x; "
                f"peak RSS before / default: {q['peak_before_over_default']:.2f}x; "
                f"golf default / RDKit+MMFF CPU per kept: {q['cpu_per_kept_default_over_mmff']:.2f}x; "
                f"kept energies default vs before: max |dE| {max(d) if d else float('nan'):.4f} kcal/mol.")
    return "\n".join(rows)


def lowest_energy_comparison(out: dict, method: str = "golf default", against: str = "golf ETKDG start") -> str:
    """Per molecule: lowest kept model energy of ``method`` minus that of ``against`` (kcal/mol; negative: ``method``
    found a lower minimum) and the kept counts, from a results JSON of :func:`run`."""
    a, b = out["results"][method]["kept"], out["results"][against]["kept"]
    lines = [f"| molecule | lowest, {method} - {against} (kcal/mol) | kept ({method} / {against}) |", "|---|---|---|"]
    for name in b:
        if a.get(name) and b[name]:
            lines.append(f"| {name} | {min(a[name]) - min(b[name]):+.2f} | {len(a[name])} / {len(b[name])} |")
    return "\n".join(lines)


if __name__ == "__main__":  # the tables of the stored results (measure with bench_conformers.py --drugs)
    stored = json.loads((HERE / "results" / "conformers_drugs.json").read_text())
    print(table(stored))
    if "golf ETKDG start" in stored["results"]:
        print()
        print(lowest_energy_comparison(stored))
