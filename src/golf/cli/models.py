"""``golf models``: the models golf knows by name.

    golf models                         # list: name, status, level of theory, elements, size, source
    golf models fetch traj-100k         # download an official checkpoint (pinned sha256) into the cache
    golf models fetch --all
    golf models register my-model run/model.pt [--description TEXT] [--force]
    golf models unregister my-model

The cache is ``GOLF_MODELS_DIR`` (default ``~/.cache/golf/models``); ``GOLF_MODELS_URL`` points the
download at a mirror of the official repository layout.
"""
from __future__ import annotations

import argparse
import json
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", default="list", choices=("list", "fetch", "register", "unregister"),
                   help="list (default), fetch NAME|--all, register NAME PATH, unregister NAME")
    p.add_argument("name", nargs="?", help="model name")
    p.add_argument("path", nargs="?", help="checkpoint to register (register only)")
    p.add_argument("--all", action="store_true", help="fetch: every official model not shipped")
    p.add_argument("--description", default="", help="register: a description to list")
    p.add_argument("--force", action="store_true", help="register: replace an existing name; fetch: download again")
    p.add_argument("--json", action="store_true", help="list: JSON instead of a table")


def _table(rows: list[dict]) -> str:
    cols = [("name", "name"), ("status", "status"), ("level_of_theory", "level of theory"),
            ("elements", "elements"), ("size_mb", "MB"), ("source", "source")]
    cells = [[h for _, h in cols]] + [["" if r.get(k) is None else str(r.get(k)) for k, _ in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    return "\n".join(lines[:1] + ["  ".join("-" * w for w in widths)] + lines[1:])


def run(args: argparse.Namespace) -> int:
    from golf.errors import InputError
    from golf.models import registry

    if args.action == "list":
        rows = registry.list_models()
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            print(_table(rows))
            print(f"\ncache: {registry.models_dir()}  (official: {registry.OFFICIAL_REPO}@"
                  f"{registry.OFFICIAL_COMMIT[:7]} (nablaDFT) and @{registry.SPICE_COMMIT[:7]} (-SPICE), MIT licence; "
                  "every official model takes neutral closed-shell molecules only)")
        return 0
    if args.action == "fetch":
        names = [n for n, m in registry.PRETRAINED.items() if not m.shipped] if args.all else [args.name]
        if not args.all and not args.name:
            raise InputError("fetch needs a model name (or --all)")
        for name in names:
            path = registry.fetch_model(name, force=args.force)
            print(f"{name}: {path}", file=sys.stderr)
        return 0
    if args.action == "register":
        if not args.name or not args.path:
            raise InputError("register needs NAME and PATH")
        from golf.errors import CheckpointError
        from golf.runs.models import register_model

        if not args.force and args.name in registry.registered_models():
            raise CheckpointError(f"model name {args.name!r} is already registered; use --force to replace it")
        entry = register_model(args.name, args.path, description=args.description, overwrite=args.force)
        print(f"registered {args.name} -> {entry['path']} (elements {' '.join(entry['elements'])})", file=sys.stderr)
        return 0
    if not args.name:
        raise InputError("unregister needs a model name")
    from golf.runs.models import unregister_model

    unregister_model(args.name)
    print(f"unregistered {args.name}", file=sys.stderr)
    return 0
