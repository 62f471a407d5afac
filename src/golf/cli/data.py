"""``golf data``: build labelled datasets, reference optima and oracle trajectories.

Subcommands:

* ``golf data build``: choose molecules (the embedded NCI pool, or ``--smiles``/``--input``), generate
  ETKDG conformers, label each with an oracle (energy + forces), append to an ASE SQLite db.
* ``golf data reference``: relax every conformation with the genuine oracle; store start geometry,
  start energy/forces, optimal energy and geometry (the reference optima for evaluation).
* ``golf data trajectories``: relax conformations with the genuine oracle, keep every step, and write
  the first N trajectory conformations (traj-N: N counts oracle calls).

All three are resumable: every record has a unique key (``mol_id:conf_id:geometry-hash``) and is
committed as soon as its result arrives; re-running the same command skips keys already in the db.
Failed oracle calls are not written to the db; they are appended to ``OUT.failures.jsonl`` (one JSON
object per failure: key, mol_id, conf_id, smiles, task, reason) and retried on the next run.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

EXECUTORS = ("local", "serial", "dask")


def _add_output_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", required=True, metavar="DB", help=what)
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    p = sub.add_parser(
        "build",
        help="generate conformers and label them with an oracle into an ASE db",
        description="Choose molecules (the NCI default pool, or your own), generate ETKDGv3 conformers, "
        "label each with an oracle (energy eV, forces eV/A) and append them to an ASE SQLite db. "
        "Resumable: re-running skips records already in OUT.",
    )
    _add_molecule_args(p, default_split="train", default_conformers=3)
    _add_oracle_args(p)
    _add_executor_args(p)
    _add_output_args(p, "output ASE SQLite database (.db)")
    p.set_defaults(_data_run=_run_build)

    p = sub.add_parser(
        "reference",
        help="relax every conformation with the genuine oracle (reference optima)",
        description="Relax each conformation of a (test) set to the oracle's own minimum and store the "
        "start geometry with its energy/forces plus opt_energy, opt_positions, opt_converged, opt_steps. "
        "Resumable.",
    )
    _add_molecule_args(p, default_split="test", default_conformers=1)
    _add_oracle_args(p)
    _add_relax_args(p)
    _add_executor_args(p)
    _add_output_args(p, "output reference database (.db)")
    p.set_defaults(_data_run=_run_reference)

    p = sub.add_parser(
        "trajectories",
        help="oracle relaxation trajectories: the first N steps as a dataset (traj-N)",
        description="Relax conformations (in order) with the genuine oracle keeping every step, and write "
        "the first --budget trajectory conformations (energy + forces each; one oracle call each) to an "
        "ASE db. Resumable.",
    )
    _add_molecule_args(p, default_split="train", default_conformers=1)
    _add_oracle_args(p)
    _add_relax_args(p)
    p.add_argument("--budget", type=int, required=True, metavar="N",
                   help="number of trajectory conformations (oracle calls) to write")
    _add_executor_args(p)
    _add_output_args(p, "output trajectory database (.db)")
    p.set_defaults(_data_run=_run_trajectories)
    parser.set_defaults(_data_parser=parser)


def run(args: argparse.Namespace) -> int:
    fn = getattr(args, "_data_run", None)
    if fn is None:
        args._data_parser.print_help()
        return 1
    return int(fn(args) or 0)


# ------------------------------------------------------------------------------------------------
# arguments


def _add_molecule_args(p: argparse.ArgumentParser, default_split: str, default_conformers: int) -> None:
    g = p.add_argument_group("molecules (default: the NCI pool shipped with RDKit)")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--smiles", metavar="FILE", help="SMILES file (.smi/.txt: SMILES [id] per line; .csv with a 'smiles' column)")
    src.add_argument("--input", metavar="FILE", help="structures: .sdf/.mol, .xyz/.extxyz (bonds perceived), .db (ASE), or SMILES")
    g.add_argument("--molecules", type=int, default=None, metavar="N",
                   help="number of pool molecules (default: 100 for build, all of the split otherwise)")
    g.add_argument("--min-heavy", type=int, default=None, metavar="K", help="pool: minimum heavy atoms (default 8)")
    g.add_argument("--max-heavy", type=int, default=None, metavar="K", help="pool: maximum heavy atoms (default 30)")
    g.add_argument("--split", choices=("train", "test", "all"), default=default_split,
                   help=f"pool: which split (by molecule) to draw from (default {default_split})")
    g.add_argument("--test-fraction", type=float, default=0.2, help="pool: fraction of molecules in the test split (default 0.2)")
    g.add_argument("--conformers", type=int, default=default_conformers, metavar="K",
                   help=f"ETKDGv3 conformers per molecule for SMILES/pool input (default {default_conformers})")
    g.add_argument("--displacement", type=float, default=0.0, metavar="A",
                   help="std (Angstrom) of a random Gaussian displacement of generated conformers (default 0)")
    g.add_argument("--seed", type=int, default=0, help="seed of the split, molecule order, ETKDG and displacement (default 0)")
    g.add_argument("--charge", type=int, default=None, help="total charge (required for charged molecules; XYZ bonds perceived with it)")
    g.add_argument("--multiplicity", type=int, default=None, help="spin multiplicity 2S+1 (required for radicals)")


def _add_oracle_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("oracle")
    g.add_argument("--oracle", default="xtb", help="mmff, xtb (GFN2-xTB via tblite, default) or dft (PySCF)")
    g.add_argument("--xtb-method", default=None, help="xtb: GFN2-xTB (default) or GFN1-xTB")
    g.add_argument("--xtb-accuracy", type=float, default=None, help="xtb: tblite accuracy (default 1.0)")
    g.add_argument("--xtb-temperature", type=float, default=None, help="xtb: electronic temperature in K (default 300)")
    g.add_argument("--dft-xc", default=None, help="dft: functional (default wb97x-d, the paper's; wb97x-d3bj also available)")
    g.add_argument("--dft-basis", default=None, help="dft: basis set (default def2-svp)")
    g.add_argument("--oracle-option", action="append", default=[], metavar="KEY=VALUE",
                   help="any other oracle setting (repeatable), VALUE parsed as JSON if possible")


def _add_relax_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("relaxation")
    g.add_argument("--fmax", type=float, default=0.01, help="convergence: max |force| in eV/A (default 0.01)")
    g.add_argument("--max-steps", type=int, default=500, help="optimizer step limit (default 500)")


def _add_executor_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="local: spawned process pool (default); serial: in this process; dask: a Dask cluster")
    g.add_argument("--workers", type=int, default=2, help="number of worker processes (default 2)")
    g.add_argument("--threads-per-worker", type=int, default=1, help="OpenMP threads per worker (default 1)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address (default: $DASK_SCHEDULER_ADDRESS or a local cluster)")
    g.add_argument("--timeout", type=float, default=None, metavar="S", help="per-call timeout in seconds")


# ------------------------------------------------------------------------------------------------
# shared machinery


def _parse_value(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return text


def oracle_spec_from_args(args: argparse.Namespace) -> Any:
    """Validated ``OracleSpec`` from the CLI options (OracleUnavailable / InputError on bad ones).

    The oracle is instantiated here once when its backend is importable, to validate the settings
    and record the complete settings (defaults included) in the database.
    """
    import importlib
    import importlib.util
    import inspect

    from golf.errors import InputError, OracleUnavailable
    from golf.oracles import ORACLES
    from golf.oracles.base import OracleSpec

    name = args.oracle
    if name not in ORACLES:
        raise OracleUnavailable(f"unknown oracle {name!r}; choose one of {', '.join(ORACLES)}")
    settings: dict[str, Any] = {}
    for opt, key, oracle in (
        ("xtb_method", "method", "xtb"), ("xtb_accuracy", "accuracy", "xtb"),
        ("xtb_temperature", "electronic_temperature", "xtb"), ("dft_xc", "xc", "dft"),
        ("dft_basis", "basis", "dft"),
    ):
        value = getattr(args, opt, None)
        if value is not None:
            if oracle != name:
                raise InputError(f"--{opt.replace('_', '-')} applies to --oracle {oracle}, not {name}")
            settings[key] = value
    for item in args.oracle_option or []:
        if "=" not in item:
            raise InputError(f"--oracle-option {item!r}: expected KEY=VALUE")
        k, v = item.split("=", 1)
        settings[k.strip()] = _parse_value(v.strip())
    module_name, cls_name = ORACLES[name].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    params = inspect.signature(cls.__init__).parameters
    unknown = [k for k in settings if k not in params]
    if unknown:
        allowed = [k for k in params if k != "self"]
        raise InputError(f"unknown {name} setting(s) {', '.join(unknown)}; known: {', '.join(allowed)}")
    backend = {"xtb": "tblite", "dft": "pyscf"}.get(name)
    local = getattr(args, "executor", "local") != "dask"
    if backend and importlib.util.find_spec(backend) is None and local:
        hint = "pip install tblite" if backend == "tblite" else "pip install 'golf[dft]'"
        raise OracleUnavailable(f"the {name} oracle needs {backend}, which is not installed; {hint}")
    try:
        if name in ("xtb", "dft") and "torch" in sys.modules:
            # never load tblite/PySCF beside torch (libgomp clash): record the given settings only
            full = settings
        else:
            oracle = cls(**settings)  # validates settings; records defaults too
            full = dict(oracle.settings)
            del oracle
    except OracleUnavailable:
        if local:
            raise
        full = settings  # the cluster may have the backend
    except (TypeError, ValueError) as exc:
        raise InputError(f"bad {name} settings: {exc}") from None
    return OracleSpec(name, full)


def choose_conformations(args: argparse.Namespace, default_molecules: int | None) -> tuple[list, dict]:
    """Conformations selected by the molecule options; (confs, stats)."""
    from golf import molecules as M
    from golf.errors import InputError

    stats: dict[str, Any] = {"source": "", "skipped_molecules": 0}
    path = args.smiles or args.input
    if path:
        confs = M.read_conformations(
            path, conformers=args.conformers, seed=args.seed, charge=args.charge,
            multiplicity=args.multiplicity, displacement=args.displacement,
        )
        stats["source"] = str(path)
        if args.molecules is not None:
            keep, seen = [], []
            for c in confs:
                if c.mol_id not in seen:
                    seen.append(c.mol_id)
                if len(seen) <= args.molecules and c.mol_id in seen[: args.molecules]:
                    keep.append(c)
            confs = keep
        return confs, stats
    if args.conformers < 1:
        raise InputError(f"--conformers must be >= 1, got {args.conformers}")
    n = args.molecules if args.molecules is not None else default_molecules
    if n is not None and n < 1:
        raise InputError(f"--molecules must be >= 1, got {n}")
    lo = args.min_heavy if args.min_heavy is not None else M.DEFAULT_MIN_HEAVY
    hi = args.max_heavy if args.max_heavy is not None else M.DEFAULT_MAX_HEAVY
    ordered = M.select_pool_molecules(
        None, split=args.split, test_fraction=args.test_fraction, seed=args.seed, min_heavy=lo, max_heavy=hi,
    )
    confs: list = []
    n_ok = 0
    for mol_id, smi in ordered:
        if n is not None and n_ok >= n:
            break
        try:
            cs = M.generate_conformers(smi, args.conformers, args.seed, args.displacement, mol_id=mol_id)
        except InputError:
            stats["skipped_molecules"] += 1
            continue
        confs.extend(cs)
        n_ok += 1
    if not confs:
        raise InputError(f"no molecules in the NCI pool with {lo}..{hi} heavy atoms in split {args.split!r}")
    if n is not None and n_ok < n:
        print(f"golf data: warning: only {n_ok} molecules available in split {args.split!r} "
              f"with {lo}..{hi} heavy atoms", file=sys.stderr)
    stats["source"] = f"NCI pool ({args.split}, {lo}..{hi} heavy atoms, seed {args.seed})"
    return confs, stats


def _check_out(out: str, spec: Any) -> None:
    """OUT must be a .db; if it exists it must hold labels of the same oracle and settings."""
    import os

    from golf import db as D
    from golf.errors import InputError

    if not out.lower().endswith(".db"):
        raise InputError(f"--out {out}: must be an ASE SQLite database ending in .db")
    if os.path.isdir(out):
        raise InputError(f"--out {out}: is a directory")
    if os.path.exists(out) and os.path.getsize(out) > 0:
        try:
            prev = D.db_oracle(out)
        except Exception as exc:
            raise InputError(f"--out {out}: exists and is not a readable ASE database ({exc})") from None
        if prev is not None:
            name, settings = prev
            if name != spec.name or _canonical(name, settings, spec.settings) != _canonical(name, spec.settings, settings):
                raise InputError(
                    f"--out {out} already holds records labelled with {name} {settings}; "
                    f"not mixing with {spec.name} {_jsonable(spec.settings)} (choose another --out)"
                )


def _canonical(name: str, settings: dict, other: dict | None = None) -> dict:
    """Settings with the oracle's constructor defaults filled in for the keys of either dict, so that
    explicitly given defaults compare equal to omitted ones."""
    import importlib
    import inspect

    from golf.oracles import ORACLES

    defaults: dict = {}
    if name in ORACLES:
        module_name, cls_name = ORACLES[name].split(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        defaults = {k: p.default for k, p in inspect.signature(cls.__init__).parameters.items()
                    if p.default is not inspect.Parameter.empty}
    keys = set(settings) | set(other or {})
    return _jsonable({k: settings.get(k, defaults.get(k)) for k in sorted(keys)})


def _jsonable(settings: dict) -> dict:
    import json

    return json.loads(json.dumps(settings, sort_keys=True, default=str))


def _log_failure(out: str, record: dict) -> None:
    import json
    import os
    import time

    record = dict(record, time=time.strftime("%Y-%m-%dT%H:%M:%S"))
    with open(out + ".failures.jsonl", "a") as fh:
        fh.write(json.dumps(record, default=str) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


def _executor(args: argparse.Namespace, spec: Any) -> Any:
    from golf.errors import InputError
    from golf.oracles.executors import make_executor

    if args.workers < 1:
        raise InputError(f"--workers must be >= 1, got {args.workers}")
    return make_executor(
        spec, kind=args.executor, n_workers=args.workers, threads_per_worker=args.threads_per_worker,
        scheduler=args.scheduler, timeout=args.timeout,
    )


def _bar(total: int, desc: str, quiet: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="call", file=sys.stderr, dynamic_ncols=True,
                disable=quiet, mininterval=0.5, smoothing=0.1)


def _stream(ex: Any, items: list, task: str, task_kwargs: dict, handle, bar: Any, window: int) -> None:
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


def _summary(cmd: str, out: str, counts: dict, seconds: float, n_calls: int) -> None:
    parts = ", ".join(f"{v} {k}" for k, v in counts.items())
    rate = n_calls / seconds if seconds > 0 else 0.0
    print(f"golf data {cmd}: {parts} in {seconds:.1f} s ({rate:.2f} oracle calls/s) -> {out}", file=sys.stderr)


# ------------------------------------------------------------------------------------------------
# build


def _run_build(args: argparse.Namespace) -> int:
    import time

    from golf import db as D
    from golf.molecules import record_key

    spec = oracle_spec_from_args(args)
    _check_out(args.out, spec)
    t0 = time.perf_counter()
    confs, stats = choose_conformations(args, default_molecules=100)
    t_gen = time.perf_counter() - t0
    done = D.existing_keys(args.out)
    todo, seen = [], set(done)
    for c in confs:
        k = record_key(c)
        if k in seen:
            continue
        seen.add(k)
        todo.append((k, c))
    n_mol = len({c.mol_id for c in confs})
    print(f"golf data build: {len(confs)} conformations of {n_mol} molecules from {stats['source']} "
          f"({t_gen:.1f} s); {len(confs) - len(todo)} already in {args.out}; labelling {len(todo)} with "
          f"{spec.name} on {args.executor}", file=sys.stderr)
    by_key = dict(todo)
    counts = {"labelled": 0, "skipped (already in db)": len(confs) - len(todo), "failed": 0}
    t1 = time.perf_counter()
    if todo:
        with _executor(args, spec) as ex, _bar(len(todo), f"{spec.name} labels", args.quiet) as bar:
            def handle(key: str, result: Any) -> None:
                conf = by_key[key]
                if getattr(result, "ok", False):
                    D.append_labelled(args.out, conf, result, spec, key)
                    counts["labelled"] += 1
                else:
                    counts["failed"] += 1
                    _log_failure(args.out, dict(key=key, mol_id=conf.mol_id, conf_id=conf.conf_id,
                                                smiles=conf.smiles, task="compute", reason=result.reason))
                bar.set_postfix(failed=counts["failed"], refresh=False)

            _stream(ex, todo, "compute", {}, handle, bar, window=max(4 * ex.n_workers, 8))
    _summary("build", args.out, counts, time.perf_counter() - t1, counts["labelled"] + counts["failed"])
    if counts["failed"]:
        print(f"golf data build: failures logged in {args.out}.failures.jsonl (retried on re-run)", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------
# reference


def _run_reference(args: argparse.Namespace) -> int:
    import time

    import numpy as np

    from golf import db as D
    from golf.molecules import record_key
    from golf.oracles.base import OracleResult

    spec = oracle_spec_from_args(args)
    _check_out(args.out, spec)
    confs, stats = choose_conformations(args, default_molecules=None)
    done = D.existing_keys(args.out)
    todo, seen = [], set(done)
    for c in confs:
        k = record_key(c)
        if k not in seen:
            seen.add(k)
            todo.append((k, c))
    print(f"golf data reference: {len(confs)} conformations from {stats['source']}; "
          f"{len(confs) - len(todo)} already in {args.out}; relaxing {len(todo)} with {spec.name} "
          f"(fmax {args.fmax} eV/A, max {args.max_steps} steps) on {args.executor}", file=sys.stderr)
    by_key = dict(todo)
    counts = {"relaxed": 0, "not converged": 0, "skipped (already in db)": len(confs) - len(todo), "failed": 0}
    n_calls = 0
    t1 = time.perf_counter()
    if todo:
        with _executor(args, spec) as ex, _bar(len(todo), f"{spec.name} relaxations", args.quiet) as bar:
            bar.unit = "relax"

            def handle(key: str, r: Any) -> None:
                nonlocal n_calls
                conf = by_key[key]
                ok = bool(getattr(r, "ok", False)) and r.trajectory_energies is not None \
                    and len(r.trajectory_energies) > 0 and r.positions is not None
                if ok:
                    n_calls += len(r.trajectory_energies)
                    start = OracleResult(ok=True, energy=float(r.trajectory_energies[0]),
                                         forces=np.asarray(r.trajectory_forces[0]))
                    fin_f = np.asarray(r.forces) if r.forces is not None else None
                    kvp = dict(opt_energy=float(r.energy), opt_converged=bool(r.converged),
                               opt_steps=int(r.n_steps), opt_fmax_target=float(args.fmax))
                    data = {"opt_positions": np.asarray(r.positions, dtype=np.float64)}
                    if fin_f is not None:
                        kvp["opt_fmax"] = float(np.linalg.norm(fin_f, axis=1).max())
                        data["opt_forces"] = fin_f
                    D.append_labelled(args.out, conf, start, spec, key, extra_kvp=kvp, extra_data=data)
                    counts["relaxed"] += 1
                    if not r.converged:
                        counts["not converged"] += 1
                else:
                    counts["failed"] += 1
                    reason = getattr(r, "reason", "") or "no trajectory returned"
                    _log_failure(args.out, dict(key=key, mol_id=conf.mol_id, conf_id=conf.conf_id,
                                                smiles=conf.smiles, task="relax", reason=reason))
                bar.set_postfix(failed=counts["failed"], refresh=False)

            _stream(ex, todo, "relax", {"fmax": args.fmax, "max_steps": args.max_steps}, handle, bar,
                    window=max(2 * ex.n_workers, 2))
    _summary("reference", args.out, counts, time.perf_counter() - t1, n_calls)
    if counts["failed"]:
        print(f"golf data reference: failures logged in {args.out}.failures.jsonl (retried on re-run)",
              file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------------------
# trajectories


def _run_trajectories(args: argparse.Namespace) -> int:
    import os
    import time

    import numpy as np

    from golf import db as D
    from golf.errors import InputError
    from golf.molecules import record_key
    from golf.oracles.base import OracleResult

    if args.budget < 1:
        raise InputError(f"--budget must be >= 1, got {args.budget}")
    spec = oracle_spec_from_args(args)
    _check_out(args.out, spec)
    confs, stats = choose_conformations(args, default_molecules=None)

    # what is already there: rows per starting conformation, and each trajectory's full length
    present: dict[str, set[int]] = {}
    traj_len: dict[str, int] = {}
    n_written = 0
    if os.path.exists(args.out) and os.path.getsize(args.out) > 0:
        for r in D.iter_rows(args.out):
            kvp = r["kvp"]
            base = str(kvp.get("traj_key", ""))
            present.setdefault(base, set()).add(int(kvp.get("step", 0)))
            traj_len[base] = int(kvp.get("traj_len", 0))
            n_written += 1
    items = []
    for c in confs:
        base = record_key(c)
        if base in traj_len and len(present.get(base, ())) >= traj_len[base]:
            continue  # complete trajectory already stored
        items.append((base, c))
    print(f"golf data trajectories: {len(confs)} starting conformations from {stats['source']}; "
          f"{n_written}/{args.budget} trajectory conformations already in {args.out}", file=sys.stderr)
    counts = {"written": 0, "trajectories": 0, "failed": 0}
    n_calls = 0
    t1 = time.perf_counter()
    if n_written < args.budget and items:
        order = {k: i for i, (k, _) in enumerate(items)}
        buffered: dict[int, Any] = {}
        next_write = 0
        with _executor(args, spec) as ex, _bar(args.budget, f"{spec.name} trajectory steps", args.quiet) as bar:
            bar.update(n_written)
            window = max(ex.n_workers, 1)
            submitted = 0

            def top_up() -> None:
                nonlocal submitted
                while submitted < len(items) and ex.n_pending < window and n_written < args.budget:
                    k, c = items[submitted]
                    ex.submit(c, k, task="relax", fmax=args.fmax, max_steps=args.max_steps)
                    submitted += 1

            top_up()
            while ex.n_pending and n_written < args.budget:
                for key, r in ex.poll(timeout=1.0):
                    buffered[order[key]] = r
                # write finished trajectories in input order
                while next_write in buffered and n_written < args.budget:
                    r = buffered.pop(next_write)
                    base, conf = items[next_write]
                    next_write += 1
                    if not (getattr(r, "ok", False) and r.trajectory_positions is not None
                            and len(r.trajectory_positions) > 0):
                        counts["failed"] += 1
                        _log_failure(args.out, dict(key=base, mol_id=conf.mol_id, conf_id=conf.conf_id,
                                                    smiles=conf.smiles, task="relax",
                                                    reason=getattr(r, "reason", "") or "no trajectory"))
                        continue
                    T = len(r.trajectory_positions)
                    n_calls += T
                    counts["trajectories"] += 1
                    have = present.get(base, set())
                    for step in range(T):
                        if n_written >= args.budget:
                            break
                        if step in have:
                            continue
                        res = OracleResult(ok=True, energy=float(r.trajectory_energies[step]),
                                           forces=np.asarray(r.trajectory_forces[step]))
                        D.append_labelled(
                            args.out, conf.with_positions(r.trajectory_positions[step]), res, spec,
                            f"{base}:{step}",
                            extra_kvp=dict(step=step, traj_len=T, traj_key=base,
                                           traj_converged=bool(r.converged)),
                        )
                        n_written += 1
                        counts["written"] += 1
                        bar.update(1)
                    bar.set_postfix(trajectories=counts["trajectories"], failed=counts["failed"], refresh=False)
                top_up()
                if next_write >= len(items):
                    break
    if n_written < args.budget:
        print(f"golf data trajectories: warning: all {len(items)} conformations relaxed but only "
              f"{n_written} of the {args.budget} trajectory conformations exist; add molecules "
              f"(--molecules/--conformers) to reach the budget", file=sys.stderr)
    _summary("trajectories", args.out, counts, time.perf_counter() - t1, n_calls)
    return 0
