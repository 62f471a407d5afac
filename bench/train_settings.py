"""Training settings of the quick/standard presets chosen on validation data.

Every configuration trains the quick preset's PaiNN from scratch for the same number of conformation
passes as the quick baseline (1500 updates x 16 = 24,000), on the same training molecules, and is
scored on the same held-out validation molecules (10% of the molecules, ``split_by_molecule`` seed 0),
never on the test split. The number compared is the final validation force MAE (meV/A); the time per
update is recorded too (it depends on the machine's load, so compare passes, not seconds).

Data (xTB labels, the quick preset's pool: NCI train split, 4-9 heavy atoms, all 528 molecules)::

    golf data build --molecules 1200 --min-heavy 4 --max-heavy 9 --conformers 4 --out DIR/pool4.db
    golf data build --molecules 1200 --min-heavy 4 --max-heavy 9 --conformers 8 --out DIR/pool8.db
    python bench/train_settings.py --data-dir DIR [CONFIG ...]

Results go to ``bench/results/train_settings.json`` (resumable: finished configurations are skipped).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from golf.dataset import LabelledData
from golf.models.potential import build_model
from golf.trainer import Trainer

PASSES = 24_000  # conformation passes of the quick baseline (1500 updates x batch 16)
OUT = Path(__file__).resolve().parent / "results" / "train_settings.json"
#: name -> learning rate (cosine-decayed to lr_min, default 1e-5), batch size, PaiNN features, ETKDG
#: conformers per molecule (which pool db)
CONFIGS: dict[str, dict] = {
    "A lr2e-3 b16 f64 c4": dict(lr=2e-3, b=16, f=64, data="pool4"),
    "B lr5e-3 b16 f64 c4": dict(lr=5e-3, b=16, f=64, data="pool4"),
    "G lr1e-2 b16 f64 c4": dict(lr=1e-2, b=16, f=64, data="pool4"),
    "H lr5e-3 b16 f64 c8": dict(lr=5e-3, b=16, f=64, data="pool8"),
    "I lr7e-3 b32 f64 c4": dict(lr=7e-3, b=32, f=64, data="pool4"),
    # model size, on the pool with one NCI id per canonical SMILES (golf.pool, after 2026-11-26's fix; the
    # configurations above used the pool before it, whose validation molecules differ slightly): B again as
    # the control, then PaiNN with half and twice the features
    "B2 lr5e-3 b16 f64 c4 pool2": dict(lr=5e-3, b=16, f=64, data="pool4"),
    "J lr5e-3 b16 f32 c4 pool2": dict(lr=5e-3, b=16, f=32, data="pool4"),
    "K lr5e-3 b16 f128 c4 pool2": dict(lr=5e-3, b=16, f=128, data="pool4"),
    # the schedule: constant lr instead of the cosine decay to 1e-5
    "L lr5e-3 const b16 f64 c4 pool2": dict(lr=5e-3, lr_min=5e-3, b=16, f=64, data="pool4"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="*", help="configuration name prefixes (default: all)")
    ap.add_argument("--data-dir", required=True, type=Path)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    _, val = LabelledData.from_db(args.data_dir / "pool4.db").split_by_molecule(0.1, seed=0)
    val_keys = set(val.molecule_keys())
    res = json.loads(OUT.read_text()) if OUT.exists() else {}
    for name, c in CONFIGS.items():
        if (args.configs and not any(name.startswith(p) for p in args.configs)) or name in res:
            continue
        data = LabelledData.from_db(args.data_dir / f"{c['data']}.db")
        train = data.subset(np.flatnonzero([k not in val_keys for k in data.molecule_keys()]))
        torch.manual_seed(0)
        model = build_model("painn", n_atom_basis=c["f"], n_interactions=3, n_rbf=20, cutoff=5.0)
        epochs = max(1, round(PASSES / c["b"] / math.ceil(len(train) / c["b"])))
        trainer = Trainer(model, lr=c["lr"], lr_min=c.get("lr_min", 1e-5), clip=1.0, seed=0)
        t0 = time.perf_counter()
        hist = trainer.fit(train, val, epochs=epochs, batch_size=c["b"])
        res[name] = dict(config=c, n_train=len(train), n_val=len(val), epochs=epochs, updates=trainer.step,
                         seconds=time.perf_counter() - t0, threads=args.threads, load=list(os.getloadavg()),
                         val_forces_mae=hist[-1]["val_forces_mae_mev_a"], val_energy_mae=hist[-1]["val_energy_mae_mev"],
                         curve=[(h["step"], h["time_s"], h["val_forces_mae_mev_a"], h["val_energy_mae_mev"])
                                for h in hist])
        OUT.parent.mkdir(parents=True, exist_ok=True)
        stored = json.loads(OUT.read_text()) if OUT.exists() else {}  # several processes may share OUT
        stored[name] = res[name]
        OUT.write_text(json.dumps(stored, indent=1))
        print(f"{name}: val force MAE {res[name]['val_forces_mae']:.1f} meV/A, "
              f"energy MAE {res[name]['val_energy_mae']:.0f} meV, {trainer.step} updates", flush=True)


if __name__ == "__main__":
    main()
