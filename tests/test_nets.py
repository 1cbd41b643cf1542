"""Segmentation architectures: a shape table on CPU for each, old model.json layouts, and every
registered deep segmentation rung through the same fit / save / load / predict contract."""

from __future__ import annotations

import json

import numpy as np
import pytest

import automed
from automed.rungs import REGISTRY, rung_class
from automed.rungs.deep import DeepSegmentationRung
from automed.rungs.deep_params import DeepParams
from conftest import FAST_PARAMS, make_msd

ARCHITECTURES = sorted({entry[1]["architecture"] for entry in REGISTRY["segmentation"].values()
                        if isinstance(entry, tuple)})
DEEP_RUNGS = [name for name in REGISTRY["segmentation"]
              if issubclass(rung_class(name, "segmentation"), DeepSegmentationRung)]
TINY = {"n_trials": 2, "max_epochs": 2, "min_epochs": 1, "iterations": 2, "widths": [8], "depths": [3],
        "batch_sizes": [2], "tta": False}


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("path", ARCHITECTURES)
@pytest.mark.parametrize("depths", [(3,), (4,)])
def test_shape_table(path, spatial_dims, depths):
    import torch

    from automed.nets import architecture

    from automed.deep.training import build_loss

    net = architecture(path)
    for hp in (net.default(DeepParams(depths=depths)), net.largest(DeepParams(depths=depths))):
        side = 2 * net.size_divisor(hp)
        model = net.build(spatial_dims, 2, 3, 8, hp)
        images = torch.randn(2, 2, *(side,) * spatial_dims)
        labels = torch.randint(0, 3, (2, 1, *(side,) * spatial_dims))
        loss = net.training_loss(build_loss("dice_ce", False))(model.train()(images), labels)
        assert loss.dim() == 0 and torch.isfinite(loss)
        loss.backward()
        with torch.no_grad():
            assert model.eval()(images).shape == (2, 3, *(side,) * spatial_dims)


def test_model_json_of_an_older_version_loads():
    from automed.deep.training import config_from_dict

    old = {"kind": "unet", "spatial_dims": 3, "width": 16, "depth": 5, "res_units": 2, "loss": "dice_ce", "lr": 3e-3,
           "batch_size": 2, "augmentation": "medium", "patch": [48, 64, 48], "weight_decay": 3e-5}
    config = config_from_dict(old)
    assert config.architecture == "automed.nets.unet:UNet" and config.hp == {"depth": 5, "res_units": 2}
    assert config_from_dict({**old, "kind": "unetpp"}).hp == {}


@pytest.fixture(scope="module")
def toy3d(tmp_path_factory):
    return make_msd(tmp_path_factory.mktemp("toy3d"), n_cases=6, shape=(16, 16, 16))


@pytest.mark.parametrize("name", DEEP_RUNGS)
def test_every_deep_segmentation_rung_fits_saves_loads_and_predicts(name, toy3d, tmp_path):
    recipe = automed.Recipe(n_folds=2, n_jobs=1, full_ladder=True,
                            rungs=[{"name": "classical", "params": FAST_PARAMS}, {"name": name, "params": TINY}])
    run = automed.fit(recipe, toy3d, tmp_path / "run", progress=False)
    result = json.loads((run.folder / "rungs" / name / "result.json").read_text())
    assert result["status"] == "done", result["reason"]
    assert result["gain_vs_baseline"]["vs"] == "classical"
    cost = result["cost"]
    assert cost["n_params"] > 0 and cost["fit_seconds"] > 0 and cost["predict_seconds_per_case"] > 0
    assert cost["n_trials"] == 2 and cost["est_train_vram_bytes"] > 0
    rung = rung_class(name, "segmentation").load(run.folder / "rungs" / name)
    assert rung.predict(np.zeros((1, 16, 16, 16), np.float32)).shape == (16, 16, 16)
    written = run.predict(toy3d / "imagesTr", tmp_path / "pred", rung=name)
    assert len(written) == 6
