import numpy as np
import pytest

from automed.features.voxel import VoxelFeatures
from automed.models.classical import sample_voxels


@pytest.mark.parametrize("kwargs, shape", [
    ({"num_sigma": 2, "sigma_max": 2.0}, (1, 9, 10, 11)),
    ({"num_sigma": 3, "include_position": False}, (1, 9, 10, 11)),
    ({"num_sigma": 2, "include_rank": False}, (2, 20, 16)),
    ({"num_sigma": 1, "sigma_max": 1.0}, (1, 20, 16)),
])
def test_feature_count_matches_shape_table(kwargs, shape):
    bank = VoxelFeatures(**kwargs)
    features = bank.compute(np.random.default_rng(0).normal(size=shape).astype(np.float32))
    assert features.shape == (bank.n_features(shape[0], len(shape) - 1), *shape[1:])
    assert features.dtype == np.float32


def test_slabs_equal_whole_image():
    image = np.random.default_rng(1).normal(size=(1, 30, 12, 10)).astype(np.float32)
    bank = VoxelFeatures(sigma_min=1, sigma_max=2, num_sigma=2)
    whole = bank.compute(image).reshape(bank.n_features(1, 3), -1).T
    parts = np.concatenate([rows for _, _, rows in bank.slabs(image, max_voxels=12 * 10 * 7)])
    np.testing.assert_allclose(parts, whole, rtol=1e-4, atol=1e-4)


def test_position_and_rank_features():
    image = np.arange(12, dtype=np.float32).reshape(1, 3, 4)
    features = VoxelFeatures(num_sigma=1, sigma_max=1.0).compute(image)
    pos_y, pos_x, rank = features[-3], features[-2], features[-1]
    assert pos_y[0, 0] == 0 and pos_y[-1, 0] == 1 and pos_x[0, -1] == 1
    assert rank.min() == 0 and rank.max() == 1 and rank[1, 0] == pytest.approx(4 / 11)


def test_sampling_is_balanced_and_seeded():
    label = np.zeros((40, 40), np.uint8)
    label[10:20, 10:20] = 1
    label[25:30, 25:35] = 2
    index = sample_voxels(label, 30, 2.0, 0.5, np.random.default_rng(0))
    counts = np.bincount(label.ravel()[index], minlength=3)
    assert counts.tolist() == [60, 30, 30]
    again = sample_voxels(label, 30, 2.0, 0.5, np.random.default_rng(0))
    assert np.array_equal(index, again)


def test_radiomics_2d_log_filter_is_not_silently_skipped():
    from automed.features.radiomics import radiomics_features

    image = np.random.default_rng(0).integers(0, 255, (28, 28)).astype(np.float32)
    plain = radiomics_features(image)
    with_log = radiomics_features(image, filters=("LoG",), log_sigmas=(1.0, 2.0))
    assert len(with_log) == 3 * len(plain)
    assert "log-sigma-2_glcm_Contrast" in with_log and "original_glcm_Contrast" in with_log


def test_radiomics_shape_features_need_a_mask():
    from automed.features.radiomics import radiomics_features

    volume = np.zeros((12, 12, 12), np.float32)
    volume[3:9, 4:8, 2:10] = 200
    assert not any("shape" in k for k in radiomics_features(volume))
    assert radiomics_features(volume, volume > 0)["original_shape_VoxelVolume"] == 6 * 4 * 8


def test_many_cases_sample_fewer_voxels_each_up_to_a_total_per_class():
    from automed.rungs.segmentation.classical_params import ClassicalParams

    params = ClassicalParams()
    assert params.samples_per_case(30) == 500  # 15,000 per class in all: under the cap
    assert params.samples_per_case(200) == 150  # 30,000 per class in all
    assert ClassicalParams(max_samples_per_class=100).samples_per_case(1000) == 10  # never under 10
    assert ClassicalParams(n_samples_per_class=5000, max_samples_per_class=150_000).samples_per_case(30) == 5000
