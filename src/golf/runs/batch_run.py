"""Batch runs (``predict``, ``optimize``, ``conformers``): one bad structure never aborts the batch.

Each structure that cannot be read, or that the method cannot handle, is reported as one line on
stderr (``golf CMD: skipped FILE: structure K: reason``) and the others go on. Exit codes (as the
command line reports them): 0 every structure done, ``PARTIAL`` (3) output written but some structures skipped
or failed, 2 nothing could be done (then the first reason is the one-line error).
"""
from __future__ import annotations

import sys
from typing import Any

from golf.errors import ChargeSpinError, InputError

#: exit code of a batch command that wrote its output but skipped or failed some structures.
PARTIAL = 3

#: the exit codes of batch commands, as their --help states them.
EXIT_CODES = (f"exit status: 0 every structure done; {PARTIAL} output written without the structures "
              "reported on stderr (one line each); 2 nothing done (bad input or option, one line)")


class Skipped:
    """The structures a batch command left out, reported on stderr as they are found."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.reasons: list[str] = []

    def __call__(self, reason: str | Exception) -> None:
        text = str(reason).strip().splitlines()[0] if str(reason).strip() else type(reason).__name__
        self.reasons.append(text)
        print(f"golf {self.command}: skipped {text}", file=sys.stderr)

    def __len__(self) -> int:
        return len(self.reasons)

    def exit_code(self) -> int:
        """0 when nothing was skipped, else ``PARTIAL``."""
        return PARTIAL if self.reasons else 0


def read_batch(command: str, path: str, *, bond_orders: bool, neutral_only: bool,
               **read_kwargs: Any) -> tuple[list[Any], Skipped]:
    """Read every structure of ``path`` that can be read (``golf.formats.read_conformations``),
    reporting the others.

    Args:
        command: the subcommand, for the report.
        path: input file.
        bond_orders: whether the method needs bond orders (MMFF); without, a structure whose bond
            orders cannot be assigned keeps its connectivity only.
        neutral_only: the method takes neutral closed-shell molecules only (a neutral-only NNP,
            ``Potential.neutral_only``): a charged or open-shell structure read without the
            charge/multiplicity that accepts it is reported with that reason rather than advice
            about --charge/--multiplicity (``split_supported`` refuses the others).
        read_kwargs: conformers, seed, charge, multiplicity, fragments, ph, embedded.

    Raises InputError (one line: the first reason) when not a single structure is left.
    """
    from golf.formats import read_conformations

    errors: list[InputError] = []
    confs = read_conformations(path, on_error=errors.append, bond_orders=bond_orders, **read_kwargs)
    reasons = [_reason(e, neutral_only) for e in errors]
    if not confs:
        if not reasons:
            raise InputError(f"{path}: no structures found")
        more = f" (and {len(reasons) - 1} more structure(s))" if len(reasons) > 1 else ""
        raise InputError(reasons[0] + more)
    skipped = Skipped(command)
    for r in reasons:
        skipped(r)
    return confs, skipped


def _reason(exc: InputError, neutral_only: bool) -> str:
    if neutral_only and isinstance(exc, ChargeSpinError):
        return neutral_only_refusal(exc)
    return str(exc)


def neutral_only_refusal(exc: ChargeSpinError | InputError) -> str:
    """The one-line refusal of a charged or open-shell molecule by a neutral-only NNP: why, and what
    can take it (``golf.chem.CHARGED_ADVICE``)."""
    from golf.chem import CHARGED_ADVICE
    from golf.models.potential import NEUTRAL_ONLY

    if isinstance(exc, ChargeSpinError):
        return f"{exc.where}: {exc.what}: {NEUTRAL_ONLY}; {CHARGED_ADVICE}"
    text = str(exc)
    return text if CHARGED_ADVICE in text else f"{text}; {CHARGED_ADVICE}"


def report_stripped(command: str, confs: list[Any]) -> None:
    """One stderr line per input molecule whose counter-ions/solvents were stripped on reading."""
    seen: set[tuple[int, str]] = set()
    for c in confs:
        stripped = c.info.get("stripped_fragments")
        if stripped and (c.mol_id, stripped) not in seen:
            seen.add((c.mol_id, stripped))
            label = describe(c).rsplit(", conf_id", 1)[0] + ")"
            print(f"golf {command}: {label}: stripped {stripped} (counter-ion/solvent; kept the largest "
                  "organic fragment)", file=sys.stderr)


def describe(conf: Any) -> str:
    """How a structure is named in a report: its name or SMILES and its molecule/conformer ids."""
    label = str(conf.info.get("name") or conf.smiles or "structure")
    if len(label) > 60:  # a report line stays one readable line whatever the molecule
        label = label[:57] + "..."
    return f"{label} (mol_id {conf.mol_id}, conf_id {conf.conf_id})"


def _n_fragments(conf: Any) -> int:
    """Disconnected fragments of a structure: of its mol block's bond graph, else of the bonds
    perceived from its coordinates."""
    from rdkit import Chem

    from golf.chem import connectivity_mol, quiet_rdkit

    with quiet_rdkit():
        mol = Chem.MolFromMolBlock(conf.molblock, removeHs=False, sanitize=False) if conf.molblock else None
        if mol is None:
            mol = connectivity_mol(conf.numbers, conf.positions)
        return len(Chem.GetMolFrags(mol))


def split_supported(model: Any, confs: list[Any], skipped: Skipped, relax: bool = False) -> list[Any]:
    """The conformations ``model`` can handle; the others are reported to ``skipped``, one line each.

    Refused: elements the model never saw, a charge or spin the model was not trained on
    (``model.check_charge``), and with ``relax`` structures that are no single molecule of at most
    ``golf.chem.MAX_ATOMS`` atoms. InputError (the first one-line reason) when none is left.
    """
    from golf.chem import MAX_ATOMS, single_molecule_problem

    keep, bad = [], []
    for c in confs:
        try:
            model.check_elements(c.numbers)
            try:
                model.check_charge(c.charge, c.multiplicity)
            except InputError as exc:
                raise InputError(neutral_only_refusal(exc)) from None
            problem = single_molecule_problem(c.n_atoms, _n_fragments(c) if c.n_atoms <= MAX_ATOMS else 1) \
                if relax else None
            if problem is not None:
                raise InputError(problem)
        except InputError as exc:
            bad.append((c, exc))
            continue
        keep.append(c)
    if not keep:  # one line: the reason, not one per structure
        c, exc = bad[0]
        more = f" (and {len(bad) - 1} more structure(s))" if len(bad) > 1 else ""
        raise InputError(f"{describe(c)}: {exc}{more}")
    for c, exc in bad:
        skipped(f"{describe(c)}: {exc}")
    return keep


def load_nnp(model: Any, device: str, dtype: str, threads: int | None = None) -> tuple[Any, Any, Any, str]:
    """``(Potential, torch device, torch dtype, model name)`` of a model name, checkpoint path or an
    already loaded ``golf.models.Potential``; InputError (one line) for a device torch cannot use.
    ``threads``: torch's intra-op threads for this process (None: torch's own choice)."""
    from pathlib import Path

    import torch

    from golf.models import load_model
    from golf.models.checkpoint import resolve_device, resolve_dtype

    try:
        dev = resolve_device(device)
    except RuntimeError as exc:
        raise InputError(f"device {device!r}: {exc}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device {device!r}: CUDA is not available")
    dt = resolve_dtype(dtype)
    if threads:
        torch.set_num_threads(int(threads))
    if isinstance(model, torch.nn.Module):
        pot = model.to(device=dev, dtype=dt)
        name = str((getattr(pot, "provenance", None) or {}).get("name") or type(pot).__name__)
    else:
        pot = load_model(model, device=dev, dtype=dt)
        name = str((pot.provenance or {}).get("name") or Path(str(model)).stem)
    return pot, dev, dt, name
