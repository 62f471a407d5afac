"""``golf conformers --compile`` against the default on the ten drugs of ``conformers_drugs.py``, in one run.

Each method runs in its own process (``conformers_drugs.measure``: CPU seconds and peak RSS of the process,
TorchInductor compiling in-process so that its time is counted). Writes
``bench/results/conformers_compile.json`` and ``.md``. Inductor's on-disk cache is cleared first
(``--warm`` keeps it), so the compiled row pays a cold compilation.

    OMP_NUM_THREADS=1 nice -n 10 python bench/conformers_compile.py
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from conformers_drugs import DRUGS, measure  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default=None, help="scratch directory (default: a temporary one)")
    ap.add_argument("--out", default=str(HERE / "results" / "conformers_compile.json"))
    ap.add_argument("--warm", action="store_true", help="keep Inductor's on-disk cache (default: a cold one)")
    a = ap.parse_args()
    work = Path(a.work or tempfile.mkdtemp(prefix="golf-compile-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "drugs.smi").write_text("".join(f"{s} {n.replace(' ', '_')}\n" for n, s in DRUGS))
    if not a.warm:
        cache = work / "inductor-cache"
        shutil.rmtree(cache, ignore_errors=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache)
    results = {}
    for method in ("golf default", "golf compiled"):
        print(f"{method} ... (load average {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)
        results[method] = measure(method, work)
        print(f"  {results[method]['cpu_s']:.1f} CPU s, {results[method]['peak_rss_gb']:.2f} GB", file=sys.stderr)
    d, c = results["golf default"], results["golf compiled"]
    dmax = max((abs(x - y) for m in d["kept"] for x, y in zip(d["kept"][m], c["kept"].get(m, []))), default=None)
    out = dict(
        drugs=DRUGS, results=results, cold_cache=not a.warm,
        cpu_per_kept_default_over_compiled=d["cpu_s_per_kept"] / c["cpu_s_per_kept"],
        same_kept_counts={m: len(v) == len(c["kept"].get(m, [])) for m, v in d["kept"].items()},
        max_abs_dE_kcal_default_vs_compiled=dmax, load_average_end=os.getloadavg(),
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    )
    Path(a.out).write_text(json.dumps(out, indent=1) + "\n")
    rows = ["| method | kept | CPU s | CPU s / kept | peak RSS GB | force calls | wall s |", "|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        rows.append(f"| {m} | {r['n_kept']} | {r['cpu_s']:.1f} | {r['cpu_s_per_kept']:.3f} | {r['peak_rss_gb']:.2f} | "
                    f"{r['force_calls']} | {r['wall_s']:.1f} |")
    rows.append("")
    rows.append(f"CPU s per kept conformer, default / compiled: {out['cpu_per_kept_default_over_compiled']:.2f}x "
                f"({'cold' if not a.warm else 'warm'} Inductor cache); kept energies: max |dE| "
                f"{dmax if dmax is None else round(dmax, 4)} kcal/mol.")
    Path(a.out).with_suffix(".md").write_text("\n".join(rows) + "\n")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
