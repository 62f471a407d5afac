"""``bench/bench_conformers.py --drugs``: ``golf conformers`` on ten marketed drugs against RDKit ETKDGv3 + MMFF94.

Methods, each in a fresh subprocess (peak resident size and CPU seconds of that process alone, from its own
``getrusage(RUSAGE_SELF)``; model loading, embedding, relaxation, checks, deduplication and writing included):

* ``golf default``: ``golf conformers drugs.smi`` with every default (the batch size is then sized by memory);
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

METHODS = {"golf default": [], "golf before": ["--batch-size", "256"], "RDKit+MMFF": None}
#: source tree (a ``src`` directory) of "golf before" (None: this one): e.g. an export of the commit before the
#: change, so "before" is the code of then with its default batch size (256) rather than today's code
BEFORE_SRC: str | None = None


def _usage() -> dict:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return dict(cpu_s=r.ru_utime + r.ru_stime, user_s=r.ru_utime, sys_s=r.ru_stime, peak_rss_gb=r.ru_maxrss / 2**20)


def _run_golf(smi: Path, out: Path, extra: list[str]) -> dict:
    """In the child: ``golf conformers`` through its CLI entry, counting model conformer evaluations."""
    from golf.cli import main
    from golf.models import potential

    calls = {"force_calls": 0, "model_calls": 0}
    orig = potential.ModelEnergyForces.__call__

    def counted(self, batch):
        calls["force_calls"] += int(batch.n_mols)
        calls["model_calls"] += 1
        return orig(self, batch)

    potential.ModelEnergyForces.__call__ = counted
    rc = main(["conformers", str(smi), "-o", str(out), "--no-progress", *extra])
    if rc != 0:
        raise SystemExit(f"golf conformers failed ({rc})")
    from rdkit import Chem

    kept: dict[str, list[float]] = {}
    for m in Chem.SDMolSupplier(str(out), removeHs=False):
        kept.setdefault(m.GetProp("molecule"), []).append(
            float(m.GetProp("model_energy_eV")) * KCAL)
    return dict(calls, kept={k: sorted(v) for k, v in kept.items()})


def _run_mmff(smi: Path) -> dict:
    """In the child: golf's ETKDGv3 conformers, RDKit MMFF94 relaxations, golf's deduplication, top 10."""
    import numpy as np
    from rdkit import Chem
    from rdkit.Chem import AllChem

    from golf.chem import quiet_rdkit
    from golf.conformers import ConformerSettings, _embed, deduplicate, read_molecules, select_conformers

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
    extra = METHODS[method]
    r = _run_mmff(Path(smi)) if extra is None else _run_golf(Path(smi), Path(out), extra)
    r.update(wall_s=time.perf_counter() - t0, **_usage())
    Path(result).write_text(json.dumps(r))


def measure(method: str, work: Path) -> dict:
    smi = work / "drugs.smi"
    res = work / f"{method.replace(' ', '_')}.json"
    cmd = [sys.executable, str(HERE / "bench_conformers.py"), "--_child", method, str(smi),
           str(work / f"{method.replace(' ', '_').replace('+', '')}.sdf"), str(res)]
    t0 = time.perf_counter()
    src = BEFORE_SRC if (method == "golf before" and BEFORE_SRC) else str(HERE.parent / "src")
    subprocess.run(cmd, check=True, env={**os.environ, "PYTHONPATH": src})
    r = json.loads(res.read_text())
    r["wall_outer_s"] = time.perf_counter() - t0
    r["source"] = "before-src" if src != str(HERE.parent / "src") else "this tree"
    r["load_average_after"] = os.getloadavg()
    r["n_kept"] = sum(len(v) for v in r["kept"].values())
    r["cpu_s_per_kept"] = r["cpu_s"] / max(1, r["n_kept"])
    return r


def run(work: Path, out_json: Path, before_src: str | None = None) -> dict:
    global BEFORE_SRC
    BEFORE_SRC = before_src
    work.mkdir(parents=True, exist_ok=True)
    (work / "drugs.smi").write_text("".join(f"{s} {n.replace(' ', '_')}\n" for n, s in DRUGS))
    results = {}
    for method in METHODS:
        print(f"{method} ... (load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        results[method] = measure(method, work)
        print(f"  {results[method]['cpu_s']:.1f} CPU s, {results[method]['peak_rss_gb']:.2f} GB", file=sys.stderr)
    new, old = results["golf default"], results["golf before"]
    dmax = {m: max((abs(a - b) for a, b in zip(new["kept"].get(m, []), old["kept"].get(m, []))), default=None)
            for m in old["kept"]}
    out = dict(
        drugs=DRUGS, results=results,
        ratios={"cpu_per_kept_before_over_default": old["cpu_s_per_kept"] / new["cpu_s_per_kept"],
                "peak_before_over_default": old["peak_rss_gb"] / new["peak_rss_gb"],
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
    md = table(out)
    out_json.with_suffix(".md").write_text(md + "\n")
    return out


def table(out: dict) -> str:
    rows = ["| method | kept conformers | CPU s | CPU s / kept | peak RSS GB | force calls | wall s |",
            "|---|---|---|---|---|---|---|"]
    for method, r in out["results"].items():
        fc = "-" if r["force_calls"] is None else str(r["force_calls"])
        rows.append(f"| {method} | {r['n_kept']} | {r['cpu_s']:.1f} | {r['cpu_s_per_kept']:.3f} | "
                    f"{r['peak_rss_gb']:.2f} | {fc} | {r['wall_s']:.1f} |")
    q = out["ratios"]
    d = [v for v in out["max_abs_dE_kcal_default_vs_before"].values() if v is not None]
    rows.append("")
    rows.append(f"CPU s per kept conformer, before / default: {q['cpu_per_kept_before_over_default']:.2f}x; "
                f"peak RSS before / default: {q['peak_before_over_default']:.2f}x; "
                f"golf default / RDKit+MMFF CPU per kept: {q['cpu_per_kept_default_over_mmff']:.2f}x; "
                f"kept energies default vs before: max |dE| {max(d) if d else float('nan'):.4f} kcal/mol.")
    return "\n".join(rows)
