"""The one vocabulary of what golf's structure-writing commands (``optimize``, ``predict``,
``conformers``) write: SDF fields, extXYZ/ASE-db key-value pairs and summary CSV columns.

Every name that carries a quantity carries its unit (``_eV``, ``_kcal_mol``, ``_eV_A``, ``_K``). A
command writes only names from ``PROPERTIES`` (and ``SUMMARY_COLUMNS`` in a CSV), plus the input's
own SDF fields, passed through unchanged (a golf name in the input is replaced by the new value).
``tests/test_outputs_vocabulary.py`` checks every command against this table.

Model energies are not total energies: an NNP predicts the total energy minus its per-element atom
reference energies (an atomization-type energy, with the references of that model). Only
differences between conformers of one molecule computed with one model are meaningful; every record
says so in ``golf_energy_reference``.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

#: name -> meaning (with unit) of every per-structure field golf writes.
PROPERTIES: dict[str, str] = {
    # the structure (golf.formats writers)
    "mol_id": "molecule id (integer)",
    "conf_id": "conformation id within the molecule (integer)",
    "smiles": "canonical SMILES of the structure",
    "charge": "total charge (e)",
    "multiplicity": "spin multiplicity 2S+1",
    "bonds": "'connectivity only' when bond orders could not be assigned",
    "energy": "ASE's calculator energy in extXYZ/.db outputs (eV; the same value as golf_energy_eV)",
    "forces": "ASE's calculator forces in extXYZ/.db outputs (eV/A)",
    # what was computed
    "golf_model": "the NNP (model name or checkpoint) or oracle ('oracle:xtb') that gave the energy",
    "golf_energy_eV": "energy of the structure (eV); see golf_energy_reference",
    "golf_energy_reference": "what golf_energy_eV is relative to, and which differences are meaningful",
    "golf_forces_eV_A": "forces, flattened x y z per atom (eV/A; SDF only)",
    "golf_fmax_eV_A": "largest per-atom force at the end (eV/A)",
    "golf_converged": "whether the relaxation reached fmax (True/False)",
    "golf_steps": "optimizer steps",
    "golf_force_calls": "energy/force evaluations, the first included",
    "golf_stop_reason": "why the relaxation stopped (converged, max_steps, ...)",
    "trust_mmff_drop_kcal_mol": "MMFF94 energy drop of an MMFF relaxation from this structure (kcal/mol; "
                                "high = distrust the NNP structure; NaN where MMFF cannot type it)",
    "stripped_fragments": "counter-ions/solvents stripped from the input record (SMILES, '.'-joined; '' none)",
    # conformer ensembles
    "golf_input_molecule": "the input molecule (record name) a stereoisomer group belongs to",
    "golf_molecule": "the stereoisomer group (input name, _s1, _s2 ... when stereoisomers were enumerated)",
    "golf_rank": "rank within the molecule, 1 = lowest (refined energy first when refined)",
    "golf_model_rank": "rank by model energy",
    "golf_rel_energy_kcal_mol": "model energy above the molecule's lowest kept conformer (kcal/mol)",
    "boltzmann_weight": "Boltzmann weight within the molecule at golf_temperature_K, from the model energies",
    "golf_temperature_K": "temperature of boltzmann_weight (K)",
    "golf_stereo_smiles": "canonical isomeric SMILES perceived from the 3D structure",
    "golf_coordinates": "'input' (the input's 3D coordinates relaxed) or 'embedded' (ETKDG)",
    "golf_refine_method": "oracle refinement: '<oracle> single point' or '<oracle> relaxation'",
    "golf_refined": "whether the oracle gave this conformer an energy (True/False)",
    "golf_ranked_by": "refined_energy or model_energy (a conformer whose refinement failed)",
    "golf_refined_energy_eV": "oracle energy (eV; NaN when the oracle failed)",
    "golf_refined_rel_energy_kcal_mol": "oracle energy above the lowest refined conformer (kcal/mol)",
    "golf_refine_error": "why the oracle failed",
}

#: name -> meaning of every column of the ``golf conformers`` summary CSV (one row per stereoisomer group).
SUMMARY_COLUMNS: dict[str, str] = {
    "golf_input_molecule": PROPERTIES["golf_input_molecule"],
    "golf_molecule": PROPERTIES["golf_molecule"],
    "n_stereoisomers": "stereoisomer groups of the input molecule",
    "input": "the input record (file: line/record)",
    "smiles": "SMILES of the stereoisomer group",
    "stripped_fragments": PROPERTIES["stripped_fragments"],
    "golf_coordinates": PROPERTIES["golf_coordinates"],
    "status": "ok or failed",
    "n_input_conformers": "conformers relaxed (embedded or read)",
    "n_failed": "relaxations that failed (non-finite energy)",
    "n_graph_changed": "dropped: bonds changed in the relaxation",
    "n_stereo_changed": "dropped: stereochemistry changed in the relaxation",
    "n_mmff_duplicates": "dropped before the model: duplicates among the MMFF94 start minima (--mmff-start)",
    "n_duplicates": "dropped: duplicates (RMSD and energy thresholds; mirror images in a racemic group)",
    "n_beyond_selection": "dropped: beyond top-k / window",
    "n_refine_dropped": "dropped: bonds/stereo changed in the oracle re-relaxation",
    "n_refine_failed": "oracle calls that failed",
    "n_refined": "conformers with an oracle energy",
    "ranked_by": "what the ranking used",
    "n_kept": "conformers written",
    "n_converged": "kept conformers whose relaxation converged",
    "golf_model": PROPERTIES["golf_model"],
    "lowest_energy_eV": "lowest model energy (eV; see golf_energy_reference in the SDF)",
    "span_kcal_mol": "highest minus lowest kept model energy (kcal/mol)",
    "boltzmann_weights": "Boltzmann weights of the kept conformers by rank, space-separated",
    "golf_temperature_K": PROPERTIES["golf_temperature_K"],
    "lowest_refined_energy_eV": "lowest oracle energy (eV)",
    "error": "why the molecule failed",
}

#: default temperature of Boltzmann weights (K).
ROOM_TEMPERATURE_K = 298.15


def model_energy_reference(model_name: str) -> str:
    """``golf_energy_reference`` of an NNP energy."""
    return (f"{model_name}: total energy minus the model's per-element atom reference energies "
            "(atomization-type); only differences within one molecule and one model are meaningful")


def oracle_energy_reference(oracle: str) -> str:
    """``golf_energy_reference`` of an oracle energy."""
    return (f"oracle {oracle}: the oracle's own energy zero; only differences within one molecule and one "
            "oracle (and settings) are meaningful")


def boltzmann_weights(energies_ev: Sequence[float], temperature_k: float = ROOM_TEMPERATURE_K) -> np.ndarray:
    """Boltzmann weights exp(-(E_i - E_min)/kT) / sum, energies in eV, kB from ``ase.units`` (eV/K).

    Non-finite energies get weight 0; an empty input gives an empty array."""
    from ase.units import kB

    e = np.asarray(energies_ev, dtype=np.float64)
    if e.size == 0:
        return e
    if not (math.isfinite(temperature_k) and temperature_k > 0):
        raise ValueError(f"temperature must be a positive number of K (got {temperature_k})")
    ok = np.isfinite(e)
    w = np.zeros_like(e)
    if ok.any():
        x = np.exp(-(e[ok] - e[ok].min()) / (kB * temperature_k))
        w[ok] = x / x.sum()
    return w


def passthrough(input_properties: dict[str, Any] | None) -> dict[str, Any]:
    """The input's own fields that are passed through: every one whose name golf does not write itself."""
    return {k: v for k, v in (input_properties or {}).items() if k not in PROPERTIES and not k.startswith("_")}


def unknown_names(names: Sequence[str], input_properties: Sequence[str] = ()) -> list[str]:
    """The names that are neither in the vocabulary nor input fields passed through (for tests)."""
    return sorted(set(names) - set(PROPERTIES) - set(SUMMARY_COLUMNS) - set(input_properties))
