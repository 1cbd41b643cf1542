"""Fitting on a working grid of a target spacing, and predictions back on each input's own grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

import automed
from automed.data.io import Geometry, read_image
from automed.errors import RecipeError
from conftest import FAST_PARAMS
from test_colour_and_names import make_colour_folders


def test_labels_resample_class_by_class_and_geometry_keeps_the_extent():
    from automed.data.resample import grid_shape, resample_labels, resampled_geometry

    label = np.zeros((40, 40), np.uint8)
    label[10:30, 10:30] = 1
    label[18:22, 5:35] = 2  # a thin bar across the square
    coarse = resample_labels(label, (20, 20))
    assert set(np.unique(coarse)) == {0, 1, 2} and (coarse == 2).sum() > 0
    back = resample_labels(coarse, (40, 40))
    assert (back == label).mean() > 0.95
    geometry = Geometry((1.0, 1.0), (0.0, 0.0), (1.0, 0.0, 0.0, 1.0))
    coarser = resampled_geometry(geometry, (40, 40), grid_shape((40, 40), (1.0, 1.0), (2.0, 2.0)))
    assert coarser.spacing == (2.0, 2.0) and coarser.origin == (0.5, 0.5)  # the first voxel's centre moved


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_fit_on_a_coarser_grid_predicts_on_each_inputs_own_grid(tmp_path):
    data = make_colour_folders(tmp_path / "photos", n_cases=6, side=64)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, target_spacing=[2, 2],
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    fingerprint = json.loads((run.folder / "fingerprint.json").read_text())
    assert fingerprint["median_shape"] == [32, 32] and fingerprint["target_spacing"] == [2.0, 2.0]
    assert "The working grid has spacing [2.0, 2.0] (the recipe's target_spacing)" in (run.folder / "report.md").read_text(encoding="utf-8")
    written = run.predict(data / "images", tmp_path / "pred")
    dice = []
    for path in written:
        pred = read_image(path).array > 0
        truth = np.asarray(PILImage.open(data / "masks" / f"{path.stem}_lesion.png")) > 0
        assert pred.shape == truth.shape == (64, 64)
        dice.append(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
    assert np.mean(dice) > 0.8


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_the_deep_rungs_train_and_predict_on_the_working_grid(tmp_path):
    data = make_colour_folders(tmp_path / "photos", n_cases=4, side=48)
    tiny = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
            "batch_sizes": [2], "tta": False}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True, target_spacing=[1.5, 1.5],
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": "unet2d", "params": tiny}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    assert json.loads((run.folder / "rungs/unet2d/result.json").read_text())["status"] == "done"
    oof = read_image(next((run.folder / "rungs/unet2d/oof").iterdir()))
    assert oof.array.shape == (32, 32) and oof.geometry.spacing == (1.5, 1.5)
    written = run.predict(data / "images", tmp_path / "pred", rung="unet2d")
    assert {read_image(p).array.shape for p in written} == {(48, 48)}


def test_a_target_spacing_of_the_wrong_length_names_the_image(tmp_path):
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import scan_dataset

    data = make_colour_folders(tmp_path / "photos", n_cases=2)
    _, problems, _ = scan_dataset(open_dataset(data), target_spacing=(1.0, 2.0, 2.0))
    assert any("IMD000.png: the recipe's target_spacing [1.0, 2.0, 2.0] has 3 value(s) but the image is 2D" in p
               for p in problems)
    with pytest.raises(RecipeError, match="target_spacing.*list of positive numbers"):
        automed.Recipe(target_spacing=[0, 1])
    with pytest.raises(RecipeError, match="applies to segmentation only"):
        automed.Recipe(task="classification", target_spacing=[1, 1])


def _resampled_copy(src, dst, divisors_xyz):
    """A hippocampus case resampled with SimpleITK onto a grid ``divisors_xyz`` times finer over
    exactly the same extent (image linearly, label nearest), as a scanner with another protocol
    would store it."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(src))
    spacing = [s / d for s, d in zip(image.GetSpacing(), divisors_xyz)]
    size = [n * d for n, d in zip(image.GetSize(), divisors_xyz)]
    direction = np.asarray(image.GetDirection()).reshape(3, 3)
    origin = np.asarray(image.GetOrigin()) + direction @ ((np.asarray(spacing) - image.GetSpacing()) / 2)
    return [sitk.Resample(img, size, sitk.Transform(), interp, origin.tolist(), spacing, image.GetDirection(),
                          0, img.GetPixelID()) for img, interp in ((image, sitk.sitkLinear),
                                                                    (sitk.ReadImage(str(dst)), sitk.sitkNearestNeighbor))]


def _mean_dice(predicted, inputs, originals):
    """Mean Dice of each prediction (on its input's grid) against the original label, onto whose grid
    SimpleITK maps it back (nearest neighbour)."""
    import SimpleITK as sitk

    scores = []
    for pred_path, input_path, truth_path in zip(predicted, inputs, originals):
        pred_image = sitk.ReadImage(str(pred_path))
        assert pred_image.GetSize() == sitk.ReadImage(str(input_path)).GetSize()
        original = sitk.ReadImage(str(truth_path))
        pred = sitk.GetArrayFromImage(sitk.Resample(pred_image, original, sitk.Transform(), sitk.sitkNearestNeighbor))
        truth = sitk.GetArrayFromImage(original)
        scores += [2 * ((pred == c) & (truth == c)).sum() / ((pred == c).sum() + (truth == c).sum()) for c in (1, 2)]
    return float(np.mean(scores))


@pytest.mark.slow  # about 3 min on 2 cores: two fits and 20 predictions of real volumes
def test_a_fit_on_mixed_spacings_predicts_each_input_on_its_own_grid_as_well_as_an_isotropic_fit(tmp_path):
    import shutil

    import SimpleITK as sitk

    source = Path(__file__).resolve().parents[1] / "examples" / "hippocampus"
    ids = sorted(p.name for p in (source / "imagesTr").iterdir())[:10]
    divisors = [None, (1, 1, 2), (2, 2, 1)]  # finer grids: nothing of the originals is lost
    for name, mixed in (("iso", False), ("mixed", True)):
        for sub in ("imagesTr", "labelsTr"):
            (tmp_path / name / sub).mkdir(parents=True)
        meta = json.loads((source / "dataset.json").read_text())
        meta["training"] = [e for e in meta["training"] if Path(e["image"]).name in ids]
        (tmp_path / name / "dataset.json").write_text(json.dumps(meta))
        for i, case in enumerate(ids):
            image, label = source / "imagesTr" / case, source / "labelsTr" / case
            if mixed and divisors[i % 3] is not None:
                for img, sub in zip(_resampled_copy(image, label, divisors[i % 3]), ("imagesTr", "labelsTr")):
                    sitk.WriteImage(img, str(tmp_path / name / sub / case))
            else:
                shutil.copy(image, tmp_path / name / "imagesTr" / case)
                shutil.copy(label, tmp_path / name / "labelsTr" / case)
    dice = {}
    for name in ("iso", "mixed"):
        recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
        run = automed.fit(recipe, tmp_path / name, tmp_path / f"run_{name}", progress=False)
        fingerprint = json.loads((run.folder / "fingerprint.json").read_text())
        assert fingerprint["target_spacing"] == [1.0, 1.0, 1.0], fingerprint["spacing_note"]
        written = run.predict(tmp_path / name / "imagesTr", tmp_path / f"pred_{name}")
        dice[name] = _mean_dice(sorted(written), sorted((tmp_path / name / "imagesTr").iterdir()),
                                [source / "labelsTr" / case for case in ids])
    assert "6 of 10 case(s) are resampled" in fingerprint["spacing_note"]
    assert dice["iso"] > 0.6 and abs(dice["mixed"] - dice["iso"]) <= 0.01, dice


def test_the_automatic_grid_follows_nnunets_rule_and_leaves_photographs_alone(tmp_path):
    import doctest

    from automed.data import normalize, spacing
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.data.spacing import choose_target_spacing
    from automed.rungs.segmentation import classical_grid

    for module in (spacing, normalize, classical_grid):
        assert doctest.testmod(module).failed == 0
    # thick slices in most cases: the through-plane axis takes the 10th percentile, not the median
    spacings = [(5.0, 0.7, 0.7)] * 8 + [(1.5, 0.7, 0.7)] * 2
    target, why = choose_target_spacing(spacings, [(60, 512, 512)] * 10)
    assert target == (1.5, 0.7, 0.7) and "axis 0 is anisotropic" in why and "8 of 10 case(s)" in why
    # in-plane anisotropy without few voxels along the axis keeps the median
    assert choose_target_spacing([(3.0, 0.8, 0.8)] * 3, [(200, 200, 200)] * 3)[0] == (3.0, 0.8, 0.8)
    data = make_colour_folders(tmp_path / "photos", n_cases=4)
    for i, path in enumerate(sorted((data / "images").iterdir())):
        PILImage.open(path).save(path, dpi=(72, 72) if i % 2 else (300, 300))
    fingerprint = compute_fingerprint(open_dataset(data))
    assert fingerprint.target_spacing is None and "dots per inch" in fingerprint.spacing_note
