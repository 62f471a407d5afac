"""Opt-in ``torch.compile`` of a model's message-passing blocks, for long relaxation jobs.

Most of a relaxation's CPU time is the model's forward and backward pass, and within it the pair tensors
of the message blocks ([pairs, 3, features] products gathered at neighbours and summed onto centres):
memory traffic that TorchInductor fuses into single loops. Measured on GOLF-10k, 24 atorvastatin
conformers, one thread: 1.7x faster energies and forces, same values within 1e-4 eV / 1e-5 eV/A. Compiling
costs about 10-30 CPU seconds once per process (less with Inductor's on-disk cache warm), so it pays for
runs of minutes, not for a few molecules; hence opt-in.

Only the interaction and mixing blocks are compiled, with dynamic shapes: the neighbour layout around
them has data-dependent sizes (graph breaks) and every batch has other atom and pair counts. A block
compilation that fails (no C++ compiler, an unsupported op) leaves the model eager for the rest of the
process, with one ``GolfWarning``.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable

from torch import nn

__all__ = ["compile_blocks"]


class _Compiled:
    """One model's compiled blocks: compiled on first use; after a compilation error, every block of the model
    runs eagerly from then on (one warning for the model)."""

    def __init__(self) -> None:
        self.failed = False


class _CompiledOrEager:
    """``fn`` compiled on first use (``torch.compile``, dynamic shapes); eager once its model's compilation failed."""

    def __init__(self, fn: Callable[..., Any], name: str, state: _Compiled) -> None:
        import torch

        self.eager = fn
        self.compiled = torch.compile(fn, dynamic=True)
        self.name = name
        self.state = state

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not self.state.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - Inductor/Dynamo raise many kinds; eager is always right
                from golf.errors import GolfWarning

                self.state.failed = True
                text = str(exc).strip()
                first = text.splitlines()[0][:200] if text else type(exc).__name__
                warnings.warn(GolfWarning(f"torch.compile of the model's {self.name} failed ({first}); "
                                          "running the model eagerly"), stacklevel=2)
        return self.eager(*args, **kwargs)


def compile_blocks(model: nn.Module) -> int:
    """Compile the message-passing blocks of ``model`` (a ``golf.models.Potential`` with a PaiNN
    representation) in place; returns how many blocks were wrapped (0: nothing to compile: another
    representation, or already compiled)."""
    from golf.models.painn import PaiNN

    rep = getattr(model, "representation", None)
    if not isinstance(rep, PaiNN):
        return 0
    state, n = _Compiled(), 0
    for group in ("interactions", "mixing"):
        for k, block in enumerate(getattr(rep, group)):
            if isinstance(block.forward, _CompiledOrEager):
                continue
            block.forward = _CompiledOrEager(block.forward, f"{group}[{k}]", state)
            n += 1
    return n
