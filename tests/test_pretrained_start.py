"""A pretrained start: the official baseline-NNP adapted to another oracle (refit_offsets, golf run --init)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def mmff_d0():
    from golf.chem import generate_conformers
    from golf.dataset import LabelledData
    from golf.oracles.mmff import MMFFOracle

    mmff = MMFFOracle()
    confs = [c for i, s in enumerate(["CCO", "CC(=O)N", "c1ccccc1O", "CCCl"])
             for c in generate_conformers(s, 2, seed=0, mol_id=i)]
    res = [mmff.compute(c) for c in confs]
    return LabelledData.from_conformations(confs, [r.energy for r in res], [r.forces for r in res])


def test_refit_offsets_keeps_forces_and_fits_the_energy_scale(checkpoints_dir, mmff_d0):
    from golf.models import ModelEnergyForces
    from golf.models.checkpoint import load_model
    from golf.trainer import refit_offsets

    model = load_model(checkpoints_dir / "baseline-NNP.pt")
    batch, _, _ = mmff_d0.collate(np.arange(len(mmff_d0)))
    e_before, f_before = (t.detach().clone() for t in ModelEnergyForces(model)(batch))
    fit = refit_offsets(model, mmff_d0)
    e_after, f_after = ModelEnergyForces(model)(batch)
    torch.testing.assert_close(f_after, f_before)  # the network part is untouched
    # the DFT model's energies are tens of eV per molecule away from MMFF's; after the refit they are close
    assert fit["energy_mae_mev_before"] > 1e4 and fit["energy_mae_mev_after"] < 0.1 * fit["energy_mae_mev_before"]
    mae = 1000 * np.abs(e_after.detach().double().numpy() - mmff_d0.energy).mean()
    assert mae == pytest.approx(fit["energy_mae_mev_after"], rel=1e-3)
    again = refit_offsets(model, mmff_d0)  # least squares: refitting the fit changes nothing
    assert again["energy_mae_mev_after"] == pytest.approx(fit["energy_mae_mev_after"], rel=1e-3)


def test_run_with_init_adds_the_pretrained_row_and_refuses_a_mixed_directory(tmp_path, checkpoints_dir):
    from golf.errors import GolfError
    from golf.presets import OracleRun
    from golf.runs.experiment import Experiment, ExperimentSettings

    init = str(checkpoints_dir / "baseline-NNP.pt")
    exp = Experiment(ExperimentSettings(out=str(tmp_path / "run"), preset="smoke", init=init,
                                        oracle=OracleRun(oracle="mmff")))
    names = list(exp.models())
    assert names[:2] == ["pretrained", "baseline"] and names[-1] == "MMFF"
    (tmp_path / "run" / "stages").mkdir(parents=True)
    (tmp_path / "run" / "stages" / "baseline.json").write_text(json.dumps({"seconds": 1.0, "init": None}))
    with pytest.raises(GolfError, match="another start"):
        exp.run()
