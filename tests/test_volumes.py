"""Training cases memory-mapped from the run's cache, and patch windows read from them."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import automed.deep.volumes as volumes_module
from automed.data.dataset import open_dataset
from automed.data.fingerprint import compute_fingerprint
from automed.deep.volumes import FOREGROUND_LOCATIONS, SampleSource, Volume, load_volumes
from conftest import make_msd


@pytest.fixture(scope="module")
def opened(tmp_path_factory):
    dataset = open_dataset(make_msd(tmp_path_factory.mktemp("vol"), n_cases=3, shape=(24, 28, 20)))
    return dataset, compute_fingerprint(dataset, progress=False)


def test_cached_cases_are_memory_mapped_equal_and_never_loaded_twice(opened, tmp_path, monkeypatch):
    dataset, fp = opened
    ids = [c.case_id for c in dataset.cases]
    in_memory = load_volumes(dataset, fp, ids)
    cached = load_volumes(dataset, fp, ids, tmp_path / "cache")
    for case_id in ids:
        a, b = in_memory[case_id], cached[case_id]
        assert isinstance(b.image, np.memmap) and isinstance(b.label, np.memmap) and not b.image.flags.writeable
        np.testing.assert_array_equal(a.image, b.image)
        np.testing.assert_array_equal(a.label, b.label)
        np.testing.assert_array_equal(a.foreground, b.foreground)
        assert a.spacing == b.spacing and a.geometry == b.geometry
        assert len(b.foreground) and (b.label[tuple(b.foreground.T)] > 0).all()

    def refuse(*args, **kwargs):
        raise AssertionError("a cached case was loaded again")

    monkeypatch.setattr(volumes_module, "load_case", refuse)
    again = load_volumes(dataset, fp, ids, tmp_path / "cache")
    np.testing.assert_array_equal(again[ids[0]].image, cached[ids[0]].image)
    assert not list((tmp_path / "cache").glob(".*")), "no half-written case folders are left"


def test_foreground_locations_are_a_seeded_sample_of_large_foregrounds():
    label = np.ones((30, 30, 30), np.uint8)
    first = volumes_module._foreground_sample(label, "case")
    assert first.shape == (FOREGROUND_LOCATIONS, 3)
    np.testing.assert_array_equal(first, volumes_module._foreground_sample(label, "case"))


def _volume(shape=(40, 48, 36)):
    label = np.zeros(shape, np.uint8)
    label[30:34, 6:10, 26:30] = 1  # a small structure far from the centre
    image = np.random.default_rng(0).normal(size=(2, *shape)).astype(np.float32)
    return Volume("big", image, label, None, (1.0, 1.0, 1.0), None, np.argwhere(label > 0).astype(np.int32))


def test_a_volume_larger_than_the_patch_is_read_in_windows_centred_on_foreground_half_the_time():
    source = SampleSource({"big": _volume()}, axis=None)
    rng = np.random.default_rng(1)
    samples = [source.get(0, (16, 16, 16), rng) for _ in range(200)]
    assert all(s["image"].shape == (2, 16, 16, 16) and s["label"].shape == (1, 16, 16, 16) for s in samples)
    assert all(s["image"].flags.writeable and not isinstance(s["image"], np.memmap) for s in samples)
    with_foreground = np.mean([s["label"].any() for s in samples])
    # the structure fills 64 of 69,120 voxels: windows centred at random would rarely hold it
    assert 0.45 <= with_foreground <= 0.75
    # a window is the volume's own content at its place
    full = source.volumes["big"]
    sample = samples[0]
    hits = [(z, y, x) for z in range(40 - 15) for y in range(48 - 15) for x in range(36 - 15)
            if np.array_equal(full.image[0, z:z + 16, y:y + 16, x:x + 16], sample["image"][0])]
    assert len(hits) == 1


def test_an_axis_shorter_than_the_patch_is_read_whole_and_left_to_pad():
    source = SampleSource({"big": _volume((40, 10, 36))}, axis=None)
    sample = source.get(0, (16, 16, 16), np.random.default_rng(0))
    assert sample["image"].shape == (2, 16, 10, 16)
    small = SampleSource({"small": _volume((12, 10, 14))}, axis=None).get(0, (16, 16, 16), np.random.default_rng(0))
    assert small["image"].shape == (2, 12, 10, 14)


def test_prediction_reads_a_memory_mapped_case_without_copying_warnings(opened, tmp_path):
    import torch

    from automed.deep.inference import predict_proba
    from automed.nets import build_network
    from automed.deep.training import NetConfig

    dataset, fp = opened
    volume = load_volumes(dataset, fp, [dataset.cases[0].case_id], tmp_path / "c")[dataset.cases[0].case_id]
    config = NetConfig("automed.nets.unet:UNet", 3, 4, {"depth": 3, "res_units": 0}, "dice_ce", 1e-3, 1, "none",
                       (16, 16, 16))
    torch.manual_seed(0)
    model = build_network(config, 1, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        proba = predict_proba(model, volume.image, config.patch, None, torch.device("cpu"), tta=True)
    assert proba.shape == (3, *volume.label.shape)
    np.testing.assert_allclose(proba.sum(0), 1.0, atol=1e-5)


def test_spilled_arrays_are_memory_mapped_copies_and_without_a_cache_stay_in_memory(tmp_path):
    from automed.data.spill import spill
    from automed.rungs.base import FitContext

    context = FitContext(None, None, [], tmp_path / "rung", 0, 1, None, "", cache_folder=tmp_path / "cache")
    path = context.scratch_path("classical", "case/with:odd name", "proba")
    assert path.parent == tmp_path / "cache" / "volumes" / "classical" and "/" not in path.name[:-4]
    array = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    mapped = spill(array, path)
    assert isinstance(mapped, np.memmap) and not mapped.flags.writeable
    np.testing.assert_array_equal(mapped, array)
    assert [p.name for p in path.parent.iterdir()] == [path.name], "no partial files are left"
    bare = FitContext(None, None, [], tmp_path / "rung", 0, 1, None, "")
    assert bare.scratch_path("classical", "a", "label") is None and spill(array, None) is array
