"""Colour images in classification (R, G, B everywhere, or luminance on request), colour features,
and the photograph normalisation and L*a*b* filter bank of segmentation."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image as PILImage

import automed
from automed.errors import DataError
from conftest import FAST_CLASSIFICATION, FAST_PARAMS
from test_colour_and_names import make_colour_folders

BACKGROUND = (100, 100, 100)
# Two disc colours of (nearly) the background's luminance: only colour tells the classes apart
DISC = {0: (200, 49, 100), 1: (20, 130, 153)}


def colour_images(n: int, rng: np.random.Generator, side: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """``(n, side, side, 3)`` uint8 photographs whose class is the colour of a disc, and their labels."""
    labels = rng.integers(0, 2, n)
    grid = np.mgrid[:side, :side]
    images = []
    for label in labels:
        centre = rng.uniform(side / 3, 2 * side / 3, 2)
        disc = ((grid[0] - centre[0]) ** 2 + (grid[1] - centre[1]) ** 2) < (side / 4) ** 2
        image = np.where(disc[..., None], DISC[int(label)], BACKGROUND) + rng.normal(0, 6, (side, side, 3))
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(images), labels


def colour_npz(path, seed: int = 0, sizes=(50, 14, 30)):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        images, labels = colour_images(n, rng)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez(path, **arrays)
    return path


def _classical(**recipe):
    return automed.Recipe(task="classification", n_folds=3, n_jobs=1,
                          rungs=[{"name": "classical", "params": FAST_CLASSIFICATION}], **recipe)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_colour_pays_in_classification_and_predict_reads_as_fit_did(tmp_path):
    data = colour_npz(tmp_path / "colour.npz")
    run = automed.fit(_classical(), data, tmp_path / "run", progress=False)
    fingerprint = json.loads((run.folder / "fingerprint.json").read_text())
    assert fingerprint["n_channels"] == 3 and not fingerprint["colour_as_luminance"]
    rung = run.report_["rungs"][0]
    assert rung["test"]["auc"]["mean"] > 0.95
    names = set(np.load(next((run.folder / "cache").glob("features-*.npz")))["names"].tolist())
    assert {"lab_a_p50", "R_texture_intensity_mean", "B_texture_intensity_mean"} <= names
    grey = automed.fit(_classical(colour="grey"), data, tmp_path / "grey", progress=False)
    assert json.loads((grey.folder / "fingerprint.json").read_text())["n_channels"] == 1
    assert grey.report_["rungs"][0]["test"]["auc"]["mean"] < 0.8  # the discs have the background's luminance

    (written,) = run.predict(data, tmp_path / "pred.csv", split="test")
    assert len(written.read_text().splitlines()) == 31
    (grey_written,) = grey.predict(data, tmp_path / "grey_pred.csv", split="test")
    assert len(grey_written.read_text().splitlines()) == 31
    arrays = dict(np.load(data))
    np.savez(tmp_path / "grey.npz", test_images=arrays["test_images"].mean(axis=-1).astype(np.uint8))
    with pytest.raises(DataError, match=r"grey.npz: the images have 1 channel\(s\), but the run was fitted on "
                                        r"images with 3"):
        run.predict(tmp_path / "grey.npz", tmp_path / "p.csv")


def _class_folders(root, n: int = 12, seed: int = 0):
    images, labels = colour_images(n, np.random.default_rng(seed))
    for i, (image, label) in enumerate(zip(images, labels)):
        (root / str(label)).mkdir(parents=True, exist_ok=True)
        PILImage.fromarray(image).save(root / str(label) / f"img{i:02d}.png")
    return root


def test_class_folders_of_photographs_are_colour_and_a_grey_one_among_them_is_named(tmp_path):
    from automed.data.classification import load_image, open_classification

    data = _class_folders(tmp_path / "photos")
    dataset = open_classification(data)
    assert dataset.n_channels == 3 and load_image(dataset, dataset.cases[0]).shape == (3, 24, 24)
    grey = open_classification(data, colour=False)
    assert grey.n_channels == 1 and grey.luminance and load_image(grey, grey.cases[0]).shape == (1, 24, 24)
    odd = next(data.rglob("img05.png"))
    PILImage.fromarray(np.full((24, 24), 90, np.uint8)).save(odd)
    case = next(c for c in dataset.cases if c.image_path == odd)
    with pytest.raises(DataError, match=rf"{odd.parent.name}/img05.png: a grey image, but the dataset's images "
                                        r"are colour \(RGB\) images"):
        load_image(dataset, case)


def test_a_colour_image_given_to_a_grey_run_is_named(tmp_path, fitted_classification_run):
    image, _ = colour_images(1, np.random.default_rng(1), side=28)
    PILImage.fromarray(image[0]).save(tmp_path / "photo.png")
    with pytest.raises(DataError, match=r"photo.png: a colour \(RGB\) image, but the dataset's images are grey"):
        automed.Run.load(fitted_classification_run).predict(tmp_path / "photo.png", tmp_path / "p.csv")


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_the_deep_classifier_takes_three_channels_standardised_one_by_one(tmp_path):
    data = colour_npz(tmp_path / "colour.npz", sizes=(24, 8, 16))
    tiny = {"n_trials": 0, "max_epochs": 1, "min_epochs": 1, "widths": [4], "depths": [1], "batch_sizes": [8]}
    recipe = automed.Recipe(task="classification", n_folds=2, n_jobs=1, rungs=[{"name": "cnn", "params": tiny}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    record = json.loads((run.folder / "rungs/cnn/model.json").read_text())
    assert record["in_channels"] == 3 and len(record["mean"]) == 3 and len(set(record["mean"])) == 3
    (written,) = run.predict(data, tmp_path / "pred.csv", split="test")
    assert len(written.read_text().splitlines()) == 17


def test_channel_counts_other_than_one_or_three_are_mapped_to_rgb_for_imagenet_backbones():
    import torch

    from automed.nets.transfer_net import TransferNet

    backbone = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    net = TransferNet(backbone, 16, 4, 2, in_channels=2)
    x = torch.rand(3, 2, 10, 10)
    assert net(x).shape == (3, 2)
    mapped = net.to_rgb(x)
    assert torch.allclose(mapped[:, 0], x.mean(dim=1), atol=1e-6)  # starts as the channels' mean
    frozen = net.param_groups(1e-3, 0.0)
    assert {id(p) for p in net.to_rgb.parameters()} <= {id(p) for g in frozen for p in g["params"]}


def test_lab_features_tell_red_from_green_at_equal_luminance():
    from automed.features.colour import lab_features, to_lab

    red = np.zeros((3, 8, 8)) + np.array(DISC[0])[:, None, None]
    green = np.zeros((3, 8, 8)) + np.array(DISC[1])[:, None, None]
    assert abs(to_lab(red)[0].mean() - to_lab(green)[0].mean()) < 6  # about the same lightness
    assert lab_features(red)["lab_a_p50"] > 30 > 0 > lab_features(green)["lab_a_p50"]
    mask = np.zeros((8, 8), bool)
    mask[:2] = True
    assert lab_features(red, mask)["lab_L_hist_00"] == 0.0


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_photographs_are_scaled_to_0_1_and_filtered_in_lab_or_read_as_luminance(tmp_path):
    from automed.data.dataset import open_dataset
    from automed.data.fingerprint import compute_fingerprint
    from automed.data.loading import load_case
    from automed.data.normalize import normalize

    data = make_colour_folders(tmp_path / "colour", n_cases=4)
    dataset = open_dataset(data)
    fingerprint = compute_fingerprint(dataset, 0, False)
    assert fingerprint.modality == "photograph" and fingerprint.normalization == "rgb"
    loaded = load_case(dataset.cases[0], 3, True)
    assert np.allclose(normalize(loaded.image, fingerprint), loaded.image / 255.0)
    grey = open_dataset(data, colour=False)
    assert grey.channel_names == ("luminance",) and grey.channels_in_one_file
    luminance = load_case(grey.cases[0], 1, True).image
    assert luminance.shape == (1, 32, 32)
    assert np.allclose(luminance[0], loaded.image.transpose(1, 2, 0) @ np.array([0.299, 0.587, 0.114]), atol=1e-3)

    recipe = automed.Recipe(n_folds=2, n_jobs=1, rungs=[{"name": "classical", "params": FAST_PARAMS}])
    run = automed.fit(recipe, data, tmp_path / "run", progress=False)
    details = json.loads((run.folder / "rungs/classical/result.json").read_text())["details"]
    assert details["features"]["lab"] and details["n_features"] == 3 * 2 * 4 + 2 + 3  # L*, a*, b* for R, G, B
    grey_run = automed.fit(recipe.replace(colour="grey"), data, tmp_path / "grey_run", progress=False)
    assert json.loads((grey_run.folder / "fingerprint.json").read_text())["channel_names"] == ["luminance"]
    assert len(grey_run.predict(data / "images", tmp_path / "pred")) == 4
