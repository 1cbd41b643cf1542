"""Every architecture: a shape table on CPU (forward, loss and backward), and old model.json layouts.

The rungs that use them go through one contract in ``tests/test_rung_contract.py``."""

from __future__ import annotations


import pytest

from automed.tasks import get_task
from automed.rungs.classification.deep_params import DeepClassifierParams
from automed.rungs.segmentation.deep_params import DeepParams


def _architectures(task: str) -> list[str]:
    return sorted({entry[1]["architecture"] for entry in get_task(task).rungs.values() if isinstance(entry, tuple)})


ARCHITECTURES = _architectures("segmentation")
CLASSIFIERS = [path for path in _architectures("classification") if "resnet" in path]
TRANSFER = [path for path in _architectures("classification") if path not in CLASSIFIERS]


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


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("path", CLASSIFIERS)
@pytest.mark.parametrize("in_channels", [1, 3])
def test_classifier_shape_table(path, spatial_dims, in_channels):
    import torch

    from automed.nets import architecture

    net = architecture(path)
    for widths, depths in (((4,), (1,)), ((8,), (2,))):
        model = net.build(spatial_dims, in_channels, 3, net.default(DeepClassifierParams(widths=widths, depths=depths)))
        images = torch.randn(2, in_channels, *(12,) * spatial_dims)
        loss = torch.nn.functional.cross_entropy(model.train()(images), torch.tensor([0, 2]))
        loss.backward()
        with torch.no_grad():
            assert model.eval()(images).shape == (2, 3)


@pytest.mark.parametrize("path", TRANSFER)
def test_transfer_backbone_shape_table(path):
    """Random weights (the ImageNet ones are not downloaded in tests): grey or colour images of any side."""
    import torch

    from automed.nets import architecture

    arch = architecture(path)
    for in_channels in (1, 3):
        model = arch.build(2, in_channels, 2, {}).eval()
        with torch.no_grad():
            features = model.features(torch.randn(1, in_channels, 20, 20))
            assert features.shape == (1, arch.n_features)
            assert model.head(features).shape == (1, 2)


def test_classifier_model_json_of_an_older_version_loads():
    from automed.deep.classification import classifier_config_from_dict

    old = {"arch": "resnet", "spatial_dims": 2, "width": 16, "depth": 1, "loss": "focal", "sampling": "balanced",
           "lr": 1e-3, "batch_size": 32, "augmentation": "light", "weight_decay": 1e-4, "mode": "scratch"}
    config = classifier_config_from_dict(old)
    assert config.architecture == "automed.nets.resnet:ResNet" and config.hp == {"width": 16, "depth": 1}
    vgg = classifier_config_from_dict({**old, "arch": "vgg16", "width": 0, "depth": 0, "mode": "frozen"})
    assert vgg.architecture == "automed.nets.vgg16:VGG16" and vgg.hp == {}
