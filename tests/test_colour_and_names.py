"""Colour photographs as three channels, GIF files, and masks paired by the names users give them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

import automed
from automed.data.dataset import open_dataset
from automed.errors import DataError
from conftest import FAST_PARAMS

BACKGROUND = (100, 100, 100)
LESION = (200, 49, 100)  # the same luminance as the background (0.299 R + 0.587 G + 0.114 B = 100)


def colour_case(rng: np.random.Generator, side: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """A disc anywhere in the image that differs from the background in colour only, with noise."""
    grid = np.mgrid[:side, :side]
    radius = side / 6
    centre = rng.uniform(radius + 1, side - radius - 1, 2)
    mask = ((grid[0] - centre[0]) ** 2 + (grid[1] - centre[1]) ** 2) < radius ** 2
    image = np.where(mask[..., None], LESION, BACKGROUND) + rng.normal(0, 6, (side, side, 3))
    return np.clip(image, 0, 255).astype(np.uint8), mask.astype(np.uint8) * 255


def make_colour_folders(root, n_cases: int = 6, seed: int = 0, mask_suffix: str = "_lesion", side: int = 32):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(n_cases):
        image, mask = colour_case(rng, side)
        PILImage.fromarray(image).save(root / "images" / f"IMD{i:03d}.png")
        PILImage.fromarray(mask).save(root / "masks" / f"IMD{i:03d}{mask_suffix}.png")
    return root


def _touch_pngs(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        PILImage.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name)


@pytest.mark.parametrize("images, masks", [
    (["IMD002.png", "IMD003.png"], ["IMD002_lesion.png", "IMD003_lesion.png"]),
    (["a.png", "b.png"], ["a-mask.png", "b_Segmentation.png"]),
    (["07_scan.png", "08_scan.png"], ["07_expert.png", "08_expert.png"]),
    (["case1.png"], ["case1.png"]),
])
def test_masks_pair_with_their_images_by_the_names_users_give_them(tmp_path, images, masks):
    _touch_pngs(tmp_path / "images", images)
    _touch_pngs(tmp_path / "masks", masks)
    dataset = open_dataset(tmp_path)
    assert [c.label_path.name for c in dataset.cases] == masks
    assert [c.case_id for c in dataset.cases] == [name[:-4] for name in images]


@pytest.mark.parametrize("images, masks, message", [
    (["a.png"], ["a_mask.png", "a_seg.png"], r"images/a.png: 2 masks match this image \(a_mask.png, a_seg.png\)"),
    (["07_left.png", "07_right.png"], ["07_expert.png"], r"case id '07' leads the names of 07_left.png, 07_right.png, "
                                                         r"07_expert.png"),
    (["a.png"], ["b_mask.png"], r"images/a.png: image without label"),
])
def test_ambiguous_or_missing_pairs_name_the_candidates(tmp_path, images, masks, message):
    _touch_pngs(tmp_path / "images", images)
    _touch_pngs(tmp_path / "masks", masks)
    with pytest.raises(DataError, match=message):
        open_dataset(tmp_path)


def test_gif_masks_and_images_read(tmp_path):
    from automed.data.io import read_image

    grey = (np.arange(64).reshape(8, 8) * 4).astype(np.uint8)
    PILImage.fromarray(grey).save(tmp_path / "grey.gif")
    assert np.array_equal(read_image(tmp_path / "grey.gif").array, grey)
    colour = np.zeros((8, 8, 3), np.uint8)
    colour[..., 0] = 255
    PILImage.fromarray(colour).save(tmp_path / "red.gif")
    assert read_image(tmp_path / "red.gif", colour=True).array.shape == (3, 8, 8)
    (tmp_path / "bad.gif").write_bytes(b"GIF89a" + b"\0" * 40)
    with pytest.raises(DataError, match="bad.gif: cannot be read"):
        read_image(tmp_path / "bad.gif")


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_colour_photographs_are_three_channels_and_colour_pays(tmp_path):
    data = make_colour_folders(tmp_path / "colour")
    dataset = open_dataset(data)
    assert dataset.channel_names == ("R", "G", "B") and dataset.channels_in_one_file
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    fingerprint = json.loads((run.folder / "fingerprint.json").read_text())
    assert fingerprint["n_channels"] == 3 and len(fingerprint["intensity"]) == 3
    result = json.loads((run.folder / "rungs/classical/result.json").read_text())
    assert result["metric"]["mean"] > 0.9
    grey_data = make_colour_folders(tmp_path / "as_grey")  # the same cases as luminance
    for path in (grey_data / "images").iterdir():
        luminance = np.asarray(PILImage.open(path)).astype(np.float32) @ np.array([0.299, 0.587, 0.114])
        PILImage.fromarray(np.clip(luminance, 0, 255).astype(np.uint8)).save(path)
    grey_run = automed.fit(recipe, grey_data, tmp_path / "grey_run", progress=False)
    grey_result = json.loads((grey_run.folder / "rungs/classical/result.json").read_text())
    assert grey_result["metric"]["mean"] < 0.5  # the lesion has the background's luminance: only colour finds it
    written = run.predict(data / "images", tmp_path / "pred")
    assert len(written) == 6

    grey = tmp_path / "grey"
    grey.mkdir()
    PILImage.fromarray(np.full((32, 32), 100, np.uint8)).save(grey / "g.png")
    with pytest.raises(DataError, match=r"grey/g.png: a grey image, but 3 channel\(s\) are expected"):
        run.predict(grey, tmp_path / "pred_grey")


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_grey_case_among_colour_ones_is_named(tmp_path):
    data = make_colour_folders(tmp_path / "mixed", n_cases=4)
    PILImage.fromarray(np.full((32, 32), 100, np.uint8)).save(data / "images" / "IMD002.png")
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
    with pytest.raises(DataError, match=r"images/IMD002.png: a grey image, but 3 channel\(s\) are expected"):
        automed.fit(recipe, data, tmp_path / "run", progress=False)


def test_a_colour_image_where_grey_is_expected_is_named(tmp_path):
    from automed.data.case import Case
    from automed.data.loading import load_image_channels

    image, _ = colour_case(np.random.default_rng(0))
    PILImage.fromarray(image).save(tmp_path / "c.png")
    with pytest.raises(DataError, match=r"c.png: a colour \(RGB\) image, but 1 grey channel"):
        load_image_channels(Case("c", (tmp_path / "c.png",)), 1)


def test_a_jpeg_mask_is_thresholded_with_a_warning_and_a_grey_image_as_mask_is_an_error(tmp_path, caplog):
    from automed.data.fingerprint import scan_dataset

    data = make_colour_folders(tmp_path / "jpeg", n_cases=3)
    for png in sorted((data / "masks").iterdir()):
        PILImage.open(png).save(png.with_suffix(".jpg"), quality=75)
        png.unlink()
    fingerprint, problems, warnings = scan_dataset(open_dataset(data))
    assert not problems and fingerprint.classes == {0: "background", 1: "label_255"}
    assert len(warnings) == 3 and all("compression noise" in w and "thresholded at 127.5" in w for w in warnings)

    noise = np.random.default_rng(0).integers(0, 256, (32, 32)).astype(np.uint8)
    PILImage.fromarray(noise).save(data / "masks" / "IMD001_lesion.jpg")
    _, problems, _ = scan_dataset(open_dataset(data))
    assert any("masks/IMD001_lesion.jpg: mask holds" in p and "grey levels" in p for p in problems)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_deep_rung_takes_the_three_colour_channels(tmp_path):
    import torch

    data = make_colour_folders(tmp_path / "colour")
    tiny = {"n_trials": 0, "max_epochs": 2, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
            "batch_sizes": [2], "tta": False}
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": "unet2d", "params": tiny}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    assert json.loads((run.folder / "rungs/unet2d/result.json").read_text())["status"] == "done"
    state = torch.load(run.folder / "rungs/unet2d/model_fold0.pt", weights_only=True)
    first = next(v for v in state["model"].values() if v.ndim == 4)  # the first convolution's weights
    assert first.shape[1] == 3
    assert len(run.predict(data / "images", tmp_path / "pred", rung="unet2d")) == 6


def _manifest(tmp_path, n_cases=6, extra_columns=""):
    data = make_colour_folders(tmp_path / "cases", n_cases=n_cases)
    rows = ["image,label,group,site" + extra_columns]
    for i in range(n_cases):
        rows.append(f"cases/images/IMD{i:03d}.png,cases/masks/IMD{i:03d}_lesion.png,p{i // 2},"
                    f"{'north' if i % 2 else 'south'}" + ("," if extra_columns else ""))
    (tmp_path / "cases.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "cases.csv", data


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_segmentation_manifest_gives_groups_and_per_site_scores(tmp_path):
    manifest, _ = _manifest(tmp_path)
    dataset = open_dataset(manifest)
    assert dataset.format == "csv" and dataset.channel_names == ("R", "G", "B")
    assert [(c.group, c.site) for c in dataset.cases[:2]] == [("p0", "south"), ("p0", "north")]
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, manifest, tmp_path / "run", progress=False)
    folds = json.loads((run.folder / "splits.json").read_text())["folds"]
    assert all({"IMD000", "IMD001"} <= set(f["val"]) or not {"IMD000", "IMD001"} & set(f["val"]) for f in folds)
    result = json.loads((run.folder / "rungs/classical/result.json").read_text())
    assert sorted(result["per_site"]) == ["north", "south"] and result["per_site"]["north"]["n"] == 3
    assert "### Per site" in (run.folder / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("edit, message", [
    (lambda text: text.replace("cases/masks/IMD003_lesion.png", "cases/masks/none.png"),
     r"cases.csv line 5: label file 'cases/masks/none.png' not found"),
    (lambda text: text.replace("cases/masks/IMD003_lesion.png", "cases/masks/IMD002_lesion.png"),
     r"cases.csv line 5: label 'cases/masks/IMD002_lesion.png' is already listed on line 4"),
    (lambda text: text.replace("image,label,group,site", "image,label,group,site,spacing"),
     r"cases.csv: unknown column\(s\) \['spacing'\]"),
    (lambda text: text.replace("image,label,group,site", "image,mask,group,site"), r"cases.csv: no 'label' column"),
])
def test_a_bad_segmentation_manifest_names_the_line(tmp_path, edit, message):
    manifest, _ = _manifest(tmp_path)
    manifest.write_text(edit(manifest.read_text()))
    with pytest.raises(DataError, match=message):
        open_dataset(manifest)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_colour_npz_is_read_the_same_way_to_fit_and_to_predict(tmp_path):
    from conftest import FAST_CLASSIFICATION, images_with_discs

    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 60), ("val", 16), ("test", 30)):
        images, labels = images_with_discs(n, rng)
        arrays[f"{split}_images"] = np.stack([images, images // 2, images // 3], axis=-1)
        arrays[f"{split}_labels"] = labels[:, None]
    np.savez(tmp_path / "colour.npz", **arrays)
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1,
                            rungs=[{"name": "classical", "params": FAST_CLASSIFICATION}])
    run = automed.fit(recipe, tmp_path / "colour.npz", tmp_path / "run", progress=False)
    (written,) = run.predict(tmp_path / "colour.npz", tmp_path / "pred.csv", split="test")
    assert len(written.read_text().splitlines()) == 31


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_a_region_of_interest_bounds_what_is_learnt_and_scored(tmp_path):
    from automed.data.fingerprint import scan_dataset
    from automed.data.io import read_image

    data = make_colour_folders(tmp_path / "fov", n_cases=6)
    (data / "fov").mkdir()
    roi = np.zeros((32, 32), np.uint8)
    roi[:, :20] = 255  # the left part of every image is the field of view
    for i in range(6):
        PILImage.fromarray(roi).save(data / "fov" / f"IMD{i:03d}_roi.png")
    dataset = open_dataset(data)
    assert all(c.roi_path.name == f"{c.case_id}_roi.png" for c in dataset.cases)
    _, problems, warnings = scan_dataset(dataset)
    assert not problems and any("outside the ROI" in w and "are ignored" in w for w in warnings)
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    assert "6 case(s) have a region of interest" in (run.folder / "report.md").read_text(encoding="utf-8")
    for mask in (run.folder / "rungs/classical/oof").iterdir():
        assert not read_image(mask).array[:, 20:].any()  # nothing is segmented outside the ROI
    PILImage.fromarray(np.zeros((32, 32), np.uint8)).save(data / "fov" / "IMD002_roi.png")
    _, problems, _ = scan_dataset(open_dataset(data))
    assert any("fov/IMD002_roi.png: ROI is empty" in p for p in problems)


def test_a_manifest_roi_column_names_a_missing_file(tmp_path):
    manifest, _ = _manifest(tmp_path, extra_columns=",roi")
    rows = manifest.read_text().splitlines()
    rows[1] = rows[1] + "cases/none.png"
    manifest.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"cases.csv line 2: roi file 'cases/none.png' not found"):
        open_dataset(manifest)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_nnunet_rgb_photographs_are_one_file_per_case(tmp_path):
    """nnU-Net's layout for natural images: channel_names R, G, B and one CASE_0000.png each."""
    rng = np.random.default_rng(0)
    root = tmp_path / "Dataset120_Lesions"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    (root / "imagesTs").mkdir()
    for i in range(4):
        image, mask = colour_case(rng)
        PILImage.fromarray(image).save(root / "imagesTr" / f"case{i}_0000.png")
        PILImage.fromarray((mask > 0).astype(np.uint8)).save(root / "labelsTr" / f"case{i}.png")
    PILImage.fromarray(colour_case(rng)[0]).save(root / "imagesTs" / "new_0000.png")
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "lesion": 1},
        "numTraining": 4, "file_ending": ".png"}))
    dataset = open_dataset(root)
    assert dataset.channels_in_one_file and dataset.n_channels == 3 and dataset.cases[0].case_id == "case0"
    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, root, tmp_path / "run", progress=False)
    assert json.loads((run.folder / "fingerprint.json").read_text())["normalization"] == "rgb"
    assert [p.name for p in run.predict(root, tmp_path / "pred")] == ["new.png"]
