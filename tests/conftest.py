"""Seeded factories of tiny synthetic datasets, broken ones included."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import SimpleITK as sitk


def blob_case(shape: tuple[int, ...], rng: np.random.Generator, n_classes: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """An image with one bright ellipsoid split into ``n_classes - 1`` parts, plus noise."""
    grids = np.meshgrid(*[np.arange(n, dtype=float) for n in shape], indexing="ij")
    centre = [n / 2 + rng.uniform(-1, 1) for n in shape]
    radius = [n / 4 for n in shape]
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radius))
    label = np.zeros(shape, dtype=np.uint8)
    inside = r2 < 1
    label[inside] = 1
    if n_classes > 2:
        label[inside & (grids[-1] > centre[-1])] = 2
    image = 100.0 + 50.0 * label + rng.normal(0, 8, shape)
    return image.astype(np.float32), label


def write(array: np.ndarray, path: Path, spacing: tuple[float, ...] | None = None,
          origin: tuple[float, ...] | None = None) -> Path:
    image = sitk.GetImageFromArray(array)
    if spacing is not None:
        image.SetSpacing(spacing)
    if origin is not None:
        image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path))
    return path


def make_msd(root: Path, n_cases: int = 8, shape: tuple[int, ...] = (12, 14, 12), seed: int = 0,
             modality: str = "MRI") -> Path:
    """A tiny MSD-layout 3D dataset with labels {0, 1, 2}."""
    rng = np.random.default_rng(seed)
    training = []
    for i in range(n_cases):
        image, label = blob_case(shape, rng)
        name = f"case_{i:03d}.nii.gz"
        write(image, root / "imagesTr" / name, spacing=(1.0, 1.0, 1.5))
        write(label, root / "labelsTr" / name, spacing=(1.0, 1.0, 1.5))
        training.append({"image": f"./imagesTr/{name}", "label": f"./labelsTr/{name}"})
    meta = {"name": "toy", "modality": {"0": modality},
            "labels": {"0": "background", "1": "left", "2": "right"},
            "numTraining": n_cases, "training": training}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


def make_folders_2d(root: Path, n_cases: int = 8, shape: tuple[int, int] = (32, 32), seed: int = 0,
                    suffix: str = ".png") -> Path:
    """A tiny images/ + labels/ 2D dataset with binary masks stored as {0, 255}."""
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        image, label = blob_case(shape, rng, n_classes=2)
        write(np.clip(image, 0, 255).astype(np.uint8), root / "images" / f"{i}{suffix}")
        write((label * 255).astype(np.uint8), root / "labels" / f"{i}{suffix}")
    return root


def make_nnunet(root: Path, n_cases: int = 6, shape: tuple[int, ...] = (10, 12, 10), seed: int = 0) -> Path:
    """A tiny nnU-Net raw dataset with two channels."""
    rng = np.random.default_rng(seed)
    for i in range(n_cases):
        image, label = blob_case(shape, rng)
        write(image, root / "imagesTr" / f"c{i}_0000.nii.gz")
        write(image * 0.5 + rng.normal(0, 1, shape).astype(np.float32), root / "imagesTr" / f"c{i}_0001.nii.gz")
        write(label, root / "labelsTr" / f"c{i}.nii.gz")
    meta = {"channel_names": {"0": "T1", "1": "T2"}, "labels": {"background": 0, "a": 1, "b": 2},
            "numTraining": n_cases, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(meta))
    return root


FAST_CLASSIFICATION = {"feature_sets": ["texture"], "n_trials": 3, "models": ["logistic", "lightgbm"], "pixels_side": 6}


def make_registration(root: Path, n: int = 8, shape: tuple[int, ...] = (16, 20, 16), seed: int = 0,
                      pairs: list[dict[str, str]] | None = None) -> Path:
    """A Learn2Reg-style folder of ``n`` blob volumes with two-structure labels, each shifted and scaled at random
    (seeded); ``pairs`` become its ``registration_val`` list (none: the task draws pairs from held-out images)."""
    rng = np.random.default_rng(seed)
    grids = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    entries = []
    for i in range(n):
        centre = [s / 2 + rng.uniform(-2, 2) for s in shape]
        radius = [s / 4 * rng.uniform(0.8, 1.2) for s in shape]
        r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radius))
        label = np.zeros(shape, np.uint8)
        label[r2 < 1] = 1
        label[(r2 < 1) & (grids[-1] > centre[-1])] = 2
        image = (100 + 60 * (r2 < 1) + 30 * (label == 2) + rng.normal(0, 5, shape)).astype(np.float32)
        write(image, root / "imagesTr" / f"sub{i:02d}.nii.gz")
        write(label, root / "labelsTr" / f"sub{i:02d}.nii.gz")
        entries.append({"image": f"./imagesTr/sub{i:02d}.nii.gz", "label": f"./labelsTr/sub{i:02d}.nii.gz"})
    (root / "dataset.json").write_text(json.dumps({"name": "blobs", "training": entries,
                                                   **({"registration_val": pairs} if pairs else {})}))
    return root


def images_with_discs(n: int, rng: np.random.Generator, shape=(28, 28)) -> tuple[np.ndarray, np.ndarray]:
    """Class 1 images hold a bright disc, class 0 a dim one: learnable from simple features."""
    labels = rng.integers(0, 2, n)
    grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    r2 = sum((g - s / 2) ** 2 for g, s in zip(grids, shape))
    disc = r2 < (shape[0] / 4) ** 2
    images = rng.normal(60, 15, (n, *shape))
    images[:, disc] += np.where(labels == 1, 120, 40)[:, None]
    return np.clip(images, 0, 255).astype(np.uint8), labels


def make_npz(path: Path, seed: int = 0, shape=(28, 28), sizes=(60, 16, 30)) -> Path:
    """A MedMNIST-style `.npz` of disc images with train, val and test splits of `sizes`."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        images, labels = images_with_discs(n, rng, shape)
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels[:, None]
    np.savez(path, **arrays)
    return path


@pytest.fixture
def msd(tmp_path: Path) -> Path:
    return make_msd(tmp_path / "msd")


@pytest.fixture
def folders_2d(tmp_path: Path) -> Path:
    return make_folders_2d(tmp_path / "em")


@pytest.fixture
def nnunet(tmp_path: Path) -> Path:
    return make_nnunet(tmp_path / "nnunet")


@pytest.fixture(scope="session")
def fitted_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small fitted run shared by the tests that only read it."""
    import automed

    root = tmp_path_factory.mktemp("fitted")
    data = make_msd(root / "data", n_cases=10)
    recipe = automed.Recipe(task="segmentation", n_folds=2, n_jobs=1,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}])
    automed.fit(recipe, data, root / "run", progress=False)
    return root / "run"


FAST_PARAMS = {"num_sigma": 2, "sigma_max": 2.0, "n_samples_per_class": 50, "n_trials": 2, "n_tuning_cases": 2,
               "models": ["lightgbm"]}


@pytest.fixture(scope="session")
def fitted_classification_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One small fitted classification run (MedMNIST-style .npz) shared by the tests that only read it."""
    import automed

    root = tmp_path_factory.mktemp("fitted_classification")
    data = make_npz(root / "toy.npz", sizes=(40, 12, 16))
    recipe = automed.Recipe(task="classification", n_folds=3, n_jobs=1,
                            rungs=[{"name": "classical", "params": FAST_CLASSIFICATION}])
    automed.fit(recipe, data, root / "run", progress=False)
    return root / "run"


def fit_deep(root: Path, deep: dict[str, dict], **changes) -> Any:
    """The fast classical rung and the ``deep`` rungs (name -> params) fitted on a tiny 3D MSD dataset
    written to ``root/data``; the run folder is ``root/run``."""
    import automed

    data = make_msd(root / "data", n_cases=8, shape=(16, 20, 16))
    rungs = [{"name": "classical", "params": FAST_PARAMS}, *({"name": n, "params": p} for n, p in deep.items())]
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True, rungs=rungs, **changes)
    return automed.fit(recipe, data, root / "run", progress=False)


def pytest_configure(config: pytest.Config) -> None:
    """With ``AUTOMED_FIT_LOG=FILE``, every end-to-end fit started appends its test's id to FILE (one line each),
    so the default suite's fit count can be read off a run: ``sort FILE | uniq -c``."""
    import os

    log_path = os.environ.get("AUTOMED_FIT_LOG")
    if not log_path:
        return
    from automed.ladder import runner

    set_up = runner._set_up

    def counted(*args: Any, **kwargs: Any) -> Any:
        with open(log_path, "a") as log:
            log.write(os.environ.get("PYTEST_CURRENT_TEST", "?").split(" ")[0] + "\n")
        return set_up(*args, **kwargs)

    runner._set_up = counted


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for this test session (see ``tests/postgres_server.py``); skipped, with the
    reason, only where none can be started (``AUTOMED_REQUIRE_POSTGRES=1``, set by CI: an error instead).

    Its folder is a new one under the system's temporary folder, not pytest's: pytest's is private to the
    user running the tests, and a root user's server runs as another user."""
    import shutil
    import tempfile

    from postgres_server import start_server

    folder = Path(tempfile.mkdtemp(prefix="automed-postgres-"))
    try:
        server = start_server(folder)
    except RuntimeError as exc:
        shutil.rmtree(folder, ignore_errors=True)
        if os.environ.get("AUTOMED_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"no PostgreSQL server could be started: {exc}")
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)
