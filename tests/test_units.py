"""Unit constants against known values (CODATA 2014, as used by ASE)."""
from __future__ import annotations

import pytest

from golf import units


def test_hartree_to_ev():
    assert units.HARTREE_TO_EV == pytest.approx(27.211386, abs=2e-6)


def test_bohr_to_angstrom():
    assert units.BOHR_TO_ANG == pytest.approx(0.529177, abs=1e-6)
    assert units.ANG_TO_BOHR * units.BOHR_TO_ANG == pytest.approx(1.0, rel=1e-15)


def test_kcal_mol_to_ev():
    assert units.KCAL_MOL_TO_EV == pytest.approx(0.0433641, abs=1e-7)
    assert units.EV_TO_KCAL_MOL == pytest.approx(23.0605, abs=1e-3)
    assert units.KCAL_MOL_TO_EV * units.EV_TO_KCAL_MOL == pytest.approx(1.0, rel=1e-15)


def test_force_unit():
    # 1 Hartree/Bohr = 51.422067 eV/A
    assert units.HARTREE_PER_BOHR_TO_EV_PER_ANG == pytest.approx(51.422067, abs=1e-5)


def test_xtb_temperature_constant():
    from golf.oracles.xtb import KB_HARTREE_PER_K

    # Boltzmann constant in Hartree/K = k_B [eV/K] / Hartree [eV]
    assert KB_HARTREE_PER_K == pytest.approx(8.617333262e-5 / units.HARTREE_TO_EV, rel=1e-5)
