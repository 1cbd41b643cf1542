"""Classification: inputs, bad input, the classical rung end to end, CSV predictions."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

import automed
from automed.cli import main
from automed.data.classification import load_mask, open_classification
from automed.data.splits import holdout_split
from automed.errors import DataError
from conftest import FAST_CLASSIFICATION as FAST
from conftest import images_with_discs as _images
from conftest import make_npz, write

def make_class_folders(root: Path, n: int = 24, seed: int = 0) -> Path:
    images, labels = _images(n, np.random.default_rng(seed))
    for i, (image, label) in enumerate(zip(images, labels)):
        write(image, root / ("benign" if label == 0 else "malignant") / f"img{i}.png")
    return root


def make_manifest(root: Path, n: int = 30, seed: int = 0) -> Path:
    images, labels = _images(n, np.random.default_rng(seed))
    rows = []
    for i, (image, label) in enumerate(zip(images, labels)):
        write(image, root / "img" / f"{i}.png")
        mask = np.zeros((28, 28), np.uint8)
        mask[7:21, 7:21] = 1
        write(mask, root / "mask" / f"{i}.png")
        rows.append({"image": f"img/{i}.png", "label": f"grade{label}", "mask": f"mask/{i}.png",
                     "group": f"p{i // 2}", "site": f"site{i % 2}"})
    path = root / "manifest.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def _recipe(**changes):
    values = {"task": "classification", "n_folds": 3, "n_jobs": 1, "rungs": [{"name": "classical", "params": FAST}]}
    return automed.Recipe(**(values | changes))


def test_medmnist_official_split_end_to_end(tmp_path):
    data = make_npz(tmp_path / "toy.npz")
    run = automed.fit(_recipe(), data, tmp_path / "run", progress=False)
    splits = json.loads((tmp_path / "run/splits.json").read_text())
    assert splits["kind"] == "official" and len(splits["test"]) == 30
    assert not set(splits["test"]) & set(splits["dev"])
    rung = run.report_["rungs"][0]
    assert rung["metric"]["name"] == "auc" and rung["metric"]["mean"] > 0.9
    assert set(rung["per_class"]) == {"0", "1"} and {"recall", "precision"} <= set(rung["per_class"]["0"])
    assert 0.0 <= rung["threshold"] <= 1.0
    assert sum(map(sum, rung["test"]["confusion_matrix"])) == 30
    assert rung["top_features"][0]["importance"] >= rung["top_features"][-1]["importance"]
    assert {c["case_id"] for c in rung["per_case"]} == set(splits["test"])
    assert "Confusion matrix" in (tmp_path / "run/report.md").read_text()

    out = tmp_path / "preds.csv"
    result = CliRunner().invoke(main, ["predict", str(tmp_path / "run"), str(data), "--split", "test",
                                       "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 30 and rows[0]["case"] == "test_0"
    assert set(rows[0]) == {"case", "label", "prob_0", "prob_1", "flag", "quality_score", "distance_percentile",
                            "distance", "uncertainty", "reason"}
    assert float(rows[0]["prob_0"]) + float(rows[0]["prob_1"]) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_features_are_cached_in_the_run_folder(tmp_path, caplog):
    data = make_npz(tmp_path / "toy.npz", sizes=(30, 12, 12))
    automed.fit(_recipe(), data, tmp_path / "run", progress=False)
    assert list((tmp_path / "run/cache").glob("features-*.npz"))
    caplog.set_level("INFO", logger="automed")
    automed.fit(_recipe(), data, tmp_path / "run", overwrite=True, progress=False)
    assert "features read from cache" in caplog.text


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_class_folders_and_held_out_test(tmp_path):
    data = make_class_folders(tmp_path / "by_class")
    dataset = open_classification(data)
    assert dataset.classes == ("benign", "malignant") and not dataset.official_split
    run = automed.fit(_recipe(test_fraction=0.25, n_folds=2), data, tmp_path / "run", progress=False)
    splits = json.loads((tmp_path / "run/splits.json").read_text())
    assert splits["kind"] == "holdout" and len(splits["test"]) == 6
    assert run.report_["rungs"][0]["status"] == "done"
    written = run.predict(data / "benign", tmp_path / "p.csv")
    assert written[0].is_file()


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_manifest_with_mask_group_and_site(tmp_path):
    path = make_manifest(tmp_path / "m")
    dataset = open_classification(path)
    case = dataset.cases[0]
    assert case.group == "p0" and case.site == "site0" and load_mask(case, (28, 28)).sum() == 14 * 14
    split = holdout_split([c.case_id for c in dataset.cases], [c.label for c in dataset.cases],
                          [c.group for c in dataset.cases], 0.2, 2)
    groups = {c.case_id: c.group for c in dataset.cases}
    assert not {groups[c] for c in split["test"]} & {groups[c] for c in split["dev"]}
    run = automed.fit(_recipe(n_folds=2), path, tmp_path / "run", progress=False)
    assert set(run.report_["rungs"][0]["per_site"]) <= {"site0", "site1"}


@pytest.mark.parametrize("column", ["image", "label"])
def test_manifest_missing_column(tmp_path, column):
    path = tmp_path / "m.csv"
    other = "label" if column == "image" else "image"
    path.write_text(f"{other}\nx\n")
    with pytest.raises(DataError, match=f"m.csv: no '{column}' column"):
        open_classification(path)


def test_manifest_row_with_missing_file(tmp_path):
    path = make_manifest(tmp_path / "m", n=6)
    text = path.read_text().replace("img/3.png", "img/gone.png")
    path.write_text(text)
    with pytest.raises(DataError, match=r"manifest.csv line 5: image file 'img/gone.png' not found"):
        open_classification(path)


def test_class_with_one_image(tmp_path):
    data = make_class_folders(tmp_path / "d", n=10)
    write(np.zeros((28, 28), np.uint8), data / "rare" / "only.png")
    with pytest.raises(DataError, match=r"class\(es\) \['rare'\] have fewer than 2 images"):
        open_classification(data)


def test_single_class(tmp_path):
    for i in range(3):
        write(np.zeros((8, 8), np.uint8), tmp_path / "d" / "normal" / f"{i}.png")
    with pytest.raises(DataError, match="classification needs at least two classes"):
        open_classification(tmp_path / "d")


def test_mask_shape_and_empty_mask(tmp_path):
    path = make_manifest(tmp_path / "m", n=10)
    write(np.ones((20, 20), np.uint8), tmp_path / "m" / "mask" / "0.png")
    write(np.zeros((28, 28), np.uint8), tmp_path / "m" / "mask" / "1.png")
    cases = open_classification(path).cases
    with pytest.raises(DataError, match=r"mask/0.png: mask shape \(20, 20\) does not match image \(28, 28\)"):
        load_mask(cases[0], (28, 28))
    with pytest.raises(DataError, match="mask/1.png: mask is empty"):
        load_mask(cases[1], (28, 28))


def test_npz_without_expected_keys(tmp_path):
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 8, 8)))
    with pytest.raises(DataError, match=r"bad.npz: missing key\(s\) \['train_images'"):
        open_classification(tmp_path / "bad.npz")


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_mixed_dimensionality_is_refused(tmp_path):
    data = make_class_folders(tmp_path / "d", n=12)
    write(np.zeros((8, 8, 8), np.float32), data / "benign" / "volume.nii.gz")
    result = CliRunner().invoke(main, ["fit", "--task", "classification", str(data), "--out", str(tmp_path / "r"),
                                       "--quiet"])
    assert result.exit_code == 1
    assert "Images of different dimensionality are mixed" in result.output and "volume.nii.gz is 3D" in result.output
    assert not (tmp_path / "r").exists()


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_3d_volumes(tmp_path):
    data = make_npz(tmp_path / "vol.npz", shape=(12, 12, 12), sizes=(40, 12, 16))
    run = automed.fit(_recipe(), data, tmp_path / "run", progress=False)
    assert run.report_["dataset"]["dims"] == 3
    assert run.report_["rungs"][0]["metric"]["mean"] > 0.8


def test_every_model_family_and_the_ensemble_fit_and_predict():
    from automed.models.tabular import MODELS, PlattCalibrated, build_tabular_classifier
    from automed.models.tabular import feature_importances

    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 5))
    y = (X[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    configs = {
        "lightgbm": {"n_estimators": 50, "learning_rate": 0.1, "num_leaves": 4, "min_child_samples": 5,
                     "colsample_bytree": 1.0, "subsample": 1.0, "reg_lambda": 1.0},
        "random_forest": {"n_estimators": 50, "max_features": "sqrt", "min_samples_leaf": 1},
        "logistic": {"C": 1.0, "l1_ratio": 0.0},
        "svm": {"C": 1.0},
    }
    members = [{"model": m, "class_weight": "balanced", **configs[m]} for m in MODELS]
    for config in members + [{"model": "ensemble", "class_weight": "none", "members": members}]:
        model = PlattCalibrated(build_tabular_classifier(config, 0, 1).fit(X, y), 2)
        model.fit_scaling(model.model.predict_proba(X), y)
        proba = model.predict_proba(X)
        assert proba.shape == (80, 2) and np.allclose(proba.sum(axis=1), 1)
        assert (proba[:, 1] > 0.5).astype(int).tolist().count(1) > 20
        ranking = feature_importances(model, [f"f{i}" for i in range(5)])
        if config["model"] != "svm":
            assert ranking[0]["feature"] == "f0"


def test_platt_scaling_never_inverts():
    from automed.models.tabular import PlattCalibrated

    class Fixed:
        classes_ = np.array([0, 1])

        def predict_proba(self, X):
            return np.stack([1 - X[:, 0], X[:, 0]], axis=1)

    y = np.array([0, 0, 1, 1])
    inverted_oof = np.array([[0.1, 0.9], [0.2, 0.8], [0.8, 0.2], [0.9, 0.1]])
    model = PlattCalibrated(Fixed(), 2).fit_scaling(inverted_oof, y)
    X = np.array([[0.9], [0.1]])
    assert model.identity_.all()
    assert model.predict_proba(X)[0, 1] == pytest.approx(0.9)


@pytest.mark.slow  # an end-to-end fit: `make test-all` runs it
def test_multiclass_grading(tmp_path):
    rng = np.random.default_rng(3)
    arrays = {}
    grids = np.meshgrid(np.arange(20), np.arange(20), indexing="ij")
    disc = (grids[0] - 10) ** 2 + (grids[1] - 10) ** 2 < 25
    for split, n in (("train", 60), ("val", 15), ("test", 30)):
        labels = np.arange(n) % 3
        images = rng.normal(50, 10, (n, 20, 20))
        images[:, disc] += (labels * 60)[:, None]
        arrays[f"{split}_images"] = np.clip(images, 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None]
    np.savez(tmp_path / "grades.npz", **arrays)
    run = automed.fit(_recipe(), tmp_path / "grades.npz", tmp_path / "run", progress=False)
    rung = run.report_["rungs"][0]
    assert set(rung["per_class"]) == {"0", "1", "2"} and rung["threshold"] is None
    assert len(rung["test"]["confusion_matrix"]) == 3 and rung["metric"]["mean"] > 0.9
    assert len(rung["per_case"][0]["proba"]) == 3


def test_nonzero_roi_adds_shape_features(tmp_path):
    from automed.rungs.classification.classical import ClassicalClassifierParams
    from automed.rungs.classification.classical_features import case_features
    from automed.data.classification import ImageCase

    volume = np.zeros((12, 12, 12), np.float32)
    volume[3:9, 3:9, 3:9] = 255
    case = ImageCase("v", "0", index=0, split="train")
    _, whole = case_features(case, ClassicalClassifierParams(feature_sets=("radiomics",)), volume[None])
    _, nonzero = case_features(case, ClassicalClassifierParams(feature_sets=("radiomics",), roi="nonzero"),
                                volume[None])
    assert not any("shape" in k for k in whole)
    assert nonzero["radiomics_original_shape_VoxelVolume"] == 216


def test_inspect_classification_data(tmp_path):
    data = make_npz(tmp_path / "toy.npz", sizes=(10, 4, 6))
    result = CliRunner().invoke(main, ["inspect", str(data)])
    assert result.exit_code == 0, result.output
    assert "20 images, 2D" in result.output and "official test split" in result.output
    np.savez(tmp_path / "bad.npz", images=np.zeros((3, 8, 8)))
    result = CliRunner().invoke(main, ["inspect", str(tmp_path / "bad.npz")])
    assert result.exit_code == 1 and "missing key(s)" in result.output
