"""The classical rung's own grid: coarser for large cases or a tight allotment, scored on the working grid."""

from __future__ import annotations

import json

import numpy as np
import pytest

import automed
from automed.data.io import read_image
from automed.rungs.segmentation.classical_grid import coarse_shape, coarsening_factors
from conftest import FAST_PARAMS, make_msd


def test_the_finest_axes_are_coarsened_first_until_the_case_fits():
    factors = coarsening_factors((60, 512, 512), (5.0, 0.7, 0.7), 1_000_000)
    assert factors[0] == 1.0 and factors[1] == factors[2] > 1
    assert np.prod(coarse_shape((60, 512, 512), factors)) <= 1_000_000
    assert coarsening_factors((30, 40, 30), (1.0, 1.0, 1.0), 1_000_000) == (1.0, 1.0, 1.0)
    isotropic = coarsening_factors((128, 128, 128), (1.0, 1.0, 1.0), 100_000)
    assert len(set(isotropic)) == 1 and np.prod(coarse_shape((128,) * 3, isotropic)) <= 100_000


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_rung_on_a_coarser_grid_is_scored_and_predicts_on_the_working_grid(tmp_path):
    data = make_msd(tmp_path / "msd", n_cases=6, shape=(20, 24, 20))
    params = dict(FAST_PARAMS, max_case_voxels=3000)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": params}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    record = json.loads((run.folder / "rungs/classical/model.json").read_text())
    assert all(f > 1 for f in record["grid_factors"][1:])
    result = json.loads((run.folder / "rungs/classical/result.json").read_text())
    assert "grid coarser by" in result["estimate"]["note"]
    assert run.report_["rungs"][0]["metric"]["mean"] > 0.7
    oof = read_image(next((run.folder / "rungs/classical/oof").iterdir())).array
    assert oof.shape == (20, 24, 20)
    written = run.predict(data / "imagesTr", tmp_path / "pred")
    assert {read_image(p).array.shape for p in written} == {(20, 24, 20)}


def test_a_tight_allotment_coarsens_the_grid_or_skips_with_the_reason(tmp_path):
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.data.splits import make_folds
    from automed.rungs.base import FitContext
    from automed.rungs.segmentation.classical import CORE_SECONDS_PER_VOXEL, FINE_SECONDS_PER_VOXEL_CLASS, ClassicalRung

    data = make_msd(tmp_path / "msd", n_cases=4, shape=(40, 48, 40))
    dataset = open_dataset(data)
    fingerprint = compute_fingerprint(dataset)
    folds = make_folds([c.case_id for c in dataset.cases], [None] * 4, 2, 0)
    rung = ClassicalRung(ClassicalRung.Params(n_trials=1))
    fixed = 1.1 * (1 + 3 * 2)  # 1 trial; 2 folds and the final model for each of the two stages
    full = CORE_SECONDS_PER_VOXEL * 4 * 40 * 48 * 40 + fixed
    fixed += FINE_SECONDS_PER_VOXEL_CLASS * 4 * 40 * 48 * 40 * 3  # once coarser: the work on the working grid

    def plan(budget_s):
        return rung.plan(FitContext(dataset, fingerprint, folds, tmp_path, 0, 1, budget_s, "sqlite://"))

    assert plan(None).settings["grid_factors"] == [1.0, 1.0, 1.0] and not plan(None).shrunk
    tight = plan(fixed + (full - fixed) / 2)
    assert tight.skip_reason is None and tight.seconds <= fixed + (full - fixed) / 2
    assert "grid coarsened by" in tight.shrunk[0] and all(f > 1 for f in tight.settings["grid_factors"])
    assert "under 20000 voxels" in plan(fixed + 0.01).skip_reason
