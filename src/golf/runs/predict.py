"""``golf predict``: energies (eV) and forces (eV/Angstrom) of every structure in a file, with an NNP.

    from golf.runs.predict import PredictSettings, predict
    outcome = predict("in.sdf", "out.extxyz", PredictSettings(model="GOLF-10k"))

One structure never aborts the batch (``golf.runs.batch_run``): an unreadable structure, an element the
model never saw, or a charged/open-shell structure for a neutral-only model is reported on one
stderr line and left out. Salts are stripped to their largest organic fragment unless
``keep_fragments`` (a single point needs no single molecule). Bond orders are not needed.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from golf.presets import COUNT, DEFAULT_DEVICE, DEFAULT_MODEL, DEVICE, DTYPE, check_settings, setting

#: conformations per forward pass when ``batch_size`` is None (automatic sizing lives in golf.batch).
_CHUNK = 64


@dataclass(frozen=True)
class PredictSettings:
    """Settings of :func:`predict`.

    Each field is checked by the check declared with it (``golf.presets.setting``): an impossible
    value raises ``golf.errors.SettingError`` naming the field.

    Attributes:
        model: model name (``golf models``), checkpoint path, or a loaded ``golf.models.Potential``.
        device: cpu, cuda, cuda:N or auto.
        dtype: float32 or float64.
        threads: torch threads (None: torch's).
        batch_size: conformations per forward pass (None: automatic).
        keep_fragments: keep counter-ions/solvents (default: strip to the largest organic fragment).
    """

    model: Any = DEFAULT_MODEL
    device: str = setting(DEFAULT_DEVICE, DEVICE)
    dtype: str = setting("float32", DTYPE)
    threads: int | None = setting(None, COUNT)
    batch_size: int | None = setting(None, COUNT)
    keep_fragments: bool = False

    def __post_init__(self) -> None:
        check_settings(self)


def implicit_outputs(output: str) -> list[Any]:
    """What :func:`predict` writes besides ``output``: nothing."""
    return []


@dataclass
class BatchOutcome:
    """What a batch run wrote: ``n_written`` structures to ``output``; ``skipped`` one line each."""

    output: str
    n_written: int
    skipped: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        from golf.runs.batch_run import PARTIAL

        return PARTIAL if self.skipped else 0


def predict(input: str, output: str, settings: PredictSettings = PredictSettings()) -> BatchOutcome:
    """Energies and forces of the structures of ``input`` written to ``output`` (.extxyz, .sdf, .db)
    with the output vocabulary of ``golf.outputs``. InputError when no structure could be done."""
    from golf.batch import Batch
    from golf.formats import write_conformations
    from golf.models.potential import ModelEnergyForces
    from golf.outputs import model_energy_reference
    from golf.runs.batch_run import load_nnp, read_batch, report_stripped, split_supported

    model, device, _, name = load_nnp(settings.model, settings.device, settings.dtype, settings.threads)
    confs, skipped = read_batch("predict", input, bond_orders=False, neutral_only=model.neutral_only,
                                fragments="keep" if settings.keep_fragments else "strip")
    confs = split_supported(model, confs, skipped)
    report_stripped("predict", confs)
    provider = ModelEnergyForces(model)
    chunk_size = settings.batch_size or _CHUNK
    properties = []
    reference = model_energy_reference(name)
    for start in range(0, len(confs), chunk_size):
        chunk = confs[start : start + chunk_size]
        batch = Batch.from_conformations(chunk, device=device, dtype=model.dtype)
        energy, forces = provider(batch)
        for c, e, f in zip(chunk, energy.cpu().double().numpy(), batch.split(forces)):
            properties.append({"golf_model": name, "golf_energy_eV": float(e), "golf_energy_reference": reference,
                               "golf_forces_eV_A": f.cpu().double().numpy(),
                               "stripped_fragments": str(c.info.get("stripped_fragments", ""))})
    write_conformations(output, confs, properties, kind="predict")
    return BatchOutcome(str(output), len(confs), list(skipped.reasons))
