"""The registration task: layouts, bad input, the field's metrics, a fit of every rung, and predict's displacement
field read back by SimpleITK."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

import automed
from automed.data.registration import open_registration
from automed.errors import DataError
from automed.registration.fields import folding_fraction, jacobian_determinant, sd_log_jacobian, warp
from conftest import make_registration, write

FAST = [{"name": "affine", "params": {"n_trials": 2, "n_tuning_pairs": 2}},
        {"name": "classical", "params": {"n_trials": 2, "n_tuning_pairs": 2}},
        {"name": "voxelmorph", "params": {"n_trials": 1, "min_steps": 4, "max_steps": 8, "widths": [4],
                                          "n_tuning_pairs": 2}}]


@pytest.fixture(scope="module")
def registration_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("registration")
    data = make_registration(root / "data")
    recipe = automed.Recipe(task="registration", n_jobs=1, full_ladder=True, rungs=FAST)
    automed.fit(recipe, data, root / "run", progress=False)
    return root / "run"


def test_layouts(tmp_path):
    drawn = open_registration(make_registration(tmp_path / "drawn"))
    assert len(drawn.held_out) == 2 and len(drawn.evaluation) == 2 and len(drawn.training) == 6
    assert not set(drawn.training) & {v for p in drawn.evaluation for v in (p.fixed, p.moving)}  # never trained on
    assert drawn.labelled and drawn.notes
    given = open_registration(make_registration(tmp_path / "given", pairs=[
        {"fixed": "./imagesTr/sub00.nii.gz", "moving": "./imagesTr/sub01.nii.gz"}]))
    assert [p.case_id for p in given.evaluation] == ["sub01__to__sub00"] and len(given.training) == 6
    csv = tmp_path / "given" / "pairs.csv"
    csv.write_text("fixed,moving,fixed_label,moving_label,split\n"
                   "imagesTr/sub02.nii.gz,imagesTr/sub03.nii.gz,labelsTr/sub02.nii.gz,labelsTr/sub03.nii.gz,train\n"
                   "imagesTr/sub00.nii.gz,imagesTr/sub01.nii.gz,labelsTr/sub00.nii.gz,labelsTr/sub01.nii.gz,val\n")
    pairs = open_registration(csv)
    assert pairs.format == "pairs" and set(pairs.training) == {"sub02", "sub03"} and len(pairs.evaluation) == 1
    atlas = tmp_path / "given" / "imagesTr" / "sub07.nii.gz"
    with_atlas = open_registration(tmp_path / "drawn", atlas=f"{atlas},{tmp_path / 'given' / 'labelsTr' / 'sub07.nii.gz'}")
    assert {p.moving for p in with_atlas.evaluation} == {"atlas_sub07"}
    assert {p.fixed for p in with_atlas.evaluation} == set(drawn.held_out)


def test_bad_input_names_the_file(tmp_path):
    data = make_registration(tmp_path / "data", n=4)
    write(np.zeros((6, 6), np.float32), data / "imagesTr" / "flat.nii.gz")
    write(np.zeros((6, 6, 6, 2), np.float32), data / "imagesTr" / "two.nii.gz")  # a vector image: 2 channels
    cases = {
        "imagesTr/sub00.nii.gz,imagesTr/gone.nii.gz\n": r"gone\.nii\.gz: missing",
        "imagesTr/sub00.nii.gz,imagesTr/flat.nii.gz\n": r"flat\.nii\.gz: 2D, but its fixed image .*sub00.* is 3D",
        "imagesTr/sub00.nii.gz,imagesTr/sub01.nii.gz\nimagesTr/sub00.nii.gz,imagesTr/sub01.nii.gz\n":
            r"sub01\.nii\.gz -> .*sub00\.nii\.gz is listed twice",
    }
    for rows, message in cases.items():
        (data / "pairs.csv").write_text("fixed,moving\n" + rows)
        with pytest.raises(DataError, match=message):
            open_registration(data / "pairs.csv")
    (data / "pairs.csv").write_text("fixed,moving,fixed_label,moving_label\n,imagesTr/sub01.nii.gz,labelsTr/sub00.nii.gz,\n")
    with pytest.raises(DataError, match=r"line 2: fixed_label 'labelsTr/sub00.nii.gz' without a fixed image"):
        open_registration(data / "pairs.csv")
    sitk.WriteImage(sitk.Compose([sitk.Image([6, 6, 6], sitk.sitkFloat32)] * 2), str(data / "imagesTr" / "two.nii.gz"))
    (data / "pairs.csv").write_text("fixed,moving\nimagesTr/sub00.nii.gz,imagesTr/two.nii.gz\n")
    with pytest.raises(DataError, match=r"two\.nii\.gz: 2 channel\(s\), but its fixed image .*sub00.* has 1"):
        open_registration(data / "pairs.csv")


def test_folding_and_jacobian_on_known_fields():
    shape = (10, 12, 14)
    index = np.indices(shape, dtype=np.float32)
    scaled = np.stack([0.2 * index[0], 0.0 * index[1], -0.5 * index[2]])  # x -> (1.2 x0, x1, 0.5 x2)
    assert np.allclose(jacobian_determinant(scaled)[1:-1, 1:-1, 1:-1], 1.2 * 0.5)
    assert folding_fraction(jacobian_determinant(scaled)) == 0.0 and sd_log_jacobian(jacobian_determinant(scaled)) < 1e-5
    folded = np.zeros((3, *shape), np.float32)
    folded[2, :, :, 7:] = -2.0 * (index[2, :, :, 7:] - 7)  # det 1 - 2 = -1 on the upper half
    assert folding_fraction(jacobian_determinant(folded)) == pytest.approx(7 / 14, abs=1 / 14)
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    shift = np.zeros((3, *shape), np.float32)
    shift[1] = 2.0
    assert np.array_equal(warp(image, shift)[:, :-2], image[:, 2:])


def test_monai_warp_uses_the_same_convention():
    import torch
    from monai.networks.blocks import Warp

    image = np.random.default_rng(1).random((12, 14, 10)).astype(np.float32)
    field = np.zeros((3, 12, 14, 10), np.float32)
    field[0], field[1], field[2] = 1.0, -0.5, 0.25
    theirs = Warp()(torch.from_numpy(image)[None, None], torch.from_numpy(field)[None])[0, 0].numpy()
    assert np.abs(theirs - warp(image, field))[2:-2, 2:-2, 2:-2].max() < 1e-4


def test_every_rung_fits_is_judged_and_reports_cost(registration_run):
    report = json.loads((registration_run / "report.json").read_text())
    rungs = {r["name"]: r for r in report["rungs"]}
    assert set(rungs) == {"affine", "classical", "voxelmorph"} and all(r["status"] == "done" for r in rungs.values())
    for name in rungs:
        result = json.loads((registration_run / "rungs" / name / "result.json").read_text())
        assert result["metric"]["name"] == "dice" and result["metric"]["n"] == 2
        pairs = result["pairs"]
        assert pairs["seconds"]["mean"] > 0 and 0 <= pairs["folding"]["mean"] <= 1 and "sd_log_jacobian" in pairs
        assert set(result["per_class"]) == {"1", "2"}
        assert all(case["case_id"].count("__to__") == 1 for case in result["per_case"])
    affine = json.loads((registration_run / "rungs" / "affine" / "result.json").read_text())
    assert affine["pairs"]["folding"]["mean"] == 0.0  # an affine map with a positive determinant never folds
    assert affine["metric"]["mean"] > np.mean([v["dice_before_mean"] for v in affine["per_class"].values()])


@pytest.mark.parametrize("rung", ["classical", "voxelmorph"])
def test_predicted_field_read_by_simpleitk_reproduces_the_warp(registration_run, tmp_path, rung):
    from automed.data.registration import load_on_grid
    from automed.rungs.fitted import load_fitted

    data = registration_run.parent / "data"
    dataset = open_registration(data)
    pair = dataset.evaluation[0]
    fixed, moving = dataset.volumes[pair.fixed], dataset.volumes[pair.moving]
    pairs = tmp_path / "pairs.csv"
    pairs.write_text(f"fixed,moving,fixed_label,moving_label\n{fixed.image},{moving.image},{fixed.label},"
                     f"{moving.label}\n")
    out = tmp_path / "out"
    automed.load(registration_run).predict(pairs, out, rung=rung)
    folder = out / pair.case_id
    field = sitk.ReadImage(str(folder / "displacement.nii.gz"), sitk.sitkVectorFloat64)
    fixed_image = sitk.ReadImage(str(fixed.image))
    assert field.GetSize() == fixed_image.GetSize() and field.GetOrigin() == fixed_image.GetOrigin()
    # the field applied by SimpleITK to the moving label equals automed's own warp of it on the grid
    transform = sitk.DisplacementFieldTransform(sitk.Image(field))
    by_itk = sitk.GetArrayFromImage(sitk.Resample(sitk.ReadImage(str(moving.label)), fixed_image, transform,
                                                  sitk.sitkNearestNeighbor, 0))
    assert np.array_equal(by_itk, sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "warped_label.nii.gz"))))
    # automed's own warp on the grid (scipy), of the moving image's own intensities, equals SimpleITK's where the
    # sampled points lie inside the moving volume (at its edge ITK's linear interpolation reads outside: 0)
    fingerprint = json.loads((registration_run / "fingerprint.json").read_text())
    on_grid = [load_on_grid(v, fingerprint) for v in (fixed, moving)]
    model = load_fitted(rung, "registration", registration_run / "rungs" / rung)
    field_on_grid = model.register(on_grid[0].image, on_grid[1].image)
    raw = np.zeros(fingerprint["grid"], np.float32)
    raw[on_grid[1].placement.region()] = sitk.GetArrayFromImage(sitk.ReadImage(str(moving.image)))
    region = (slice(None), *on_grid[0].placement.region())
    ours = warp(raw, field_on_grid)[region[1:]]
    points = (np.indices(fingerprint["grid"]) + field_on_grid)[region] - np.reshape(on_grid[1].placement.offset,
                                                                                   (3, 1, 1, 1))
    inside = np.all([(points[k] >= 1) & (points[k] <= on_grid[1].placement.shape[k] - 2) for k in range(3)], axis=0)
    warped = sitk.GetArrayFromImage(sitk.ReadImage(str(folder / "warped.nii.gz")))
    assert inside.mean() > 0.3 and np.abs(ours - warped)[inside].max() < 1e-2
    assert (out / "pairs.csv").read_text().count("\n") == 2
